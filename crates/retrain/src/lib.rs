//! Retraining with analyst feedback, and promotion only of a model that is not worse.
//!
//! 1. Training set = the tuples + every unexpired false-positive label on an exact pair, repeated
//!    `false_positive_repeat` times (a handful of decisions among millions of pairs would otherwise
//!    carry no weight).
//! 2. Train the candidate with the given hyperparameters.
//! 3. Evaluate the candidate and the serving model on the same held-back recent pairs (normal)
//!    against the same random-IP negatives for the same entities (SageMaker's
//!    `discriminator_auc` construction, with shared negatives so the two AUCs are comparable), and
//!    their calibration: the share of those recent normal pairs each model's own 1% false-positive
//!    threshold flags (a well-calibrated model flags about 1%).
//! 4. Promote (serving ← candidate, previous ← serving) only if `auc ≥ current − tolerance`.
//!
//! [`retrain`] is pure (in-memory data and models) so a scheduled Lambda can run it on objects it
//! downloaded; [`retrain_files`] is the file-level entry point `ipsight retrain` uses.
pub mod threshold;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ipsight_formats::labels::LabelSet;
use ipsight_model::eval::auc;
use ipsight_model::{
    read_pairs, read_training_data, train, Hyperparameters, Malformed, Model, ModelError,
    TrainEvent, TrainOptions, TrainingData,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
pub use threshold::{threshold_from_labels, threshold_from_percentiles, LabelThreshold};

/// The false-positive budget the calibration check uses.
pub const CALIBRATION_FPR: f64 = 0.01;

#[derive(Debug, Clone)]
pub struct RetrainOptions {
    pub hyper: Hyperparameters,
    pub train: TrainOptions,
    /// Copies of each false-positive pair added to the training set.
    pub false_positive_repeat: usize,
    /// Promote when `candidate AUC ≥ current AUC − tolerance`.
    pub auc_tolerance: f64,
    /// Seeds the random-IP negatives of the evaluation.
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
            false_positive_repeat: 20,
            auc_tolerance: 0.005,
            eval_seed: 0x5eed_e7a1,
            labels_at,
            alert_min_percentile: 99.5,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelMetrics {
    /// Held-back recent pairs vs random-IP negatives for the same entities.
    pub auc: f64,
    /// The model's own threshold for a 1% false-positive rate (from its training calibration).
    pub threshold_at_1pct_fpr: f32,
    /// Share of the held-back (normal) pairs scoring below that threshold: ≈ 0.01 when calibrated;
    /// much more means recent normal activity would flood the alerts.
    pub holdout_flagged_at_1pct: f64,
    /// Mean unusual percentile of the labelled false-positive pairs (lower = the model has learnt
    /// them as normal); `None` without such labels.
    pub false_positive_mean_unusual_percentile: Option<f64>,
    /// Labelled false-positive pairs the model would still flag at its 1% threshold.
    pub false_positives_still_flagged: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RetrainReport {
    pub training_pairs: usize,
    pub false_positive_pairs: usize,
    pub false_positive_repeat: usize,
    pub holdout_pairs: usize,
    pub train_seconds: f64,
    pub candidate: ModelMetrics,
    pub current: Option<ModelMetrics>,
    pub auc_tolerance: f64,
    pub promote: bool,
    /// Why promoted or refused, in words.
    pub decision: String,
    /// The alert threshold the labelled pairs call for with the candidate (`None` without labels
    /// on exact pairs).
    pub label_threshold: Option<LabelThreshold>,
    /// Set by [`retrain_files`]: where the candidate, its metrics and (if promoted) the served and
    /// previous models are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_kept_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
    #[error(
        "not promoted: the candidate's AUC {candidate:.4} is below the serving model's {current:.4} \
         minus the tolerance {tolerance} on the same held-back pairs; the serving model is unchanged \
         (metrics: {metrics})"
    )]
    Refused {
        candidate: f64,
        current: f64,
        tolerance: f64,
        metrics: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RetrainError + '_ {
    move |source| RetrainError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The evaluation set: each held-back pair, and the same entity with a uniformly random IPv4
/// address (fixed by the seed, so every model is judged on identical negatives).
pub struct EvalSet {
    pub normal: Vec<(String, Ipv4Addr)>,
    pub negatives: Vec<(String, Ipv4Addr)>,
}

impl EvalSet {
    pub fn new(holdout: Vec<(String, Ipv4Addr)>, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let negatives = holdout
            .iter()
            .map(|(e, _)| (e.clone(), Ipv4Addr::from(rng.random::<u32>())))
            .collect();
        Self {
            normal: holdout,
            negatives,
        }
    }
}

/// AUC and calibration of one model on the evaluation set and the labelled false positives.
pub fn evaluate(model: &Model, eval: &EvalSet, fps: &[(String, Ipv4Addr)]) -> ModelMetrics {
    let pos = model.score_pairs(&eval.normal);
    let neg = model.score_pairs(&eval.negatives);
    let t = model.threshold_for_fpr(CALIBRATION_FPR);
    let flagged = pos.iter().filter(|&&s| s < t).count();
    let fp_scores = model.score_pairs(fps);
    ModelMetrics {
        auc: auc(&pos, &neg),
        threshold_at_1pct_fpr: t,
        holdout_flagged_at_1pct: flagged as f64 / pos.len().max(1) as f64,
        false_positive_mean_unusual_percentile: (!fp_scores.is_empty()).then(|| {
            fp_scores
                .iter()
                .map(|&s| 100.0 - model.percentile(s))
                .sum::<f64>()
                / fp_scores.len() as f64
        }),
        false_positives_still_flagged: fp_scores.iter().filter(|&&s| s < t).count(),
    }
}

/// Add the labelled false positives, `repeat` times each. Returns the pairs added (once each).
pub fn add_false_positives(
    data: &mut TrainingData,
    labels: &LabelSet,
    at: i64,
    repeat: usize,
) -> Vec<(String, Ipv4Addr)> {
    let fps = labels.false_positive_pairs(at);
    for _ in 0..repeat {
        for (e, ip) in &fps {
            data.push(e, *ip);
        }
    }
    fps
}

/// Train the candidate and decide. Pure: no files. `current` is the serving model, if any (none:
/// the first model is promoted as long as it trained).
pub fn retrain(
    mut data: TrainingData,
    holdout: Vec<(String, Ipv4Addr)>,
    labels: &LabelSet,
    current: Option<&Model>,
    opts: &RetrainOptions,
    on_event: &mut (dyn FnMut(TrainEvent) + Send),
) -> Result<(Model, RetrainReport), RetrainError> {
    if holdout.is_empty() {
        return Err(RetrainError::Input(
            "no held-back pairs: cannot tell whether the candidate is better".into(),
        ));
    }
    let fps = add_false_positives(
        &mut data,
        labels,
        opts.labels_at,
        opts.false_positive_repeat,
    );
    let started = Instant::now();
    let model = train(&opts.hyper, &opts.train, &data, None, on_event)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let eval = EvalSet::new(holdout, opts.eval_seed);
    let candidate = evaluate(&model, &eval, &fps);
    let current_m = current.map(|m| evaluate(m, &eval, &fps));
    let (promote, decision) = match &current_m {
        None => (
            true,
            "no serving model: the candidate is the first".to_owned(),
        ),
        // NaN (a degenerate candidate) compares false: refused.
        Some(c) if candidate.auc >= c.auc - opts.auc_tolerance => (
            true,
            format!(
                "candidate AUC {:.4} ≥ serving {:.4} − {}",
                candidate.auc, c.auc, opts.auc_tolerance
            ),
        ),
        Some(c) => (
            false,
            format!(
                "candidate AUC {:.4} < serving {:.4} − {}",
                candidate.auc, c.auc, opts.auc_tolerance
            ),
        ),
    };
    let label_threshold =
        threshold_from_labels(&model, labels, opts.labels_at, opts.alert_min_percentile);
    Ok((
        model,
        RetrainReport {
            training_pairs: data.len(),
            false_positive_pairs: fps.len(),
            false_positive_repeat: opts.false_positive_repeat,
            holdout_pairs: eval.normal.len(),
            train_seconds,
            candidate,
            current: current_m,
            auc_tolerance: opts.auc_tolerance,
            promote,
            decision,
            label_threshold,
            candidate_path: None,
            promoted_to: None,
            previous_kept_at: None,
        },
    ))
}

/// `NEW_MODEL.metrics.json`.
pub fn metrics_path(model: &Path) -> PathBuf {
    let mut s = model.as_os_str().to_owned();
    s.push(".metrics.json");
    PathBuf::from(s)
}

/// Where the serving model's predecessor is kept: `…/current/<name>` → `…/previous/<name>` (the
/// S3 layout `models/current/model.ipsm`), otherwise `<path>.previous`.
pub fn previous_path(serving: &Path) -> PathBuf {
    match (serving.parent(), serving.file_name()) {
        (Some(dir), Some(name)) if dir.file_name().is_some_and(|d| d == "current") => dir
            .parent()
            .unwrap_or(Path::new(""))
            .join("previous")
            .join(name),
        _ => {
            let mut s = serving.as_os_str().to_owned();
            s.push(".previous");
            PathBuf::from(s)
        }
    }
}

/// Where a scheduled run keeps the candidate it trained (promoted or not, with its metrics):
/// `…/current/<name>` → `…/candidates/<stamp>-<name>`, otherwise `<path>.candidate-<stamp>`.
pub fn candidate_path(serving: &Path, stamp: &str) -> PathBuf {
    match (serving.parent(), serving.file_name()) {
        (Some(dir), Some(name)) if dir.file_name().is_some_and(|d| d == "current") => {
            let mut n = std::ffi::OsString::from(format!("{stamp}-"));
            n.push(name);
            dir.parent()
                .unwrap_or(Path::new(""))
                .join("candidates")
                .join(n)
        }
        _ => {
            let mut s = serving.as_os_str().to_owned();
            s.push(format!(".candidate-{stamp}"));
            PathBuf::from(s)
        }
    }
}

/// Copy through a temporary file in the destination directory, then rename: a reader (a Lambda
/// cold start, `ipsight serve`) sees the old file or the new one, never half of one.
fn copy_atomically(from: &Path, to: &Path) -> Result<(), RetrainError> {
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".ipsight-tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::copy(from, &tmp).map_err(io(from))?;
    std::fs::rename(&tmp, to).map_err(io(to))
}

/// Serving ← candidate, previous ← serving (with their metrics files).
pub fn promote(candidate: &Path, serving: &Path) -> Result<Option<PathBuf>, RetrainError> {
    let previous = if serving.exists() {
        let p = previous_path(serving);
        copy_atomically(serving, &p)?;
        if metrics_path(serving).exists() {
            copy_atomically(&metrics_path(serving), &metrics_path(&p))?;
        }
        Some(p)
    } else {
        None
    };
    copy_atomically(candidate, serving)?;
    if metrics_path(candidate).exists() {
        copy_atomically(&metrics_path(candidate), &metrics_path(serving))?;
    }
    Ok(previous)
}

/// Inputs of [`retrain_files`].
pub struct RetrainFiles<'a> {
    pub train: &'a Path,
    pub holdout: &'a Path,
    pub labels: &'a LabelSet,
    /// The serving model (may not exist yet).
    pub current: &'a Path,
    /// Where the candidate goes (its metrics beside it, always written).
    pub out: &'a Path,
}

/// Read, retrain, write the candidate and `<out>.metrics.json`, promote if not worse. A refusal is
/// an error ([`RetrainError::Refused`]) after the candidate and its metrics were written, so a
/// schedule's failure alarm fires and the evidence is kept.
pub fn retrain_files(
    f: &RetrainFiles<'_>,
    opts: &RetrainOptions,
    on_event: &mut (dyn FnMut(TrainEvent) + Send),
) -> Result<RetrainReport, RetrainError> {
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(|h| std::io::BufReader::with_capacity(1 << 20, h))
            .map_err(io(p))
    };
    let (data, _) = read_training_data(open(f.train)?, Malformed::Skip)
        .map_err(|e| RetrainError::Input(format!("{}: {e}", f.train.display())))?;
    let (holdout, _) = read_pairs(open(f.holdout)?, Malformed::Skip)
        .map_err(|e| RetrainError::Input(format!("{}: {e}", f.holdout.display())))?;
    let current = if f.current.exists() {
        Some(Model::load(f.current)?)
    } else {
        None
    };
    let (model, mut report) = retrain(data, holdout, f.labels, current.as_ref(), opts, on_event)?;
    drop(current);
    if let Some(dir) = f.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    model.save(f.out)?;
    report.candidate_path = Some(f.out.display().to_string());
    let write_metrics = |r: &RetrainReport| -> Result<(), RetrainError> {
        let mp = metrics_path(f.out);
        let mut body = serde_json::to_vec_pretty(r).expect("report serialises");
        body.push(b'\n');
        std::fs::write(&mp, body).map_err(io(&mp))
    };
    if !report.promote {
        write_metrics(&report)?;
        let c = report.current.as_ref().map_or(f64::NAN, |c| c.auc);
        return Err(RetrainError::Refused {
            candidate: report.candidate.auc,
            current: c,
            tolerance: report.auc_tolerance,
            metrics: metrics_path(f.out).display().to_string(),
        });
    }
    report.promoted_to = Some(f.current.display().to_string());
    if f.current.exists() {
        report.previous_kept_at = Some(previous_path(f.current).display().to_string());
    }
    write_metrics(&report)?;
    promote(f.out, f.current)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            metrics_path(Path::new("m/new.ipsm")),
            Path::new("m/new.ipsm.metrics.json")
        );
        assert_eq!(
            previous_path(Path::new("models/current/model.ipsm")),
            Path::new("models/previous/model.ipsm")
        );
        assert_eq!(
            previous_path(Path::new("serving.ipsm")),
            Path::new("serving.ipsm.previous")
        );
        assert_eq!(
            candidate_path(Path::new("models/current/model.ipsm"), "20261122T2150Z"),
            Path::new("models/candidates/20261122T2150Z-model.ipsm")
        );
        assert_eq!(
            candidate_path(Path::new("serving.ipsm"), "S"),
            Path::new("serving.ipsm.candidate-S")
        );
    }

    #[test]
    fn promotion_keeps_the_previous_model_and_refuses_a_worse_one() {
        let world = ipsight_synth::World::new(ipsight_synth::SynthConfig::new(7, 12, 10));
        let mut data = TrainingData::new();
        for (e, ip) in world.normal_pairs(0..8) {
            data.push(&e, ip);
        }
        let holdout: Vec<_> = world.normal_pairs(8..10).collect();
        let mut hp = Hyperparameters::new(2000, 16);
        hp.epochs = 4;
        hp.mini_batch_size = 1000;
        hp.learning_rate = 0.01;
        let mut opts = RetrainOptions::new(hp, 0);
        opts.train.threads = Some(1);
        let dir = tempfile::tempdir().unwrap();
        let (tr, ho) = (dir.path().join("train.csv"), dir.path().join("holdout.csv"));
        let csv = |pairs: &mut dyn Iterator<Item = (String, Ipv4Addr)>| {
            pairs
                .map(|(e, ip)| format!("{e},{ip}\n"))
                .collect::<String>()
        };
        std::fs::write(&tr, csv(&mut world.normal_pairs(0..8))).unwrap();
        std::fs::write(&ho, csv(&mut holdout.clone().into_iter())).unwrap();
        let serving = dir.path().join("current/model.ipsm");
        let labels = LabelSet::default();
        let files = |out: &'static str| RetrainFiles {
            train: &tr,
            holdout: &ho,
            labels: &labels,
            current: &serving,
            out: Box::leak(dir.path().join(out).into_boxed_path()),
        };
        // First model: promoted, nothing to keep.
        let r = retrain_files(&files("a.ipsm"), &opts, &mut |_| {}).unwrap();
        assert!(r.promote && r.previous_kept_at.is_none(), "{r:?}");
        assert!(r.candidate.auc > 0.9, "{r:?}");
        assert!(serving.exists() && metrics_path(&serving).exists());
        // Same recipe again: not worse, promoted; the first is kept as previous.
        let r = retrain_files(&files("b.ipsm"), &opts, &mut |_| {}).unwrap();
        assert!(r.promote, "{r:?}");
        assert!(dir.path().join("previous/model.ipsm").exists());
        // A model trained on random pairs: refused, serving model untouched.
        let before = std::fs::read(&serving).unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let random: String = (0..data.len())
            .map(|i| format!("E{},{}\n", i % 50, Ipv4Addr::from(rng.random::<u32>())))
            .collect();
        std::fs::write(&tr, random).unwrap();
        let e = retrain_files(&files("bad.ipsm"), &opts, &mut |_| {}).unwrap_err();
        assert!(matches!(e, RetrainError::Refused { .. }), "{e}");
        assert!(e.to_string().starts_with("not promoted"), "{e}");
        assert_eq!(std::fs::read(&serving).unwrap(), before);
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(metrics_path(&dir.path().join("bad.ipsm"))).unwrap(),
        )
        .unwrap();
        assert_eq!(m["promote"], false);
    }
}
