//! The dual-stack world of `ipsight evaluate --worlds` (issue 13): an organisation whose homes,
//! offices and some hotels have IPv6 ([`SynthConfig::dual_stack`]), trained on both families as
//! `prepare cloudtrail --ipv6` + `ipsight train` would, and measured per family: the embedding, the
//! prefix-history lookup and the combined detector side by side, on the same pairs. IPv6 anomalies:
//! random public IPv6 addresses, other principals' IPv6 addresses, and the hard case — the
//! principal's own ISP /32 but another customer's prefix.
use std::collections::BTreeMap;
use std::net::IpAddr;

use ipsight_model::eval::flagged_share;
use ipsight_model::PairLog;
use ipsight_synth::{SynthConfig, World};

use super::worlds::{score, train_world, widen, AnomalyResult, BUDGETS};

/// Training days and later days of the dual-stack world (as the dense world).
const TRAIN_DAYS: std::ops::Range<u32> = 0..14;
const TEST_DAYS: std::ops::Range<u32> = 14..21;

/// The world's name in the tables.
pub const NAME: &str = "dual-stack (14 training days)";

/// One address family's normal pairs against its anomalies.
pub struct FamilyResult {
    pub family: &'static str,
    pub normal_pairs: usize,
    pub anomalies: Vec<AnomalyResult>,
    /// Per budget: share of the family's later normal pairs the combined percentile flags.
    pub budgets: Vec<(f64, f64)>,
    /// History levels of the family's later normal pairs.
    pub later_history: BTreeMap<String, u64>,
}

pub struct DualStackResult {
    pub training_pairs: usize,
    pub training_ipv6_pairs: usize,
    pub families: Vec<FamilyResult>,
    /// History levels of the IPv6 anomalies, per kind.
    pub anomaly_history: Vec<(&'static str, BTreeMap<String, u64>)>,
    pub seconds: f64,
}

/// (family, anomaly kind, anomalous pairs, how many to use).
type Kind = (&'static str, &'static str, Vec<(String, IpAddr)>, usize);

pub fn run(users: u32, seed: u64, threads: Option<usize>) -> DualStackResult {
    let start = std::time::Instant::now();
    let world = World::new(SynthConfig::dual_stack(seed, users, TEST_DAYS.end));
    let mut log = PairLog::new();
    let mut training_ipv6_pairs = 0;
    for (e, ip) in world.normal_pairs_dual_in_time_order(TRAIN_DAYS) {
        training_ipv6_pairs += usize::from(ip.is_ipv6());
        log.push_tuple(&e, ip);
    }
    let (model, det, _) = train_world(&log, seed, threads);
    let trained = |e: &str| det.baseline.contains_entity(e);
    let (normal_v6, normal_v4): (Vec<_>, Vec<_>) = world
        .normal_pairs_dual_in_time_order(TEST_DAYS)
        .into_iter()
        .filter(|(e, _)| trained(e))
        .partition(|(_, ip)| ip.is_ipv6());
    let n4 = normal_v4.len();
    let n6 = normal_v6.len();
    let kinds: [Kind; 5] = [
        (
            "IPv4",
            "random addresses",
            widen(world.anomalous_pairs(4 * n4, seed)),
            n4,
        ),
        (
            "IPv4",
            "other principals' addresses",
            widen(world.shuffled_pairs(4 * n4, TEST_DAYS, seed)),
            n4,
        ),
        (
            "IPv6",
            "random addresses",
            widen(world.ipv6_random_pairs(4 * n6, seed)),
            n6,
        ),
        (
            "IPv6",
            "other principals' addresses",
            widen(world.ipv6_shuffled_pairs(4 * n6, TEST_DAYS, seed)),
            n6,
        ),
        (
            "IPv6",
            "own ISP /32, another customer's prefix",
            widen(world.ipv6_same_isp_pairs(4 * n6, seed)),
            n6,
        ),
    ];
    let mut families = Vec::new();
    let mut anomaly_history = Vec::new();
    for (family, normal_pairs) in [("IPv4", normal_v4), ("IPv6", normal_v6)] {
        let normal = score(&model, &det, &normal_pairs);
        let mut anomalies = Vec::new();
        for (f, kind, pairs, n) in &kinds {
            if *f != family {
                continue;
            }
            let pairs: Vec<_> = pairs
                .iter()
                .filter(|(e, _)| trained(e))
                .take(*n)
                .cloned()
                .collect();
            let a = score(&model, &det, &pairs);
            if family == "IPv6" {
                anomaly_history.push((*kind, a.history.clone()));
            }
            anomalies.push(AnomalyResult::compare(kind, pairs.len(), &normal, &a));
        }
        families.push(FamilyResult {
            family,
            normal_pairs: normal_pairs.len(),
            anomalies,
            budgets: BUDGETS
                .iter()
                .map(|&b| (b, flagged_share(&normal.unusual, b)))
                .collect(),
            later_history: normal.history,
        });
    }
    DualStackResult {
        training_pairs: log.len(),
        training_ipv6_pairs,
        families,
        anomaly_history,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Markdown tables (the README carries them verbatim).
pub fn render(r: &DualStackResult) -> String {
    let mut s = String::new();
    s.push_str(
        "| world | family | anomalies | detector | AUC | recall at 0.1% FPR | at 1% FPR | at 5% FPR |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    for f in &r.families {
        for a in &f.anomalies {
            for (name, q) in ["embedding", "lookup", "**combined**"]
                .iter()
                .zip(&a.quality)
            {
                s.push_str(&format!(
                    "| {NAME} | {} | {} | {name} | {:.4} | {:.3} | {:.3} | {:.3} |\n",
                    f.family, a.kind, q.auc, q.recall[0], q.recall[1], q.recall[2]
                ));
            }
        }
    }
    s.push_str("\n| world | family | alert budget | later normal pairs flagged by combined |\n");
    s.push_str("|---|---|---|---|\n");
    for f in &r.families {
        for (b, share) in &f.budgets {
            s.push_str(&format!(
                "| {NAME} | {} | {:.1}% | {:.2}% ({:.2}×) |\n",
                f.family,
                b * 100.0,
                share * 100.0,
                share / b
            ));
        }
    }
    s.push('\n');
    s.push_str(&format!(
        "{NAME}: {} training pairs ({} IPv6); later normal pairs of trained principals: {}; {:.1} s\n",
        r.training_pairs,
        r.training_ipv6_pairs,
        r.families
            .iter()
            .map(|f| format!("{} {}", f.normal_pairs, f.family))
            .collect::<Vec<_>>()
            .join(", "),
        r.seconds
    ));
    for f in &r.families {
        s.push_str(&format!(
            "  history of the later normal {} pairs {:?}\n",
            f.family, f.later_history
        ));
    }
    for (kind, h) in &r.anomaly_history {
        s.push_str(&format!("  history of the IPv6 anomalies ({kind}) {h:?}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13's bar (and issue 11's budgets) on the default dual-stack world (200 people, seed
    /// 11): for every kind of IPv6 anomaly the combined detector ranks at least as well as the
    /// prefix-history lookup (AUC) and finds at least as many at 1% FPR, and beats the embedding
    /// alone in AUC. Not at every size: with 100 people (seed 11) other principals' addresses
    /// rank below the lookup (README, IPv6).
    #[test]
    fn ipv6_combined_is_at_least_the_lookup_on_every_anomaly_kind() {
        let r = run(200, 11, Some(2));
        // Budgets hold per family (each has its own calibration): at most 1.2× the share.
        for f in &r.families {
            for (b, share) in &f.budgets {
                assert!(
                    *share <= 1.2 * b,
                    "{}: budget {b} flagged {share}",
                    f.family
                );
            }
        }
        let v6 = r.families.iter().find(|f| f.family == "IPv6").unwrap();
        assert_eq!(v6.anomalies.len(), 3);
        for a in &v6.anomalies {
            let [emb, lookup, combined] = &a.quality;
            assert!(a.pairs > 100, "{}: {} pairs", a.kind, a.pairs);
            assert!(
                combined.auc >= lookup.auc && combined.auc > emb.auc,
                "{}: AUC embedding {:.4} lookup {:.4} combined {:.4}",
                a.kind,
                emb.auc,
                lookup.auc,
                combined.auc
            );
            assert!(
                combined.recall[1] >= lookup.recall[1],
                "{}: recall at 1% FPR lookup {:.3} combined {:.3}",
                a.kind,
                lookup.recall[1],
                combined.recall[1]
            );
        }
    }
}
