//! Scoring and writing one object: its distinct pairs through the scorer in bounded chunks, labels
//! and the threshold applied, then the scores and alerts written whole.
use std::io::{BufWriter, Write};
use std::time::Instant;

use ipsight_core::labels::{LabelSet, Verdict};
use ipsight_formats::notify::S3Object;
use ipsight_ports::{ObjectRef, ObjectStore, Pair, ScoreError, Scorer};
use serde::Serialize;
use serde_json::{json, Map};

use crate::pairs::{PairKey, Seen};
use crate::read::collect;
use ipsight_lambda_shell::{InputError, Outcome};

use crate::triage::Extras;
use crate::{classify_key, Alert, AlertSink, Config, Kind, ScoreRecord, FUNCTION};

/// Pairs handed to the scorer per call, and records held before they are written to the temporary
/// scores file: bounds the memory of one chunk (about 700 bytes a record with its explanation)
/// while leaving the adapter room to pack (the SageMaker adapter splits further at 6 MB per
/// request) and the detector enough pairs for its thread pool.
const SCORE_CHUNK: usize = 50_000;

/// One object's result: where its scores went, how many pairs and alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub scores: ObjectRef,
    pub pairs: usize,
    pub alerts: usize,
    /// Pairs of principals absent from the baseline (`history: new_principal`).
    pub new_principal_pairs: usize,
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
) -> Result<Outcome<Scored>, InputError> {
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
) -> Result<Outcome<Scored>, InputError> {
    let extras = Extras {
        labels,
        ..Extras::default()
    };
    process_object_with(cfg, store, scorer, alerts, &extras, obj).await
}

/// [`process_object`] honouring analyst labels, the tuning file and the network databases.
pub async fn process_object_with<S: Scorer, A: AlertSink>(
    cfg: &Config,
    store: &impl ObjectStore,
    scorer: &S,
    alerts: &A,
    extras: &Extras<'_>,
    obj: &S3Object,
) -> Result<Outcome<Scored>, InputError> {
    let labels = extras.labels;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let input = ObjectRef::new(&obj.bucket, &obj.key);
    let started = Instant::now();
    let fail = |reason: String| InputError::new(input.to_string(), reason);
    if cfg.is_own_output(obj) {
        return Ok(Outcome::Skipped("own_output"));
    }
    let kind = match classify_key(cfg, &obj.key, obj.size) {
        Ok(k) => k,
        Err(reason) => return Ok(Outcome::Skipped(reason)),
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

    // Score the distinct pairs, in order, in bounded chunks, and write each chunk's records to a
    // temporary file as soon as it is judged: only the alert candidates stay in memory (an object
    // of millions of distinct pairs would otherwise hold every record's explanation at once).
    // Nothing is written to the store until every pair has been scored.
    let keys: Vec<(&PairKey, &Seen)> = collected.pairs.iter().collect();
    let source = input.to_string();
    let new_principals = cfg.scorer.new_principals();
    let mut body = ScoresFile::new().map_err(&fail)?;
    let mut candidates: Vec<(usize, ScoreRecord)> = Vec::new();
    let (mut pairs_scored, mut ipv6_pairs, mut new_principal_pairs) = (0usize, 0u64, 0usize);
    for (c, chunk) in keys.chunks(SCORE_CHUNK).enumerate() {
        let pairs: Vec<Pair> = chunk
            .iter()
            .map(|(k, _)| Pair {
                entity: k.entity.clone(),
                ip: k.ip,
            })
            .collect();
        let scores = scorer.score(&pairs).await.map_err(|e| {
            fail(match e {
                ScoreError::Rejected(m) => format!("scoring rejected: {m}"),
                ScoreError::Unavailable(m) => format!("scoring unavailable (will retry): {m}"),
            })
        })?;
        if scores.len() != pairs.len() {
            return Err(fail(format!(
                "scorer returned {} scores for {} pairs",
                scores.len(),
                pairs.len()
            )));
        }
        drop(pairs);
        let mut records: Vec<ScoreRecord> = chunk
            .iter()
            .zip(scores)
            .map(|((k, seen), s)| {
                let label = labels.and_then(|l| l.lookup(&k.entity, k.ip, now));
                let alert = match label.map(|l| l.verdict) {
                    Some(Verdict::FalsePositive) => false,
                    Some(Verdict::TruePositive) => true,
                    None => cfg.threshold.is_alert_score(&s, new_principals),
                };
                ScoreRecord {
                    entity: k.entity.clone(),
                    ip: k.ip,
                    dot_product: s.dot_product,
                    unusual_percentile: s.unusual_percentile,
                    embedding_percentile: s.embedding_percentile,
                    history: s.history,
                    explanation: s.explanation,
                    nearest: s.nearest,
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
                    invoked_by: seen.only_invoked_by().map(str::to_owned),
                    network: None,
                    network_history: None,
                    suppressed_reason: None,
                }
            })
            .collect();
        crate::triage::suppress(extras, &mut records, now, &|e| scorer.profile(e))
            .map_err(&fail)?;
        for (i, r) in records.into_iter().enumerate() {
            pairs_scored += 1;
            ipv6_pairs += u64::from(r.ip.is_ipv6());
            new_principal_pairs +=
                usize::from(r.history == Some(ipsight_ports::History::NewPrincipal));
            if r.alert {
                candidates.push((c * SCORE_CHUNK + i, r));
            } else {
                body.push(&r).map_err(&fail)?;
            }
        }
    }
    // The dedup window reads and writes state: only now that the whole object has scored.
    let mut alerted: Vec<ScoreRecord> = Vec::with_capacity(candidates.len());
    let mut at: Vec<usize> = Vec::with_capacity(candidates.len());
    for (i, r) in candidates {
        at.push(i);
        alerted.push(r);
    }
    crate::triage::dedup(cfg, store, extras, &mut alerted, &source, now)
        .await
        .map_err(&fail)?;
    let alert_list: Vec<Alert> = alerted
        .iter()
        .filter(|r| r.alert)
        .map(|r| Alert::new(r.clone(), cfg.threshold))
        .collect();
    let scored_ms = started.elapsed().as_millis() as u64 - parsed_ms;

    let scores_obj = ObjectRef::new(
        &cfg.output_bucket,
        derived_key(&cfg.scores_prefix, &obj.key),
    );
    // The candidates go back to their places in input order, then the file is put whole.
    let file = body.finish(at.into_iter().zip(alerted)).map_err(&fail)?;
    store
        .put_file(&scores_obj, file.path(), "application/x-ndjson")
        .await
        .map_err(|e| fail(e.to_string()))?;
    drop(file);
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
    ipsight_ports::emf::log(
        FUNCTION,
        f,
        &[
            ("events", collected.events),
            ("events_without_pair", collected.skipped),
            ("pairs_scored", pairs_scored as u64),
            ("ipv6_pairs_scored", ipv6_pairs),
            ("alerts", alert_list.len() as u64),
            ("new_principal_pairs", new_principal_pairs as u64),
        ],
    );
    Ok(Outcome::Done(Scored {
        scores: scores_obj,
        pairs: pairs_scored,
        alerts: alert_list.len(),
        new_principal_pairs,
    }))
}

/// The scores object being written: JSON lines in a temporary file, the alert candidates left out
/// until the dedup window has decided on them (they are few; the rest is written as it is scored).
struct ScoresFile {
    file: BufWriter<tempfile::NamedTempFile>,
    lines: usize,
}

impl ScoresFile {
    fn new() -> Result<Self, String> {
        let tmp = tempfile::NamedTempFile::new().map_err(|e| format!("temporary file: {e}"))?;
        Ok(Self {
            file: BufWriter::with_capacity(256 << 10, tmp),
            lines: 0,
        })
    }

    fn push(&mut self, r: &ScoreRecord) -> Result<(), String> {
        line(&mut self.file, r)?;
        self.lines += 1;
        Ok(())
    }

    /// The whole file in input order: the written lines with `placed` (record index, record; in
    /// increasing index order) put back at their indices.
    fn finish(
        self,
        placed: impl IntoIterator<Item = (usize, ScoreRecord)>,
    ) -> Result<tempfile::NamedTempFile, String> {
        let err = |e: std::io::Error| format!("writing temporary file: {e}");
        let written = self.file.into_inner().map_err(|e| err(e.into_error()))?;
        let mut placed = placed.into_iter().peekable();
        if placed.peek().is_none() {
            return Ok(written);
        }
        let out = tempfile::NamedTempFile::new().map_err(|e| format!("temporary file: {e}"))?;
        {
            let mut w = BufWriter::with_capacity(256 << 10, out.as_file());
            let mut r =
                std::io::BufReader::with_capacity(256 << 10, written.reopen().map_err(err)?);
            let mut buf = Vec::new();
            let mut index = 0;
            for _ in 0..=self.lines {
                while let Some((_, rec)) = placed.next_if(|(i, _)| *i == index) {
                    line(&mut w, &rec)?;
                    index += 1;
                }
                buf.clear();
                if std::io::BufRead::read_until(&mut r, b'\n', &mut buf).map_err(err)? == 0 {
                    break;
                }
                w.write_all(&buf).map_err(err)?;
                index += 1;
            }
            if placed.next().is_some() {
                return Err("scores file: an alert candidate's place is past the end".into());
            }
            w.flush().map_err(err)?;
        }
        Ok(out)
    }
}

fn line<W: Write, T: Serialize>(w: &mut W, it: &T) -> Result<(), String> {
    serde_json::to_writer(&mut *w, it).map_err(|e| format!("serialising: {e}"))?;
    w.write_all(b"\n")
        .map_err(|e| format!("writing temporary file: {e}"))
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

/// Local helper for tools and tests: the key a source object's scores are written under.
pub fn scores_key(cfg: &Config, source_key: &str) -> String {
    derived_key(&cfg.scores_prefix, source_key)
}

#[cfg(test)]
mod label_tests {
    use super::*;
    use crate::{handle, NoAlerts};
    use ipsight_core::labels::Label;
    use ipsight_core::labels::Verdict;
    use ipsight_ports::object_key;
    use ipsight_ports::{DirStore, Score};
    use ipsight_ports::{ObjectRef, ObjectStore, Pair, ScoreError, Scorer};
    use serde_json::{json, Value};

    /// Every pair scores as very unusual: only labels can stop an alert.
    struct Unusual;
    impl Scorer for Unusual {
        async fn score(&self, pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
            Ok(pairs
                .iter()
                .map(|_| Score::embedding_only(-5.0, Some(99.99), "test"))
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
            .put_bytes(
                &obj,
                format!("{}\n", ipsight_formats::labels::to_line(&label)).into(),
                "x",
            )
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

#[cfg(test)]
mod scores_file_tests {
    use super::*;

    fn record(i: usize, alert: bool) -> ScoreRecord {
        ScoreRecord {
            entity: format!("E{i:03}"),
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i as u8)),
            dot_product: 0.0,
            unusual_percentile: None,
            embedding_percentile: None,
            history: None,
            explanation: String::new(),
            nearest: Vec::new(),
            alert,
            count: 1,
            first_seen: None,
            last_seen: None,
            source: "s3://b/k".into(),
            kind: Kind::TupleCsv,
            class_uid: None,
            finding_id: None,
            finding_type: None,
            severity: None,
            account: None,
            region: None,
            label: None,
            label_reason: None,
            invoked_by: None,
            network: None,
            network_history: None,
            suppressed_reason: None,
        }
    }

    fn entities(f: &tempfile::NamedTempFile) -> Vec<String> {
        std::fs::read_to_string(f.path())
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["entity"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn alert_candidates_go_back_to_their_places() {
        // Candidates first, in the middle (two in a row) and last.
        let alerting = [0usize, 4, 5, 9];
        let mut f = ScoresFile::new().unwrap();
        let mut held = Vec::new();
        for i in 0..10 {
            let r = record(i, alerting.contains(&i));
            if r.alert {
                held.push((i, r));
            } else {
                f.push(&r).unwrap();
            }
        }
        let out = f.finish(held).unwrap();
        let want: Vec<String> = (0..10).map(|i| format!("E{i:03}")).collect();
        assert_eq!(entities(&out), want);
    }

    #[test]
    fn without_candidates_the_file_is_the_written_lines() {
        let mut f = ScoresFile::new().unwrap();
        for i in 0..3 {
            f.push(&record(i, false)).unwrap();
        }
        let out = f.finish(Vec::new()).unwrap();
        assert_eq!(entities(&out), ["E000", "E001", "E002"]);
        let only = ScoresFile::new().unwrap();
        let out = only.finish(vec![(0, record(7, true))]).unwrap();
        assert_eq!(entities(&out), ["E007"]);
    }

    #[test]
    fn a_place_past_the_end_is_an_error() {
        let f = ScoresFile::new().unwrap();
        let err = f.finish(vec![(3, record(3, true))]).unwrap_err();
        assert!(err.contains("past the end"), "{err}");
    }
}
