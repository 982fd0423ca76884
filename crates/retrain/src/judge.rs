//! Training the candidate and judging it against the serving detector: pure, in memory.
//!
//! The candidate is the hybrid detector ([`ipsight_model::train_hybrid`]): the embedding plus the
//! per-principal baseline sidecar, its combiner fitted and calibrated on the newest part of the
//! training input. Both the candidate and the serving detector are judged on what they would serve:
//! the **combined** score when a matching sidecar exists (a serving model without one is what ipcheck
//! serves today, the embedding alone, and is judged as such), on the same held-back recent pairs
//! (never trained on) against the same negatives: the same entity from a random address of the same
//! family, and from another held-back principal's address (IP Insights' shuffled negatives, where
//! history matters most).
use std::net::IpAddr;
use std::time::Instant;

use ipsight_model::eval::auc;
use ipsight_model::hybrid::{model_dot, HybridSummary};
use ipsight_model::{
    random_negative, train_hybrid, Day, Detector, HybridOptions, Hyperparameters, Model,
    ModelError, NewPrincipals, PairLog, TrainEvent, TrainOptions,
};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::Serialize;

use crate::threshold::{threshold_from_scores, LabelThreshold};
use ipsight_core::labels::LabelSet;

/// The alert budget the calibration check uses: a pair is flagged when it is less normal than 99%
/// of recent normal activity.
pub const CALIBRATION_FPR: f64 = 0.01;

#[derive(Debug, Clone)]
pub struct RetrainOptions {
    pub hyper: Hyperparameters,
    pub train: TrainOptions,
    /// Share of the training input held back to fit the combiner (see [`HybridOptions`]).
    pub hybrid: HybridOptions,
    /// Training samples each false-positive pair stands for.
    pub false_positive_repeat: usize,
    /// Promote when `candidate AUC ≥ serving AUC − max(auc_tolerance, 1.645 × s.e.)`, the standard
    /// error being that of the difference of the two AUCs on the same held-back pairs
    /// ([`crate::compare`]): the floor for large sets, noise-aware for small ones.
    pub auc_tolerance: f64,
    /// Seeds the negatives of the evaluation.
    pub eval_seed: u64,
    /// Labels in force at this time (seconds since the epoch) are used.
    pub labels_at: i64,
    /// ipcheck's `ALERT_MIN_PERCENTILE`, which the labelled pairs re-calibrate.
    pub alert_min_percentile: f64,
}

impl RetrainOptions {
    pub fn new(hyper: Hyperparameters, labels_at: i64) -> Self {
        Self {
            hyper,
            train: TrainOptions::default(),
            hybrid: HybridOptions::default(),
            false_positive_repeat: 20,
            auc_tolerance: 0.005,
            eval_seed: 0x5eed_e7a1,
            labels_at,
            alert_min_percentile: 99.5,
        }
    }
}

/// Which score a detector was judged on.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScoredBy {
    /// Embedding and history (the model with its matching baseline sidecar).
    Combined,
    /// The embedding's dot product alone (a serving model without a usable sidecar).
    Embedding,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelMetrics {
    pub scored_by: ScoredBy,
    /// Held-back recent pairs vs random and shuffled negatives for the same entities, on the score
    /// named by `scored_by`: the number promotion compares.
    pub auc: f64,
    /// The same on the embedding's dot product alone (for comparison).
    pub embedding_auc: f64,
    /// Share of the held-back (normal) pairs of known principals at or above the 99th unusual
    /// percentile: ≈ 0.01 when the budget is honest; much more means recent normal activity would
    /// flood the alerts.
    pub holdout_flagged_at_1pct: f64,
    /// Held-back pairs whose principal the detector's history does not know (not in the share
    /// above; they get `history: new_principal`).
    pub holdout_new_principals: usize,
    /// Mean unusual percentile of the labelled false-positive pairs (lower = learnt as normal);
    /// `None` without such labels.
    pub false_positive_mean_unusual_percentile: Option<f64>,
    /// Labelled false-positive pairs the detector would still flag at the 1% budget.
    pub false_positives_still_flagged: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RetrainReport {
    /// Observations of the training input (tuple lines, or pair-file lines of a day).
    pub training_pairs: usize,
    /// Of those, the older part the embedding trained on, and the newest part held back to fit the
    /// combiner and calibrate the percentiles.
    pub embedding_pairs: usize,
    pub combiner_pairs: usize,
    pub false_positive_pairs: usize,
    pub false_positive_repeat: usize,
    /// Held-back recent pairs both detectors were judged on.
    pub holdout_pairs: usize,
    pub train_seconds: f64,
    pub candidate: ModelMetrics,
    pub current: Option<ModelMetrics>,
    /// The configured floor (`AUC_TOLERANCE`, `--auc-tolerance`).
    pub auc_tolerance: f64,
    /// The standard error of `candidate AUC − serving AUC` on the held-back pairs (paired DeLong);
    /// `None` without a serving model.
    pub auc_difference_se: Option<f64>,
    /// The drop actually tolerated: `max(auc_tolerance, 1.645 × auc_difference_se)`.
    pub applied_auc_tolerance: f64,
    pub promote: bool,
    /// Why promoted or refused, in words.
    pub decision: String,
    /// The alert threshold the labelled pairs call for with the candidate (`None` without labels
    /// on exact pairs).
    pub label_threshold: Option<LabelThreshold>,
    /// Set when written: where the candidate, its sidecar and (if promoted) the served and previous
    /// models are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_sidecar: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_kept_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Input(String),
}

/// The training input as the hybrid trainer takes it, with the analysts' false positives.
///
/// False positives are observations of their pair standing for `false_positive_repeat` training
/// samples. They must train the embedding (the older part of the input), so they are placed first
/// in time: with a time-less input (tuple CSVs) before every line, with a timed one (pair files) on
/// the input's first day, seen until the decision.
pub struct TrainingInput {
    log: PairLog,
    false_positives: Vec<(String, IpAddr)>,
    repeat: u32,
    has_times: bool,
    first_day: Option<Day>,
    decision_day: Day,
}

impl TrainingInput {
    /// `has_times`: whether the input is pair files (their days order the log).
    pub fn new(labels: &LabelSet, opts: &RetrainOptions, has_times: bool) -> Self {
        let false_positives = labels.false_positive_pairs(opts.labels_at);
        let repeat = u32::try_from(opts.false_positive_repeat.max(1)).unwrap_or(u32::MAX);
        let mut log = PairLog::new();
        // The decision counts as `repeat` sightings in the history too, as it does in the
        // embedding's samples: one event would rank the pair below nearly every real habit.
        if !has_times {
            for (e, ip) in &false_positives {
                log.push_weighted(e, *ip, u64::from(repeat), None, None, repeat);
            }
        }
        Self {
            log,
            false_positives,
            repeat,
            has_times,
            first_day: None,
            decision_day: u32::try_from(opts.labels_at.div_euclid(86_400)).unwrap_or(0),
        }
    }

    /// One tuple line (one event, no time).
    pub fn push_tuple(&mut self, entity: &str, ip: IpAddr) {
        self.log.push_tuple(entity, ip);
    }

    /// One pair-file line: its events, first/last day and training weight.
    pub fn push_pair(
        &mut self,
        entity: &str,
        ip: IpAddr,
        events: u64,
        first: Option<Day>,
        last: Option<Day>,
        weight: u32,
    ) {
        if let Some(d) = first.or(last) {
            self.first_day = Some(self.first_day.map_or(d, |f| f.min(d)));
        }
        self.log
            .push_weighted(entity, ip, events, first, last, weight);
    }

    /// Observations so far (false positives included).
    pub fn len(&self) -> usize {
        self.log.len()
    }

    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    fn finish(mut self) -> (PairLog, Vec<(String, IpAddr)>) {
        if self.has_times {
            let first = self.first_day.unwrap_or(self.decision_day);
            let last = self.decision_day.max(first);
            for (e, ip) in &self.false_positives {
                self.log.push_weighted(
                    e,
                    *ip,
                    u64::from(self.repeat),
                    Some(first),
                    Some(last),
                    self.repeat,
                );
            }
        }
        (self.log, self.false_positives)
    }
}

/// The serving detector: its model and, when present and matching, its baseline sidecar.
#[derive(Clone, Copy)]
pub struct Serving<'a> {
    pub model: &'a Model,
    pub detector: Option<&'a Detector>,
}

/// The evaluation set: each held-back pair, and for each the same entity from a random address of
/// the same family (drawn as the trainer draws its random negatives) and from the address of another
/// held-back pair of a different entity; fixed by the seed so every detector is judged on identical
/// negatives.
pub struct EvalSet {
    pub normal: Vec<(String, IpAddr)>,
    pub negatives: Vec<(String, IpAddr)>,
}

impl EvalSet {
    pub fn new(holdout: Vec<(String, IpAddr)>, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = holdout.len();
        let mut negatives = Vec::with_capacity(2 * n);
        for (i, (e, ip)) in holdout.iter().enumerate() {
            let key = ipsight_model::IpKey::from(*ip);
            negatives.push((e.clone(), random_negative(key, &mut rng).to_ip()));
            // Shuffled: the address of a pair half the set away, when another principal used it.
            let (other_e, other_ip) = &holdout[(i + n / 2) % n];
            if other_e != e && other_ip.is_ipv4() == ip.is_ipv4() {
                negatives.push((e.clone(), *other_ip));
            }
        }
        Self {
            normal: holdout,
            negatives,
        }
    }
}

/// One detector's scores of a pair: the one it serves, the embedding's, and its unusual percentile
/// (`None` for a principal its history does not know).
fn scorer<'a>(
    model: &'a Model,
    detector: Option<&'a Detector>,
) -> impl Fn(&str, IpAddr) -> Option<(f64, f64, Option<f64>)> + 'a {
    move |e, ip| {
        let dot = model_dot(model, e, ip)?;
        Some(match detector {
            Some(d) => {
                let v = d.judge(e, ip, dot, NewPrincipals::Ignore);
                let known = v.history != ipsight_model::History::NewPrincipal;
                (
                    v.combined,
                    dot as f64,
                    known.then_some(v.unusual_percentile),
                )
            }
            None => (dot as f64, dot as f64, Some(100.0 - model.percentile(dot))),
        })
    }
}

/// AUC and calibration of one detector on the evaluation set and the labelled false positives.
/// Pairs the model cannot score (IPv6 for a format-1 model) are left out: see [`retrain`].
pub fn evaluate(
    model: &Model,
    detector: Option<&Detector>,
    eval: &EvalSet,
    fps: &[(String, IpAddr)],
) -> ModelMetrics {
    evaluate_scored(model, detector, eval, fps).0
}

/// One detector's scores of the evaluation set, pair by pair (`None`: a pair it cannot score), so
/// two detectors can be compared on exactly the same pairs ([`EvalScores::difference_se`]).
#[derive(Debug, Clone, Default)]
pub struct EvalScores {
    pub normal: Vec<Option<f32>>,
    pub negatives: Vec<Option<f32>>,
}

impl EvalScores {
    /// The standard error of `AUC(self) − AUC(other)` on the pairs both scored (DeLong, paired:
    /// [`crate::compare`]).
    pub fn difference_se(&self, other: &EvalScores) -> Option<f64> {
        let both = |a: &[Option<f32>], b: &[Option<f32>]| -> (Vec<f32>, Vec<f32>) {
            a.iter()
                .zip(b)
                .filter_map(|(x, y)| Some(((*x)?, (*y)?)))
                .unzip()
        };
        let (pa, pb) = both(&self.normal, &other.normal);
        let (na, nb) = both(&self.negatives, &other.negatives);
        crate::compare::auc_difference_se(&pa, &na, &pb, &nb)
    }
}

/// [`evaluate`] with the per-pair scores the AUC was taken on.
pub fn evaluate_scored(
    model: &Model,
    detector: Option<&Detector>,
    eval: &EvalSet,
    fps: &[(String, IpAddr)],
) -> (ModelMetrics, EvalScores) {
    let score = scorer(model, detector);
    let mut scores = EvalScores::default();
    let flag_at = 100.0 * (1.0 - CALIBRATION_FPR);
    let (mut pos, mut pos_dot) = (Vec::new(), Vec::new());
    let (mut flagged, mut known, mut new) = (0usize, 0usize, 0usize);
    for (e, ip) in &eval.normal {
        let scored = score(e, *ip);
        scores.normal.push(scored.map(|(s, _, _)| s as f32));
        if let Some((s, d, pct)) = scored {
            pos.push(s as f32);
            pos_dot.push(d as f32);
            match pct {
                Some(p) => {
                    known += 1;
                    flagged += usize::from(p >= flag_at);
                }
                None => new += 1,
            }
        }
    }
    let (mut neg, mut neg_dot) = (Vec::new(), Vec::new());
    for (e, ip) in &eval.negatives {
        let scored = score(e, *ip);
        scores.negatives.push(scored.map(|(s, _, _)| s as f32));
        if let Some((s, d, _)) = scored {
            neg.push(s as f32);
            neg_dot.push(d as f32);
        }
    }
    let fp_pcts: Vec<f64> = fps
        .iter()
        .filter_map(|(e, ip)| score(e, *ip).map(|(_, _, p)| p.unwrap_or(100.0)))
        .collect();
    let metrics = ModelMetrics {
        scored_by: if detector.is_some() {
            ScoredBy::Combined
        } else {
            ScoredBy::Embedding
        },
        auc: auc(&pos, &neg),
        embedding_auc: auc(&pos_dot, &neg_dot),
        holdout_flagged_at_1pct: flagged as f64 / known.max(1) as f64,
        holdout_new_principals: new,
        false_positive_mean_unusual_percentile: (!fp_pcts.is_empty())
            .then(|| fp_pcts.iter().sum::<f64>() / fp_pcts.len() as f64),
        false_positives_still_flagged: fp_pcts.iter().filter(|&&p| p >= flag_at).count(),
    };
    (metrics, scores)
}

/// The trained candidate: model and sidecar, from one run (the sidecar is fitted to this model).
pub struct Candidate {
    pub model: Model,
    pub detector: Detector,
    pub summary: HybridSummary,
}

/// Train the candidate and decide. Pure: no files, no store. `current` is the serving detector, if
/// any (none: the first candidate is promoted as long as it trained).
pub fn retrain(
    input: TrainingInput,
    mut holdout: Vec<(String, IpAddr)>,
    labels: &LabelSet,
    current: Option<Serving<'_>>,
    opts: &RetrainOptions,
    on_event: &mut (dyn FnMut(TrainEvent) + Send),
) -> Result<(Candidate, RetrainReport), JudgeError> {
    if holdout.is_empty() {
        return Err(JudgeError::Input(
            "no held-back pairs: cannot tell whether the candidate is better".into(),
        ));
    }
    let (log, fps) = input.finish();
    if log.len() < 2 {
        return Err(JudgeError::Input(format!(
            "{} training observation(s): too few to train",
            log.len()
        )));
    }
    let started = Instant::now();
    let (model, detector, summary) =
        train_hybrid(&opts.hyper, &opts.train, &opts.hybrid, &log, None, on_event)?;
    let train_seconds = started.elapsed().as_secs_f64();
    // A serving model from before IPv6 (format 1) cannot score IPv6 pairs: both are then judged on
    // the IPv4 ones, so the comparison stays like for like.
    if current.is_some_and(|c| !c.model.scores_ipv6()) || !model.scores_ipv6() {
        holdout.retain(|(_, ip)| ip.to_canonical().is_ipv4());
    }
    let eval = EvalSet::new(holdout, opts.eval_seed);
    let (candidate, candidate_scores) = evaluate_scored(&model, Some(&detector), &eval, &fps);
    let current_scored = current.map(|c| evaluate_scored(c.model, c.detector, &eval, &fps));
    // How far apart two equally good detectors land on these pairs by chance: the tolerance grows
    // with it on a small held-back set (crate::compare).
    let auc_difference_se = current_scored
        .as_ref()
        .and_then(|(_, s)| candidate_scores.difference_se(s));
    let tolerance = crate::compare::tolerance(opts.auc_tolerance, auc_difference_se);
    let tolerance_text = match auc_difference_se {
        Some(se) if tolerance > opts.auc_tolerance => format!(
            "{tolerance:.4} ({} × the standard error {se:.4} of the difference on these pairs; \
             AUC_TOLERANCE {})",
            crate::compare::SIGNIFICANCE_Z,
            opts.auc_tolerance
        ),
        _ => format!("{}", opts.auc_tolerance),
    };
    let current_m = current_scored.map(|(m, _)| m);
    let (promote, decision) = match &current_m {
        None => (
            true,
            "no serving model: the candidate is the first".to_owned(),
        ),
        // NaN (a degenerate candidate) compares false: refused.
        Some(c) if candidate.auc >= c.auc - tolerance => (
            true,
            format!(
                "candidate AUC {:.4} (combined) ≥ serving {:.4} ({}) − {tolerance_text}",
                candidate.auc,
                c.auc,
                scored_by_text(c.scored_by),
            ),
        ),
        Some(c) => (
            false,
            format!(
                "not promoted: candidate AUC {:.4} (combined) < serving {:.4} ({}) − \
                 {tolerance_text} on the same held-back pairs; the serving model is unchanged",
                candidate.auc,
                c.auc,
                scored_by_text(c.scored_by),
            ),
        ),
    };
    let pct = |e: &str, ip: IpAddr| {
        model_dot(&model, e, ip).map(|dot| {
            detector
                .judge(e, ip, dot, NewPrincipals::Alert)
                .unusual_percentile
        })
    };
    let label_threshold =
        threshold_from_scores(pct, labels, opts.labels_at, opts.alert_min_percentile);
    let report = RetrainReport {
        training_pairs: log.len(),
        embedding_pairs: summary.older_pairs,
        combiner_pairs: summary.held_back_pairs,
        false_positive_pairs: fps.len(),
        false_positive_repeat: opts.false_positive_repeat,
        holdout_pairs: eval.normal.len(),
        train_seconds,
        candidate,
        current: current_m,
        auc_tolerance: opts.auc_tolerance,
        auc_difference_se,
        applied_auc_tolerance: tolerance,
        promote,
        decision,
        label_threshold,
        candidate_path: None,
        candidate_sidecar: None,
        promoted_to: None,
        previous_kept_at: None,
    };
    Ok((
        Candidate {
            model,
            detector,
            summary,
        },
        report,
    ))
}

fn scored_by_text(s: ScoredBy) -> &'static str {
    match s {
        ScoredBy::Combined => "combined",
        ScoredBy::Embedding => "embedding alone: no matching sidecar",
    }
}
