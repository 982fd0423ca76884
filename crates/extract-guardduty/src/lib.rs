//! extract-guardduty: GuardDuty findings → one inference record and one tuple CSV per finding.
//!
//! Triggers: EventBridge "GuardDuty Finding" events (one finding each), Security Hub "Security Hub
//! Findings - Imported" events (ASFF; GuardDuty's findings are extracted, other products' counted),
//! S3 notifications of GuardDuty export objects
//! (`AWSLogs/<acct>/GuardDuty/<region>/YYYY/MM/DD/*.jsonl.gz`, KMS-encrypted: GetObject decrypts
//! given `kms:Decrypt` on the export key), and those notifications through SQS (partial batch
//! failures) or SNS.
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
use futures::future::BoxFuture;
use futures::StreamExt;
use ipsight_core::keys::{finding_output_keys, guardduty_export_key};
use ipsight_formats::guardduty::{
    extract_all, extract_value_as, keep_latest, ExtractStats, FindingRecord, ReadOptions,
};
use ipsight_formats::notify::{Notification, S3Object};
use ipsight_lambda_shell::{InputError, Outcome, PerObject};
use ipsight_ports::{ObjectRef, ObjectStore, StoreError};
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
    pub trigger: Trigger,
    pub limits: ReadOptions,
}

pub use ipsight_aws::config::ConfigError;
use ipsight_aws::config::{Env, Trigger};

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let defaults = ReadOptions::default();
        let cfg = Config {
            output_bucket: env.required("OUTPUT_BUCKET")?,
            output_prefix: env.prefix("OUTPUT_PREFIX", "infer/guardduty/"),
            trigger: Trigger::from_env(&env),
            limits: ReadOptions {
                max_uncompressed_bytes: env
                    .number("MAX_UNCOMPRESSED_BYTES", defaults.max_uncompressed_bytes)?,
                max_line_bytes: env.number("MAX_LINE_BYTES", defaults.max_line_bytes)?,
                entity: env.entity()?,
            },
        };
        cfg.trigger.refuse(&cfg.output_bucket, &cfg.output_prefix)?;
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

/// Write the records of one input. Tuples first, then the record: the record is what fuse reads,
/// so it only appears once its tuples exist.
pub async fn write_records(
    cfg: &Config,
    store: &impl ObjectStore,
    records: Vec<FindingRecord>,
) -> Result<Written, StoreError> {
    let results: Vec<Result<Option<String>, StoreError>> =
        futures::stream::iter(keep_latest(records).into_iter().map(|rec| async move {
            let (record_key, tuples_key) = finding_output_keys(
                &cfg.output_prefix,
                &rec.account_id,
                &rec.region,
                &rec.finding_id,
            );
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

/// One export object's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub written: Written,
    pub stats: ExtractStats,
}

/// An invocation's results added up.
#[derive(Debug, Default)]
pub struct Totals {
    stale: u64,
    stats: ExtractStats,
}

/// Process one GuardDuty export object end to end. Nothing is written unless it parsed whole.
pub async fn process_object(
    cfg: &Config,
    store: &impl ObjectStore,
    obj: &S3Object,
) -> Result<Outcome<Extracted>, InputError> {
    let input = ObjectRef::new(&obj.bucket, &obj.key);
    let started = Instant::now();
    let fail = |reason: String| InputError::new(input.to_string(), reason);
    // Never read our own output, whatever the trigger configuration says.
    if obj.bucket == cfg.output_bucket && obj.key.starts_with(&cfg.output_prefix) {
        return Ok(Outcome::Skipped("own_output"));
    }
    if let Err(reason) = guardduty_export_key(&obj.key, obj.size) {
        return Ok(Outcome::Skipped(reason));
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
    Ok(Outcome::Done(Extracted { written, stats }))
}

/// Process findings carried by the event itself (EventBridge, or EventBridge → SQS).
pub async fn process_event_findings(
    cfg: &Config,
    store: &impl ObjectStore,
    event: Value,
    label: &str,
) -> Result<(Written, ExtractStats), InputError> {
    let fail = |reason: String| InputError::new(label, reason);
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
    // Findings without a record, by id: what an operator looks up when a count looks wrong.
    if !stats.skipped.is_empty() {
        fields.insert("skipped".into(), json!(stats.skipped));
    }
    ipsight_ports::emf::log(
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
            ("skipped_other_product", stats.other_product),
            ("skipped_unreadable", stats.unreadable),
            ("invalid_ips", stats.invalid_ips),
            ("stale_redeliveries", written.stale),
        ],
    );
}

/// An event that carries findings itself: GuardDuty's own, or Security Hub's imported ones.
fn is_guardduty_finding(n: &Notification) -> bool {
    matches!(n, Notification::EventBridge { source, detail_type, .. }
        if (source == "aws.guardduty" && detail_type == "GuardDuty Finding")
            || (source == "aws.securityhub" && detail_type == "Security Hub Findings - Imported"))
}

/// The function in the Lambda shell. Besides export objects it takes EventBridge "GuardDuty
/// Finding" and Security Hub "Security Hub Findings - Imported" events, directly or through SQS.
pub struct ExtractGuardDuty<'a, S> {
    pub cfg: &'a Config,
    pub store: &'a S,
}

impl<S: ObjectStore> PerObject for ExtractGuardDuty<'_, S> {
    const FUNCTION: &'static str = FUNCTION;
    type Done = Extracted;
    type Totals = Totals;

    async fn process(&self, obj: &S3Object) -> Result<Outcome<Extracted>, InputError> {
        process_object(self.cfg, self.store, obj).await
    }

    fn tally(total: &mut Totals, written: &mut Vec<String>, done: Extracted) {
        total.stats.add(&done.stats);
        total.stale += done.written.stale;
        written.extend(done.written.records);
    }

    fn report(total: Totals, summary: &mut Map<String, Value>) {
        summary.insert("stale".into(), json!(total.stale));
        summary.insert("stats".into(), json!(total.stats));
    }

    fn event(
        &self,
        n: &Notification,
        event: Value,
        input: String,
    ) -> Option<BoxFuture<'_, Result<Value, InputError>>> {
        is_guardduty_finding(n).then(|| {
            Box::pin(async move {
                let (w, stats) =
                    process_event_findings(self.cfg, self.store, event, &input).await?;
                Ok(json!({"written": w.records, "stale": w.stale, "stats": stats}))
            }) as BoxFuture<'_, _>
        })
    }
}

/// Handle one Lambda event: GuardDuty findings from EventBridge, native or imported by Security
/// Hub (a failure fails the invocation: EventBridge retries, then its DLQ), export objects (S3 /
/// SNS / EventBridge), or SQS batches of either (see `ipsight_lambda_shell`).
pub async fn handle(
    cfg: &Config,
    store: &impl ObjectStore,
    event: Value,
) -> Result<Value, anyhow::Error> {
    ipsight_lambda_shell::handle(&ExtractGuardDuty { cfg, store }, event).await
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
