//! extract-guardduty: GuardDuty findings → one inference record and one tuple CSV per finding.
//!
//! Triggers: EventBridge "GuardDuty Finding" events (one finding each), S3 notifications of GuardDuty
//! export objects (`AWSLogs/<acct>/GuardDuty/<region>/YYYY/MM/DD/*.jsonl.gz`, KMS-encrypted:
//! GetObject decrypts given `kms:Decrypt` on the export key), and those notifications through SQS
//! (partial batch failures) or SNS.
//!
//! Outputs, per finding, at keys derived from the finding id only:
//! * `<prefix>findings/<account>/<region>/<id>.json`: the [`FindingRecord`] (context + pairs);
//! * `<prefix>tuples/<account>/<region>/<id>.csv`: its `entity,ip` tuples for the scorer.
//!
//! GuardDuty updates findings in place (same id, higher `count`), so a re-sent finding overwrites its
//! record, and a stale redelivery (lower count / older `updatedAt` than what is stored) is ignored
//! instead of regressing it. An export object is parsed whole before anything is written.
use std::io::BufReader;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use ipsight_aws::emf::emf_line;
use ipsight_aws::{ObjectRef, ObjectStore, StoreError};
use ipsight_formats::guardduty::{
    export_key, extract_all, extract_value_as, keep_latest, ExtractStats, FindingRecord,
    ReadOptions,
};
use ipsight_formats::notify::{parse_body, parse_notification, Notification, S3Object};
use serde_json::{json, Map, Value};
use tokio::io::AsyncReadExt;

pub const FUNCTION: &str = "extract-guardduty";

/// Parallel writes per invocation: each finding is a GET (freshness check) and one or two PUTs.
const WRITE_CONCURRENCY: usize = 16;

/// Configuration from the environment (set by the SAM template).
#[derive(Debug, Clone)]
pub struct Config {
    /// `OUTPUT_BUCKET`: where records and tuples go.
    pub output_bucket: String,
    /// `OUTPUT_PREFIX` (default `infer/guardduty/`).
    pub output_prefix: String,
    /// `INPUT_BUCKET` / `INPUT_PREFIX`: the export destination that triggers us, used to refuse a
    /// self-triggering setup.
    pub input_bucket: Option<String>,
    pub input_prefix: String,
    pub limits: ReadOptions,
}

pub use ipsight_aws::config::ConfigError;
use ipsight_aws::config::{entity_kind, number, refuse_retrigger, required};

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = ReadOptions::default();
        let cfg = Config {
            output_bucket: required(&get, "OUTPUT_BUCKET")?,
            output_prefix: get("OUTPUT_PREFIX").unwrap_or_else(|| "infer/guardduty/".into()),
            input_bucket: get("INPUT_BUCKET").filter(|s| !s.is_empty()),
            input_prefix: get("INPUT_PREFIX").unwrap_or_default(),
            limits: ReadOptions {
                max_uncompressed_bytes: number(
                    &get,
                    "MAX_UNCOMPRESSED_BYTES",
                    defaults.max_uncompressed_bytes,
                )?,
                max_line_bytes: number(&get, "MAX_LINE_BYTES", defaults.max_line_bytes)?,
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

/// What happened to the records of one input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Finding record keys written (the tuple CSV sits beside each).
    pub records: Vec<String>,
    /// Findings not written because the stored record is newer.
    pub stale: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("{input}: {reason}")]
pub struct InputError {
    /// The object, or the event, that failed.
    pub input: String,
    pub reason: String,
}

/// Write the records of one input. Tuples first, then the record: the record is what fuse reads,
/// so it only appears once its tuples exist.
pub async fn write_records(
    cfg: &Config,
    store: &impl ObjectStore,
    records: Vec<FindingRecord>,
) -> Result<Written, StoreError> {
    let results: Vec<Result<Option<String>, StoreError>> =
        futures::stream::iter(keep_latest(records).into_iter().map(|rec| async move {
            let (record_key, tuples_key) = rec.output_keys(&cfg.output_prefix);
            let record_obj = ObjectRef::new(&cfg.output_bucket, record_key);
            if let Some(stored) = read_record(store, &record_obj).await? {
                if rec.is_older_than(&stored) {
                    return Ok(None);
                }
            }
            if !rec.pairs.is_empty() {
                store
                    .put_bytes(
                        &ObjectRef::new(&cfg.output_bucket, tuples_key),
                        Bytes::from(rec.tuples_csv()),
                        "text/csv",
                    )
                    .await?;
            }
            let mut body = serde_json::to_vec(&rec).expect("records serialise");
            body.push(b'\n');
            store
                .put_bytes(&record_obj, Bytes::from(body), "application/json")
                .await?;
            Ok(Some(record_obj.key))
        }))
        .buffered(WRITE_CONCURRENCY)
        .collect()
        .await;
    let mut out = Written::default();
    for r in results {
        match r? {
            Some(k) => out.records.push(k),
            None => out.stale += 1,
        }
    }
    Ok(out)
}

/// The stored record, if any. An unreadable stored record is replaced rather than failing forever.
async fn read_record(
    store: &impl ObjectStore,
    obj: &ObjectRef,
) -> Result<Option<FindingRecord>, StoreError> {
    let mut body = match store.get(obj).await {
        Ok(b) => b,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    // Records are a few KB; the bound keeps a misplaced large object from being read whole.
    (&mut body.reader)
        .take(16 << 20)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| StoreError::Other {
            obj: obj.clone(),
            op: "GetObject",
            msg: e.to_string(),
        })?;
    Ok(serde_json::from_slice(&buf).ok())
}

/// What happened to one export object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Written {
        written: Written,
        stats: ExtractStats,
    },
    Skipped(&'static str),
}

/// Process one GuardDuty export object end to end. Nothing is written unless it parsed whole.
pub async fn process_object(
    cfg: &Config,
    store: &impl ObjectStore,
    obj: &S3Object,
) -> Result<Outcome, InputError> {
    let input = ObjectRef::new(&obj.bucket, &obj.key);
    let started = Instant::now();
    let fail = |reason: String| InputError {
        input: input.to_string(),
        reason,
    };
    // Never read our own output, whatever the trigger configuration says.
    if obj.bucket == cfg.output_bucket && obj.key.starts_with(&cfg.output_prefix) {
        return Ok(log_skip(&input, "own_output"));
    }
    if let Err(reason) = export_key(&obj.key, obj.size) {
        return Ok(log_skip(&input, reason));
    }
    let body = store.get(&input).await.map_err(|e| fail(e.to_string()))?;
    let compressed = body.size;
    let reader = tokio_util::io::SyncIoBridge::new(body.reader);
    let limits = cfg.limits.clone();
    // Decompression and parsing are CPU-bound and synchronous: keep them off the async workers.
    let (records, stats) = tokio::task::spawn_blocking(move || {
        extract_all(BufReader::with_capacity(64 << 10, reader), &limits)
    })
    .await
    .map_err(|e| fail(format!("parser task failed: {e}")))?
    .map_err(|e| fail(e.to_string()))?;
    let written = write_records(cfg, store, records)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut f = Map::new();
    f.insert("event".into(), "export_extracted".into());
    f.insert("object".into(), input.to_string().into());
    f.insert("compressed_bytes".into(), json!(compressed));
    f.insert("ms".into(), json!(started.elapsed().as_millis() as u64));
    log_stats(f, &stats, &written);
    Ok(Outcome::Written { written, stats })
}

/// Process findings carried by the event itself (EventBridge, or EventBridge → SQS).
pub async fn process_event_findings(
    cfg: &Config,
    store: &impl ObjectStore,
    event: Value,
    label: &str,
) -> Result<(Written, ExtractStats), InputError> {
    let fail = |reason: String| InputError {
        input: label.to_owned(),
        reason,
    };
    let (records, stats) =
        extract_value_as(event, cfg.limits.entity).map_err(|e| fail(e.to_string()))?;
    let written = write_records(cfg, store, records)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut f = Map::new();
    f.insert("event".into(), "finding_extracted".into());
    f.insert("input".into(), label.into());
    log_stats(f, &stats, &written);
    Ok((written, stats))
}

fn log_stats(mut fields: Map<String, Value>, stats: &ExtractStats, written: &Written) {
    fields.insert("written".into(), json!(written.records));
    println!(
        "{}",
        emf_line(
            "ipsight",
            FUNCTION,
            fields,
            &[
                ("findings", stats.findings),
                ("records", stats.records),
                ("tuples", stats.pairs),
                ("ipv6_pairs", stats.ipv6_pairs),
                ("sample_findings", stats.samples),
                ("skipped_no_principal", stats.no_principal),
                ("skipped_no_remote_ip", stats.no_remote_ip),
                ("skipped_no_id", stats.no_id),
                ("invalid_ips", stats.invalid_ips),
                ("stale_redeliveries", written.stale),
            ],
        )
    );
}

fn log_skip(obj: &ObjectRef, reason: &'static str) -> Outcome {
    println!(
        "{}",
        json!({"event": "object_skipped", "function": FUNCTION, "object": obj.to_string(), "reason": reason})
    );
    Outcome::Skipped(reason)
}

fn log_error(e: &InputError) {
    eprintln!(
        "{}",
        json!({"event": "input_failed", "function": FUNCTION, "input": e.input, "error": e.reason})
    );
}

fn is_guardduty_finding(n: &Notification) -> bool {
    matches!(n, Notification::EventBridge { source, detail_type, .. }
        if source == "aws.guardduty" && detail_type == "GuardDuty Finding")
}

/// Handle one Lambda event.
///
/// * EventBridge "GuardDuty Finding": the finding is extracted and written; a failure fails the
///   invocation (EventBridge retries, then its DLQ).
/// * S3 / SNS / EventBridge "Object Created" for export objects: every object is attempted; if any
///   failed the invocation fails (outputs of the others are rewritten identically on retry).
/// * SQS batches (of either of the above): each message stands alone and the response lists the
///   failed ones (`batchItemFailures`, with `ReportBatchItemFailures` on the event source mapping).
pub async fn handle(
    cfg: &Config,
    store: &impl ObjectStore,
    event: Value,
) -> Result<Value, anyhow::Error> {
    let n = parse_notification(&event)?;
    if is_guardduty_finding(&n) {
        let id = event.get("id").and_then(Value::as_str).unwrap_or("?");
        return match process_event_findings(cfg, store, event.clone(), &format!("event {id}")).await
        {
            Ok((w, stats)) => Ok(json!({"written": w.records, "stale": w.stale, "stats": stats})),
            Err(e) => {
                log_error(&e);
                Err(e.into())
            }
        };
    }
    match n {
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
            for m in &messages {
                let ok = match parse_body(&m.body) {
                    Ok(Notification::TestEvent) => true,
                    Ok(Notification::Objects(objects)) => {
                        process_all(cfg, store, &objects).await.1.is_empty()
                    }
                    Ok(n) if is_guardduty_finding(&n) => {
                        // EventBridge → SQS: the body is the event.
                        let event: Value = serde_json::from_str(&m.body).unwrap_or(Value::Null);
                        let label = format!("message {}", m.message_id);
                        match process_event_findings(cfg, store, event, &label).await {
                            Ok(_) => true,
                            Err(e) => {
                                log_error(&e);
                                false
                            }
                        }
                    }
                    Ok(other) => {
                        log_message_failure(
                            &m.message_id,
                            &format!("unsupported message: {}", other.describe()),
                        );
                        false
                    }
                    Err(e) => {
                        log_message_failure(&m.message_id, &e.to_string());
                        false
                    }
                };
                if !ok {
                    failures.push(json!({"itemIdentifier": m.message_id}));
                }
            }
            Ok(json!({"batchItemFailures": failures}))
        }
        other => anyhow::bail!("unsupported event for {FUNCTION}: {}", other.describe()),
    }
}

fn log_message_failure(id: &str, error: &str) {
    eprintln!(
        "{}",
        json!({"event": "message_failed", "function": FUNCTION, "message_id": id, "error": error})
    );
}

async fn process_all(
    cfg: &Config,
    store: &impl ObjectStore,
    objects: &[S3Object],
) -> (Value, Vec<String>) {
    let mut written = Vec::new();
    let mut stale = 0u64;
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    let mut total = ExtractStats::default();
    for o in objects {
        match process_object(cfg, store, o).await {
            Ok(Outcome::Written { written: w, stats }) => {
                total.add(&stats);
                written.extend(w.records);
                stale += w.stale;
            }
            Ok(Outcome::Skipped(reason)) => skipped.push(json!({"key": o.key, "reason": reason})),
            Err(e) => {
                log_error(&e);
                errors.push(e.to_string());
            }
        }
    }
    (
        json!({"written": written, "stale": stale, "skipped": skipped, "failed": errors, "stats": total}),
        errors,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use ipsight_testkit::vars as env;

    #[test]
    fn config_refuses_self_trigger() {
        let e = Config::from_lookup(env(&[
            ("OUTPUT_BUCKET", "b"),
            ("INPUT_BUCKET", "b"),
            ("INPUT_PREFIX", "infer/"),
        ]))
        .unwrap_err();
        assert!(matches!(e, ConfigError::Retrigger { .. }));
        assert!(e.to_string().contains("infinite loop"));
        let ok = Config::from_lookup(env(&[
            ("OUTPUT_BUCKET", "b"),
            ("INPUT_BUCKET", "b"),
            ("INPUT_PREFIX", "AWSLogs/"),
        ]))
        .unwrap();
        assert_eq!(ok.output_prefix, "infer/guardduty/");
        assert!(matches!(
            Config::from_lookup(env(&[])),
            Err(ConfigError::Missing("OUTPUT_BUCKET"))
        ));
        assert!(matches!(
            Config::from_lookup(env(&[("OUTPUT_BUCKET", "b"), ("MAX_LINE_BYTES", "big")])),
            Err(ConfigError::NotANumber { .. })
        ));
    }
}
