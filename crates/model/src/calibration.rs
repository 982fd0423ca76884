//! Calibration: the distribution of the training pairs' scores, kept as quantiles in the model, so a
//! score becomes "less normal than X% of known activity" and a threshold becomes a false-positive
//! budget instead of a magic number.
use serde::{Deserialize, Serialize};

/// Number of quantiles stored: 0.0%, 0.1%, …, 100.0%.
pub const QUANTILES: usize = 1001;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Calibration {
    /// `quantiles[k]` is the score below which k/1000 of the calibration pairs fall (non-decreasing).
    pub quantiles: Vec<f32>,
    /// How many training pairs were scored to build them.
    pub pairs: u64,
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
        }
    }

    pub fn is_empty(&self) -> bool {
        self.quantiles.len() < 2
    }

    /// Percentile rank of a score among the training pairs, 0–100: the percentage of known activity
    /// that scored lower (was less normal). A low value is suspicious: 0.5 means "less normal than
    /// 99.5% of known activity". NaN without calibration.
    pub fn percentile(&self, score: f32) -> f64 {
        let q = &self.quantiles;
        if self.is_empty() || score.is_nan() {
            return f64::NAN;
        }
        let last = q.len() - 1;
        if score <= q[0] {
            return 0.0;
        }
        if score >= q[last] {
            return 100.0;
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
        (lo as f64 + frac as f64) / last as f64 * 100.0
    }

    /// The score below which a fraction `fpr` (0–1) of known activity falls: flag pairs scoring
    /// below it and about `fpr` of normal traffic is flagged. NaN without calibration.
    pub fn threshold_for_fpr(&self, fpr: f64) -> f32 {
        let q = &self.quantiles;
        if self.is_empty() || fpr.is_nan() {
            return f32::NAN;
        }
        let pos = fpr.clamp(0.0, 1.0) * (q.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        q[lo] + (q[hi] - q[lo]) * (pos - lo as f64) as f32
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
}
