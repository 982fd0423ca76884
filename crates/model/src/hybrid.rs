//! Training the hybrid detector from one input: the embedding and the older history on the older
//! part, the newest part held back to fit the combiner and calibrate ([`crate::combine`]), the whole
//! history shipped in the sidecar.
use std::collections::HashMap;
use std::net::IpAddr;

use rayon::prelude::*;

use crate::baseline::{BaselineBuilder, Day};
use crate::combine::{fit_detector, holdback_start, negatives, Detector, FitInfo};
use crate::error::ModelError;
use crate::hyper::{Hyperparameters, TrainOptions};
use crate::model::Model;
use crate::train::{train, TrainEvent, TrainingData};

const NO_DAY: u32 = u32::MAX;

/// The input's observations in input order, entities interned (a tuple CSV line is one event with
/// no time; a pair-file line carries its events and first/last day).
#[derive(Debug, Clone, Default)]
pub struct PairLog {
    index: HashMap<String, u32>,
    names: Vec<String>,
    entity: Vec<u32>,
    ip: Vec<IpAddr>,
    events: Vec<u64>,
    first: Vec<u32>,
    last: Vec<u32>,
    /// Samples this observation stands for in the embedding's training data.
    weight: Vec<u32>,
    has_times: bool,
}

impl PairLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// One tuple CSV line.
    pub fn push_tuple(&mut self, entity: &str, ip: IpAddr) {
        self.push(entity, ip, 1, None, None);
    }

    /// One observation (see [`BaselineBuilder::add`]), one training sample for the embedding.
    pub fn push(
        &mut self,
        entity: &str,
        ip: IpAddr,
        events: u64,
        first_seen: Option<Day>,
        last_seen: Option<Day>,
    ) {
        self.push_weighted(entity, ip, events, first_seen, last_seen, 1);
    }

    /// One observation standing for `weight` training samples of the embedding (a pair-file line:
    /// `ipsight_formats::pairs::training_weight`).
    pub fn push_weighted(
        &mut self,
        entity: &str,
        ip: IpAddr,
        events: u64,
        first_seen: Option<Day>,
        last_seen: Option<Day>,
        weight: u32,
    ) {
        let e = match self.index.get(entity) {
            Some(&i) => i,
            None => {
                let i = self.names.len() as u32;
                self.index.insert(entity.to_owned(), i);
                self.names.push(entity.to_owned());
                i
            }
        };
        self.has_times |= first_seen.is_some() || last_seen.is_some();
        self.entity.push(e);
        self.ip.push(ip);
        self.events.push(events);
        self.first.push(first_seen.or(last_seen).unwrap_or(NO_DAY));
        self.last.push(last_seen.or(first_seen).unwrap_or(NO_DAY));
        self.weight.push(weight);
    }

    pub fn len(&self) -> usize {
        self.entity.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entity.is_empty()
    }
    /// Distinct entities.
    pub fn entities(&self) -> usize {
        self.names.len()
    }
    pub fn entity(&self, i: usize) -> &str {
        &self.names[self.entity[i] as usize]
    }
    pub fn ip(&self, i: usize) -> IpAddr {
        self.ip[i]
    }

    /// Days the input spans, first to last day seen (inclusive), when it has times.
    pub fn days_spanned(&self) -> Option<u32> {
        let first = self.first.iter().copied().filter(|&d| d != NO_DAY).min()?;
        let last = self.last.iter().copied().filter(|&d| d != NO_DAY).max()?;
        Some(last.saturating_sub(first) + 1)
    }

    /// Observation indices oldest first: by first-seen day when the input has times, else input
    /// order. First seen, not last: a pair-file line aggregated over a window is "recent" only if the
    /// pair began recently; ordering by last seen would hold back every pair still in use on the last
    /// day — the most normal ones — from the embedding. With per-day pair files (one line per pair
    /// and day) both orders are the same.
    ///
    /// Ties within a day are broken by a hash of the pair, not by input order: a pair file is sorted
    /// by entity and most of its pairs begin on the same day, so input order would hold back whole
    /// principals (never in the embedding, all "new" to the older history) instead of a spread of
    /// each principal's pairs.
    pub fn time_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        if self.has_times {
            order.sort_by_cached_key(|&i| (self.first[i], self.tie_break(i), i));
        }
        order
    }

    fn tie_break(&self, i: usize) -> u64 {
        let ip = match self.ip[i] {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        let e = crate::hashing::fnv1a64(self.entity(i).as_bytes());
        crate::hashing::splitmix64(e ^ (ip as u64) ^ ((ip >> 64) as u64).rotate_left(17))
    }

    /// Splits the input into the older part and the held-back newest part (see [`HoldBack`]).
    pub fn hold_back(&self, fraction: f64) -> Split {
        let order = self.time_order();
        let cut = holdback_start(order.len(), fraction);
        let (older, held) = order.split_at(cut);
        let mut in_older = vec![false; self.names.len()];
        for &i in older {
            in_older[self.entity[i] as usize] = true;
        }
        let known = held
            .iter()
            .filter(|&&i| in_older[self.entity[i] as usize])
            .count();
        // Time order that leaves most held-back activity to principals the older part never saw is
        // not time order for this input (a file sorted by principal, a window where each principal
        // appears once): a time split would calibrate on nothing. Hold back the newest share of each
        // principal's own observations instead, and say so.
        if held.is_empty() || 2 * known >= held.len() {
            return Split {
                older: older.to_vec(),
                held: held.to_vec(),
                by: HoldBack::Time,
            };
        }
        let mut per_entity: Vec<Vec<usize>> = vec![Vec::new(); self.names.len()];
        for &i in &order {
            per_entity[self.entity[i] as usize].push(i);
        }
        let (mut older, mut held) = (Vec::new(), Vec::new());
        for obs in &per_entity {
            let c = holdback_start(obs.len(), fraction);
            older.extend_from_slice(&obs[..c]);
            held.extend_from_slice(&obs[c..]);
        }
        // Keep both parts in time order (the embedding's data order, the held-back fit order).
        let rank: Vec<usize> = {
            let mut r = vec![0; self.len()];
            for (k, &i) in order.iter().enumerate() {
                r[i] = k;
            }
            r
        };
        older.sort_by_key(|&i| rank[i]);
        held.sort_by_key(|&i| rank[i]);
        Split {
            older,
            held,
            by: HoldBack::PerPrincipal,
        }
    }

    /// Adds observation `i` to a baseline (older and full baselines built outside `train_hybrid`:
    /// a sidecar fitted beside a SageMaker endpoint).
    pub fn add_to(&self, b: &mut BaselineBuilder, i: usize) {
        let day = |d: u32| (d != NO_DAY).then_some(d);
        b.add(
            self.entity(i),
            self.ip[i],
            self.events[i],
            day(self.first[i]),
            day(self.last[i]),
        );
    }
}

/// How [`PairLog::hold_back`] chose the held-back part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldBack {
    /// The newest share of the whole input in time order (the honest one: tomorrow's activity is
    /// as far from the history as the held-back part is from the older part).
    Time,
    /// The newest share of each principal's own observations: the fallback when a time split would
    /// hold back mostly principals absent from the older part (the input's order is not time order).
    PerPrincipal,
}

impl HoldBack {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldBack::Time => "time",
            HoldBack::PerPrincipal => "per_principal",
        }
    }
}

/// Observation indices of the older and the held-back part, each in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub older: Vec<usize>,
    pub held: Vec<usize>,
    pub by: HoldBack,
}

/// ipsight's choices beyond the SageMaker hyperparameters for the hybrid detector.
#[derive(Debug, Clone, PartialEq)]
pub struct HybridOptions {
    /// Newest share of the input held back to fit the combiner and calibrate the percentiles.
    pub holdback_fraction: f64,
}

/// Half held back: the calibration pairs are then as far (in time) from the history they are
/// compared with as tomorrow's activity will be until the next retrain (the scheduled retrain runs
/// weekly; two weeks of input hold back the newest week). Measured on the dense synthetic world
/// (BENCHMARKS.md): with 20% held back, a 0.1% budget flagged 6.7× and a 1% budget 1.3× their share
/// of the following week's normal activity; with half, at most their share. The cost is an embedding
/// trained on the older half only.
pub const DEFAULT_HOLDBACK_FRACTION: f64 = 0.5;

impl Default for HybridOptions {
    fn default() -> Self {
        Self {
            holdback_fraction: DEFAULT_HOLDBACK_FRACTION,
        }
    }
}

/// The embedding's dot product for a pair, where the model can score its family (an IPv4-only
/// model, format 1, has none for IPv6: the baseline alone speaks for those pairs).
pub fn model_dot(model: &Model, entity: &str, ip: IpAddr) -> Option<f32> {
    model.score_ip(entity, ip.to_canonical()).ok()
}

/// What [`train_hybrid`] did, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct HybridSummary {
    pub older_pairs: usize,
    pub held_back_pairs: usize,
    /// Pairs the embedding could not take (its family is not supported by the model).
    pub embedding_skipped: usize,
}

/// Trains the embedding on the older part of `log` and fits the detector on the held-back newest
/// part; the sidecar's history covers the whole log.
pub fn train_hybrid(
    hp: &Hyperparameters,
    opts: &TrainOptions,
    hybrid: &HybridOptions,
    log: &PairLog,
    validation: Option<&TrainingData>,
    on_event: &mut (dyn FnMut(TrainEvent) + Send),
) -> Result<(Model, Detector, HybridSummary), ModelError> {
    let split = log.hold_back(hybrid.holdback_fraction);
    let (older, held) = (&split.older[..], &split.held[..]);
    let mut data = TrainingData::new();
    let mut skipped = 0;
    for &i in older {
        let ip = log.ip(i).to_canonical();
        if ip.is_ipv6() && opts.layout.ipv6_buckets == 0 {
            skipped += 1;
        } else {
            data.push_copies(log.entity(i), ip, log.weight[i]);
        }
    }
    let model = train(hp, opts, &data, validation, on_event)?;
    let definition = model.entity_definition().to_owned();
    let mut builder = BaselineBuilder::new();
    for &i in older {
        log.add_to(&mut builder, i);
    }
    let older_baseline = builder.build(&definition);
    for &i in held {
        log.add_to(&mut builder, i);
    }
    let full = builder.build(&definition);
    let detector = fit_on_held_back(
        &older_baseline,
        full,
        &held
            .iter()
            .map(|&i| (log.entity(i), log.ip(i)))
            .collect::<Vec<_>>(),
        |e, ip| model_dot(&model, e, ip),
        FitInfo {
            older_pairs: older.len() as u64,
            held_back_by: split.by.as_str().to_owned(),
            model_fingerprint: Some(model.fingerprint()),
            input_days: log.days_spanned(),
            ..FitInfo::default()
        },
        opts.seed,
    );
    Ok((
        model,
        detector,
        HybridSummary {
            older_pairs: older.len(),
            held_back_pairs: held.len(),
            embedding_skipped: skipped,
        },
    ))
}

/// Scores the held-back pairs and their negatives with `dot` (pairs it cannot score are left out)
/// and fits the detector. Shared by the embedded model and external scorers.
pub fn fit_on_held_back<S: AsRef<str> + Sync>(
    older: &crate::baseline::Baseline,
    full: crate::baseline::Baseline,
    held: &[(S, IpAddr)],
    dot: impl Fn(&str, IpAddr) -> Option<f32> + Sync,
    info: FitInfo,
    seed: u64,
) -> Detector {
    let scored = |pairs: Vec<(&str, IpAddr)>| -> (Vec<(String, IpAddr)>, Vec<f32>) {
        pairs
            .par_iter()
            .filter_map(|&(e, ip)| dot(e, ip).map(|d| ((e.to_owned(), ip), d)))
            .unzip()
    };
    let (held_pairs, held_dots) = scored(held.iter().map(|(e, ip)| (e.as_ref(), *ip)).collect());
    let (neg, random, shuffled) = negatives(&held_pairs, seed);
    let (neg_pairs, neg_dots) = scored(neg.iter().map(|(e, ip)| (e.as_str(), *ip)).collect());
    fit_detector(
        older,
        full,
        &held_pairs,
        &held_dots,
        &neg_pairs,
        &neg_dots,
        FitInfo {
            random_negatives: random,
            shuffled_negatives: shuffled,
            ..info
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_time_ordered_log_is_held_back_in_time() {
        let mut log = PairLog::new();
        // Ten principals interleaved, as a preparer reading a trail in time order writes them.
        for k in 0..10 {
            for u in 0..10 {
                log.push_tuple(&format!("u{u}"), ip(&format!("10.0.{u}.{k}")));
            }
        }
        let s = log.hold_back(0.5);
        assert_eq!(s.by, HoldBack::Time);
        assert_eq!(s.older, (0..50).collect::<Vec<_>>());
        assert_eq!(s.held, (50..100).collect::<Vec<_>>());
    }

    #[test]
    fn a_log_sorted_by_principal_is_held_back_per_principal() {
        let mut log = PairLog::new();
        for u in 0..20 {
            for k in 0..10 {
                log.push_tuple(&format!("u{u:02}"), ip(&format!("10.0.{u}.{k}")));
            }
        }
        let s = log.hold_back(0.5);
        assert_eq!(s.by, HoldBack::PerPrincipal);
        assert_eq!(s.older.len() + s.held.len(), log.len());
        // Every principal keeps its older five pairs and holds back its newest five, in file order.
        for u in 0..20 {
            let mine = |part: &[usize]| -> Vec<usize> {
                part.iter()
                    .copied()
                    .filter(|&i| log.entity(i) == format!("u{u:02}"))
                    .collect()
            };
            assert_eq!(mine(&s.older), (u * 10..u * 10 + 5).collect::<Vec<_>>());
            assert_eq!(mine(&s.held), (u * 10 + 5..u * 10 + 10).collect::<Vec<_>>());
        }
        assert!(s.held.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_span_of_an_input_with_times() {
        let mut log = PairLog::new();
        log.push_tuple("a", ip("10.0.0.1"));
        assert_eq!(log.days_spanned(), None);
        log.push("a", ip("10.0.0.2"), 3, Some(20_400), Some(20_402));
        log.push("b", ip("10.0.0.3"), 1, Some(20_405), None);
        assert_eq!(log.days_spanned(), Some(6));
    }

    #[test]
    fn one_pair_per_principal_holds_back_nothing() {
        let mut log = PairLog::new();
        for u in 0..6 {
            log.push_tuple(&format!("u{u}"), ip(&format!("10.0.0.{u}")));
        }
        let s = log.hold_back(0.5);
        assert_eq!(s.by, HoldBack::PerPrincipal);
        assert!(s.held.is_empty());
        assert_eq!(s.older.len(), 6);
    }
}
