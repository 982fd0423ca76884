//! The hybrid detector: one unusualness per pair from the embedding's `dot_product` and the
//! entity's history ([`crate::baseline`]), with percentiles calibrated on held-back recent activity
//! and a "why" for every result.
//!
//! # The combined score
//! ```text
//! z = bias + w_dot · (dot − center) / scale
//!     + Σ over the levels the entity used (c_level + b_level · ln(1 + events_level))
//!     + w_breadth · ln(1 + distinct /16s the entity used)
//!     − w_others · ln(1 + k) − w_personal / k     [k ≥ 1 other entities used this exact address
//!                                                  (IPv6: this /64), only if the entity did not]
//! ```
//! with every weight `≥ 0`. IPv6 pairs have their own bias offset, dot-product term (standardised
//! on IPv6 rows), breadth (/32s) and a `w_network · ln(1 + other entities that used this /32)`
//! term, and a penalty `w_unknown` when no entity of the organisation ever used the /32 (the
//! entity included) ([`FamilyTerms`]); levels are per family already. Per-family terms because IPv6 dot
//! products come from hashed prefix rows with another distribution and reliability, and one
//! shared weight fitted mostly on IPv4 let them outweigh IPv6 history. Adding history to the entity only adds non-negative level terms, widens
//! its breadth and switches the "other principals' address" penalty off, so a pair seen at the address
//! level is never less normal than the same dot product never seen (monotone by construction,
//! whatever the data). The penalty is what tells another principal's own address (a colleague's
//! home: the shuffled anomalies) from a new hotel network; it fades as more principals share the
//! address, because an address a whole office uses is where a principal that never used it turns
//! up on a normal day (only `w_personal` is fitted; `w_others` stays 0, see [`fit`]). The weights are a logistic regression fitted
//! (full-batch, fixed iterations, projected onto the constraints: deterministic) on held-back recent
//! pairs against the same entities from random addresses and from other entities' addresses.
//!
//! # Honest percentiles
//! The embedding was trained, and the history built, on the older part of the input only; the
//! newest part is held back. Its pairs are scored against that older history, and their scores' quantiles
//! become the calibration: "less normal than X% of recent normal activity" then means what it says
//! for tomorrow's activity too, instead of being measured on pairs the model has fitted.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::baseline::{
    Baseline, History, Lookup, Nearest, PairKey, LEVEL_CODES, V4_LEVELS, V6_LEVELS,
};
use crate::calibration::Calibration;

/// The fitted weights of the combined score (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Combiner {
    pub bias: f64,
    pub dot_center: f64,
    pub dot_scale: f64,
    pub dot_weight: f64,
    /// Per level code (IPv4 ip, /24, /16, IPv6 ip, /64, /56, /48, /32): the weight of having used it.
    pub level_weight: [f64; LEVEL_CODES],
    /// Per level code: the weight of ln(1 + events there).
    pub events_weight: [f64; LEVEL_CODES],
    /// Weight of ln(1 + distinct widest-level networks the entity used).
    #[serde(default)]
    pub breadth_weight: f64,
    /// Penalty weight of ln(1 + other entities that used the exact address, when this one did not).
    #[serde(default)]
    pub others_weight: f64,
    /// Penalty weight of 1 / (other entities that used the exact address), when this one did not and
    /// some did: an address of one or two other principals (a colleague's home) is personal, one
    /// of a whole office (a NAT everyone shares) is not.
    #[serde(default)]
    pub personal_weight: f64,
    /// IPv6 pairs' own bias, dot-product and breadth terms, used instead of the shared ones above
    /// for IPv6 pairs. `None` (sidecars before per-family terms, inputs without IPv6): IPv6 pairs
    /// use the shared terms. Why separate: IPv6 dot products have another distribution (hashed
    /// prefix rows, rotating interface ids) and another reliability than IPv4's, and a shared
    /// weight is set by the IPv4 majority — it let weak IPv6 dots push pairs seen at their /64
    /// below never-seen ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6: Option<FamilyTerms>,
}

/// One address family's own terms of the combined score (see [`Combiner::v6`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyTerms {
    pub bias: f64,
    pub dot_center: f64,
    pub dot_scale: f64,
    /// `≥ 0`.
    pub dot_weight: f64,
    /// `≥ 0`: weight of ln(1 + distinct IPv6 /32s the entity used).
    pub breadth_weight: f64,
    /// `≥ 0`: weight of ln(1 + other entities that used the address's /32) — an ISP the
    /// organisation uses against address space nobody in it does. IPv4's embedding carries this
    /// in its exact /8 and /16 rows; IPv6's hashed prefix rows do not.
    #[serde(default)]
    pub network_weight: f64,
    /// `≥ 0`: penalty when neither the entity nor any other entity ever used the address's /32 —
    /// address space the whole organisation has never been seen from. Its own term because the
    /// embedding's hashed IPv6 rows for such a prefix are untrained noise, while a new trip's hotel
    /// /64 sits in an ISP some colleagues use (a never-seen pair either way, but not alike), and
    /// `network_weight` alone is fitted near 0: among held-back pairs and their negatives, a /32
    /// that others used is as common for other principals' addresses as for normal activity.
    #[serde(default)]
    pub unknown_network_weight: f64,
}

const BREADTH: usize = 2 + 2 * LEVEL_CODES;
const OTHERS: usize = BREADTH + 1;
const PERSONAL: usize = OTHERS + 1;
// The IPv6 terms: bias (unconstrained, like the shared bias), dot and breadth (`≥ 0`).
const V6_BIAS: usize = PERSONAL + 1;
const V6_DOT: usize = V6_BIAS + 1;
const V6_BREADTH: usize = V6_DOT + 1;
const V6_NETWORK: usize = V6_BREADTH + 1;
const V6_UNKNOWN: usize = V6_NETWORK + 1;
const PARAMS: usize = V6_UNKNOWN + 1;

fn is_v6(lookup: &Lookup) -> bool {
    lookup.levels[0].code == V6_LEVELS[0].code
}

/// An IPv6 address whose /32 no entity of the organisation ever used (the entity included).
fn unknown_network(lookup: &Lookup) -> bool {
    lookup.network_others == 0 && lookup.best().is_none()
}

impl Combiner {
    /// A principled fallback when too few held-back pairs exist to fit: the dot product plus a
    /// history bonus ordered by level.
    pub fn prior(dot_center: f64, dot_scale: f64) -> Self {
        let mut level_weight = [0.0; LEVEL_CODES];
        for (l, w) in V4_LEVELS.iter().zip([2.0, 2.0, 1.0]) {
            level_weight[l.code as usize] = w;
        }
        for (l, w) in V6_LEVELS.iter().zip([2.0, 2.0, 0.0, 1.0, 0.0]) {
            level_weight[l.code as usize] = w;
        }
        Self {
            bias: 0.0,
            dot_center,
            dot_scale,
            dot_weight: 1.0,
            level_weight,
            events_weight: [0.0; LEVEL_CODES],
            breadth_weight: 0.0,
            others_weight: 0.0,
            personal_weight: 0.0,
            v6: None,
        }
    }

    fn features(&self, dot: f32, lookup: &Lookup) -> [f64; PARAMS] {
        let mut x = [0.0; PARAMS];
        x[0] = 1.0;
        let breadth = (1.0 + lookup.networks as f64).ln();
        match (&self.v6, is_v6(lookup)) {
            (Some(t), true) => {
                x[V6_BIAS] = 1.0;
                x[V6_DOT] = (dot as f64 - t.dot_center) / t.dot_scale;
                x[V6_BREADTH] = breadth;
                x[V6_NETWORK] = (1.0 + lookup.network_others as f64).ln();
                x[V6_UNKNOWN] = -f64::from(u8::from(unknown_network(lookup)));
            }
            _ => {
                x[1] = (dot as f64 - self.dot_center) / self.dot_scale;
                x[BREADTH] = breadth;
            }
        }
        for (l, s) in lookup.levels.iter().zip(&lookup.stats) {
            if let Some(s) = s {
                x[2 + l.code as usize] = 1.0;
                x[2 + LEVEL_CODES + l.code as usize] = (1.0 + s.events as f64).ln();
            }
        }
        if !lookup.used_unit() {
            x[OTHERS] = -(1.0 + lookup.others as f64).ln();
            if lookup.others > 0 {
                x[PERSONAL] = -1.0 / lookup.others as f64;
            }
        }
        x
    }

    fn set_params(&mut self, p: &[f64; PARAMS]) {
        self.bias = p[0];
        self.dot_weight = p[1];
        self.level_weight.copy_from_slice(&p[2..2 + LEVEL_CODES]);
        self.events_weight
            .copy_from_slice(&p[2 + LEVEL_CODES..BREADTH]);
        self.breadth_weight = p[BREADTH];
        self.others_weight = p[OTHERS];
        self.personal_weight = p[PERSONAL];
        if let Some(t) = &mut self.v6 {
            t.bias = p[V6_BIAS];
            t.dot_weight = p[V6_DOT];
            t.breadth_weight = p[V6_BREADTH];
            t.network_weight = p[V6_NETWORK];
            t.unknown_network_weight = p[V6_UNKNOWN];
        }
    }

    /// The combined score: higher = more normal (a log-odds of "normal").
    #[inline]
    pub fn score(&self, dot: f32, lookup: &Lookup) -> f64 {
        let breadth = (1.0 + lookup.networks as f64).ln();
        let mut z = match (&self.v6, is_v6(lookup)) {
            (Some(t), true) => {
                self.bias
                    + t.bias
                    + t.dot_weight * (dot as f64 - t.dot_center) / t.dot_scale
                    + t.breadth_weight * breadth
                    + t.network_weight * (1.0 + lookup.network_others as f64).ln()
                    - if unknown_network(lookup) {
                        t.unknown_network_weight
                    } else {
                        0.0
                    }
            }
            _ => {
                self.bias
                    + self.dot_weight * (dot as f64 - self.dot_center) / self.dot_scale
                    + self.breadth_weight * breadth
            }
        };
        for (l, s) in lookup.levels.iter().zip(&lookup.stats) {
            if let Some(s) = s {
                let c = l.code as usize;
                z += self.level_weight[c] + self.events_weight[c] * (1.0 + s.events as f64).ln();
            }
        }
        if !lookup.used_unit() && lookup.others > 0 {
            z -= self.others_weight * (1.0 + lookup.others as f64).ln()
                + self.personal_weight / lookup.others as f64;
        }
        z
    }
}

/// One labelled example for fitting the combiner.
#[derive(Debug, Clone, Copy)]
pub struct FitRow {
    pub dot: f32,
    pub lookup: Lookup,
    pub normal: bool,
}

/// Fits the combiner: class-balanced logistic regression, Adam on the full batch for a fixed number
/// of steps, weights projected onto `≥ 0` after each (the monotonicity constraint). Sums are taken
/// over fixed chunks in a fixed order, so the result does not depend on the thread count.
pub fn fit(rows: &[FitRow]) -> Combiner {
    let has_v4 = rows.iter().any(|r| !is_v6(&r.lookup));
    let has_v6 = rows.iter().any(|r| is_v6(&r.lookup));
    // Each family's dot products are standardised on its own rows (the shared term on all rows
    // when there is no IPv4).
    let (center, scale) = standardise(rows.iter().filter(|r| !has_v4 || !is_v6(&r.lookup)));
    let mut c = Combiner::prior(center, scale);
    if has_v4 && has_v6 {
        let (dot_center, dot_scale) = standardise(rows.iter().filter(|r| is_v6(&r.lookup)));
        c.v6 = Some(FamilyTerms {
            bias: 0.0,
            dot_center,
            dot_scale,
            dot_weight: 1.0,
            breadth_weight: 0.0,
            network_weight: 0.0,
            unknown_network_weight: 0.0,
        });
    }
    let pos = rows.iter().filter(|r| r.normal).count().max(1) as f64;
    let neg = rows.iter().filter(|r| !r.normal).count().max(1) as f64;
    let xs: Vec<([f64; PARAMS], f64, f64)> = rows
        .iter()
        .map(|r| {
            let (y, w) = if r.normal {
                (1.0, 0.5 / pos)
            } else {
                (0.0, 0.5 / neg)
            };
            (c.features(r.dot, &r.lookup), y, w)
        })
        .collect();
    let mut p = [0.0; PARAMS];
    p[1] = 1.0;
    p[V6_DOT] = 1.0;
    let (mut m, mut v) = ([0.0; PARAMS], [0.0; PARAMS]);
    const STEPS: i32 = 600;
    const LR: f64 = 0.05;
    const L2: f64 = 1e-4;
    for t in 1..=STEPS {
        let partial: Vec<[f64; PARAMS]> = xs
            .par_chunks(4096)
            .map(|chunk| {
                let mut g = [0.0; PARAMS];
                for (x, y, w) in chunk {
                    let z: f64 = x.iter().zip(&p).map(|(a, b)| a * b).sum();
                    let err = w * (1.0 / (1.0 + (-z).exp()) - y);
                    for (gi, xi) in g.iter_mut().zip(x) {
                        *gi += err * xi;
                    }
                }
                g
            })
            .collect();
        let mut g = [0.0; PARAMS];
        for part in &partial {
            for (a, b) in g.iter_mut().zip(part) {
                *a += b;
            }
        }
        for i in 1..PARAMS {
            g[i] += L2 * p[i];
        }
        for i in 0..PARAMS {
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
            let mh = m[i] / (1.0 - 0.9f64.powi(t));
            let vh = v[i] / (1.0 - 0.999f64.powi(t));
            p[i] -= LR * mh / (vh.sqrt() + 1e-12);
            if i > 0 && i != V6_BIAS {
                p[i] = p[i].max(0.0);
            }
            // ln(1 + others) is not fitted (kept at 0; read from older sidecars): "more principals
            // used this address" is evidence against a pair only while the address is personal. On
            // held-back pairs from the same day as the history a colleague's office looks as foreign
            // as a colleague's home, and the fitted log term then flagged normal people turning up
            // at the office on later days (the sparse world: a 1% budget flagged 5.8%).
            if i == OTHERS {
                p[i] = 0.0;
            }
        }
    }
    c.set_params(&p);
    // A family absent from the fitting data keeps the prior's ordering instead of ignoring history:
    // IPv6 /64 counts as a /24, /48 as a /16.
    if !has_v6 {
        for (v6, v4) in [(3usize, 0usize), (4, 1), (6, 2)] {
            c.level_weight[v6] = c.level_weight[v4];
            c.events_weight[v6] = c.events_weight[v4];
        }
    }
    c
}

/// Mean and standard deviation (at least 1e-6) of the rows' dot products.
fn standardise<'a>(rows: impl Iterator<Item = &'a FitRow>) -> (f64, f64) {
    let dots: Vec<f64> = rows.map(|r| r.dot as f64).collect();
    let n = dots.len().max(1) as f64;
    let center = dots.iter().sum::<f64>() / n;
    let scale = (dots.iter().map(|d| (d - center).powi(2)).sum::<f64>() / n)
        .sqrt()
        .max(1e-6);
    (center, scale)
}

/// Whether a principal absent from the baseline alerts. A freshly created access key used from
/// anywhere is worth a look, so the default is to alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewPrincipals {
    /// `unusual_percentile` 100: every new principal alerts.
    #[default]
    Alert,
    /// `unusual_percentile` 0: new principals never alert (still reported and counted).
    Ignore,
}

impl std::str::FromStr for NewPrincipals {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "alert" => Ok(Self::Alert),
            "ignore" => Ok(Self::Ignore),
            _ => Err(format!("{s:?}: expected alert or ignore")),
        }
    }
}

/// How the detector was fitted, recorded in the sidecar for humans and for the refusal checks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FitInfo {
    /// `held_back`: calibrated on held-back recent pairs; `prior`: too few of them, fallback weights
    /// and calibration on what there was.
    pub calibrated_on: String,
    /// How the held-back part was chosen: `time` (the newest share of the input) or
    /// `per_principal` (the newest share of each principal's observations: the input's order was
    /// not time order). Empty for sidecars written before this field.
    #[serde(default)]
    pub held_back_by: String,
    /// Pairs of the input used for the embedding and the older history.
    pub older_pairs: u64,
    /// Newest pairs held back.
    pub held_back_pairs: u64,
    /// Held-back pairs whose entity was absent from the older part (not used to fit or calibrate).
    pub held_back_new_principals: u64,
    /// The held-back pairs of known principals by history level against the older part: what the
    /// calibration's "recent normal activity" was made of.
    #[serde(default)]
    pub held_back_history: std::collections::BTreeMap<String, u64>,
    pub random_negatives: u64,
    pub shuffled_negatives: u64,
    /// The embedded model the combiner was fitted to (its [`crate::Model::fingerprint`]); `None`
    /// for an external model (SageMaker endpoint).
    pub model_fingerprint: Option<u32>,
    /// Distinct `<entity, ip>` pairs among the held-back pairs of known principals: the sample size
    /// of the conservative percentiles ([`Calibration::conservative`]). 0 in older sidecars.
    #[serde(default)]
    pub held_back_distinct_pairs: u64,
    /// Days the input spans (first to last day seen, inclusive) when it has times; `None` for
    /// tuples without times. Below [`MIN_CALIBRATION_DAYS`] the held-back part cannot show the
    /// day-to-day novelty of later activity: see [`Detector::calibration_caveat`].
    #[serde(default)]
    pub input_days: Option<u32>,
}

/// Fewer days of input than this and [`Detector::calibration_caveat`] warns that budgets will
/// flag more than their share. Measured on the synthetic worlds (crates/model/BENCHMARKS.md): with
/// two weeks of input every budget held at three seeds; with one day, a 1% budget flagged up to
/// 6.9% of the following week's normal activity before the conservative bound and 5% up to 8.7%
/// after it — first visits to a colleague's office hardly happen in the second half of a day, so
/// the held-back part has none to calibrate on. A week covers the weekly cycle.
pub const MIN_CALIBRATION_DAYS: u32 = 7;

/// Baseline + combiner + honest calibrations: everything the sidecar holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Detector {
    pub baseline: Baseline,
    pub combiner: Combiner,
    /// Quantiles of the combined score over held-back recent pairs (IPv4's alone when
    /// [`Detector::combined_calibration_v6`] is set).
    pub combined_calibration: Calibration,
    /// IPv6 pairs' own: the combined score's quantiles over the held-back IPv6 pairs, when there
    /// are at least [`MIN_FAMILY_CALIBRATION_PAIRS`] distinct ones. Why apart: IPv6's held-back
    /// pairs are a minority whose novelty differs (privacy addresses rotate daily inside known
    /// /64s), and one shared calibration let a 5% budget flag up to 11.8% of later IPv6 activity.
    pub combined_calibration_v6: Option<Calibration>,
    /// Quantiles of the dot product over the same pairs (both families).
    pub embedding_calibration: Calibration,
    pub fit: FitInfo,
}

/// Distinct held-back IPv6 pairs needed for IPv6's own calibration
/// ([`Detector::combined_calibration_v6`]); fewer and both families share one.
pub const MIN_FAMILY_CALIBRATION_PAIRS: usize = 200;

/// Pairs whose history lookups are prefetched together ([`Baseline::prefetch`] takes up to 32).
const PREFETCH_BATCH: usize = 16;
/// From this many pairs [`Detector::report_all`] uses the rayon pool, in chunks of
/// `PARALLEL_CHUNK` (a few hundred microseconds of work each).
const PARALLEL_PAIRS: usize = 2048;
const PARALLEL_CHUNK: usize = 1024;

/// The detector's judgement of one pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub dot_product: f32,
    pub combined: f64,
    pub history: History,
    /// The combined one: 0–100, higher = less normal than that share of recent normal activity.
    pub unusual_percentile: f64,
    /// The embedding's alone, same scale and calibration pairs.
    pub embedding_percentile: f64,
    pub lookup: Lookup,
}

impl Detector {
    /// Judges one pair given the embedding's dot product (embedded model or SageMaker endpoint).
    #[inline]
    pub fn judge(&self, entity: &str, ip: IpAddr, dot: f32, policy: NewPrincipals) -> Verdict {
        let lookup = self.baseline.lookup(entity, ip);
        let combined = self.combiner.score(dot, &lookup);
        let history = lookup.history();
        let unusual_percentile = if history == History::NewPrincipal {
            match policy {
                NewPrincipals::Alert => 100.0,
                NewPrincipals::Ignore => 0.0,
            }
        } else {
            unusualness(self.calibration_for(&lookup), combined)
        };
        Verdict {
            dot_product: dot,
            combined,
            history,
            unusual_percentile,
            embedding_percentile: unusualness(&self.embedding_calibration, dot as f64),
            lookup,
        }
    }

    /// [`Detector::judge`] for many pairs, in order: the same verdicts, with the history lookups of
    /// each batch of 16 pairs prefetched together ([`Baseline::prefetch`]) — faster when the
    /// baseline is much larger than the CPU caches.
    pub fn judge_many<P: PairKey>(
        &self,
        pairs: &[P],
        dots: &[f32],
        policy: NewPrincipals,
    ) -> Vec<Verdict> {
        assert_eq!(pairs.len(), dots.len(), "one dot product per pair");
        let mut out = Vec::with_capacity(pairs.len());
        for (chunk, ds) in pairs
            .chunks(PREFETCH_BATCH)
            .zip(dots.chunks(PREFETCH_BATCH))
        {
            self.baseline.prefetch(chunk);
            for (p, &d) in chunk.iter().zip(ds) {
                out.push(self.judge(p.entity(), p.ip(), d, policy));
            }
        }
        out
    }

    /// [`Detector::report`] for many pairs, in order, batched as [`Detector::judge_many`]: each pair's
    /// report is written right after its verdict, while its history is still in cache.
    pub fn report_many<P: PairKey>(
        &self,
        pairs: &[P],
        dots: &[f32],
        policy: NewPrincipals,
    ) -> Vec<PairReport> {
        assert_eq!(pairs.len(), dots.len(), "one dot product per pair");
        let mut out = Vec::with_capacity(pairs.len());
        for (chunk, ds) in pairs
            .chunks(PREFETCH_BATCH)
            .zip(dots.chunks(PREFETCH_BATCH))
        {
            self.baseline.prefetch(chunk);
            for (p, &d) in chunk.iter().zip(ds) {
                let (e, ip) = (p.entity(), p.ip());
                out.push(self.report_of(e, ip, self.judge(e, ip, d, policy)));
            }
        }
        out
    }

    /// Every pair's report, in order: the one way the CLI (`ipsight score --output ipsight`) and the
    /// scorer port (ipcheck, fuse) turn dot products into results. [`Detector::report_many`] on the
    /// rayon pool in chunks when there are many pairs.
    pub fn report_all<P: PairKey + Sync>(
        &self,
        pairs: &[P],
        dots: &[f32],
        policy: NewPrincipals,
    ) -> Vec<PairReport> {
        assert_eq!(pairs.len(), dots.len(), "one dot product per pair");
        if pairs.len() < PARALLEL_PAIRS {
            return self.report_many(pairs, dots, policy);
        }
        let parts: Vec<Vec<PairReport>> = pairs
            .par_chunks(PARALLEL_CHUNK)
            .zip(dots.par_chunks(PARALLEL_CHUNK))
            .map(|(p, d)| self.report_many(p, d, policy))
            .collect();
        parts.concat()
    }

    /// Whether the percentiles are calibrated on held-back activity (else the logistic fallback of
    /// [`unusualness`]).
    pub fn is_calibrated(&self) -> bool {
        !self.combined_calibration.is_empty()
    }

    /// The combined score's calibration for a pair of this family.
    fn calibration_for(&self, lookup: &Lookup) -> &Calibration {
        match &self.combined_calibration_v6 {
            Some(c) if is_v6(lookup) => c,
            _ => &self.combined_calibration,
        }
    }

    /// A warning when the budgets cannot be trusted to hold: the input spanned fewer than
    /// [`MIN_CALIBRATION_DAYS`] days (its held-back part shows less novelty than later days bring).
    pub fn calibration_caveat(&self) -> Option<String> {
        calibration_caveat(self.fit.input_days)
    }

    /// The "why" as one sentence: history, nearest known prefixes, and both percentiles.
    pub fn explain(&self, entity: &str, ip: IpAddr, v: &Verdict) -> String {
        self.explain_with(v, &self.nearest_for(entity, ip, v))
    }

    /// The nearest known prefixes a result shows: none when the entity used the address itself or
    /// is new.
    fn nearest_for(&self, entity: &str, ip: IpAddr, v: &Verdict) -> Vec<Nearest> {
        match v.history {
            History::Ip | History::NewPrincipal => Vec::new(),
            _ => self.baseline.nearest(entity, ip, 3),
        }
    }

    fn explain_with(&self, v: &Verdict, near: &[Nearest]) -> String {
        let mut s = self.baseline.describe(&v.lookup);
        if v.history == History::NewPrincipal {
            s.push_str(&format!(
                "; the embedding's score ({:.1}th percentile of unusualness) comes from a hash bucket shared with other principals and is not used",
                v.embedding_percentile
            ));
            return s + ".";
        }
        if is_v6(&v.lookup) && unknown_network(&v.lookup) {
            s.push_str("; no other principal was seen from this /32 either");
        }
        if !near.is_empty() {
            s.push_str("; nearest known: ");
            s.push_str(&nearest_text(near));
        }
        if self.is_calibrated() {
            s.push_str(&format!(
                "; less normal than {:.1}% of recent normal activity (embedding alone: {:.1}%).",
                v.unusual_percentile, v.embedding_percentile
            ));
        } else {
            s.push_str(&format!(
                "; unusualness {:.1}% (embedding alone: {:.1}%), uncalibrated: training held back no activity of known principals.",
                v.unusual_percentile, v.embedding_percentile
            ));
        }
        s
    }

    /// Everything ipsight reports about one pair (`ipsight score --output ipsight`, ipcheck's scores
    /// and alerts, fuse rows).
    pub fn report(&self, entity: &str, ip: IpAddr, dot: f32, policy: NewPrincipals) -> PairReport {
        self.report_of(entity, ip, self.judge(entity, ip, dot, policy))
    }

    /// The report of a judged pair (the nearest prefixes looked up once, for the sentence and the
    /// field).
    fn report_of(&self, entity: &str, ip: IpAddr, v: Verdict) -> PairReport {
        let nearest = self.nearest_for(entity, ip, &v);
        PairReport {
            entity: entity.to_owned(),
            ip: ip.to_canonical().to_string(),
            dot_product: v.dot_product,
            unusual_percentile: round3(v.unusual_percentile),
            embedding_percentile: round3(v.embedding_percentile),
            history: v.history,
            explanation: self.explain_with(&v, &nearest),
            nearest,
        }
    }

    /// The embedded model's fingerprint the detector was fitted to, if any.
    pub fn model_fingerprint(&self) -> Option<u32> {
        self.fit.model_fingerprint
    }
}

/// [`Detector::calibration_caveat`] for an input spanning `input_days` days (None: no times).
pub fn calibration_caveat(input_days: Option<u32>) -> Option<String> {
    match input_days {
        Some(d) if d < MIN_CALIBRATION_DAYS => Some(format!(
            "budgets calibrated on less than {MIN_CALIBRATION_DAYS} days of activity ({d} day{}): expect more flags than the budget until the input spans a week",
            if d == 1 { "" } else { "s" }
        )),
        _ => None,
    }
}

/// A score's unusualness, 0–100 (higher = less normal): the share of the calibration's recent
/// normal activity that scored higher. Without a calibration (an input with no held-back activity
/// of known principals, e.g. one observation per principal) the score itself is read as the log-odds
/// of "normal" it is trained to be (the combiner's logistic regression, the embedding's
/// sigmoid(dot_product)): 100 · (1 − sigmoid(score)). Always a number for a finite score.
pub fn unusualness(calibration: &Calibration, score: f64) -> f64 {
    if calibration.is_empty() {
        100.0 / (1.0 + score.exp())
    } else {
        100.0 - calibration.percentile(score as f32)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One pair as ipsight reports it (the contract of `ipsight score --output ipsight`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairReport {
    pub entity: String,
    pub ip: String,
    /// The embedding's score (SageMaker's `dot_product`; higher = more normal).
    pub dot_product: f32,
    /// The combined score's unusualness: 0–100, higher = less normal, calibrated on held-back
    /// recent activity (a new principal: 100 when new principals alert, else 0).
    pub unusual_percentile: f64,
    /// The embedding's own unusualness on the same scale and pairs.
    pub embedding_percentile: f64,
    pub history: History,
    pub explanation: String,
    /// Up to 3 prefixes the entity used nearest to this address (absent when it used the address).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nearest: Vec<Nearest>,
}

fn nearest_text(near: &[Nearest]) -> String {
    near.iter()
        .map(Nearest::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which pairs are held back: the newest `fraction` of `n` pairs in input (time) order, at least one
/// and leaving at least one for training. Returns the index where the held-back part starts.
pub fn holdback_start(n: usize, fraction: f64) -> usize {
    if n < 2 {
        return n;
    }
    let held = ((n as f64 * fraction.clamp(0.0, 1.0)).ceil() as usize).clamp(1, n - 1);
    n - held
}

/// Negatives for fitting the combiner from the held-back normal pairs whose entity the older history
/// knows: for each, the same entity from a random address of its family, and from the address of
/// another held-back pair of a different entity (IP Insights' shuffled negatives). Random addresses
/// follow the trainer's rule ([`crate::train::random_negative`]): IPv4 uniform; IPv6 half global
/// unicast, half another customer's prefix inside the pair's own /32 — so the combiner, too, learns
/// that having used an ISP's /32 says little (the same-ISP hard case), with a random interface id.
/// Deterministic in `seed`. Returns (pairs, random count, shuffled count).
pub fn negatives<S: AsRef<str>>(
    held: &[(S, IpAddr)],
    seed: u64,
) -> (Vec<(String, IpAddr)>, u64, u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(held.len() * 2);
    for (e, ip) in held {
        let random = match ip.to_canonical() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(rng.random::<u32>())),
            IpAddr::V6(v6) => {
                let top = crate::train::random_negative(crate::IpKey::from(v6), &mut rng).0;
                IpAddr::V6(Ipv6Addr::from(
                    ((top as u128) << 64) | rng.random::<u64>() as u128,
                ))
            }
        };
        out.push((e.as_ref().to_owned(), random));
    }
    let random = out.len() as u64;
    let mut shuffled = 0;
    if held.len() > 1 {
        for (e, _) in held {
            // A few tries to find another entity's address; a one-entity input has none.
            for _ in 0..8 {
                let (e2, ip2) = &held[rng.random_range(0..held.len())];
                if e2.as_ref() != e.as_ref() {
                    out.push((e.as_ref().to_owned(), *ip2));
                    shuffled += 1;
                    break;
                }
            }
        }
    }
    (out, random, shuffled)
}

/// Fewer known held-back pairs than this and the combiner is not fitted (prior weights).
pub const MIN_FIT_PAIRS: usize = 50;

/// Fits the detector. `older` is the history of the older part of the input (what the held-back
/// pairs are compared with), `full` the history of the whole input (what is shipped); `held` are the
/// held-back pairs with the embedding's dot products, `negatives` those from [`negatives`] with theirs.
pub fn fit_detector<S: AsRef<str> + Sync>(
    older: &Baseline,
    full: Baseline,
    held: &[(S, IpAddr)],
    held_dots: &[f32],
    negatives: &[(String, IpAddr)],
    negative_dots: &[f32],
    mut info: FitInfo,
) -> Detector {
    let known: Vec<FitRow> = held
        .par_iter()
        .zip(held_dots)
        .map(|((e, ip), &dot)| FitRow {
            dot,
            lookup: older.lookup(e.as_ref(), *ip),
            normal: true,
        })
        .filter(|r| r.lookup.known_entity)
        .collect();
    info.held_back_pairs = held.len() as u64;
    info.held_back_new_principals = (held.len() - known.len()) as u64;
    // The calibration's sample size: events of one pair are not independent observations.
    let distinct: std::collections::HashSet<(&str, IpAddr)> = held
        .iter()
        .filter(|(e, _)| older.contains_entity(e.as_ref()))
        .map(|(e, ip)| (e.as_ref(), *ip))
        .collect();
    info.held_back_distinct_pairs = distinct.len() as u64;
    for r in &known {
        *info
            .held_back_history
            .entry(r.lookup.history().as_str().to_owned())
            .or_default() += 1;
    }
    let combiner = if known.len() >= MIN_FIT_PAIRS {
        info.calibrated_on = "held_back".into();
        let mut rows = known.clone();
        rows.par_extend(
            negatives
                .par_iter()
                .zip(negative_dots)
                .map(|((e, ip), &dot)| FitRow {
                    dot,
                    lookup: older.lookup(e, *ip),
                    normal: false,
                })
                .filter(|r| r.lookup.known_entity),
        );
        fit(&rows)
    } else {
        info.calibrated_on = "prior".into();
        let n = known.len().max(1) as f64;
        let center = known.iter().map(|r| r.dot as f64).sum::<f64>() / n;
        Combiner::prior(center, 1.0)
    };
    let mut d: Vec<f32> = known.iter().map(|r| r.dot).collect();
    let n = info.held_back_distinct_pairs;
    let score = |rows: &mut dyn Iterator<Item = &FitRow>| -> Vec<f32> {
        rows.map(|r| combiner.score(r.dot, &r.lookup) as f32)
            .collect()
    };
    let distinct_v6 = distinct.iter().filter(|(_, ip)| ip.is_ipv6()).count();
    let (combined_calibration, combined_calibration_v6) =
        if distinct_v6 >= MIN_FAMILY_CALIBRATION_PAIRS && distinct_v6 < distinct.len() {
            let mut z4 = score(&mut known.iter().filter(|r| !is_v6(&r.lookup)));
            let mut z6 = score(&mut known.iter().filter(|r| is_v6(&r.lookup)));
            (
                Calibration::conservative(&mut z4, n - distinct_v6 as u64),
                Some(Calibration::conservative(&mut z6, distinct_v6 as u64)),
            )
        } else {
            (
                Calibration::conservative(&mut score(&mut known.iter()), n),
                None,
            )
        };
    Detector {
        baseline: full,
        combiner,
        combined_calibration,
        combined_calibration_v6,
        embedding_calibration: Calibration::conservative(&mut d, n),
        fit: info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::BaselineBuilder;

    #[test]
    fn history_never_lowers_the_score() {
        let mut b = BaselineBuilder::new();
        b.add("a", "10.1.2.3".parse().unwrap(), 5, None, None);
        let base = b.build("principal");
        let mut c = Combiner::prior(0.0, 1.0);
        c.events_weight = [0.3; LEVEL_CODES];
        for dot in [-5.0f32, 0.0, 3.0] {
            let seen = c.score(dot, &base.lookup("a", "10.1.2.3".parse().unwrap()));
            let p24 = c.score(dot, &base.lookup("a", "10.1.2.9".parse().unwrap()));
            let p16 = c.score(dot, &base.lookup("a", "10.1.9.9".parse().unwrap()));
            let none = c.score(dot, &base.lookup("a", "11.1.9.9".parse().unwrap()));
            assert!(
                seen >= p24 && p24 >= p16 && p16 >= none,
                "{seen} {p24} {p16} {none}"
            );
        }
    }

    #[test]
    fn ipv6_history_never_lowers_the_score_with_its_own_terms() {
        let mut b = BaselineBuilder::new();
        b.add("a", "2a02:1234:ab:cd01::7".parse().unwrap(), 5, None, None);
        b.add("b", "2a02:1234:9:1::1".parse().unwrap(), 5, None, None);
        b.add("b", "2a05:77:1:1::1".parse().unwrap(), 5, None, None);
        let base = b.build("principal");
        let mut c = Combiner::prior(0.0, 1.0);
        c.events_weight = [0.3; LEVEL_CODES];
        c.v6 = Some(FamilyTerms {
            bias: -0.5,
            dot_center: 1.0,
            dot_scale: 2.0,
            dot_weight: 0.5,
            breadth_weight: 0.2,
            network_weight: 0.7,
            unknown_network_weight: 0.9,
        });
        for dot in [-5.0f32, 0.0, 3.0] {
            let s = |ip: &str| c.score(dot, &base.lookup("a", ip.parse().unwrap()));
            let order = [
                s("2a02:1234:ab:cd01::7"),
                s("2a02:1234:ab:cd01::99"),
                s("2a02:1234:ab:cd02::1"),
                s("2a02:1234:ab:ff00::1"),
                s("2a02:1234:ff:1::1"),
                s("2a03:9999::1"),
            ];
            assert!(order.windows(2).all(|w| w[0] >= w[1]), "{order:?}");
        }
        // IPv6 uses its own dot term: (dot − 1) / 2 · 0.5 − 0.5, not the shared (dot − 0) / 1 · 1;
        // nobody used 2a03:9999::/32, so the unknown-network penalty applies.
        let none = base.lookup("a", "2a03:9999::1".parse().unwrap());
        assert!((c.score(3.0, &none) - (0.5 - 0.5 + 0.2 * 2f64.ln() - 0.9)).abs() < 1e-12);
        // A /32 a colleague used (b: 2a05:77::/32) is never seen for `a` too, but known to the
        // organisation: no penalty, and the network term.
        let colleagues = base.lookup("a", "2a05:77:2:2::9".parse().unwrap());
        assert_eq!(colleagues.history(), History::None);
        assert!(
            (c.score(3.0, &colleagues) - (0.5 - 0.5 + 0.2 * 2f64.ln() + 0.7 * 2f64.ln())).abs()
                < 1e-12
        );
        // Another entity's /32 (b used 2a02:1234::/32 too) counts towards the network term.
        let same_isp = base.lookup("a", "2a02:1234:ff:1::1".parse().unwrap());
        assert_eq!((same_isp.network_others, none.network_others), (1, 0));
        // IPv4 pairs keep the shared terms.
        let v4 = base.lookup("a", "192.0.2.1".parse().unwrap());
        assert_eq!(c.score(3.0, &v4), 3.0);
    }

    #[test]
    fn a_sidecar_combiner_without_ipv6_terms_still_reads() {
        let mut c = Combiner::prior(0.5, 2.0);
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("v6"), "{json}");
        let back: Combiner = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        c.v6 = Some(FamilyTerms {
            bias: 0.1,
            dot_center: 0.0,
            dot_scale: 1.0,
            dot_weight: 0.3,
            breadth_weight: 0.0,
            network_weight: 0.0,
            unknown_network_weight: 0.0,
        });
        // A sidecar written before the unknown-network term reads with it at 0.
        let old = r#"{"bias":0.1,"dot_center":0.0,"dot_scale":1.0,"dot_weight":0.3,"breadth_weight":0.0,"network_weight":0.2}"#;
        let t: FamilyTerms = serde_json::from_str(old).unwrap();
        assert_eq!((t.network_weight, t.unknown_network_weight), (0.2, 0.0));
        let back: Combiner = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn a_personal_address_weighs_more_than_a_shared_one() {
        let mut b = BaselineBuilder::new();
        b.add("a", "10.1.2.3".parse().unwrap(), 5, None, None);
        // A colleague's home (one other principal) and an office NAT twenty others share.
        b.add("colleague", "192.0.2.7".parse().unwrap(), 9, None, None);
        for k in 0..20 {
            b.add(
                &format!("o{k}"),
                "198.51.100.1".parse().unwrap(),
                3,
                None,
                None,
            );
        }
        let base = b.build("principal");
        let mut c = Combiner::prior(0.0, 1.0);
        c.personal_weight = 2.0;
        let home = base.lookup("a", "192.0.2.7".parse().unwrap());
        let office = base.lookup("a", "198.51.100.1".parse().unwrap());
        let nobody = base.lookup("a", "203.0.113.5".parse().unwrap());
        assert_eq!((home.others, office.others, nobody.others), (1, 20, 0));
        let (h, o, n) = (
            c.score(0.0, &home),
            c.score(0.0, &office),
            c.score(0.0, &nobody),
        );
        assert!(h < o && o < n, "{h} {o} {n}");
        assert!((n - h - 2.0).abs() < 1e-9 && (n - o - 0.1).abs() < 1e-9);
    }

    #[test]
    fn without_a_calibration_percentiles_are_still_numbers() {
        let mut b = BaselineBuilder::new();
        b.add("a", "10.1.2.3".parse().unwrap(), 5, None, None);
        let det = Detector {
            baseline: b.build("principal"),
            combiner: Combiner::prior(0.0, 1.0),
            combined_calibration: Calibration::default(),
            combined_calibration_v6: None,
            embedding_calibration: Calibration::default(),
            fit: FitInfo::default(),
        };
        assert!(!det.is_calibrated());
        let seen = det.report("a", "10.1.2.3".parse().unwrap(), 2.0, NewPrincipals::Alert);
        let far = det.report(
            "a",
            "203.0.113.5".parse().unwrap(),
            -2.0,
            NewPrincipals::Alert,
        );
        for r in [&seen, &far] {
            for p in [r.unusual_percentile, r.embedding_percentile] {
                assert!((0.0..=100.0).contains(&p), "{r:?}");
            }
            assert!(r.explanation.contains("uncalibrated"), "{r:?}");
            assert!(!r.explanation.contains("NaN"), "{r:?}");
        }
        assert!(seen.unusual_percentile < far.unusual_percentile);
        // sigmoid(-2) of the embedding: 88.1% unusual.
        assert!((far.embedding_percentile - 88.080).abs() < 1e-3, "{far:?}");
    }

    #[test]
    fn ipv6_pairs_use_their_own_calibration() {
        let mut b = BaselineBuilder::new();
        b.add("e", "192.0.2.1".parse().unwrap(), 3, None, None);
        b.add("e", "2a02:1234:ab:cd01::7".parse().unwrap(), 3, None, None);
        let base = b.build("principal");
        let mut low: Vec<f32> = (0..100).map(|i| i as f32 / 10.0 - 20.0).collect();
        let mut high: Vec<f32> = (0..100).map(|i| i as f32 / 10.0 + 20.0).collect();
        let mut det = Detector {
            baseline: base,
            combiner: Combiner::prior(0.0, 1.0),
            combined_calibration: Calibration::from_scores(&mut low.clone()),
            combined_calibration_v6: Some(Calibration::from_scores(&mut high)),
            embedding_calibration: Calibration::from_scores(&mut low),
            fit: FitInfo::default(),
        };
        let v4 = det.judge("e", "192.0.2.1".parse().unwrap(), 0.0, NewPrincipals::Alert);
        let v6 = det.judge(
            "e",
            "2a02:1234:ab:cd01::7".parse().unwrap(),
            0.0,
            NewPrincipals::Alert,
        );
        // Both score far above IPv4's calibration (normal); IPv6's own places them far below.
        assert_eq!(v4.unusual_percentile, 0.0, "{v4:?}");
        assert_eq!(v6.unusual_percentile, 100.0, "{v6:?}");
        det.combined_calibration_v6 = None;
        let shared = det.judge(
            "e",
            "2a02:1234:ab:cd01::7".parse().unwrap(),
            0.0,
            NewPrincipals::Alert,
        );
        assert_eq!(shared.unusual_percentile, 0.0, "{shared:?}");
    }

    #[test]
    fn judge_many_is_judge_in_order() {
        let mut b = BaselineBuilder::new();
        for k in 0..50u8 {
            b.add(
                &format!("e{k}"),
                IpAddr::V4(Ipv4Addr::new(10, k, 1, 1)),
                3,
                None,
                None,
            );
        }
        let base = b.build("principal");
        let mut z: Vec<f32> = (0..100).map(|i| i as f32 / 10.0 - 5.0).collect();
        let det = Detector {
            baseline: base,
            combiner: Combiner::prior(0.0, 1.0),
            combined_calibration: Calibration::from_scores(&mut z.clone()),
            combined_calibration_v6: None,
            embedding_calibration: Calibration::from_scores(&mut z),
            fit: FitInfo::default(),
        };
        let pairs: Vec<(String, IpAddr)> = (0..70u8)
            .map(|k| {
                let ip = IpAddr::V4(Ipv4Addr::new(10, k % 60, 1 + k % 2, 1));
                (format!("e{}", k % 55), ip)
            })
            .collect();
        let dots: Vec<f32> = (0..70).map(|k| k as f32 / 7.0 - 5.0).collect();
        let many = det.judge_many(&pairs, &dots, NewPrincipals::Alert);
        assert_eq!(many.len(), pairs.len());
        for ((e, ip), (d, v)) in pairs.iter().zip(dots.iter().zip(&many)) {
            assert_eq!(*v, det.judge(e, *ip, *d, NewPrincipals::Alert));
        }
    }

    #[test]
    fn a_short_input_is_said_to_be_short() {
        assert_eq!(calibration_caveat(None), None);
        assert_eq!(calibration_caveat(Some(MIN_CALIBRATION_DAYS)), None);
        let c = calibration_caveat(Some(1)).unwrap();
        assert!(c.contains("less than 7 days of activity (1 day)"), "{c}");
    }

    #[test]
    fn the_calibration_counts_distinct_pairs() {
        // 10 principals, each with two addresses; held back: each pair 20 times.
        let mut b = BaselineBuilder::new();
        for k in 0..10u8 {
            for h in 0..2u8 {
                b.add(
                    &format!("e{k}"),
                    IpAddr::V4(Ipv4Addr::new(10, k, h, 1)),
                    5,
                    None,
                    None,
                );
            }
        }
        let older = b.build("principal");
        let held: Vec<(String, IpAddr)> = (0..400u32)
            .map(|i| {
                let (k, h) = ((i % 10) as u8, ((i / 10) % 2) as u8);
                (format!("e{k}"), IpAddr::V4(Ipv4Addr::new(10, k, h, 1)))
            })
            .collect();
        let dots: Vec<f32> = held
            .iter()
            .map(|(_, ip)| ip.to_string().len() as f32)
            .collect();
        let (neg, _, _) = negatives(&held, 7);
        let neg_dots = vec![-3.0; neg.len()];
        let det = fit_detector(
            &older,
            older.clone(),
            &held,
            &dots,
            &neg,
            &neg_dots,
            FitInfo::default(),
        );
        assert_eq!(det.fit.held_back_distinct_pairs, 20);
        assert_eq!(det.combined_calibration.effective_pairs, 20);
        assert!(det.combined_calibration.is_conservative());
        assert!(det.embedding_calibration.is_conservative());
    }

    #[test]
    fn report_all_is_report_in_order() {
        let mut b = BaselineBuilder::new();
        for k in 0..200u32 {
            let [_, _, c, d] = k.to_be_bytes();
            b.add(
                &format!("e{k}"),
                IpAddr::V4(Ipv4Addr::new(10, c, d, 1)),
                3,
                None,
                None,
            );
        }
        let mut z: Vec<f32> = (0..100).map(|i| i as f32 / 10.0 - 5.0).collect();
        let det = Detector {
            baseline: b.build("principal"),
            combiner: Combiner::prior(0.0, 1.0),
            combined_calibration: Calibration::conservative(&mut z.clone(), 40),
            combined_calibration_v6: None,
            embedding_calibration: Calibration::conservative(&mut z, 40),
            fit: FitInfo::default(),
        };
        // More than PARALLEL_PAIRS: the rayon path; the same address (`ip`), the /24, elsewhere
        // and new principals.
        let pairs: Vec<(String, IpAddr)> = (0..5000u32)
            .map(|i| {
                let k = (i * 7919) % 230;
                let [_, _, c, d] = k.to_be_bytes();
                let ip = match i % 3 {
                    0 => Ipv4Addr::new(10, c, d, 1),
                    1 => Ipv4Addr::new(10, c, d, 77),
                    _ => Ipv4Addr::new(192, 0, 2, (i % 250) as u8),
                };
                (format!("e{k}"), IpAddr::V4(ip))
            })
            .collect();
        let dots: Vec<f32> = (0..5000).map(|i| (i % 97) as f32 / 10.0 - 5.0).collect();
        for many in [
            det.report_all(&pairs, &dots, NewPrincipals::Alert),
            det.report_many(&pairs, &dots, NewPrincipals::Alert),
        ] {
            assert_eq!(many.len(), pairs.len());
            for ((e, ip), (d, r)) in pairs.iter().zip(dots.iter().zip(&many)) {
                assert_eq!(*r, det.report(e, *ip, *d, NewPrincipals::Alert));
            }
        }
        let small = det.report_all(&pairs[..10], &dots[..10], NewPrincipals::Ignore);
        assert_eq!(
            small[3],
            det.report(&pairs[3].0, pairs[3].1, dots[3], NewPrincipals::Ignore)
        );
        // Every kind of history is in the sample.
        let all = det.report_all(&pairs, &dots, NewPrincipals::Alert);
        let kinds: std::collections::BTreeSet<&str> =
            all.iter().map(|r| r.history.as_str()).collect();
        assert!(kinds.len() >= 4, "{kinds:?}");
    }

    #[test]
    fn holdback_split() {
        assert_eq!(holdback_start(100, 0.1), 90);
        assert_eq!(holdback_start(5, 0.1), 4);
        assert_eq!(holdback_start(1, 0.1), 1);
        assert_eq!(holdback_start(10, 1.0), 1);
    }
}
