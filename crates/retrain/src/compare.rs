//! Is the candidate worse than the serving detector, or is the difference noise? The standard error
//! of the difference of two AUCs measured on the same pairs (DeLong, DeLong & Clarke-Pearson 1988),
//! and the promotion rule built on it.
//!
//! A fixed tolerance (`AUC_TOLERANCE`, 0.005 by default) is below the noise of a small held-back set:
//! with 300 held-back pairs (600 negatives) and an AUC near 0.95, one AUC's standard error is about
//! 0.007, and a candidate exactly as good as the serving detector came out more than 0.005 worse in
//! 15 of 40 simulated draws (the tests below): small deployments would see candidates refused at
//! random. Both detectors are scored on the same normal pairs and the same negatives, so
//! their errors are correlated and the paired variance is much smaller than the sum of the two:
//! DeLong's structural components give it exactly, in O(n log n). The candidate is refused only when
//! it is worse by more than `max(AUC_TOLERANCE, Z · s.e.)`, with `Z` = 1.645 (one-sided 95%): a drop
//! larger than the configured floor *and* unlikely to be noise.

/// One-sided 95% normal quantile: how many standard errors of the difference a candidate may lose
/// before it is refused.
pub const SIGNIFICANCE_Z: f64 = 1.645;

/// DeLong's structural components of one detector's AUC: per normal pair, the share of negatives
/// it outscores (ties count ½); per negative, the share of normal pairs that outscore it. Their
/// means are the AUC.
fn components(pos: &[f32], neg: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let mut sp = pos.to_vec();
    let mut sn = neg.to_vec();
    sp.sort_unstable_by(f32::total_cmp);
    sn.sort_unstable_by(f32::total_cmp);
    let (m, n) = (pos.len() as f64, neg.len() as f64);
    let v10 = pos
        .iter()
        .map(|&x| {
            let lo = sn.partition_point(|&y| y < x);
            let hi = sn.partition_point(|&y| y <= x);
            (lo as f64 + 0.5 * (hi - lo) as f64) / n
        })
        .collect();
    let v01 = neg
        .iter()
        .map(|&y| {
            let lo = sp.partition_point(|&x| x < y);
            let hi = sp.partition_point(|&x| x <= y);
            ((sp.len() - hi) as f64 + 0.5 * (hi - lo) as f64) / m
        })
        .collect();
    (v10, v01)
}

fn sample_variance(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64
}

/// The standard error of `AUC(a) − AUC(b)` for two detectors' scores of the *same* normal pairs
/// (`pos_a[i]`, `pos_b[i]` score the same pair) and the same negatives (higher = more normal).
/// `None` when either side has fewer than two pairs. With `b` = `a` it is 0; with independent
/// detectors it is about √2 times one AUC's standard error.
pub fn auc_difference_se(
    pos_a: &[f32],
    neg_a: &[f32],
    pos_b: &[f32],
    neg_b: &[f32],
) -> Option<f64> {
    assert_eq!(pos_a.len(), pos_b.len(), "the same normal pairs");
    assert_eq!(neg_a.len(), neg_b.len(), "the same negatives");
    if pos_a.len() < 2 || neg_a.len() < 2 {
        return None;
    }
    let (a10, a01) = components(pos_a, neg_a);
    let (b10, b01) = components(pos_b, neg_b);
    let d10: Vec<f64> = a10.iter().zip(&b10).map(|(a, b)| a - b).collect();
    let d01: Vec<f64> = a01.iter().zip(&b01).map(|(a, b)| a - b).collect();
    let var = sample_variance(&d10) / d10.len() as f64 + sample_variance(&d01) / d01.len() as f64;
    Some(var.max(0.0).sqrt())
}

/// The standard error of one detector's AUC (DeLong), for reports.
pub fn auc_se(pos: &[f32], neg: &[f32]) -> Option<f64> {
    if pos.len() < 2 || neg.len() < 2 {
        return None;
    }
    let (v10, v01) = components(pos, neg);
    let var = sample_variance(&v10) / v10.len() as f64 + sample_variance(&v01) / v01.len() as f64;
    Some(var.max(0.0).sqrt())
}

/// The drop in AUC a candidate may show and still be promoted: the configured floor, or
/// [`SIGNIFICANCE_Z`] standard errors of the difference when that is larger (a small held-back set).
pub fn tolerance(floor: f64, difference_se: Option<f64>) -> f64 {
    floor.max(SIGNIFICANCE_Z * difference_se.unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// One detector's scores: normal pairs, negatives.
    type Scores = (Vec<f32>, Vec<f32>);

    /// A standard normal draw (Box–Muller).
    fn normal(rng: &mut SmallRng) -> f32 {
        let u: f64 = rng.random::<f64>().max(1e-12);
        let v: f64 = rng.random();
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    /// Two detectors of the same quality on the same pairs: a shared signal (the pair) plus each
    /// detector's own noise of the same size (two models trained on different windows agree on
    /// the pairs only in part). Normal pairs centred at `sep`, negatives at 0.
    fn two_detectors(pairs: usize, sep: f32, seed: u64) -> (Scores, Scores) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut draw = |centre: f32, k: usize| -> (Vec<f32>, Vec<f32>) {
            (0..k)
                .map(|_| {
                    let shared = centre + normal(&mut rng);
                    (shared + normal(&mut rng), shared + normal(&mut rng))
                })
                .unzip()
        };
        let (pa, pb) = draw(sep, pairs);
        let (na, nb) = draw(0.0, 2 * pairs);
        ((pa, na), (pb, nb))
    }

    #[test]
    fn the_standard_error_is_the_spread_over_repeated_draws() {
        // 60 independent held-back sets of 300 normal pairs (AUC ≈ 0.95): DeLong's standard error
        // of one set against the standard deviation of the AUC over the sets, and the same for the
        // difference of two detectors.
        let (mut aucs, mut diffs, mut se, mut se_diff) = (Vec::new(), Vec::new(), 0.0, 0.0);
        for seed in 0..60 {
            let ((pa, na), (pb, nb)) = two_detectors(300, 3.3, 1000 + seed);
            let a = ipsight_model::eval::auc(&pa, &na);
            aucs.push(a);
            diffs.push(a - ipsight_model::eval::auc(&pb, &nb));
            se += auc_se(&pa, &na).unwrap() / 60.0;
            se_diff += auc_difference_se(&pa, &na, &pb, &nb).unwrap() / 60.0;
        }
        let sd = sample_variance(&aucs).sqrt();
        let sd_diff = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt();
        eprintln!("s.e. {se:.4} vs spread {sd:.4}; difference {se_diff:.4} vs {sd_diff:.4}");
        assert!((se / sd - 1.0).abs() < 0.25, "DeLong {se} vs spread {sd}");
        assert!(
            (se_diff / sd_diff - 1.0).abs() < 0.25,
            "{se_diff} vs {sd_diff}"
        );
    }

    #[test]
    fn identical_detectors_differ_by_nothing() {
        let ((pa, na), _) = two_detectors(300, 2.0, 2);
        assert_eq!(auc_difference_se(&pa, &na, &pa, &na), Some(0.0));
        assert_eq!(
            auc_difference_se(&pa[..1], &na[..1], &pa[..1], &na[..1]),
            None
        );
    }

    #[test]
    fn a_small_held_back_set_tolerates_its_noise_and_a_large_one_refuses_a_real_drop() {
        // 300 held-back pairs (600 negatives), two equally good detectors (AUC ≈ 0.95): their AUCs
        // differ by noise alone (s.d. ≈ 0.0065), which the tolerance covers where the fixed 0.005
        // did not, over many draws.
        let mut refused_fixed = 0;
        let mut refused_se = 0;
        for seed in 0..40 {
            let ((pa, na), (pb, nb)) = two_detectors(300, 3.3, 100 + seed);
            let (a, b) = (
                ipsight_model::eval::auc(&pa, &na),
                ipsight_model::eval::auc(&pb, &nb),
            );
            let se = auc_difference_se(&pa, &na, &pb, &nb);
            assert!(se.unwrap() > 0.001, "{se:?}");
            refused_fixed += usize::from(a < b - 0.005);
            refused_se += usize::from(a < b - tolerance(0.005, se));
        }
        eprintln!("equally good candidates refused: {refused_fixed} of 40 with 0.005, {refused_se} with the s.e.");
        // One-sided 95%: about 2 of 40 by chance; the fixed tolerance refused far more.
        assert!(
            refused_se <= 5,
            "{refused_se} of 40 refused with the s.e. tolerance"
        );
        assert!(
            refused_fixed >= refused_se + 4,
            "{refused_fixed} vs {refused_se}"
        );

        // 60,000 held-back pairs: the standard error is far below the floor, and a candidate whose
        // scores are really worse (more noise) is refused.
        let ((pa, na), (pb, nb)) = two_detectors(60_000, 4.1, 7);
        let se = auc_difference_se(&pa, &na, &pb, &nb).unwrap();
        assert!(se < 0.0015, "{se}");
        assert_eq!(tolerance(0.005, Some(se)), 0.005);
        let mut rng = SmallRng::seed_from_u64(8);
        let worse = |v: &[f32], rng: &mut SmallRng| -> Vec<f32> {
            v.iter().map(|x| x + 1.5 * normal(rng)).collect()
        };
        let (wa, wn) = (worse(&pa, &mut rng), worse(&na, &mut rng));
        let (good, bad) = (
            ipsight_model::eval::auc(&pb, &nb),
            ipsight_model::eval::auc(&wa, &wn),
        );
        let se = auc_difference_se(&wa, &wn, &pb, &nb);
        assert!(
            bad < good - tolerance(0.005, se),
            "{bad} vs {good}, se {se:?}"
        );
    }
}
