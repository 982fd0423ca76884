//! Calibration: the distribution of the training pairs' scores, kept as quantiles in the model, so a
//! score becomes "less normal than X% of known activity" and a threshold becomes a false-positive
//! budget instead of a magic number.
//!
//! # Conservative percentiles (the hybrid detector's held-back calibration)
//! The held-back pairs are events, but events of one `<entity, ip>` pair are not independent: a
//! principal's address seen 50 times is one observation of "this principal uses this address", and
//! the low tail of a two-week calibration set is a handful of such pairs. A budget taken from the
//! events' empirical quantiles then flags, on later days, whatever the next handful of pairs
//! weighs (measured: a 0.1% budget flagged 0.35% of the following week's normal events).
//!
//! [`Calibration::conservative`] keeps the events' quantiles but reports, for a score, an *upper
//! confidence bound* on the share of normal activity below it: the one-sided 95% Wilson score
//! bound of the empirical share with the number of distinct held-back pairs as the sample size.
//! Flagging `unusual_percentile ≥ 100·(1 − b)` then flags at most a share `b` of normal activity
//! with ~95% confidence, under exchangeability of pairs. Below the lowest calibrated score, where
//! the bound alone would stop at `z²/(n + z²)` (0.4% for 700 pairs: a 0.1% budget could never
//! flag anything), the share continues as an exponential tail whose scale is fitted (maximum
//! likelihood) on the lowest distinct calibrated scores, so pairs far below all recent normal
//! activity still reach an unusualness near 100.
use serde::{Deserialize, Serialize};

/// One-sided normal quantile of the conservative bound: 95% confidence.
pub const CONFIDENCE_Z: f64 = 1.6449;

/// The Wilson score upper bound of a share `p` observed on `n` independent samples, at
/// [`CONFIDENCE_Z`].
pub fn upper_bound(p: f64, n: f64) -> f64 {
    if n <= 0.0 || p >= 1.0 {
        return 1.0;
    }
    let z2 = CONFIDENCE_Z * CONFIDENCE_Z;
    let p = p.clamp(0.0, 1.0);
    let centre = p + z2 / (2.0 * n);
    let spread = CONFIDENCE_Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre + spread) / (1.0 + z2 / n)).min(1.0)
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}
fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

/// Number of quantiles stored: 0.0%, 0.1%, …, 100.0%.
pub const QUANTILES: usize = 1001;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Calibration {
    /// `quantiles[k]` is the score below which k/1000 of the calibration pairs fall (non-decreasing).
    pub quantiles: Vec<f32>,
    /// How many training pairs were scored to build them.
    pub pairs: u64,
    /// Distinct `<entity, ip>` pairs behind the quantiles: the sample size of the conservative bound
    /// ([`Calibration::conservative`]). 0 = plain empirical percentiles (the model's training-pair
    /// calibration; sidecars written before the bound).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub effective_pairs: u64,
    /// Scale of the exponential tail below the lowest calibrated score (conservative only).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub tail_scale: f64,
}

impl Calibration {
    /// Builds the quantiles from scores (sorted in place). NaN scores are ignored.
    pub fn from_scores(scores: &mut Vec<f32>) -> Self {
        scores.retain(|s| !s.is_nan());
        if scores.is_empty() {
            return Self::default();
        }
        scores.sort_unstable_by(f32::total_cmp);
        let n = scores.len();
        let quantiles = (0..QUANTILES)
            .map(|k| {
                let pos = k as f64 / (QUANTILES - 1) as f64 * (n - 1) as f64;
                let lo = pos.floor() as usize;
                let hi = pos.ceil() as usize;
                let f = (pos - lo as f64) as f32;
                scores[lo] + (scores[hi] - scores[lo]) * f
            })
            .collect();
        Self {
            quantiles,
            pairs: n as u64,
            effective_pairs: 0,
            tail_scale: 0.0,
        }
    }

    /// Conservative percentiles (see the module docs) from the scores of calibration events that
    /// come from `distinct_pairs` distinct `<entity, ip>` pairs.
    pub fn conservative(scores: &mut Vec<f32>, distinct_pairs: u64) -> Self {
        let mut c = Self::from_scores(scores);
        if c.is_empty() {
            return c;
        }
        // `scores` is sorted now. The tail's scale: the exponential's maximum-likelihood estimate,
        // the mean excess over the minimum of the lowest distinct scores (one per pair, not per
        // event: a pair scores the same every time).
        let mut distinct: Vec<f32> = scores.clone();
        distinct.dedup();
        let m = (distinct.len() / 50).clamp(5, 50).min(distinct.len() - 1);
        let tail = if m == 0 {
            0.0
        } else {
            distinct[1..=m]
                .iter()
                .map(|&x| f64::from(x) - f64::from(distinct[0]))
                .sum::<f64>()
                / m as f64
        };
        // A unit of the score (the combined score is a log-odds) when the tail is degenerate.
        c.tail_scale = if tail.is_finite() && tail > 0.0 {
            tail
        } else {
            1.0
        };
        c.effective_pairs = distinct_pairs.max(1);
        c
    }

    /// Whether percentiles are the conservative bound (see the module docs).
    pub fn is_conservative(&self) -> bool {
        self.effective_pairs > 0
    }

    /// The empirical share (0–1) of calibration events scoring below `score`.
    fn share_below(&self, score: f32) -> f64 {
        let q = &self.quantiles;
        let last = q.len() - 1;
        if score <= q[0] {
            return 0.0;
        }
        if score >= q[last] {
            return 1.0;
        }
        // First index whose quantile exceeds the score; interpolate inside that step.
        let hi = q.partition_point(|&v| v <= score);
        let lo = hi - 1;
        let span = q[hi] - q[lo];
        let frac = if span > 0.0 {
            (score - q[lo]) / span
        } else {
            0.0
        };
        (lo as f64 + frac as f64) / last as f64
    }

    /// The score below which an empirical share `p` (0–1) of calibration events falls.
    fn score_at(&self, p: f64) -> f32 {
        let q = &self.quantiles;
        let pos = p.clamp(0.0, 1.0) * (q.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        q[lo] + (q[hi] - q[lo]) * (pos - lo as f64) as f32
    }

    pub fn is_empty(&self) -> bool {
        self.quantiles.len() < 2
    }

    /// Percentile rank of a score among the calibration pairs, 0–100: the percentage of known
    /// activity that scored lower (was less normal). A low value is suspicious: 0.5 means "less
    /// normal than 99.5% of known activity". Conservative calibrations report the upper confidence
    /// bound of that percentage (module docs). NaN without calibration.
    pub fn percentile(&self, score: f32) -> f64 {
        if self.is_empty() || score.is_nan() {
            return f64::NAN;
        }
        if !self.is_conservative() {
            return self.share_below(score) * 100.0;
        }
        let n = self.effective_pairs as f64;
        let q0 = self.quantiles[0];
        let p = if score < q0 {
            let excess = f64::from(q0) - f64::from(score);
            upper_bound(0.0, n) * (-excess / self.tail_scale).exp()
        } else {
            upper_bound(self.share_below(score), n)
        };
        p * 100.0
    }

    /// The score below which a fraction `fpr` (0–1) of known activity falls: flag pairs scoring
    /// below it and about `fpr` of normal traffic is flagged (at most `fpr`, with ~95% confidence,
    /// for a conservative calibration). The inverse of [`Calibration::percentile`]. NaN without
    /// calibration.
    pub fn threshold_for_fpr(&self, fpr: f64) -> f32 {
        if self.is_empty() || fpr.is_nan() {
            return f32::NAN;
        }
        let fpr = fpr.clamp(0.0, 1.0);
        if !self.is_conservative() {
            return self.score_at(fpr);
        }
        let n = self.effective_pairs as f64;
        let u0 = upper_bound(0.0, n);
        if fpr < u0 {
            let excess = self.tail_scale * (u0 / fpr.max(1e-300)).ln();
            return (f64::from(self.quantiles[0]) - excess) as f32;
        }
        // upper_bound is increasing in p: bisect for the empirical share whose bound is `fpr`.
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if upper_bound(mid, n) <= fpr {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.score_at(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_and_threshold_are_inverse() {
        let mut s: Vec<f32> = (0..10_000).map(|i| i as f32 / 100.0).collect();
        let c = Calibration::from_scores(&mut s);
        assert_eq!(c.quantiles.len(), QUANTILES);
        assert_eq!(c.percentile(-1.0), 0.0);
        assert_eq!(c.percentile(1000.0), 100.0);
        assert!((c.percentile(50.0) - 50.0).abs() < 0.1);
        let t = c.threshold_for_fpr(0.01);
        assert!((t - 1.0).abs() < 0.02, "{t}");
        assert!((c.percentile(t) - 1.0).abs() < 0.01);
    }

    #[test]
    fn the_wilson_bound() {
        // n = 100, 5 of them: the one-sided 95% Wilson upper bound is 0.0992.
        assert!((upper_bound(0.05, 100.0) - 0.0992).abs() < 1e-4);
        assert!((upper_bound(0.0, 1000.0) - 2.7057 / 1002.7057).abs() < 1e-6);
        assert_eq!(upper_bound(1.0, 50.0), 1.0);
        assert!(upper_bound(0.3, 10.0) > upper_bound(0.3, 1000.0));
    }

    #[test]
    fn conservative_percentiles_bound_the_share_and_continue_below_the_minimum() {
        // 10,000 events from 200 pairs (50 events each, one score per pair).
        let mut s: Vec<f32> = (0..10_000).map(|i| (i / 50) as f32).collect();
        let plain = Calibration::from_scores(&mut s.clone());
        let c = Calibration::conservative(&mut s, 200);
        assert!(c.is_conservative() && !plain.is_conservative());
        // Above the empirical share everywhere, by the bound for 200 samples.
        for score in [0.5f32, 10.0, 100.0, 150.0] {
            let p = plain.percentile(score);
            let b = c.percentile(score);
            assert!(b > p, "{score}: {b} vs {p}");
            assert!((b - 100.0 * upper_bound(p / 100.0, 200.0)).abs() < 1e-9);
        }
        assert_eq!(c.percentile(1e6), 100.0);
        // Below the minimum: the exponential tail, continuous at the minimum and falling towards 0.
        let at_min = c.percentile(0.0);
        assert!((at_min - 100.0 * upper_bound(0.0, 200.0)).abs() < 1e-9);
        assert!((c.percentile(-1e-4) - at_min).abs() < 1e-3);
        let (a, b) = (c.percentile(-3.0), c.percentile(-30.0));
        assert!(0.0 < b && b < a && a < at_min, "{a} {b} {at_min}");
        // The mean excess of the lowest 5 distinct scores over the minimum: (1+2+3+4+5)/5.
        assert!((c.tail_scale - 3.0).abs() < 1e-9);
        // threshold_for_fpr inverts percentile on both sides of the minimum (distinct scores: the
        // quantiles have no flat steps).
        let mut s: Vec<f32> = (0..10_000).map(|i| i as f32 / 100.0).collect();
        let c = Calibration::conservative(&mut s, 200);
        for fpr in [0.0001, 0.001, 0.05, 0.3] {
            let t = c.threshold_for_fpr(fpr);
            let back = c.percentile(t) / 100.0;
            assert!(
                (back - fpr).abs() < 1e-3 * fpr.max(0.01),
                "{fpr}: {t} → {back}"
            );
        }
    }

    #[test]
    fn plain_calibrations_serialise_as_before() {
        let mut s: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let j = serde_json::to_value(Calibration::from_scores(&mut s)).unwrap();
        assert_eq!(
            j.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["pairs", "quantiles"]
        );
    }
}
