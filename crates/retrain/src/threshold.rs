//! Re-calibrating the alert threshold with the analysts' decisions.
//!
//! ipcheck alerts when a pair's unusual percentile is at least `ALERT_MIN_PERCENTILE`. Labelled
//! pairs say where that line should be: a confirmed true positive should alert, a confirmed false
//! positive should not. Among the thresholds that change the outcome for some labelled pair, the
//! recommendation is the one that catches the most true positives net of false alerts; on a tie the
//! current threshold is kept, and otherwise the lowest (the most sensitive line that still silences
//! what it can: a threshold just under the weakest true positive would miss its next variant).
use ipsight_core::labels::{LabelSet, Verdict};
use ipsight_model::Model;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LabelThreshold {
    /// Labelled exact pairs in force: confirmed anomalies and confirmed normal activity.
    pub true_positives: usize,
    pub false_positives: usize,
    pub current_alert_min_percentile: f64,
    /// Confirmed true positives that alert at the current threshold.
    pub current_caught: usize,
    /// Confirmed false positives that still alert at the current threshold.
    pub current_false_alerts: usize,
    pub recommended_alert_min_percentile: f64,
    pub recommended_caught: usize,
    pub recommended_false_alerts: usize,
}

/// Percentiles are reported to two decimals; thresholds are placed on that grid so that a
/// recommendation typed back into `ALERT_MIN_PERCENTILE` means what it says.
fn floor2(x: f64) -> f64 {
    (x * 100.0).floor() / 100.0
}

/// The recommendation from the unusual percentiles (0–100) of the labelled pairs. `None` without
/// labelled pairs.
pub fn threshold_from_percentiles(
    true_positive_pcts: &[f64],
    false_positive_pcts: &[f64],
    current: f64,
) -> Option<LabelThreshold> {
    if true_positive_pcts.is_empty() && false_positive_pcts.is_empty() {
        return None;
    }
    let outcome = |t: f64| {
        (
            true_positive_pcts.iter().filter(|&&p| p >= t).count(),
            false_positive_pcts.iter().filter(|&&p| p >= t).count(),
        )
    };
    // Alerting at ≥ t: each true positive's own (floored) percentile is the highest threshold that
    // still catches it; one grid step above a false positive's is the lowest that silences it.
    let mut candidates: Vec<f64> = true_positive_pcts
        .iter()
        .map(|&p| floor2(p))
        .chain(false_positive_pcts.iter().map(|&p| floor2(p) + 0.01))
        .filter(|t| (0.0..=100.0).contains(t))
        .collect();
    candidates.push(current);
    let net = |t: f64| {
        let (c, f) = outcome(t);
        c as i64 - f as i64
    };
    let mut best = current;
    for &t in &candidates {
        let (n, b) = (net(t), net(best));
        if n > b || (n == b && best != current && t < best) {
            best = t;
        }
    }
    let (cc, cf) = outcome(current);
    let (rc, rf) = outcome(best);
    Some(LabelThreshold {
        true_positives: true_positive_pcts.len(),
        false_positives: false_positive_pcts.len(),
        current_alert_min_percentile: current,
        current_caught: cc,
        current_false_alerts: cf,
        recommended_alert_min_percentile: (best * 100.0).round() / 100.0,
        recommended_caught: rc,
        recommended_false_alerts: rf,
    })
}

/// [`threshold_from_percentiles`] for a model's embedding alone and the decisions in force at
/// `at_epoch`.
pub fn threshold_from_labels(
    model: &Model,
    labels: &LabelSet,
    at_epoch: i64,
    current: f64,
) -> Option<LabelThreshold> {
    threshold_from_scores(
        // A format-1 (IPv4-only) model cannot score IPv6 labels: those are left out.
        |e, ip| ipsight_model::hybrid::model_dot(model, e, ip).map(|d| 100.0 - model.percentile(d)),
        labels,
        at_epoch,
        current,
    )
}

/// [`threshold_from_percentiles`] with any detector's unusual percentile of a pair (`None`: the pair
/// cannot be scored and is left out), for the decisions in force at `at_epoch`.
pub fn threshold_from_scores(
    unusual_percentile: impl Fn(&str, std::net::IpAddr) -> Option<f64>,
    labels: &LabelSet,
    at_epoch: i64,
    current: f64,
) -> Option<LabelThreshold> {
    let (mut tp, mut fp) = (Vec::new(), Vec::new());
    for (e, ip, v) in labels.labelled_pairs(at_epoch) {
        let Some(pct) = unusual_percentile(&e, ip) else {
            continue;
        };
        match v {
            Verdict::TruePositive => tp.push(pct),
            Verdict::FalsePositive => fp.push(pct),
        }
    }
    threshold_from_percentiles(&tp, &fp, current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tp: &[f64], fp: &[f64], cur: f64) -> LabelThreshold {
        threshold_from_percentiles(tp, fp, cur).unwrap()
    }

    #[test]
    fn recommendations() {
        assert!(threshold_from_percentiles(&[], &[], 99.5).is_none());
        // A confirmed anomaly at 98.7 is missed at 99.5: lower the threshold to catch it, and no
        // lower than needed.
        let r = t(&[98.734, 99.9], &[], 99.5);
        assert_eq!((r.current_caught, r.current_false_alerts), (1, 0));
        assert_eq!(r.recommended_alert_min_percentile, 98.73);
        assert_eq!((r.recommended_caught, r.recommended_false_alerts), (2, 0));
        // False positives at 99.6 and 99.8 alert at 99.5; the true positives are above 99.9: raise.
        let r = t(&[99.95, 99.99], &[99.6, 99.8], 99.5);
        assert_eq!(r.recommended_alert_min_percentile, 99.81);
        assert_eq!((r.recommended_caught, r.recommended_false_alerts), (2, 0));
        // Already right: kept.
        let r = t(&[99.9], &[98.0], 99.5);
        assert_eq!(r.recommended_alert_min_percentile, 99.5);
        // Overlap: catching the true positive at 99.0 costs one false alert at 99.2; silencing it
        // loses the catch. Net zero either way: the current threshold stays.
        let r = t(&[99.0, 99.9], &[99.2], 99.5);
        assert_eq!(r.recommended_alert_min_percentile, 99.5);
        assert_eq!((r.current_caught, r.current_false_alerts), (1, 0));
        // Only false positives: the lowest threshold that silences them all.
        let r = t(&[], &[99.7, 99.61], 99.5);
        assert_eq!(r.recommended_alert_min_percentile, 99.71);
        assert_eq!(r.recommended_false_alerts, 0);
        // A false positive at 100 cannot be silenced by any threshold: nothing better than current.
        let r = t(&[], &[100.0], 99.5);
        assert_eq!(r.recommended_alert_min_percentile, 99.5);
    }
}
