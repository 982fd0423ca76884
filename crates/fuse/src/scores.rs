//! IP Insights scores for `<entity, ip>` pairs: read from the `scores/**/*.jsonl` files ipcheck
//! writes, or filled in on the fly through the [`Scorer`] port.
//!
//! A score line is `{"entity":"…","ip":"a.b.c.d","dot_product":x, …}` (IPv6 in RFC 5952 text
//! too) with, optionally, the
//! calibrated position of the score among known-normal activity:
//! * `unusual_percentile` (0–100, higher = less normal: 99.5 = "less normal than 99.5% of known
//!   activity"), the [`Score`] port's convention; or
//! * `percentile` (0–100, the model's percentile rank: the share of known activity that scored
//!   *lower*; low = unusual), read as `unusual_percentile = 100 − percentile`.
//!
//! With the baseline sidecar, `unusual_percentile` is the combined score's, and the line also
//! carries its why: `embedding_percentile`, `history`, `explanation` and `nearest` (the fields of
//! `ipsight score --output ipsight` and of ipcheck's score records), kept for the report rows.
//!
//! Other fields are ignored.
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::net::IpAddr;

use ipsight_ports::{History, Nearest, Pair, Score, ScoreError, Scorer};
use serde::Deserialize;

/// Where a pair's score came from (reported per row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreSource {
    /// A scores file written by ipcheck (or any file in that format).
    File,
    /// Scored during fusion through the scorer port.
    Scorer,
}

impl ScoreSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreSource::File => "scores",
            ScoreSource::Scorer => "scorer",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoreEntry {
    pub dot_product: f32,
    /// The combined percentile when the scorer had a baseline, else the embedding's.
    pub unusual_percentile: Option<f64>,
    pub source: ScoreSource,
    pub embedding_percentile: Option<f64>,
    /// None: scored without a baseline (or by a tool that does not say).
    pub history: Option<History>,
    pub explanation: Option<String>,
    pub nearest: Vec<Nearest>,
}

impl ScoreEntry {
    /// An entry from the scorer port's [`Score`].
    pub fn from_score(s: Score, source: ScoreSource) -> Self {
        Self {
            dot_product: s.dot_product,
            unusual_percentile: s.unusual_percentile,
            source,
            embedding_percentile: s.embedding_percentile,
            history: s.history,
            explanation: Some(s.explanation),
            nearest: s.nearest,
        }
    }
}

impl ScoreEntry {
    /// Unusualness in [0, 1]: the calibrated unusual percentile / 100 when known; otherwise
    /// `1 − sigmoid(dot_product)`, the model's own probability that the pair is *not* normal (IP
    /// Insights trains `sigmoid(dot_product)` as P(normal) with a cross-entropy loss), which is what
    /// an uncalibrated SageMaker endpoint offers.
    pub fn unusualness(&self) -> f64 {
        match self.unusual_percentile {
            Some(p) if p.is_finite() => (p / 100.0).clamp(0.0, 1.0),
            _ => 1.0 - 1.0 / (1.0 + (-(self.dot_product as f64)).exp()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScoresError {
    #[error("{source_name} line {line}: {why}")]
    Line {
        source_name: String,
        line: u64,
        why: String,
    },
    #[error("{source_name}: read failed: {err}")]
    Read {
        source_name: String,
        err: std::io::Error,
    },
}

#[derive(Debug, Deserialize)]
struct Line {
    entity: String,
    ip: String,
    dot_product: f64,
    #[serde(default)]
    percentile: Option<f64>,
    #[serde(default)]
    unusual_percentile: Option<f64>,
    #[serde(default)]
    embedding_percentile: Option<f64>,
    #[serde(default)]
    history: Option<History>,
    #[serde(default)]
    explanation: Option<String>,
    #[serde(default)]
    nearest: Vec<NearestLine>,
}

/// `nearest[]` of a score line (`ipsight_model`'s `Nearest` is write-only).
#[derive(Debug, Deserialize)]
struct NearestLine {
    prefix: String,
    events: u64,
    #[serde(default)]
    last_seen: Option<String>,
}

/// Scores by pair.
#[derive(Debug, Clone, Default)]
pub struct ScoreTable {
    map: HashMap<(String, IpAddr), ScoreEntry>,
}

impl ScoreTable {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, entity: &str, ip: IpAddr) -> Option<&ScoreEntry> {
        // The map is keyed by owned strings; a lookup allocation per row is negligible here.
        self.map.get(&(entity.to_owned(), ip))
    }

    /// Add a score. When a pair already has one (several scores files, re-scored objects), the more
    /// unusual one is kept: an analyst should see the worst the pair looked, and the result does
    /// not depend on the order files are read in.
    pub fn insert(&mut self, entity: String, ip: IpAddr, e: ScoreEntry) {
        use std::collections::hash_map::Entry;
        match self.map.entry((entity, ip)) {
            Entry::Vacant(v) => {
                v.insert(e);
            }
            Entry::Occupied(mut o) => {
                let old = o.get();
                let (eu, ou) = (e.unusualness(), old.unusualness());
                if eu > ou || (eu == ou && e.dot_product < old.dot_product) {
                    o.insert(e);
                }
            }
        }
    }

    /// Read a scores JSONL stream. With `wanted`, only those pairs are kept (scores files cover all
    /// activity; fusion needs only the pairs findings name). Returns the number of lines read.
    pub fn read_jsonl<R: BufRead>(
        &mut self,
        r: R,
        source_name: &str,
        wanted: Option<&HashSet<(String, IpAddr)>>,
    ) -> Result<u64, ScoresError> {
        let mut n = 0u64;
        for (i, line) in r.lines().enumerate() {
            let line = line.map_err(|err| ScoresError::Read {
                source_name: source_name.to_owned(),
                err,
            })?;
            let bad = |why: String| ScoresError::Line {
                source_name: source_name.to_owned(),
                line: i as u64 + 1,
                why,
            };
            if line.trim().is_empty() {
                continue;
            }
            let l: Line = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
            let ip: IpAddr = ipsight_formats::classify_ip(&l.ip)
                .address()
                .ok_or_else(|| bad(format!("{:?} is not an IPv4 or IPv6 address", l.ip)))?;
            n += 1;
            if wanted.is_some_and(|w| !w.contains(&(l.entity.clone(), ip))) {
                continue;
            }
            let unusual = l
                .unusual_percentile
                .or(l.percentile.map(|p| 100.0 - p))
                .filter(|p| p.is_finite());
            self.insert(
                l.entity,
                ip,
                ScoreEntry {
                    dot_product: l.dot_product as f32,
                    unusual_percentile: unusual,
                    source: ScoreSource::File,
                    embedding_percentile: l.embedding_percentile.filter(|p| p.is_finite()),
                    history: l.history,
                    explanation: l.explanation,
                    nearest: l
                        .nearest
                        .into_iter()
                        .map(|n| Nearest {
                            prefix: n.prefix,
                            events: n.events,
                            last_seen: n.last_seen,
                        })
                        .collect(),
                },
            );
        }
        Ok(n)
    }

    /// Score, through `scorer`, every pair of `pairs` that has no score yet. Sorted and deduplicated
    /// first, so the scorer sees the same request for the same inputs.
    pub async fn score_missing(
        &mut self,
        pairs: impl IntoIterator<Item = (String, IpAddr)>,
        scorer: &impl Scorer,
    ) -> Result<usize, ScoreError> {
        let mut missing: Vec<Pair> = pairs
            .into_iter()
            .filter(|(e, ip)| self.get(e, *ip).is_none())
            .map(|(entity, ip)| Pair { entity, ip })
            .collect();
        missing.sort_by(|a, b| (&a.entity, a.ip).cmp(&(&b.entity, b.ip)));
        missing.dedup();
        if missing.is_empty() {
            return Ok(0);
        }
        let scores: Vec<Score> = scorer.score(&missing).await?;
        if scores.len() != missing.len() {
            return Err(ScoreError::Rejected(format!(
                "scorer returned {} scores for {} pairs",
                scores.len(),
                missing.len()
            )));
        }
        for (p, s) in missing.iter().zip(scores) {
            self.insert(
                p.entity.clone(),
                p.ip,
                ScoreEntry::from_score(s, ScoreSource::Scorer),
            );
        }
        Ok(missing.len())
    }
}

/// A scorer for deployments without one: every pair stays unscored (fusion then ranks those rows
/// by severity alone and says so).
pub struct NoScorer;

impl Scorer for NoScorer {
    async fn score(&self, _pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
        Err(ScoreError::Unavailable("no scorer configured".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_conventions_and_conflicts() {
        let text = r#"{"entity":"A","ip":"1.2.3.4","dot_product":-2.5,"unusual_percentile":99.0,"source":"x"}

{"entity":"A","ip":"1.2.3.4","dot_product":-1.0,"unusual_percentile":90.0}
{"entity":"B","ip":"1.2.3.5","dot_product":3.0,"percentile":80.0}
{"entity":"C","ip":"1.2.3.6","dot_product":0.0}
"#;
        let mut t = ScoreTable::default();
        assert_eq!(t.read_jsonl(text.as_bytes(), "s.jsonl", None).unwrap(), 4);
        let a = t.get("A", "1.2.3.4".parse().unwrap()).unwrap();
        assert_eq!((a.dot_product, a.unusual_percentile), (-2.5, Some(99.0)));
        let b = t.get("B", "1.2.3.5".parse().unwrap()).unwrap();
        assert!((b.unusualness() - 0.2).abs() < 1e-9);
        let c = t.get("C", "1.2.3.6".parse().unwrap()).unwrap();
        assert!((c.unusualness() - 0.5).abs() < 1e-9);
        let e = t
            .read_jsonl(&b"{\"entity\":\"A\"}\n"[..], "bad.jsonl", None)
            .unwrap_err();
        assert!(e.to_string().starts_with("bad.jsonl line 1"), "{e}");
        let mut wanted = HashSet::new();
        wanted.insert(("B".to_owned(), "1.2.3.5".parse().unwrap()));
        let mut t = ScoreTable::default();
        t.read_jsonl(text.as_bytes(), "s", Some(&wanted)).unwrap();
        assert_eq!(t.len(), 1);
    }
}
