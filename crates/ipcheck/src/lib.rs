//! ipcheck: score the `<entity, ip>` pairs of new objects with IP Insights, write the scores, raise
//! alerts for the unusual ones.
//!
//! Trigger: an SQS queue (partial batch responses). Each message body is an S3 event notification,
//! an EventBridge "Object Created" event (Amazon Security Lake subscriber notifications), an SNS
//! envelope around either, or `s3:TestEvent` (ignored). Direct S3 / EventBridge invocations work too.
//!
//! Objects, by key ([`classify_key`]):
//! * Security Lake OCSF Parquet (`*.parquet`, e.g. `*.gz.parquet`): downloaded to a size-capped
//!   temporary file (Parquet needs random access), read with [`ipsight_formats::ocsf`];
//! * OCSF JSON lines: `*.jsonl[.gz]`, and `*.json[.gz]` under `OCSF_JSON_PREFIX`;
//! * GuardDuty extractor records (`…/findings/…/<id>.json`): pairs with the finding's context;
//! * CloudTrail log objects (`…/CloudTrail/…_CloudTrail_….json.gz`);
//! * tuple CSVs (`*.csv`, `entity,ip`), except the extractor's per-finding tuple files, whose pairs
//!   are scored through the finding record beside them (with more context).
//!
//! Outputs, at keys derived from the source key only (redelivery overwrites with identical bytes):
//! * `<SCORES_PREFIX><source key>.jsonl`: one [`ScoreRecord`] per distinct pair (and class or
//!   finding), sorted, with how often and when it was seen;
//! * `<ALERTS_PREFIX><source key>.jsonl`: the records beyond the threshold, as [`Alert`]s, and the
//!   same alerts sent to an EventBridge bus (`EVENT_BUS_NAME`) as `ipsight.ipcheck` /
//!   `IP Insights unusual activity` events. EventBridge has no de-duplication: a redelivered message
//!   sends its alerts again, with the same deterministic `alert_id` for consumers to de-duplicate.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::Ipv4Addr;
use std::time::Instant;

use futures::StreamExt;
use ipsight_aws::emf::emf_line;
use ipsight_aws::{
    load_labels, LabelSource, ObjectLister, ObjectRef, ObjectStore, Pair, ScoreError, Scorer,
};
use ipsight_formats::cloudtrail::{for_each_record, record_tuple_as};
use ipsight_formats::guardduty::FindingRecord;
use ipsight_formats::ip::{classify_ip, IpClass};
use ipsight_formats::keys::{cloudtrail_key, would_retrigger};
use ipsight_formats::labels::{LabelSet, Verdict};
use ipsight_formats::limit::{is_cap_error, maybe_gunzip, CappedReader};
use ipsight_formats::notify::{parse_body, parse_notification, Notification, S3Object};
use ipsight_formats::ocsf::{
    format_time_ms, read_json_lines, read_parquet_capped, JsonLimits, OcsfMapping, OcsfPair,
};
use ipsight_formats::tuples::split_tuple;
use ipsight_formats::PrepareOptions;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

pub mod alerts;
pub use alerts::{AlertSink, EventBridgeSink, NoAlerts};

pub const FUNCTION: &str = "ipcheck";

/// Pairs handed to the scorer per call: bounds the memory of one request set while leaving the
/// adapter room to pack (the SageMaker adapter splits further at 6 MB per request).
const SCORE_CHUNK: usize = 200_000;

/// When a pair raises an alert. Both set: either suffices.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Threshold {
    /// `ALERT_MIN_PERCENTILE`: alert when the pair is less normal than this share (percent) of known
    /// activity (needs a calibrated scorer), e.g. 99.5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_unusual_percentile: Option<f64>,
    /// `ALERT_MAX_DOT_PRODUCT`: alert when `dot_product` is at or below this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_dot_product: Option<f32>,
}

impl Threshold {
    pub fn is_alert(&self, dot: f32, pct: Option<f64>) -> bool {
        self.max_dot_product.is_some_and(|t| dot <= t)
            || matches!((self.min_unusual_percentile, pct), (Some(t), Some(p)) if p >= t)
    }
}

/// Size limits for one object.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `MAX_OBJECT_BYTES`: largest Parquet object downloaded (it goes to /tmp).
    pub max_object_bytes: u64,
    /// `MAX_UNCOMPRESSED_BYTES`: cap on a streamed object's decompressed bytes.
    pub max_uncompressed_bytes: u64,
    /// `MAX_DISTINCT_PAIRS`: distinct pairs held for one object.
    pub max_distinct_pairs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_object_bytes: 2 << 30,
            max_uncompressed_bytes: 8 << 30,
            max_distinct_pairs: 5_000_000,
        }
    }
}

/// Configuration from the environment (set by the SAM template).
#[derive(Debug, Clone)]
pub struct Config {
    /// `OUTPUT_BUCKET`: where scores and alert files go.
    pub output_bucket: String,
    /// `SCORES_PREFIX` (default `scores/`).
    pub scores_prefix: String,
    /// `ALERTS_PREFIX` (default `alerts/`).
    pub alerts_prefix: String,
    /// `INPUT_BUCKET` / `INPUT_PREFIX`: what triggers us, used to refuse a self-triggering setup.
    pub input_bucket: Option<String>,
    pub input_prefix: String,
    /// `OCSF_JSON_PREFIX`: `.json`/`.json.gz` objects under it are OCSF JSON lines.
    pub ocsf_json_prefix: Option<String>,
    /// `EVENT_BUS_NAME`: custom EventBridge bus for alerts (unset: alert files only).
    pub event_bus: Option<String>,
    pub threshold: Threshold,
    pub mapping: OcsfMapping,
    pub limits: Limits,
    /// `MESSAGE_CONCURRENCY`: SQS messages handled at once (I/O overlaps; default 4).
    pub message_concurrency: usize,
    /// `LABELS_URI` / `LABELS_PREFIX` (a prefix of `OUTPUT_BUCKET`): analyst labels, read once per
    /// invocation. A pair confirmed as a false positive raises no alert (its score line says why);
    /// a confirmed true positive alerts whatever its score.
    pub labels: Option<LabelSource>,
    /// `ENTITY`: what the entities are (default `principal`); must match the model's and the
    /// extractor's.
    pub entity: ipsight_formats::EntityKind,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("ENTITY={0}")]
    Entity(String),
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name}={value:?} is not a valid number")]
    NotANumber { name: &'static str, value: String },
    #[error("{name}={value:?}: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: &'static str,
    },
    #[error(transparent)]
    Mapping(#[from] ipsight_formats::ocsf::MappingError),
    #[error(transparent)]
    Labels(#[from] ipsight_aws::LabelLoadError),
    #[error(
        "output s3://{out_bucket}/{out_prefix} overlaps the trigger s3://{in_bucket}/{in_prefix}: every \
         object written would trigger this function again (an infinite loop). Use another bucket or \
         non-overlapping prefixes."
    )]
    Retrigger {
        in_bucket: String,
        in_prefix: String,
        out_bucket: String,
        out_prefix: String,
    },
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        fn parse<T: std::str::FromStr>(
            name: &'static str,
            v: Option<String>,
        ) -> Result<Option<T>, ConfigError> {
            v.map(|s| {
                s.parse()
                    .map_err(|_| ConfigError::NotANumber { name, value: s })
            })
            .transpose()
        }
        let defaults = Limits::default();
        let threshold = Threshold {
            min_unusual_percentile: parse("ALERT_MIN_PERCENTILE", get("ALERT_MIN_PERCENTILE"))?,
            max_dot_product: parse("ALERT_MAX_DOT_PRODUCT", get("ALERT_MAX_DOT_PRODUCT"))?,
        };
        if let Some(p) = threshold.min_unusual_percentile {
            if !(0.0..=100.0).contains(&p) {
                return Err(ConfigError::Invalid {
                    name: "ALERT_MIN_PERCENTILE",
                    value: p.to_string(),
                    why: "a percentage, 0 to 100",
                });
            }
        }
        if threshold.max_dot_product.is_some_and(|d| !d.is_finite()) {
            return Err(ConfigError::Invalid {
                name: "ALERT_MAX_DOT_PRODUCT",
                value: get("ALERT_MAX_DOT_PRODUCT").unwrap_or_default(),
                why: "a finite number",
            });
        }
        let output_bucket = get("OUTPUT_BUCKET").ok_or(ConfigError::Missing("OUTPUT_BUCKET"))?;
        let labels = LabelSource::from_vars(
            get("LABELS_URI").as_deref(),
            get("LABELS_PREFIX").as_deref(),
            &output_bucket,
        )?;
        let cfg = Config {
            output_bucket,
            scores_prefix: get("SCORES_PREFIX").unwrap_or_else(|| "scores/".into()),
            alerts_prefix: get("ALERTS_PREFIX").unwrap_or_else(|| "alerts/".into()),
            input_bucket: get("INPUT_BUCKET"),
            input_prefix: get("INPUT_PREFIX").unwrap_or_default(),
            ocsf_json_prefix: get("OCSF_JSON_PREFIX"),
            event_bus: get("EVENT_BUS_NAME"),
            threshold,
            mapping: OcsfMapping::from_lookup(|k| get(k))?,
            limits: Limits {
                max_object_bytes: parse("MAX_OBJECT_BYTES", get("MAX_OBJECT_BYTES"))?
                    .unwrap_or(defaults.max_object_bytes),
                max_uncompressed_bytes: parse(
                    "MAX_UNCOMPRESSED_BYTES",
                    get("MAX_UNCOMPRESSED_BYTES"),
                )?
                .unwrap_or(defaults.max_uncompressed_bytes),
                max_distinct_pairs: parse("MAX_DISTINCT_PAIRS", get("MAX_DISTINCT_PAIRS"))?
                    .unwrap_or(defaults.max_distinct_pairs),
            },
            message_concurrency: parse::<usize>("MESSAGE_CONCURRENCY", get("MESSAGE_CONCURRENCY"))?
                .unwrap_or(4)
                .max(1),
            labels,
            entity: match get("ENTITY") {
                None => ipsight_formats::EntityKind::default(),
                Some(v) => v.parse().map_err(ConfigError::Entity)?,
            },
        };
        if cfg.scores_prefix.is_empty() || cfg.scores_prefix == cfg.alerts_prefix {
            return Err(ConfigError::Invalid {
                name: "SCORES_PREFIX",
                value: cfg.scores_prefix.clone(),
                why: "must be non-empty and differ from ALERTS_PREFIX",
            });
        }
        if let Some(inb) = &cfg.input_bucket {
            for out_prefix in [&cfg.scores_prefix, &cfg.alerts_prefix] {
                if would_retrigger(inb, &cfg.input_prefix, &cfg.output_bucket, out_prefix) {
                    return Err(ConfigError::Retrigger {
                        in_bucket: inb.clone(),
                        in_prefix: cfg.input_prefix.clone(),
                        out_bucket: cfg.output_bucket.clone(),
                        out_prefix: out_prefix.clone(),
                    });
                }
            }
        }
        Ok(cfg)
    }

    fn is_own_output(&self, obj: &S3Object) -> bool {
        obj.bucket == self.output_bucket
            && (obj.key.starts_with(&self.scores_prefix)
                || obj.key.starts_with(&self.alerts_prefix))
    }
}

/// What an object holds, decided from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    OcsfParquet,
    OcsfJson,
    GuardDutyRecord,
    CloudTrail,
    TupleCsv,
}

/// Route an object by its (decoded) key; `Err` is a skip reason (logged and counted, not an error).
pub fn classify_key(cfg: &Config, key: &str, size: Option<u64>) -> Result<Kind, &'static str> {
    if key.ends_with('/') || size == Some(0) {
        return Err("folder_or_empty");
    }
    let lower = key.to_ascii_lowercase();
    if lower.ends_with(".parquet") {
        return Ok(Kind::OcsfParquet);
    }
    if key.contains("/GuardDuty/") {
        // Raw GuardDuty exports are extract-guardduty's input; we score its records.
        return Err("guardduty_export");
    }
    if lower.ends_with(".jsonl") || lower.ends_with(".jsonl.gz") {
        return Ok(Kind::OcsfJson);
    }
    let json = lower.ends_with(".json") || lower.ends_with(".json.gz");
    if json
        && cfg
            .ocsf_json_prefix
            .as_deref()
            .is_some_and(|p| key.starts_with(p))
    {
        return Ok(Kind::OcsfJson);
    }
    if lower.ends_with(".json") && (key.starts_with("findings/") || key.contains("/findings/")) {
        return Ok(Kind::GuardDutyRecord);
    }
    if json {
        return match cloudtrail_key(key, size) {
            Ok(()) => Ok(Kind::CloudTrail),
            Err(reason) => Err(reason.as_str()),
        };
    }
    if lower.ends_with(".csv") {
        if key.contains("guardduty/tuples/") {
            return Err("finding_tuples_scored_with_their_record");
        }
        return Ok(Kind::TupleCsv);
    }
    Err("unsupported_object")
}

/// Context of a pair that distinguishes it within an object (kept apart in the scores).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PairKey {
    entity: String,
    ip: Ipv4Addr,
    class_uid: Option<u32>,
    finding_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Seen {
    count: u64,
    first_seen: Option<String>,
    last_seen: Option<String>,
    account: Option<String>,
    region: Option<String>,
    finding_type: Option<String>,
    severity: Option<f64>,
}

impl Seen {
    fn time(&mut self, t: Option<&str>) {
        if let Some(t) = t {
            if self.first_seen.as_deref().is_none_or(|f| t < f) {
                self.first_seen = Some(t.to_owned());
            }
            if self.last_seen.as_deref().is_none_or(|l| t > l) {
                self.last_seen = Some(t.to_owned());
            }
        }
    }
}

/// The distinct pairs of one object, in a deterministic (sorted) order.
#[derive(Debug, Default)]
struct Collected {
    pairs: BTreeMap<PairKey, Seen>,
    events: u64,
    skipped: u64,
}

#[derive(Debug)]
struct TooManyPairs;

impl Collected {
    fn add(
        &mut self,
        k: PairKey,
        max: usize,
        f: impl FnOnce(&mut Seen),
    ) -> Result<(), TooManyPairs> {
        let len = self.pairs.len();
        match self.pairs.get_mut(&k) {
            Some(s) => {
                s.count += 1;
                f(s);
            }
            None => {
                if len >= max {
                    return Err(TooManyPairs);
                }
                let mut s = Seen {
                    count: 1,
                    ..Seen::default()
                };
                f(&mut s);
                self.pairs.insert(k, s);
            }
        }
        Ok(())
    }

    fn add_ocsf(&mut self, p: OcsfPair, max: usize) -> Result<(), TooManyPairs> {
        let t = p.time_ms.map(format_time_ms);
        self.add(
            PairKey {
                entity: p.entity,
                ip: p.ip,
                class_uid: p.class_uid,
                finding_id: None,
            },
            max,
            |s| {
                s.time(t.as_deref());
                if s.account.is_none() {
                    s.account = p.account;
                }
                if s.region.is_none() {
                    s.region = p.region;
                }
            },
        )
    }
}

/// One line of `scores/<source key>.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreRecord {
    pub entity: String,
    pub ip: Ipv4Addr,
    /// IP Insights' score: higher = more normal.
    pub dot_product: f32,
    /// Share (percent) of known-normal activity that scored higher; None without calibration.
    pub unusual_percentile: Option<f64>,
    pub alert: bool,
    /// Events of the source with this pair.
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// `s3://bucket/key` of the object the pair came from.
    pub source: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The analyst decision on the pair (`false_positive`: no alert; `true_positive`: alert).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'static str>,
    /// Who decided, when and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_reason: Option<String>,
}

/// One alert: the record, why it alerted, and a stable id for de-duplication downstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub alert_id: String,
    #[serde(flatten)]
    pub record: ScoreRecord,
    pub threshold: Threshold,
}

impl Alert {
    fn new(record: ScoreRecord, threshold: Threshold) -> Self {
        // FNV-1a over what identifies the alert: the same input always yields the same id.
        let mut h: u64 = 0xcbf29ce484222325;
        let id_text = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{:?}\u{1f}{:?}",
            record.source, record.entity, record.ip, record.class_uid, record.finding_id
        );
        for b in id_text.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        Self {
            alert_id: format!("{h:016x}"),
            record,
            threshold,
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Scored {
        scores: ObjectRef,
        pairs: usize,
        alerts: usize,
    },
    Skipped(&'static str),
}

#[derive(Debug, thiserror::Error)]
#[error("{object}: {reason}")]
pub struct ObjectError {
    pub object: ObjectRef,
    pub reason: String,
}

/// `<prefix><source key>.jsonl`: deterministic, so a redelivery overwrites.
pub fn derived_key(prefix: &str, source_key: &str) -> String {
    let mut out = prefix.to_owned();
    if !out.is_empty() && !out.ends_with('/') {
        out.push('/');
    }
    out.push_str(source_key.trim_start_matches('/'));
    out.push_str(".jsonl");
    out
}

/// Process one object end to end. Nothing is written unless the whole object parsed and scored.
pub async fn process_object<S: Scorer, A: AlertSink>(
    cfg: &Config,
    store: &impl ObjectStore,
    scorer: &S,
    alerts: &A,
    obj: &S3Object,
) -> Result<Outcome, ObjectError> {
    process_object_with_labels(cfg, store, scorer, alerts, None, obj).await
}

/// [`process_object`] honouring analyst labels (as of now).
pub async fn process_object_with_labels<S: Scorer, A: AlertSink>(
    cfg: &Config,
    store: &impl ObjectStore,
    scorer: &S,
    alerts: &A,
    labels: Option<&LabelSet>,
    obj: &S3Object,
) -> Result<Outcome, ObjectError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let input = ObjectRef::new(&obj.bucket, &obj.key);
    let started = Instant::now();
    let fail = |reason: String| ObjectError {
        object: input.clone(),
        reason,
    };
    if cfg.is_own_output(obj) {
        return Ok(log_skip(&input, "own_output"));
    }
    let kind = match classify_key(cfg, &obj.key, obj.size) {
        Ok(k) => k,
        Err(reason) => return Ok(log_skip(&input, reason)),
    };
    if kind == Kind::OcsfParquet && obj.size.is_some_and(|s| s > cfg.limits.max_object_bytes) {
        return Err(fail(format!(
            "object of {} bytes exceeds MAX_OBJECT_BYTES={}",
            obj.size.unwrap_or(0),
            cfg.limits.max_object_bytes
        )));
    }
    let collected = collect(cfg, store, &input, kind).await.map_err(fail)?;
    let parsed_ms = started.elapsed().as_millis() as u64;

    // Score the distinct pairs, in order, in bounded chunks.
    let keys: Vec<(&PairKey, &Seen)> = collected.pairs.iter().collect();
    let mut scores = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(SCORE_CHUNK) {
        let pairs: Vec<Pair> = chunk
            .iter()
            .map(|(k, _)| Pair {
                entity: k.entity.clone(),
                ip: k.ip,
            })
            .collect();
        let s = scorer.score(&pairs).await.map_err(|e| {
            fail(match e {
                ScoreError::Rejected(m) => format!("scoring rejected: {m}"),
                ScoreError::Unavailable(m) => format!("scoring unavailable (will retry): {m}"),
            })
        })?;
        if s.len() != pairs.len() {
            return Err(fail(format!(
                "scorer returned {} scores for {} pairs",
                s.len(),
                pairs.len()
            )));
        }
        scores.extend(s);
    }
    let source = input.to_string();
    let mut alert_list = Vec::new();
    let records: Vec<ScoreRecord> = keys
        .iter()
        .zip(&scores)
        .map(|((k, seen), s)| {
            let label = labels.and_then(|l| l.lookup(&k.entity, k.ip, now));
            let alert = match label.map(|l| l.verdict) {
                Some(Verdict::FalsePositive) => false,
                Some(Verdict::TruePositive) => true,
                None => cfg.threshold.is_alert(s.dot_product, s.unusual_percentile),
            };
            let r = ScoreRecord {
                entity: k.entity.clone(),
                ip: k.ip,
                dot_product: s.dot_product,
                unusual_percentile: s.unusual_percentile,
                alert,
                count: seen.count,
                first_seen: seen.first_seen.clone(),
                last_seen: seen.last_seen.clone(),
                source: source.clone(),
                kind,
                class_uid: k.class_uid,
                finding_id: k.finding_id.clone(),
                finding_type: seen.finding_type.clone(),
                severity: seen.severity,
                account: seen.account.clone(),
                region: seen.region.clone(),
                label: label.map(|l| l.verdict.as_str()),
                label_reason: label.map(|l| l.describe()),
            };
            if alert {
                alert_list.push(Alert::new(r.clone(), cfg.threshold));
            }
            r
        })
        .collect();
    let scored_ms = started.elapsed().as_millis() as u64 - parsed_ms;

    let scores_obj = ObjectRef::new(
        &cfg.output_bucket,
        derived_key(&cfg.scores_prefix, &obj.key),
    );
    write_jsonl(store, &scores_obj, &records)
        .await
        .map_err(&fail)?;
    if !alert_list.is_empty() {
        let alerts_obj = ObjectRef::new(
            &cfg.output_bucket,
            derived_key(&cfg.alerts_prefix, &obj.key),
        );
        write_jsonl(store, &alerts_obj, &alert_list)
            .await
            .map_err(&fail)?;
        alerts
            .publish(&alert_list)
            .await
            .map_err(|e| fail(format!("publishing alerts: {e}")))?;
    }
    let mut f = Map::new();
    f.insert("event".into(), "object_scored".into());
    f.insert("object".into(), source.into());
    f.insert("kind".into(), json!(kind));
    f.insert("output".into(), scores_obj.to_string().into());
    f.insert("parse_ms".into(), json!(parsed_ms));
    f.insert("score_ms".into(), json!(scored_ms));
    f.insert("ms".into(), json!(started.elapsed().as_millis() as u64));
    println!(
        "{}",
        emf_line(
            "ipsight",
            FUNCTION,
            f,
            &[
                ("events", collected.events),
                ("events_without_pair", collected.skipped),
                ("pairs_scored", records.len() as u64),
                ("alerts", alert_list.len() as u64),
            ],
        )
    );
    Ok(Outcome::Scored {
        scores: scores_obj,
        pairs: records.len(),
        alerts: alert_list.len(),
    })
}

/// Write JSON lines to a temporary file, then upload it whole.
async fn write_jsonl<T: Serialize>(
    store: &impl ObjectStore,
    obj: &ObjectRef,
    items: &[T],
) -> Result<(), String> {
    let tmp = tempfile::NamedTempFile::new().map_err(|e| format!("temporary file: {e}"))?;
    {
        let mut w = BufWriter::with_capacity(256 << 10, tmp.as_file());
        for it in items {
            serde_json::to_writer(&mut w, it).map_err(|e| format!("serialising: {e}"))?;
            w.write_all(b"\n")
                .map_err(|e| format!("writing temporary file: {e}"))?;
        }
        w.flush()
            .map_err(|e| format!("writing temporary file: {e}"))?;
    }
    store
        .put_file(obj, tmp.path(), "application/x-ndjson")
        .await
        .map_err(|e| e.to_string())
}

/// Read an object's pairs according to its kind.
async fn collect(
    cfg: &Config,
    store: &impl ObjectStore,
    input: &ObjectRef,
    kind: Kind,
) -> Result<Collected, String> {
    let body = store.get(input).await.map_err(|e| e.to_string())?;
    let max = cfg.limits.max_distinct_pairs;
    let too_many = move |_: TooManyPairs| {
        format!("more than MAX_DISTINCT_PAIRS={max} distinct pairs in one object")
    };
    if kind == Kind::OcsfParquet {
        // Parquet's footer is at the end: download to a capped temporary file, then read it.
        let tmp = tempfile::NamedTempFile::new().map_err(|e| format!("temporary file: {e}"))?;
        let file =
            tokio::fs::File::from_std(tmp.reopen().map_err(|e| format!("temporary file: {e}"))?);
        download_capped(body.reader, file, cfg.limits.max_object_bytes).await?;
        let mapping = cfg.mapping.clone();
        let cap = cfg.limits.max_uncompressed_bytes;
        let path = tmp.path().to_owned();
        return blocking(move || {
            let f = std::fs::File::open(&path).map_err(|e| format!("temporary file: {e}"))?;
            let mut c = Collected::default();
            let mut over = None;
            let stats = read_parquet_capped(f, &mapping, cap, |p| {
                if over.is_none() {
                    if let Err(e) = c.add_ocsf(p, max) {
                        over = Some(e);
                    }
                }
            })
            .map_err(|e| e.to_string())?;
            drop(tmp);
            if let Some(e) = over {
                return Err(too_many(e));
            }
            c.events = stats.events;
            c.skipped = stats.events - stats.pairs;
            Ok(c)
        })
        .await;
    }
    let reader = tokio_util::io::SyncIoBridge::new(body.reader);
    let mapping = cfg.mapping.clone();
    let cap = cfg.limits.max_uncompressed_bytes;
    let entity = cfg.entity;
    blocking(move || {
        let input = BufReader::with_capacity(256 << 10, reader);
        let mut c = Collected::default();
        let mut over = None;
        match kind {
            Kind::OcsfParquet => unreachable!("handled above"),
            Kind::OcsfJson => {
                let limits = JsonLimits {
                    max_uncompressed_bytes: cap,
                    ..JsonLimits::default()
                };
                let stats = read_json_lines(input, &mapping, &limits, |p| {
                    if over.is_none() {
                        if let Err(e) = c.add_ocsf(p, max) {
                            over = Some(e);
                        }
                    }
                })
                .map_err(|e| e.to_string())?;
                c.events = stats.events;
                c.skipped = stats.events - stats.pairs;
            }
            Kind::CloudTrail => {
                let opts = PrepareOptions {
                    max_uncompressed_bytes: cap,
                    entity,
                    ..PrepareOptions::default()
                };
                let mut events = 0u64;
                let mut skipped = 0u64;
                for_each_record(input, &opts, |rec| {
                    events += 1;
                    match record_tuple_as(rec, entity) {
                        Ok((entity, ip)) => {
                            let account = rec
                                .user_identity
                                .as_ref()
                                .and_then(|u| u.account_id.as_deref())
                                .map(str::to_owned);
                            let t = rec.event_time.as_deref().map(str::to_owned);
                            let key = PairKey {
                                entity,
                                ip,
                                class_uid: None,
                                finding_id: None,
                            };
                            if let Err(e) = c.add(key, max, |s| {
                                s.time(t.as_deref());
                                if s.account.is_none() {
                                    s.account = account;
                                }
                            }) {
                                over = Some(e);
                                return false;
                            }
                        }
                        Err(_) => skipped += 1,
                    }
                    true
                })
                .map_err(|e| e.to_string())?;
                c.events = events;
                c.skipped = skipped;
            }
            Kind::GuardDutyRecord => {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::Read::take(input, 16 << 20), &mut buf)
                    .map_err(|e| format!("reading: {e}"))?;
                let rec: FindingRecord = serde_json::from_slice(&buf)
                    .map_err(|e| format!("not a GuardDuty finding record: {e}"))?;
                if rec.entity_kind != entity {
                    return Err(format!(
                        "the record's entities are {} but ENTITY={entity}: the extractor, ipcheck \
                         and the model must use one definition",
                        rec.entity_kind
                    ));
                }
                c.events = 1;
                for p in &rec.pairs {
                    let key = PairKey {
                        entity: p.entity.clone(),
                        ip: p.ip,
                        class_uid: None,
                        finding_id: Some(rec.finding_id.clone()),
                    };
                    c.add(key, max, |s| {
                        s.time(rec.event_first_seen.as_deref());
                        s.time(rec.event_last_seen.as_deref());
                        s.account = Some(rec.account_id.clone());
                        s.region = Some(rec.region.clone());
                        s.finding_type = Some(rec.finding_type.clone());
                        s.severity = Some(rec.severity);
                    })
                    .map_err(too_many)?;
                }
                c.skipped = u64::from(rec.pairs.is_empty());
            }
            Kind::TupleCsv => {
                let mut r = CappedReader::new(
                    maybe_gunzip(input).map_err(|e| format!("reading: {e}"))?,
                    cap,
                );
                let mut lines = BufReader::new(&mut r);
                let mut line = String::new();
                let mut n = 0u64;
                loop {
                    line.clear();
                    n += 1;
                    let read = lines.read_line(&mut line).map_err(|e| {
                        if is_cap_error(&e) {
                            format!("uncompressed size exceeds the cap of {cap} bytes")
                        } else {
                            format!("read failed at line {n}: {e}")
                        }
                    })?;
                    if read == 0 {
                        break;
                    }
                    let l = line.trim_end_matches(['\n', '\r']);
                    if l.is_empty() {
                        continue;
                    }
                    c.events += 1;
                    let (entity, ip) = split_tuple(l)
                        .ok_or_else(|| format!("line {n} is not `entity,ip`: {:.80}", l))?;
                    let ip = match classify_ip(ip) {
                        IpClass::V4(v4) => v4,
                        _ => {
                            return Err(format!("line {n}: {ip:.60} is not an IPv4 address"));
                        }
                    };
                    let key = PairKey {
                        entity: entity.into_owned(),
                        ip,
                        class_uid: None,
                        finding_id: None,
                    };
                    c.add(key, max, |_| {}).map_err(too_many)?;
                }
            }
        }
        if let Some(e) = over {
            return Err(too_many(e));
        }
        Ok(c)
    })
    .await
}

/// Parsing is CPU-bound and synchronous: keep it off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("parser task failed: {e}"))?
}

async fn download_capped(
    reader: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    mut file: tokio::fs::File,
    cap: u64,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let mut limited = reader.take(cap + 1);
    let n = tokio::io::copy(&mut limited, &mut file)
        .await
        .map_err(|e| format!("download failed: {e}"))?;
    if n > cap {
        return Err(format!(
            "object exceeds MAX_OBJECT_BYTES={cap} (downloaded to a temporary file before reading)"
        ));
    }
    file.flush()
        .await
        .map_err(|e| format!("temporary file: {e}"))?;
    Ok(())
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

async fn process_all<S: Scorer, A: AlertSink>(
    cfg: &Config,
    store: &impl ObjectStore,
    scorer: &S,
    alerts: &A,
    labels: Option<&LabelSet>,
    objects: &[S3Object],
) -> (Value, Vec<String>) {
    let mut written = Vec::new();
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    let (mut pairs, mut alert_count) = (0usize, 0usize);
    for o in objects {
        match process_object_with_labels(cfg, store, scorer, alerts, labels, o).await {
            Ok(Outcome::Scored {
                scores,
                pairs: p,
                alerts: a,
            }) => {
                written.push(scores.to_string());
                pairs += p;
                alert_count += a;
            }
            Ok(Outcome::Skipped(reason)) => skipped.push(json!({"key": o.key, "reason": reason})),
            Err(e) => {
                log_error(&e);
                errors.push(e.to_string());
            }
        }
    }
    (
        json!({"written": written, "skipped": skipped, "failed": errors, "pairs": pairs, "alerts": alert_count}),
        errors,
    )
}

/// Handle one Lambda event.
///
/// * SQS batches: each message stands alone; the response lists the failed ones
///   (`batchItemFailures`; enable `ReportBatchItemFailures` on the event source mapping). A message
///   fails when its body is not a notification we understand or any of its objects failed.
/// * Direct S3 / EventBridge / SNS events: every object is attempted; if any failed the invocation
///   fails (Lambda retries; outputs already written are rewritten identically).
pub async fn handle<S: Scorer, A: AlertSink>(
    cfg: &Config,
    store: &(impl ObjectStore + ObjectLister),
    scorer: &S,
    alerts: &A,
    event: Value,
) -> Result<Value, anyhow::Error> {
    // Read per invocation (a few small objects), so a decision applies from the next batch on,
    // without a redeploy or a cold start. Unreadable labels fail the invocation: alerting on a
    // pair an analyst cleared, or not alerting on a confirmed one, is worse than a retry.
    let labels = match &cfg.labels {
        Some(src) => Some(load_labels(store, src).await?),
        None => None,
    };
    let labels = labels.as_ref();
    match parse_notification(&event)? {
        Notification::TestEvent => Ok(json!({"ignored": "s3:TestEvent"})),
        Notification::Objects(objects) => {
            let (summary, errors) = process_all(cfg, store, scorer, alerts, labels, &objects).await;
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
            let results: Vec<bool> = futures::stream::iter(messages.iter().map(|m| async move {
                match parse_body(&m.body) {
                    Ok(Notification::TestEvent) => true,
                    Ok(Notification::Objects(objects)) => {
                        let (_, errors) =
                            process_all(cfg, store, scorer, alerts, labels, &objects).await;
                        errors.is_empty()
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
                }
            }))
            .buffered(cfg.message_concurrency)
            .collect()
            .await;
            let failures: Vec<Value> = messages
                .iter()
                .zip(results)
                .filter(|(_, ok)| !ok)
                .map(|(m, _)| json!({"itemIdentifier": m.message_id}))
                .collect();
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

/// Local helper for tools and tests: the key a source object's scores are written under.
pub fn scores_key(cfg: &Config, source_key: &str) -> String {
    derived_key(&cfg.scores_prefix, source_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    use ipsight_testkit::vars as env;

    #[test]
    fn config() {
        let c = Config::from_lookup(env(&[("OUTPUT_BUCKET", "data")])).unwrap();
        assert_eq!(c.scores_prefix, "scores/");
        assert_eq!(c.threshold, Threshold::default());
        // Triggered by the whole data bucket: scores/ would re-trigger us.
        let e = Config::from_lookup(env(&[("OUTPUT_BUCKET", "data"), ("INPUT_BUCKET", "data")]))
            .unwrap_err();
        assert!(e.to_string().contains("infinite loop"), "{e}");
        let e = Config::from_lookup(env(&[
            ("OUTPUT_BUCKET", "data"),
            ("INPUT_BUCKET", "data"),
            ("INPUT_PREFIX", "alerts/x/"),
        ]))
        .unwrap_err();
        assert!(matches!(e, ConfigError::Retrigger { .. }));
        let ok = Config::from_lookup(env(&[
            ("OUTPUT_BUCKET", "data"),
            ("INPUT_BUCKET", "data"),
            ("INPUT_PREFIX", "infer/"),
            ("ALERT_MIN_PERCENTILE", "99.5"),
            ("ALERT_MAX_DOT_PRODUCT", "-2"),
        ]))
        .unwrap();
        assert_eq!(ok.threshold.min_unusual_percentile, Some(99.5));
        assert_eq!(ok.entity, ipsight_formats::EntityKind::Principal);
        let ua = Config::from_lookup(env(&[
            ("OUTPUT_BUCKET", "d"),
            ("ENTITY", "user_agent_family"),
        ]))
        .unwrap();
        assert_eq!(ua.entity, ipsight_formats::EntityKind::UserAgentFamily);
        for (k, v) in [
            ("ALERT_MIN_PERCENTILE", "high"),
            ("ALERT_MIN_PERCENTILE", "120"),
            ("ALERT_MAX_DOT_PRODUCT", "NaN"),
            ("MAX_OBJECT_BYTES", "1GB"),
            ("OCSF_CLASSES", "dns"),
            ("ENTITY", "role"),
        ] {
            let e = Config::from_lookup(env(&[("OUTPUT_BUCKET", "d"), (k, v)])).unwrap_err();
            assert!(e.to_string().contains(k), "{k}: {e}");
        }
        assert!(matches!(
            Config::from_lookup(env(&[])),
            Err(ConfigError::Missing("OUTPUT_BUCKET"))
        ));
    }

    #[test]
    fn thresholds() {
        let t = Threshold {
            min_unusual_percentile: Some(99.5),
            max_dot_product: None,
        };
        assert!(t.is_alert(0.0, Some(99.7)));
        assert!(!t.is_alert(-9.0, Some(50.0)));
        assert!(!t.is_alert(-9.0, None));
        let t = Threshold {
            min_unusual_percentile: None,
            max_dot_product: Some(-1.0),
        };
        assert!(t.is_alert(-1.0, None) && !t.is_alert(-0.5, Some(100.0)));
        assert!(!Threshold::default().is_alert(-100.0, Some(100.0)));
    }

    #[test]
    fn routing() {
        let c = Config::from_lookup(env(&[
            ("OUTPUT_BUCKET", "d"),
            ("OCSF_JSON_PREFIX", "ext/custom/"),
        ]))
        .unwrap();
        let k = |key: &str| classify_key(&c, key, Some(10));
        assert_eq!(
            k("aws/VPC_FLOW/1.0/region=us-east-1/accountId=1/eventHour=2023010100/x.gz.parquet"),
            Ok(Kind::OcsfParquet)
        );
        assert_eq!(k("ext/custom/a/b.json.gz"), Ok(Kind::OcsfJson));
        assert_eq!(k("anything/events.jsonl.gz"), Ok(Kind::OcsfJson));
        assert_eq!(
            k("infer/guardduty/findings/1/us-east-1/abc.json"),
            Ok(Kind::GuardDutyRecord)
        );
        assert_eq!(
            k("infer/guardduty/tuples/1/us-east-1/abc.csv"),
            Err("finding_tuples_scored_with_their_record")
        );
        assert_eq!(k("train/cloudtrail/x.csv"), Ok(Kind::TupleCsv));
        assert_eq!(
            k("AWSLogs/1/CloudTrail/us-east-1/2026/01/05/1_CloudTrail_us-east-1_t_x.json.gz"),
            Ok(Kind::CloudTrail)
        );
        assert_eq!(
            k("AWSLogs/1/CloudTrail-Digest/us-east-1/2026/01/05/1_CloudTrail-Digest_x.json.gz"),
            Err("digest")
        );
        assert_eq!(
            k("AWSLogs/1/GuardDuty/us-east-1/2026/01/05/x.jsonl.gz"),
            Err("guardduty_export")
        );
        assert_eq!(k("notes.txt"), Err("unsupported_object"));
        assert_eq!(classify_key(&c, "a.csv", Some(0)), Err("folder_or_empty"));
        assert_eq!(
            derived_key("scores/", "aws/x y/a.gz.parquet"),
            "scores/aws/x y/a.gz.parquet.jsonl"
        );
    }
}

#[cfg(test)]
mod label_tests {
    use super::*;
    use ipsight_aws::{DirStore, Score};
    use ipsight_formats::labels::{object_key, Label};

    /// Every pair scores as very unusual: only labels can stop an alert.
    struct Unusual;
    impl Scorer for Unusual {
        async fn score(&self, pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
            Ok(pairs
                .iter()
                .map(|_| Score {
                    dot_product: -5.0,
                    unusual_percentile: Some(99.99),
                })
                .collect())
        }
    }

    fn lines(store_root: &std::path::Path, key: &str) -> Vec<Value> {
        std::fs::read_to_string(store_root.join("data").join(key))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_false_positive_label_stops_the_alert_and_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        let csv = "AIDAALICE,198.51.100.7\nAIDAALICE,203.0.113.1\nAIDABOB,192.0.2.1\n";
        store
            .put_bytes(
                &ObjectRef::new("data", "infer/t.csv"),
                csv.into(),
                "text/csv",
            )
            .await
            .unwrap();
        let label = Label {
            entity: "AIDAALICE".into(),
            ip: None,
            cidr: Some("198.51.100.0/24".parse().unwrap()),
            verdict: Verdict::FalsePositive,
            who: "alice".into(),
            when: "2026-01-04T12:00:00Z".into(),
            why: "new home ISP".into(),
            expires: None,
        };
        let obj = ObjectRef::new("data", object_key("labels/", &label));
        store
            .put_bytes(&obj, format!("{}\n", label.to_line()).into(), "x")
            .await
            .unwrap();
        let cfg = Config::from_lookup(|k| {
            match k {
                "OUTPUT_BUCKET" => Some("data"),
                "ALERT_MIN_PERCENTILE" => Some("99"),
                "LABELS_PREFIX" => Some("labels/"),
                _ => None,
            }
            .map(str::to_owned)
        })
        .unwrap();
        let ev = json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"data"},"object":{"key":"infer/t.csv","size":csv.len()}}}]});
        let out = handle(&cfg, &store, &Unusual, &NoAlerts, ev).await.unwrap();
        assert_eq!(out["alerts"], 2, "{out}");
        let scores = lines(dir.path(), "scores/infer/t.csv.jsonl");
        let fp: Vec<&Value> = scores.iter().filter(|r| r["alert"] == false).collect();
        assert_eq!(fp.len(), 1);
        assert_eq!(fp[0]["ip"], "198.51.100.7");
        assert_eq!(fp[0]["label"], "false_positive");
        assert!(fp[0]["label_reason"]
            .as_str()
            .unwrap()
            .contains("new home ISP"));
        let alerts = lines(dir.path(), "alerts/infer/t.csv.jsonl");
        assert_eq!(alerts.len(), 2);
        assert!(alerts.iter().all(|a| a["ip"] != "198.51.100.7"));
        assert!(scores
            .iter()
            .filter(|r| r["alert"] == true)
            .all(|r| r.get("label").is_none()));
    }
}
