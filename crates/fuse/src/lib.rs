//! fuse: GuardDuty findings + IP Insights scores → `reports/<date>/suspicious.{json,csv}`, the
//! aggregated, ranked list of suspicious `<principal, IP>` activity.
//!
//! Runs on a schedule (EventBridge Scheduler / a `rate()` rule) as a Lambda, and as `ipsight fuse`.
//! Inputs, all in the data bucket:
//! * finding records written by extract-guardduty (`infer/guardduty/findings/**.json`);
//! * scores written by ipcheck (`scores/**.jsonl`), and optionally a [`Scorer`] for pairs that have
//!   none yet;
//! * optional trusted / threat IP lists (GuardDuty plain-text format) anywhere in S3.
//!
//! The same inputs give the same bytes: the report date comes from the event, rows are sorted on a
//! total order, and nothing depends on listing or completion order.
pub mod findings;
pub mod lists;
pub mod page;
pub mod report;
pub mod scores;
pub mod top;
pub mod triage;
pub mod tuned;

use std::collections::HashSet;
use std::io::BufReader;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use ipsight_aws::config::Env;
use ipsight_aws::ScorerSettings;
use ipsight_core::keys::would_retrigger;
use ipsight_formats::guardduty::FindingRecord;
use ipsight_ports::read_small;
use ipsight_ports::{load_labels, LabelSource, ObjectRef, ObjectStore, Scorer, StoreError};
use serde_json::{json, Map, Value};

/// The listing port lives in `ipsight-ports` (ipcheck lists label prefixes too).
pub use ipsight_ports::ObjectLister;
pub use lists::IpList;
pub use report::{fuse, risk, FuseOptions, Report, Row};
pub use scores::{NoScorer, ScoreEntry, ScoreSource, ScoreTable};

pub const FUNCTION: &str = "fuse";

/// Parallel GETs of finding records (each a few KB).
const READ_CONCURRENCY: usize = 32;

/// Configuration from the environment (set by the SAM template).
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATA_BUCKET`: findings and scores are read from it, reports written to it.
    pub data_bucket: String,
    /// `FINDINGS_PREFIX` (default `infer/guardduty/findings/`).
    pub findings_prefix: String,
    /// `SCORES_PREFIX` (default `scores/`).
    pub scores_prefix: String,
    /// `REPORTS_PREFIX` (default `reports/`).
    pub reports_prefix: String,
    /// `TRUSTED_IPS` / `THREAT_IPS`: `s3://bucket/key` of GuardDuty plain-text IP lists.
    pub trusted: Option<ObjectRef>,
    pub threats: Option<ObjectRef>,
    /// `LOOKBACK_DAYS` (default 30; `all` or `0` = every stored finding).
    pub lookback_days: Option<u32>,
    /// `INCLUDE_SAMPLES=true`: rank GuardDuty sample findings instead of suppressing them.
    pub include_samples: bool,
    /// `LABELS_URI` (`s3://bucket/key` of a JSON lines object, or `s3://bucket/prefix/`) or
    /// `LABELS_PREFIX` (a prefix of the data bucket, one object per decision): analyst labels.
    pub labels: Option<LabelSource>,
    /// With `SAGEMAKER_ENDPOINT` or `MODEL_URI` set: pairs that have no score yet are scored on
    /// the fly through this scorer; without, they are reported as unscored.
    pub scorer: Option<ScorerSettings>,
    /// `ENTITY`: the extractor's entity definition, which the model must share.
    pub entity: ipsight_formats::EntityKind,
    /// `IP_DB_URIS`: MaxMind-format databases and `ip-ranges.json` for the rows' `network`.
    pub ip_dbs: Vec<ObjectRef>,
    /// `SECURITY_HUB=true`: `(account, region)` importing the unsuppressed rows as findings.
    pub security_hub: Option<(String, String)>,
    /// `TUNING_URI`: `s3://bucket/key` of the tuning file (docs/tuning.example.toml), read per
    /// run so an edit applies to the next report without a deploy.
    pub tuning: Option<ObjectRef>,
    /// `PUBLISH_TOP_N` > 0: the report's new top rows go to `EVENT_BUS_NAME` once (see [`top`]).
    pub publish_top: Option<triage::TopPublishing>,
}

pub use ipsight_aws::config::ConfigError;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let lookback_days = match env.get("LOOKBACK_DAYS") {
            None => Some(30),
            Some(v) if v.eq_ignore_ascii_case("all") => None,
            Some(v) => match v.parse::<u32>() {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(ConfigError::invalid(
                        "LOOKBACK_DAYS",
                        v,
                        "expected a number of days or `all`",
                    ))
                }
            },
        };
        let data_bucket = env.required("DATA_BUCKET")?;
        let mut cfg = Config {
            labels: env.labels(&data_bucket)?,
            data_bucket,
            findings_prefix: env.prefix("FINDINGS_PREFIX", "infer/guardduty/findings/"),
            scores_prefix: env.prefix("SCORES_PREFIX", "scores/"),
            reports_prefix: env.prefix("REPORTS_PREFIX", "reports/"),
            trusted: env.s3_object("TRUSTED_IPS")?,
            threats: env.s3_object("THREAT_IPS")?,
            lookback_days,
            include_samples: env
                .get("INCLUDE_SAMPLES")
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
            scorer: if ScorerSettings::configured(&env) {
                Some(ScorerSettings::from_env(&env)?)
            } else {
                None
            },
            entity: env.entity()?,
            ip_dbs: triage::ip_db_uris(&env)?,
            security_hub: triage::security_hub_target(&env)?,
            tuning: env.s3_object("TUNING_URI")?,
            publish_top: None,
        };
        // Needs the prefixes above: the state must not sit where findings or scores are listed.
        cfg.publish_top = triage::top_publishing(&env, &cfg)?;
        for (what, input) in [
            ("findings", &cfg.findings_prefix),
            ("scores", &cfg.scores_prefix),
        ] {
            if would_retrigger(
                &cfg.data_bucket,
                input,
                &cfg.data_bucket,
                &cfg.reports_prefix,
            ) {
                return Err(ConfigError::Overlap {
                    output_name: "reports",
                    output: cfg.reports_prefix.clone(),
                    what,
                    input: input.clone(),
                });
            }
        }
        Ok(cfg)
    }
}

/// The report date of an event: `{"date":"YYYY-MM-DD"}` (manual runs, backfills) or the `time` of
/// an EventBridge scheduled event. Never the wall clock: a retried invocation must write the same
/// report.
pub fn event_date(event: &Value) -> anyhow::Result<String> {
    let raw = event
        .get("date")
        .or_else(|| event.get("time"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            anyhow::anyhow!("event has neither `date` nor `time`: cannot date the report")
        })?;
    let date = raw.get(..10).unwrap_or(raw);
    if report::day_number(date).is_none() {
        anyhow::bail!("{raw:?} does not start with a YYYY-MM-DD date");
    }
    Ok(date.to_owned())
}

async fn read_list(store: &impl ObjectStore, obj: &ObjectRef) -> anyhow::Result<IpList> {
    let body = read_small(store, obj, 64 << 20).await?;
    Ok(IpList::parse(
        &obj.to_string(),
        &String::from_utf8_lossy(&body),
    )?)
}

/// Read every finding record under the prefix. A record that does not parse is logged and counted
/// (one bad object must not stop the report); a store failure fails the run (it is retried).
pub async fn read_records(
    store: &(impl ObjectStore + ObjectLister),
    bucket: &str,
    prefix: &str,
) -> Result<(Vec<FindingRecord>, u64), StoreError> {
    let keys: Vec<String> = store
        .list(bucket, prefix)
        .await?
        .into_iter()
        .filter(|k| k.ends_with(".json"))
        .collect();
    let results: Vec<(String, Result<Vec<u8>, StoreError>)> =
        futures::stream::iter(keys.into_iter().map(|k| async move {
            let obj = ObjectRef::new(bucket, &k);
            let r = read_small(store, &obj, 16 << 20).await;
            (k, r)
        }))
        .buffered(READ_CONCURRENCY)
        .collect()
        .await;
    let mut records = Vec::with_capacity(results.len());
    let mut bad = 0u64;
    for (k, r) in results {
        match serde_json::from_slice::<FindingRecord>(&r?) {
            Ok(rec) => records.push(rec),
            Err(e) => {
                bad += 1;
                eprintln!(
                    "{}",
                    json!({"event": "bad_record", "function": FUNCTION, "object": ObjectRef::new(bucket, &k).to_string(), "error": e.to_string()})
                );
            }
        }
    }
    Ok((records, bad))
}

/// Read the scores of the `wanted` pairs from every `.jsonl` under the prefix.
pub async fn read_scores(
    store: &(impl ObjectStore + ObjectLister),
    bucket: &str,
    prefix: &str,
    wanted: HashSet<(String, std::net::IpAddr)>,
) -> anyhow::Result<(ScoreTable, u64)> {
    let keys: Vec<String> = store
        .list(bucket, prefix)
        .await?
        .into_iter()
        .filter(|k| k.ends_with(".jsonl"))
        .collect();
    let wanted = std::sync::Arc::new(wanted);
    let mut table = ScoreTable::default();
    let mut lines = 0u64;
    for k in keys {
        let obj = ObjectRef::new(bucket, &k);
        let body = store.get(&obj).await?;
        let reader = tokio_util::io::SyncIoBridge::new(body.reader);
        let wanted = wanted.clone();
        let name = obj.to_string();
        // Parsing is synchronous; the table moves in and out of the blocking task.
        let (t, n) = tokio::task::spawn_blocking(move || {
            let n = table.read_jsonl(
                BufReader::with_capacity(256 << 10, reader),
                &name,
                Some(&wanted),
            );
            (table, n)
        })
        .await?;
        table = t;
        lines += n?;
    }
    Ok((table, lines))
}

/// A fused report and how its scores were completed.
#[derive(Debug)]
pub struct Assembled {
    pub report: Report,
    /// Pairs the scorer scored during this run (they had no score line).
    pub scored_now: usize,
    /// Why the scorer could not complete the scores (the rows stay unscored, ranked on severity).
    pub scorer_error: Option<String>,
    /// What `opts.tuning` did (None without a tuning file).
    pub tuning: Option<tuned::TuningOutcome>,
}

/// The part of a run both front ends share (the Lambda over S3, `ipsight fuse` over files): the
/// pairs without a score line scored through `scorer` (with the baseline beside it, so they carry
/// the same why as ipcheck's), fused, given their network, then tuned (`opts.tuning`: suppressed
/// rows stay, with the rule, and the rest are re-ranked). A scorer outage degrades the
/// report (rows say "unscored") rather than losing it; the caller decides whether that is an error.
pub async fn assemble<S: Scorer>(
    records: &[FindingRecord],
    mut table: ScoreTable,
    scorer: Option<&S>,
    opts: &FuseOptions,
    enricher: Option<&ipsight_enrich::Enricher>,
) -> anyhow::Result<Assembled> {
    let mut scored_now = 0usize;
    let mut scorer_error = None;
    if let Some(s) = scorer {
        match table.score_missing(report::finding_pairs(records), s).await {
            Ok(n) => scored_now = n,
            Err(e) => scorer_error = Some(e.to_string()),
        }
    }
    let mut report = fuse(records, &table, opts);
    if let Some(e) = enricher {
        report.enrich(e)?;
    }
    if let Some(s) = scorer {
        report.principal_context(enricher, &|e| s.profile(e))?;
    }
    // After enrichment: allow rules by ASN or country need the rows' networks.
    let tuning = opts.tuning.as_ref().map(|t| report.apply_tuning(t));
    Ok(Assembled {
        report,
        scored_now,
        scorer_error,
        tuning,
    })
}

/// Handle one scheduled (or manual) invocation: gather, fuse, write the two report objects.
pub async fn handle<S: Scorer>(
    cfg: &Config,
    store: &(impl ObjectStore + ObjectLister),
    scorer: Option<&S>,
    event: Value,
) -> Result<Value, anyhow::Error> {
    handle_with(cfg, store, scorer, &triage::Triage::default(), event).await
}

/// [`handle`] with network context, Security Hub publishing and the new top rows. Both are
/// published after the report objects are written: an outage fails the run (it is retried); the
/// deterministic ids make the retry's findings updates, not duplicates, and the top rows' state
/// is written only once their events were accepted.
pub async fn handle_with<S: Scorer>(
    cfg: &Config,
    store: &(impl ObjectStore + ObjectLister),
    scorer: Option<&S>,
    extras: &triage::Triage,
    event: Value,
) -> Result<Value, anyhow::Error> {
    let started = Instant::now();
    let date = event_date(&event)?;
    let (records, bad_records) =
        read_records(store, &cfg.data_bucket, &cfg.findings_prefix).await?;
    let pairs = report::finding_pairs(&records);
    let (table, score_lines) = read_scores(
        store,
        &cfg.data_bucket,
        &cfg.scores_prefix,
        pairs.iter().cloned().collect(),
    )
    .await?;
    let trusted = match &cfg.trusted {
        Some(o) => Some(read_list(store, o).await?),
        None => None,
    };
    let threats = match &cfg.threats {
        Some(o) => Some(read_list(store, o).await?),
        None => None,
    };
    let labels = match &cfg.labels {
        Some(src) => Some(load_labels(store, src).await?),
        None => None,
    };
    // A tuning file that cannot be read fails the run (retried) rather than un-silencing every
    // known egress.
    let tuning = match &cfg.tuning {
        Some(o) => Some(ipsight_aws::triage::load_tuning(store, o).await?),
        None => None,
    };
    let opts = FuseOptions {
        date: date.clone(),
        lookback_days: cfg.lookback_days,
        trusted,
        threats,
        include_samples: cfg.include_samples,
        labels,
        tuning,
    };
    let Assembled {
        report,
        scored_now,
        scorer_error,
        tuning,
    } = assemble(&records, table, scorer, &opts, extras.enricher.as_ref()).await?;
    let mut p = cfg.reports_prefix.clone();
    if !p.is_empty() && !p.ends_with('/') {
        p.push('/');
    }
    let json_obj = ObjectRef::new(&cfg.data_bucket, format!("{p}{date}/suspicious.json"));
    let csv_obj = ObjectRef::new(&cfg.data_bucket, format!("{p}{date}/suspicious.csv"));
    let html_obj = ObjectRef::new(&cfg.data_bucket, format!("{p}{date}/suspicious.html"));
    store
        .put_bytes(&csv_obj, Bytes::from(report.to_csv()), "text/csv")
        .await?;
    store
        .put_bytes(
            &html_obj,
            Bytes::from(report.to_html()),
            "text/html; charset=utf-8",
        )
        .await?;
    store
        .put_bytes(&json_obj, Bytes::from(report.to_json()), "application/json")
        .await?;
    let mut security_hub = Value::Null;
    if let (Some((client, _)), Some(importer)) = (&extras.security_hub, extras.importer(&date)) {
        let (batches, skipped) = findings::security_hub_batches(&report, &importer);
        let outcome = ipsight_securityhub::publish(client, &batches).await?;
        security_hub = json!({"outcome": outcome, "skipped": skipped});
    }
    // Last: the state records what was sent, so everything before must have succeeded.
    let top_rows = match (&cfg.publish_top, &extras.events) {
        (Some(p), Some(client)) => Some(triage::publish_top_rows(store, client, p, &report).await?),
        (Some(_), None) => {
            anyhow::bail!("PUBLISH_TOP_N is set but no EventBridge client was built")
        }
        (None, _) => None,
    };
    let s = &report.summary;
    let mut f = Map::new();
    f.insert("event".into(), "report_written".into());
    f.insert("report".into(), json_obj.to_string().into());
    f.insert("date".into(), date.clone().into());
    f.insert("ms".into(), json!(started.elapsed().as_millis() as u64));
    if let Some(e) = &scorer_error {
        f.insert("scorer_error".into(), e.clone().into());
    }
    ipsight_ports::emf::log(
        FUNCTION,
        f,
        &[
            ("finding_records", records.len() as u64),
            ("bad_records", bad_records),
            ("score_lines", score_lines),
            ("scored_on_the_fly", scored_now as u64),
            ("rows", s.rows as u64),
            ("ranked", s.ranked as u64),
            ("escalated", s.escalated as u64),
            ("suppressed", s.suppressed as u64),
            ("unscored", s.unscored as u64),
        ],
    );
    let top: Vec<Value> = report
        .rows
        .iter()
        .take(5)
        .map(|r| json!({"rank": r.rank, "risk": r.risk, "entity": r.entity, "ip": r.ip.to_string(), "status": r.status}))
        .collect();
    Ok(json!({
        "report": json_obj.to_string(),
        "csv": csv_obj.to_string(),
        "html": html_obj.to_string(),
        "summary": report.summary,
        "bad_records": bad_records,
        "scored_on_the_fly": scored_now,
        "scorer_error": scorer_error,
        "security_hub": security_hub,
        "tuning": tuning,
        "top_rows": top_rows,
        "top": top,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = Config::from_lookup(env(&[("DATA_BUCKET", "d")])).unwrap();
        assert_eq!(c.lookback_days, Some(30));
        assert_eq!(c.findings_prefix, "infer/guardduty/findings/");
        let c = Config::from_lookup(env(&[
            ("DATA_BUCKET", "d"),
            ("LOOKBACK_DAYS", "all"),
            ("TRUSTED_IPS", "s3://cfg/lists/trusted.txt"),
        ]))
        .unwrap();
        assert_eq!(c.lookback_days, None);
        assert_eq!(c.trusted, Some(ObjectRef::new("cfg", "lists/trusted.txt")));
        assert!(
            Config::from_lookup(env(&[("DATA_BUCKET", "d"), ("THREAT_IPS", "cfg/x")])).is_err()
        );
        assert!(matches!(
            Config::from_lookup(env(&[("DATA_BUCKET", "d"), ("REPORTS_PREFIX", "")])),
            Err(ConfigError::Overlap { .. })
        ));
        assert!(matches!(
            Config::from_lookup(env(&[])),
            Err(ConfigError::Missing("DATA_BUCKET"))
        ));
    }

    #[test]
    fn dates() {
        assert_eq!(
            event_date(&json!({"source":"aws.events","detail-type":"Scheduled Event","time":"2026-01-20T06:00:00Z"}))
                .unwrap(),
            "2026-01-20"
        );
        assert_eq!(
            event_date(&json!({"date":"2026-02-01"})).unwrap(),
            "2026-02-01"
        );
        assert!(event_date(&json!({})).is_err());
        assert!(event_date(&json!({"date":"yesterday"})).is_err());
    }
}
