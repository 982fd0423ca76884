//! `ipsight evaluate --worlds`: the embedding, the history lookup and the combined detector side by
//! side on the project's synthetic worlds (dense: two weeks of history; sparse: one day), against
//! random-address and shuffled (other principals' addresses) anomalies, plus budget honesty on the
//! later days' normal activity. Each world is trained exactly as `ipsight train` does with no
//! hyperparameter flags.
use std::net::IpAddr;
use std::ops::Range;

use ipsight_model::eval::{flagged_share, quality, Quality};
use ipsight_model::hybrid::model_dot;
use ipsight_model::{
    train_hybrid, Detector, History, HybridOptions, Hyperparameters, Model, NewPrincipals, PairLog,
    TrainOptions,
};
use ipsight_synth::{SynthConfig, World};
use rayon::prelude::*;

/// A synthetic world: which days train, which days are the later normal activity.
pub struct WorldSpec {
    pub name: &'static str,
    pub train_days: Range<u32>,
    pub test_days: Range<u32>,
}

pub const WORLDS: [WorldSpec; 2] = [
    WorldSpec {
        name: "dense (14 training days)",
        train_days: 0..14,
        test_days: 14..21,
    },
    WorldSpec {
        name: "sparse (1 training day)",
        train_days: 0..1,
        test_days: 1..8,
    },
];

pub const BUDGETS: [f64; 3] = [0.001, 0.01, 0.05];

/// Per-pair scores of the three detectors (higher = more normal), the calibrated unusualness and
/// the history levels. Shared by every world (`worlds_ipv6` too).
#[derive(Default)]
pub(super) struct Scored {
    pub embedding: Vec<f32>,
    pub lookup: Vec<f32>,
    pub combined: Vec<f32>,
    pub unusual: Vec<f64>,
    pub embedding_unusual: Vec<f64>,
    pub training_calibrated_unusual: Vec<f64>,
    pub new_principals: usize,
    pub history: std::collections::BTreeMap<String, u64>,
}

/// Trains a world's detector exactly as `ipsight train` does with no hyperparameter flags.
pub(super) fn train_world(
    log: &PairLog,
    seed: u64,
    threads: Option<usize>,
) -> (Model, Detector, ipsight_model::hybrid::HybridSummary) {
    let hp = Hyperparameters::ipsight_defaults(log.entities());
    let opts = TrainOptions {
        seed,
        threads,
        entity: Some("principal".into()),
        ..TrainOptions::default()
    };
    train_hybrid(
        &hp,
        &opts,
        &HybridOptions::default(),
        log,
        None,
        &mut |_| {},
    )
    .expect("training on a synthetic world")
}

/// Widens IPv4 pairs to [`score`]'s input.
pub(super) fn widen<A: Into<IpAddr>>(pairs: Vec<(String, A)>) -> Vec<(String, IpAddr)> {
    pairs.into_iter().map(|(e, ip)| (e, ip.into())).collect()
}

pub(super) fn score(model: &Model, det: &Detector, pairs: &[(String, IpAddr)]) -> Scored {
    let rows: Vec<_> = pairs
        .par_iter()
        .map(|(e, ip)| {
            let ip = *ip;
            let dot = model_dot(model, e, ip).expect("the model scores both families");
            let v = det.judge(e, ip, dot, NewPrincipals::Alert);
            // A new principal alerts under the default policy: the least normal combined score.
            let combined = if v.history == History::NewPrincipal {
                f32::NEG_INFINITY
            } else {
                v.combined as f32
            };
            (
                dot,
                v.history.lookup_score(),
                combined,
                v.unusual_percentile,
                v.embedding_percentile,
                100.0 - model.percentile(dot),
                v.history,
            )
        })
        .collect();
    let mut s = Scored::default();
    for (d, l, c, u, eu, tu, h) in rows {
        s.embedding.push(d);
        s.lookup.push(l);
        s.combined.push(c);
        s.unusual.push(u);
        s.embedding_unusual.push(eu);
        s.training_calibrated_unusual.push(tu);
        s.new_principals += usize::from(h == History::NewPrincipal);
        *s.history.entry(h.as_str().to_owned()).or_default() += 1;
    }
    s
}

pub struct AnomalyResult {
    pub kind: &'static str,
    pub pairs: usize,
    /// embedding, lookup, combined
    pub quality: [Quality; 3],
}

impl AnomalyResult {
    /// The three detectors side by side: `normal` against `anomalous` (`pairs` of them).
    pub(super) fn compare(
        kind: &'static str,
        pairs: usize,
        normal: &Scored,
        anomalous: &Scored,
    ) -> Self {
        Self {
            kind,
            pairs,
            quality: [
                quality(&normal.embedding, &anomalous.embedding),
                quality(&normal.lookup, &anomalous.lookup),
                quality(&normal.combined, &anomalous.combined),
            ],
        }
    }
}

pub struct WorldResult {
    pub name: &'static str,
    pub training_pairs: usize,
    pub held_back_pairs: usize,
    pub normal_pairs: usize,
    pub anomalies: Vec<AnomalyResult>,
    /// Later normal pairs of principals absent from training (left out of the comparison).
    pub normal_new_principals: usize,
    /// Per budget: flagged share of later normal activity by the combined percentile, the embedding's
    /// held-back percentile, and the embedding's training-pair percentile (the old calibration).
    pub budgets: Vec<(f64, [f64; 3])>,
    /// History levels of the held-back pairs (against the older part) and of the later normal pairs
    /// (against the whole input): how representative the calibration set was.
    pub held_back_history: std::collections::BTreeMap<String, u64>,
    pub later_history: std::collections::BTreeMap<String, u64>,
    /// Per anomaly kind, per budget in [`BUDGETS`]: the share of the anomalies the combined
    /// percentile flags (what the budget's calibration costs in recall, beside the recall at the
    /// exact FPR).
    pub anomalies_flagged: Vec<Vec<f64>>,
    /// Distinct held-back pairs: the sample size of the conservative percentiles.
    pub held_back_distinct_pairs: u64,
    /// What `ipsight train` says about the budgets of an input this long (tuples carry no times,
    /// so the world's own day count stands in for the pair file's first/last seen).
    pub caveat: Option<String>,
    pub seconds: f64,
}

pub fn run_world(spec: &WorldSpec, users: u32, seed: u64, threads: Option<usize>) -> WorldResult {
    let start = std::time::Instant::now();
    let world = World::new(SynthConfig::new(seed, users, spec.test_days.end));
    let mut log = PairLog::new();
    for (e, ip) in world.normal_pairs_in_time_order(spec.train_days.clone()) {
        log.push_tuple(&e, IpAddr::V4(ip));
    }
    let (model, det, summary) = train_world(&log, seed, threads);
    // As the issue measured: later activity of the principals that were in training, against the
    // same principals from elsewhere. New principals are a policy (NewPrincipals), counted apart.
    let trained = |e: &str| det.baseline.contains_entity(e);
    let all_later: Vec<_> = world.normal_pairs(spec.test_days.clone()).collect();
    let later_new_principals = all_later.iter().filter(|(e, _)| !trained(e)).count();
    let normal_pairs = widen(all_later.into_iter().filter(|(e, _)| trained(e)).collect());
    let normal = score(&model, &det, &normal_pairs);
    let mut anomalies = Vec::new();
    let mut anomalies_flagged = Vec::new();
    for (kind, pairs) in [
        (
            "random addresses",
            world.anomalous_pairs(4 * normal_pairs.len(), seed),
        ),
        (
            "other principals' addresses",
            world.shuffled_pairs(4 * normal_pairs.len(), spec.test_days.clone(), seed),
        ),
    ] {
        let pairs: Vec<_> = pairs
            .into_iter()
            .filter(|(e, _)| trained(e))
            .take(normal_pairs.len())
            .collect();
        let a = score(&model, &det, &widen(pairs));
        anomalies.push(AnomalyResult::compare(kind, a.embedding.len(), &normal, &a));
        anomalies_flagged.push(
            BUDGETS
                .iter()
                .map(|&b| flagged_share(&a.unusual, b))
                .collect(),
        );
    }
    let budgets = BUDGETS
        .iter()
        .map(|&b| {
            (
                b,
                [
                    flagged_share(&normal.unusual, b),
                    flagged_share(&normal.embedding_unusual, b),
                    flagged_share(&normal.training_calibrated_unusual, b),
                ],
            )
        })
        .collect();
    WorldResult {
        name: spec.name,
        training_pairs: log.len(),
        held_back_pairs: summary.held_back_pairs,
        normal_pairs: normal_pairs.len(),
        normal_new_principals: later_new_principals,
        anomalies,
        budgets,
        held_back_history: det.fit.held_back_history.clone(),
        later_history: normal.history,
        anomalies_flagged,
        held_back_distinct_pairs: det.fit.held_back_distinct_pairs,
        caveat: ipsight_model::combine::calibration_caveat(Some(spec.train_days.len() as u32)),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Markdown tables of the results (the README and BENCHMARKS.md carry them verbatim).
pub fn render(results: &[WorldResult]) -> String {
    let mut s = String::new();
    s.push_str(
        "| world | anomalies | detector | AUC | recall at 0.1% FPR | at 1% FPR | at 5% FPR |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|\n");
    for w in results {
        for a in &w.anomalies {
            for (name, q) in ["embedding", "lookup", "**combined**"]
                .iter()
                .zip(&a.quality)
            {
                s.push_str(&format!(
                    "| {} | {} | {name} | {:.4} | {:.3} | {:.3} | {:.3} |\n",
                    w.name, a.kind, q.auc, q.recall[0], q.recall[1], q.recall[2]
                ));
            }
        }
    }
    s.push_str("\n| world | alert budget | flagged by combined (held-back calibration) | embedding, held-back calibration | embedding, training-pair calibration (before) | anomalies the combined budget flags: random / other principals' |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    for w in results {
        for (k, (b, f)) in w.budgets.iter().enumerate() {
            let anomalies = w
                .anomalies_flagged
                .iter()
                .map(|a| format!("{:.1}%", a[k] * 100.0))
                .collect::<Vec<_>>()
                .join(" / ");
            s.push_str(&format!(
                "| {} | {:.1}% | {:.2}% ({:.2}×) | {:.2}% | {:.2}% | {anomalies} |\n",
                w.name,
                b * 100.0,
                f[0] * 100.0,
                f[0] / b,
                f[1] * 100.0,
                f[2] * 100.0
            ));
        }
    }
    s.push('\n');
    for w in results {
        s.push_str(&format!(
            "{}: {} training pairs ({} newest held back: {} distinct pairs), {} later normal pairs of trained principals ({} more of principals new since training, left out), {} anomalous pairs per kind; {:.1} s\n",
            w.name,
            w.training_pairs,
            w.held_back_pairs,
            w.held_back_distinct_pairs,
            w.normal_pairs,
            w.normal_new_principals,
            w.anomalies.first().map_or(0, |a| a.pairs),
            w.seconds
        ));
        s.push_str(&format!(
            "  history of the held-back pairs {:?}, of the later normal pairs {:?}\n",
            w.held_back_history, w.later_history
        ));
        if let Some(c) = &w.caveat {
            s.push_str(&format!("  note: {c}\n"));
        }
    }
    s
}
