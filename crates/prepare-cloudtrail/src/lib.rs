//! prepare-cloudtrail: CloudTrail log objects → `train/cloudtrail/<key>.csv` tuple files and/or
//! `pairs/objects/dt=<day>/<key>.csv` pair files (`OUTPUTS`).
//!
//! Triggered by S3 ObjectCreated notifications, the same wrapped in SQS (or SNS→SQS), or EventBridge
//! "Object Created". Each object is streamed from S3, gunzipped, parsed record by record and written
//! to a temporary file that is uploaded only when the whole object succeeded. The pair file of an
//! object (one line per distinct `<entity, ip>` with its count and first/last `eventTime`) is dated
//! by the object's delivery day, so that a retrain reads a window of days by prefix and a daily
//! compaction merges one day's objects.
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use ipsight_core::keys::{cloudtrail_key, cloudtrail_key_day, output_key};
use ipsight_formats::cloudtrail::{prepare_cloudtrail_to, Outputs};
use ipsight_formats::notify::S3Object;
use ipsight_formats::pairs::PairAggregate;
use ipsight_formats::{PrepareOptions, PrepareStats};
use ipsight_lambda_shell::{InputError, Outcome, PerObject};
use ipsight_ports::{ObjectRef, ObjectStore, StoreError};
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
    pub trigger: Trigger,
    /// Limits, `ENTITY` and `IPV6` (`keep` by default: IPv6 tuples as `prepare cloudtrail --ipv6`
    /// writes them; `set_aside` counts them instead).
    pub limits: PrepareOptions,
    /// `OUTPUTS`: `tuples`, `pairs` or `tuples,pairs` (default `tuples`; the template sets both).
    pub write_tuples: bool,
    pub write_pairs: bool,
    /// `PAIRS_PREFIX` (default `pairs/objects/`): pair files go to `<prefix>dt=YYYY-MM-DD/<key>.csv`.
    pub pairs_prefix: String,
}

pub use ipsight_aws::config::ConfigError;
use ipsight_aws::config::{Env, Trigger};

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let defaults = PrepareOptions::default();
        let mut cfg = Config {
            output_bucket: env.required("OUTPUT_BUCKET")?,
            output_prefix: env.prefix("OUTPUT_PREFIX", "train/cloudtrail/"),
            trigger: Trigger::from_env(&env),
            limits: PrepareOptions {
                max_uncompressed_bytes: env
                    .number("MAX_UNCOMPRESSED_BYTES", defaults.max_uncompressed_bytes)?,
                max_record_bytes: env.number("MAX_RECORD_BYTES", defaults.max_record_bytes)?,
                entity: env.entity()?,
                ipv6: env.ipv6_tuples()?,
            },
            write_tuples: false,
            write_pairs: false,
            pairs_prefix: env.prefix("PAIRS_PREFIX", "pairs/objects/"),
        };
        let outputs = env.or("OUTPUTS", "tuples");
        for o in outputs.split(',').map(str::trim) {
            match o {
                "tuples" => cfg.write_tuples = true,
                "pairs" => cfg.write_pairs = true,
                _ => {
                    return Err(ConfigError::invalid(
                        "OUTPUTS",
                        outputs.clone(),
                        "a comma-separated list of `tuples` and `pairs`",
                    ))
                }
            }
        }
        cfg.trigger.refuse(&cfg.output_bucket, &cfg.output_prefix)?;
        if cfg.write_pairs {
            cfg.trigger.refuse(&cfg.output_bucket, &cfg.pairs_prefix)?;
        }
        Ok(cfg)
    }
}

/// One object's result: what was written (the tuple CSV and/or the pair file) and the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub outputs: Vec<ObjectRef>,
    pub stats: PrepareStats,
    /// Lines of the pair file (distinct pairs), when one was written.
    pub pairs: Option<u64>,
}

/// Process one CloudTrail object end to end. Nothing is written unless the whole object succeeded.
pub async fn process_object(
    cfg: &Config,
    store: &impl ObjectStore,
    obj: &S3Object,
) -> Result<Outcome<Prepared>, InputError> {
    let input = ObjectRef::new(&obj.bucket, &obj.key);
    let started = Instant::now();
    let fail = |reason: String| InputError::new(input.to_string(), reason);
    // S3 failing us (throttling, timeouts, 5xx after the SDK's retries) is worth a retry; a
    // missing or forbidden object, or a bad body, is not.
    let store_fail = |e: StoreError| match e {
        StoreError::Other { .. } => InputError::temporary(input.to_string(), e.to_string()),
        _ => InputError::new(input.to_string(), e.to_string()),
    };
    // Never read our own output, whatever the trigger configuration says.
    if obj.bucket == cfg.output_bucket && obj.key.starts_with(&cfg.output_prefix) {
        return Ok(Outcome::Skipped("own_output"));
    }
    if obj.bucket == cfg.output_bucket && cfg.write_pairs && obj.key.starts_with(&cfg.pairs_prefix)
    {
        return Ok(Outcome::Skipped("own_output"));
    }
    if let Err(reason) = cloudtrail_key(&obj.key, obj.size) {
        return Ok(Outcome::Skipped(reason.as_str()));
    }
    let day = cloudtrail_key_day(&obj.key);
    let body = store.get(&input).await.map_err(store_fail)?;
    let compressed = body.size;
    let tmp = tempfile::NamedTempFile::new().map_err(|e| fail(format!("temporary file: {e}")))?;
    let out_file = tmp
        .reopen()
        .map_err(|e| fail(format!("temporary file: {e}")))?;
    let reader = tokio_util::io::SyncIoBridge::new(body.reader);
    let limits = cfg.limits.clone();
    let (write_tuples, write_pairs) = (cfg.write_tuples, cfg.write_pairs);
    // Parsing is CPU-bound and synchronous: keep it off the async workers.
    let (stats, pairs) = tokio::task::spawn_blocking(move || {
        let mut w = BufWriter::with_capacity(256 << 10, out_file);
        let mut agg = write_pairs.then(PairAggregate::new);
        let outputs = Outputs {
            tuples: write_tuples.then_some(&mut w),
            pairs: agg.as_mut(),
        };
        let stats = prepare_cloudtrail_to(
            BufReader::with_capacity(256 << 10, reader),
            outputs,
            &limits,
        )
        .map_err(|e| e.to_string())?;
        w.flush()
            .map_err(|e| format!("writing temporary file: {e}"))?;
        Ok::<_, String>((stats, agg))
    })
    .await
    .map_err(|e| fail(format!("parser task failed: {e}")))?
    .map_err(fail)?;
    let mut outputs = Vec::new();
    let mut bytes_out = 0;
    if write_tuples {
        let output = ObjectRef::new(
            &cfg.output_bucket,
            output_key(&cfg.output_prefix, &obj.key, ".csv"),
        );
        store
            .put_file(&output, tmp.path(), "text/csv")
            .await
            .map_err(store_fail)?;
        bytes_out += tmp.as_file().metadata().map(|m| m.len()).unwrap_or(0);
        outputs.push(output);
    }
    let pair_lines = pairs.as_ref().map(|a| a.len() as u64);
    if let Some(agg) = pairs {
        // Every log object's name carries its day (the key filter above requires CloudTrail naming).
        let day = day.ok_or_else(|| fail("no delivery date in the object name".into()))?;
        let output = ObjectRef::new(
            &cfg.output_bucket,
            output_key(&format!("{}dt={day}/", cfg.pairs_prefix), &obj.key, ".csv"),
        );
        let mut body = Vec::new();
        bytes_out += agg.write(&mut body).expect("writing to a Vec");
        store
            .put_bytes(&output, body.into(), "text/csv")
            .await
            .map_err(store_fail)?;
        outputs.push(output);
    }
    let mut f = Map::new();
    f.insert("event".into(), "object_prepared".into());
    f.insert("object".into(), input.to_string().into());
    f.insert(
        "outputs".into(),
        json!(outputs.iter().map(ToString::to_string).collect::<Vec<_>>()),
    );
    f.insert("compressed_bytes".into(), json!(compressed));
    f.insert("ms".into(), json!(started.elapsed().as_millis() as u64));
    ipsight_ports::emf::log(
        FUNCTION,
        f,
        &[
            ("records", stats.records),
            ("tuples", stats.tuples),
            ("skipped_no_principal", stats.no_principal),
            ("skipped_aws_internal", stats.aws_internal),
            ("skipped_service_host", stats.service_host),
            ("skipped_ipv6", stats.ipv6),
            ("ipv6_tuples", stats.ipv6_tuples),
            ("skipped_missing_ip", stats.missing_ip),
            ("skipped_invalid_ip", stats.invalid_ip),
            ("bytes_in", stats.bytes_in),
            ("bytes_out", bytes_out),
            ("pairs", pair_lines.unwrap_or(0)),
        ],
    );
    Ok(Outcome::Done(Prepared {
        outputs,
        stats,
        pairs: pair_lines,
    }))
}

/// The function in the Lambda shell: a handler borrowing its configuration and store.
pub struct PrepareCloudTrail<'a, S> {
    pub cfg: &'a Config,
    pub store: &'a S,
}

impl<S: ObjectStore> PerObject for PrepareCloudTrail<'_, S> {
    const FUNCTION: &'static str = FUNCTION;
    type Done = Prepared;
    type Totals = PrepareStats;

    async fn process(&self, obj: &S3Object) -> Result<Outcome<Prepared>, InputError> {
        process_object(self.cfg, self.store, obj).await
    }

    fn tally(total: &mut PrepareStats, written: &mut Vec<String>, done: Prepared) {
        total.add(&done.stats);
        written.extend(done.outputs.iter().map(ToString::to_string));
    }

    fn report(total: PrepareStats, summary: &mut Map<String, Value>) {
        summary.insert("stats".into(), json!(total));
    }
}

/// Handle one Lambda event (every trigger shape: see `ipsight_lambda_shell`).
pub async fn handle(
    cfg: &Config,
    store: &impl ObjectStore,
    event: Value,
) -> Result<Value, anyhow::Error> {
    ipsight_lambda_shell::handle(&PrepareCloudTrail { cfg, store }, event).await
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
