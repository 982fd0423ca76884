//! Evaluation: exact AUC, SageMaker's `validation:discriminator_auc`, and threshold metrics.
//!
//! Convention: scores are `dot_product`s, higher = more normal; a pair is *flagged* (predicted
//! anomalous) when its score is below the threshold. AUC here is the probability that a random
//! normal pair scores above a random anomalous one (ties count one half).
use std::net::IpAddr;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rayon::prelude::*;

use crate::hashing::entity_bucket_of_hash;
use crate::hashing::IpKey;
use crate::model::Model;
use crate::train::{random_negative, TrainingData};

/// Exact ROC AUC via the Mann–Whitney rank statistic (average ranks for ties). NaN scores are
/// dropped; NaN if either side is empty.
pub fn auc(normal: &[f32], anomalous: &[f32]) -> f64 {
    let mut all: Vec<(f32, bool)> = normal
        .iter()
        .filter(|s| !s.is_nan())
        .map(|&s| (s, true))
        .chain(
            anomalous
                .iter()
                .filter(|s| !s.is_nan())
                .map(|&s| (s, false)),
        )
        .collect();
    let n_pos = all.iter().filter(|x| x.1).count() as f64;
    let n_neg = all.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    all.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_pos = 0.0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        // Ranks i+1..=j+1 share their average.
        let avg = (i + j + 2) as f64 / 2.0;
        rank_sum_pos += avg * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    (rank_sum_pos - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// SageMaker's validation metric: each validation pair against the same entity with a uniformly
/// random IPv4 address; the AUC of telling them apart. IPv6 pairs (ipsight only) are set against
/// random IPv6 addresses drawn as the trainer draws its negatives.
pub fn discriminator_auc<S: AsRef<str> + Sync, A: Into<IpAddr> + Copy>(
    model: &Model,
    pairs: &[(S, A)],
    seed: u64,
) -> f64 {
    let data: TrainingData = pairs.iter().map(|(e, ip)| (e.as_ref(), *ip)).collect();
    discriminator_auc_data(model, &data, seed)
}

pub(crate) fn discriminator_auc_data(model: &Model, data: &TrainingData, seed: u64) -> f64 {
    let n = model.hyperparameters().num_entity_vectors;
    let mut rng = SmallRng::seed_from_u64(seed);
    let random_ips: Vec<u64> = data
        .ips
        .iter()
        .map(|&ip| random_negative(IpKey(ip), &mut rng).0)
        .collect();
    // An IPv4-only model has no rows for IPv6 pairs: they are left out of its metric.
    let v6 = model.scores_ipv6();
    let (pos, neg): (Vec<f32>, Vec<f32>) = (0..data.len())
        .into_par_iter()
        .with_min_len(4096)
        .filter(|&i| v6 || IpKey(data.ips[i]).is_ipv4())
        .map(|i| {
            let b = entity_bucket_of_hash(data.entity_hashes[i], n);
            (
                model.score_bucket(b, data.ips[i]),
                model.score_bucket(b, random_ips[i]),
            )
        })
        .unzip();
    auc(&pos, &neg)
}

/// Outcome of flagging every pair scoring below `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdMetrics {
    pub threshold: f32,
    /// Anomalous pairs flagged / all flagged pairs (NaN when nothing is flagged).
    pub precision: f64,
    /// Anomalous pairs flagged / all anomalous pairs.
    pub recall: f64,
    /// Normal pairs flagged / all normal pairs.
    pub false_positive_rate: f64,
    pub true_positives: usize,
    pub false_positives: usize,
}

pub fn metrics_at(normal: &[f32], anomalous: &[f32], threshold: f32) -> ThresholdMetrics {
    let tp = anomalous.iter().filter(|&&s| s < threshold).count();
    let fp = normal.iter().filter(|&&s| s < threshold).count();
    ThresholdMetrics {
        threshold,
        precision: if tp + fp == 0 {
            f64::NAN
        } else {
            tp as f64 / (tp + fp) as f64
        },
        recall: if anomalous.is_empty() {
            f64::NAN
        } else {
            tp as f64 / anomalous.len() as f64
        },
        false_positive_rate: if normal.is_empty() {
            f64::NAN
        } else {
            fp as f64 / normal.len() as f64
        },
        true_positives: tp,
        false_positives: fp,
    }
}

/// The largest threshold that flags at most a fraction `fpr` of the given normal scores (flagging
/// means `score < threshold`). NaN when `normal` is empty.
pub fn threshold_for_fpr(normal: &[f32], fpr: f64) -> f32 {
    let mut s: Vec<f32> = normal.iter().copied().filter(|v| !v.is_nan()).collect();
    if s.is_empty() {
        return f32::NAN;
    }
    s.sort_unstable_by(f32::total_cmp);
    let allowed = (fpr.clamp(0.0, 1.0) * s.len() as f64).floor() as usize;
    if allowed >= s.len() {
        return f32::INFINITY;
    }
    // Flagging `score < s[allowed]` flags at most `allowed` pairs (fewer when there are ties).
    s[allowed]
}

/// The false-positive rates recall is reported at: 0.1%, 1%, 5%.
pub const REPORT_FPRS: [f64; 3] = [0.001, 0.01, 0.05];

/// One detector's quality on normal vs anomalous pairs (scores: higher = more normal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    pub auc: f64,
    /// Recall at each of [`REPORT_FPRS`], the threshold taken on these normal pairs.
    pub recall: [f64; 3],
}

pub fn quality(normal: &[f32], anomalous: &[f32]) -> Quality {
    let mut recall = [f64::NAN; 3];
    for (r, &fpr) in recall.iter_mut().zip(&REPORT_FPRS) {
        *r = metrics_at(normal, anomalous, threshold_for_fpr(normal, fpr)).recall;
    }
    Quality {
        auc: auc(normal, anomalous),
        recall,
    }
}

/// Budget honesty: the share of (later, normal) pairs an alert budget of `budget` (0–1) flags when
/// pairs alert at `unusual_percentile ≥ 100·(1 − budget)`. An honest calibration gives about `budget`.
pub fn flagged_share(unusual_percentiles: &[f64], budget: f64) -> f64 {
    let cut = 100.0 * (1.0 - budget);
    let flagged = unusual_percentiles.iter().filter(|&&u| u >= cut).count();
    flagged as f64 / unusual_percentiles.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_exact_values() {
        assert_eq!(auc(&[3.0, 4.0], &[1.0, 2.0]), 1.0);
        assert_eq!(auc(&[1.0, 2.0], &[3.0, 4.0]), 0.0);
        assert_eq!(auc(&[1.0], &[1.0]), 0.5);
        // normal {1,3}, anomalous {2}: pairs (1>2 no, 3>2 yes) → 0.5
        assert_eq!(auc(&[1.0, 3.0], &[2.0]), 0.5);
        assert_eq!(auc(&[2.0, 3.0], &[2.0, 1.0]), 0.875);
    }

    #[test]
    fn threshold_respects_fpr_budget() {
        let normal: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let t = threshold_for_fpr(&normal, 0.01);
        assert_eq!(t, 10.0);
        let m = metrics_at(&normal, &[-5.0, 5.0, 500.0], t);
        assert_eq!(m.false_positives, 10);
        assert_eq!(m.true_positives, 2);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.precision - 2.0 / 12.0).abs() < 1e-12);
        assert!((m.false_positive_rate - 0.01).abs() < 1e-12);
    }
}
