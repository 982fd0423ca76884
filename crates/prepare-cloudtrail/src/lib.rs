//! prepare-cloudtrail: CloudTrail log objects → `train/cloudtrail/<key>.csv` tuple files.
//!
//! Triggered by S3 ObjectCreated notifications, the same wrapped in SQS (or SNS→SQS), or EventBridge
//! "Object Created". Each object is streamed from S3, gunzipped, parsed record by record and written
//! to a temporary file that is uploaded only when the whole object succeeded.
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use ipsight_aws::emf::emf_line;
use ipsight_aws::{ObjectRef, ObjectStore};
use ipsight_formats::keys::{cloudtrail_key, output_key};
use ipsight_formats::notify::{parse_body, parse_notification, Notification, S3Object};
use ipsight_formats::{prepare_cloudtrail, PrepareOptions, PrepareStats};
use serde_json::{json, Map, Value};

pub const FUNCTION: &str = "prepare-cloudtrail";

/// Configuration from the environment (set by the SAM template).
#[derive(Debug, Clone)]
pub struct Config {
    /// `OUTPUT_BUCKET`: where tuple CSVs go.
    pub output_bucket: String,
    /// `OUTPUT_PREFIX` (default `train/cloudtrail/`).
    pub output_prefix: String,
    /// `INPUT_BUCKET` / `INPUT_PREFIX`: what triggers us, used to refuse a self-triggering setup.
    pub input_bucket: Option<String>,
    pub input_prefix: String,
    pub limits: PrepareOptions,
}

pub use ipsight_aws::config::ConfigError;
use ipsight_aws::config::{entity_kind, number, refuse_retrigger, required};

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = PrepareOptions::default();
        let cfg = Config {
            output_bucket: required(&get, "OUTPUT_BUCKET")?,
            output_prefix: get("OUTPUT_PREFIX").unwrap_or_else(|| "train/cloudtrail/".into()),
            input_bucket: get("INPUT_BUCKET").filter(|s| !s.is_empty()),
            input_prefix: get("INPUT_PREFIX").unwrap_or_default(),
            limits: PrepareOptions {
                max_uncompressed_bytes: number(
                    &get,
                    "MAX_UNCOMPRESSED_BYTES",
                    defaults.max_uncompressed_bytes,
                )?,
                max_record_bytes: number(&get, "MAX_RECORD_BYTES", defaults.max_record_bytes)?,
                entity: entity_kind(&get)?,
            },
        };
        refuse_retrigger(
            cfg.input_bucket.as_deref(),
            &cfg.input_prefix,
            &cfg.output_bucket,
            &cfg.output_prefix,
        )?;
        Ok(cfg)
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Written {
        output: ObjectRef,
        stats: PrepareStats,
    },
    Skipped(&'static str),
}

#[derive(Debug, thiserror::Error)]
#[error("{object}: {reason}")]
pub struct ObjectError {
    pub object: ObjectRef,
    pub reason: String,
}

/// Process one CloudTrail object end to end. Nothing is written unless the whole object succeeded.
pub async fn process_object(
    cfg: &Config,
    store: &impl ObjectStore,
    obj: &S3Object,
) -> Result<Outcome, ObjectError> {
    let input = ObjectRef::new(&obj.bucket, &obj.key);
    let started = Instant::now();
    let fail = |reason: String| ObjectError {
        object: input.clone(),
        reason,
    };
    // Never read our own output, whatever the trigger configuration says.
    if obj.bucket == cfg.output_bucket && obj.key.starts_with(&cfg.output_prefix) {
        return Ok(log_skip(&input, "own_output"));
    }
    if let Err(reason) = cloudtrail_key(&obj.key, obj.size) {
        return Ok(log_skip(&input, reason.as_str()));
    }
    let body = store.get(&input).await.map_err(|e| fail(e.to_string()))?;
    let compressed = body.size;
    let tmp = tempfile::NamedTempFile::new().map_err(|e| fail(format!("temporary file: {e}")))?;
    let out_file = tmp
        .reopen()
        .map_err(|e| fail(format!("temporary file: {e}")))?;
    let reader = tokio_util::io::SyncIoBridge::new(body.reader);
    let limits = cfg.limits.clone();
    // Parsing is CPU-bound and synchronous: keep it off the async workers.
    let stats = tokio::task::spawn_blocking(move || {
        let mut w = BufWriter::with_capacity(256 << 10, out_file);
        let stats =
            prepare_cloudtrail(BufReader::with_capacity(256 << 10, reader), &mut w, &limits)
                .map_err(|e| e.to_string())?;
        w.flush()
            .map_err(|e| format!("writing temporary file: {e}"))?;
        Ok::<_, String>(stats)
    })
    .await
    .map_err(|e| fail(format!("parser task failed: {e}")))?
    .map_err(fail)?;
    let output = ObjectRef::new(
        &cfg.output_bucket,
        output_key(&cfg.output_prefix, &obj.key, ".csv"),
    );
    store
        .put_file(&output, tmp.path(), "text/csv")
        .await
        .map_err(|e| fail(e.to_string()))?;
    let bytes_out = tmp.as_file().metadata().map(|m| m.len()).unwrap_or(0);
    let mut f = Map::new();
    f.insert("event".into(), "object_prepared".into());
    f.insert("object".into(), input.to_string().into());
    f.insert("output".into(), output.to_string().into());
    f.insert("compressed_bytes".into(), json!(compressed));
    f.insert("ms".into(), json!(started.elapsed().as_millis() as u64));
    println!(
        "{}",
        emf_line(
            "ipsight",
            FUNCTION,
            f,
            &[
                ("records", stats.records),
                ("tuples", stats.tuples),
                ("skipped_no_principal", stats.no_principal),
                ("skipped_aws_internal", stats.aws_internal),
                ("skipped_service_host", stats.service_host),
                ("skipped_ipv6", stats.ipv6),
                ("skipped_missing_ip", stats.missing_ip),
                ("skipped_invalid_ip", stats.invalid_ip),
                ("bytes_in", stats.bytes_in),
                ("bytes_out", bytes_out),
            ],
        )
    );
    Ok(Outcome::Written { output, stats })
}

fn log_skip(obj: &ObjectRef, reason: &'static str) -> Outcome {
    println!(
        "{}",
        json!({"event": "object_skipped", "function": FUNCTION, "object": obj.to_string(), "reason": reason})
    );
    Outcome::Skipped(reason)
}

fn log_error(e: &ObjectError) {
    eprintln!(
        "{}",
        json!({"event": "object_failed", "function": FUNCTION, "object": e.object.to_string(), "error": e.reason})
    );
}

/// Handle one Lambda event.
///
/// * Direct S3 / EventBridge / SNS events: every object is attempted; if any failed the invocation
///   fails (Lambda retries it; outputs of objects that succeeded are overwritten identically).
/// * SQS batches: each message stands alone and the response lists the failed ones
///   (`batchItemFailures`, with `ReportBatchItemFailures` enabled on the event source mapping).
pub async fn handle(
    cfg: &Config,
    store: &impl ObjectStore,
    event: Value,
) -> Result<Value, anyhow::Error> {
    match parse_notification(&event)? {
        Notification::TestEvent => Ok(json!({"ignored": "s3:TestEvent"})),
        Notification::Objects(objects) => {
            let (summary, errors) = process_all(cfg, store, &objects).await;
            if errors.is_empty() {
                Ok(summary)
            } else {
                anyhow::bail!(
                    "{} of {} objects failed: {}",
                    errors.len(),
                    objects.len(),
                    errors.join("; ")
                )
            }
        }
        Notification::Sqs(messages) => {
            let mut failures = Vec::new();
            let mut processed = 0u64;
            for m in &messages {
                let ok = match parse_body(&m.body) {
                    Ok(Notification::TestEvent) => true,
                    Ok(Notification::Objects(objects)) => {
                        let (_, errors) = process_all(cfg, store, &objects).await;
                        processed += objects.len() as u64;
                        errors.is_empty()
                    }
                    Ok(other) => {
                        eprintln!(
                            "{}",
                            json!({"event": "message_failed", "function": FUNCTION, "message_id": m.message_id, "error": format!("unsupported message: {}", other.describe())})
                        );
                        false
                    }
                    Err(e) => {
                        eprintln!(
                            "{}",
                            json!({"event": "message_failed", "function": FUNCTION, "message_id": m.message_id, "error": e.to_string()})
                        );
                        false
                    }
                };
                if !ok {
                    failures.push(json!({"itemIdentifier": m.message_id}));
                }
            }
            let _ = processed;
            Ok(json!({"batchItemFailures": failures}))
        }
        other => anyhow::bail!("unsupported event for {FUNCTION}: {}", other.describe()),
    }
}

async fn process_all(
    cfg: &Config,
    store: &impl ObjectStore,
    objects: &[S3Object],
) -> (Value, Vec<String>) {
    let mut written = Vec::new();
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    let mut total = PrepareStats::default();
    for o in objects {
        match process_object(cfg, store, o).await {
            Ok(Outcome::Written { output, stats }) => {
                total.add(&stats);
                written.push(output.to_string());
            }
            Ok(Outcome::Skipped(reason)) => skipped.push(json!({"key": o.key, "reason": reason})),
            Err(e) => {
                log_error(&e);
                errors.push(e.to_string());
            }
        }
    }
    (
        json!({"written": written, "skipped": skipped, "failed": errors, "stats": total}),
        errors,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use ipsight_testkit::vars as env;

    #[test]
    fn config_refuses_self_trigger() {
        let e =
            Config::from_lookup(env(&[("OUTPUT_BUCKET", "b"), ("INPUT_BUCKET", "b")])).unwrap_err();
        assert!(matches!(e, ConfigError::Retrigger { .. }));
        assert!(e.to_string().contains("infinite loop"));
        let ok = Config::from_lookup(env(&[
            ("OUTPUT_BUCKET", "b"),
            ("INPUT_BUCKET", "b"),
            ("INPUT_PREFIX", "AWSLogs/"),
        ]))
        .unwrap();
        assert_eq!(ok.output_prefix, "train/cloudtrail/");
        assert_eq!(ok.limits.entity, ipsight_formats::EntityKind::Principal);
        let ua = Config::from_lookup(env(&[
            ("OUTPUT_BUCKET", "b"),
            ("ENTITY", "principal+event_source"),
        ]))
        .unwrap();
        assert_eq!(
            ua.limits.entity,
            ipsight_formats::EntityKind::PrincipalEventSource
        );
        let e =
            Config::from_lookup(env(&[("OUTPUT_BUCKET", "b"), ("ENTITY", "host")])).unwrap_err();
        assert!(e.to_string().starts_with("ENTITY=\"host\""), "{e}");
        assert!(matches!(
            Config::from_lookup(env(&[])),
            Err(ConfigError::Missing("OUTPUT_BUCKET"))
        ));
        assert!(matches!(
            Config::from_lookup(env(&[
                ("OUTPUT_BUCKET", "b"),
                ("MAX_UNCOMPRESSED_BYTES", "lots")
            ])),
            Err(ConfigError::NotANumber { .. })
        ));
    }
}
