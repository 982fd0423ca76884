//! The retrain, once: training with analyst feedback, judging the candidate against the serving
//! detector, and promotion only of one that is not worse. A library; its two front ends are thin:
//! the `scheduled-retrain` Lambda (over S3) and `ipsight retrain` (over local files or a directory
//! laid out like the data bucket).
//!
//! - [`judge`]: pure, in memory. The training set is the input plus every unexpired false-positive
//!   label on an exact pair (standing for `false_positive_repeat` samples: a handful of decisions
//!   among millions of pairs would otherwise carry no weight). The candidate is the hybrid detector
//!   (embedding + baseline sidecar); candidate and serving detector are judged on the same held-back
//!   recent pairs against the same random and shuffled negatives, each on the score it serves (the
//!   combined one when a matching sidecar exists), plus the calibration of the 1% budget and the
//!   labelled false positives.
//! - [`plan`]: what to read from listings: the rolling window of pair files by day, else the
//!   tuple CSVs; the newest held back.
//! - [`run`]: the orchestration over the [`ipsight_ports::ObjectStore`] / [`ipsight_ports::ObjectLister`]
//!   ports (gather, compact, hold back, train, judge, keep the candidate, [`run::promote`] model and
//!   sidecar together), and the SageMaker job for input too large to train here.
//! - [`files`]: the same judging and the same promotion for explicit files.
//!
//! A refused candidate is a normal outcome (reported with `promote: false` and kept with its
//! metrics), not an error: everywhere.
pub mod compare;
pub mod files;
pub mod judge;
pub mod plan;
pub mod run;
pub mod threshold;

pub use files::{retrain_files, FilesError, RetrainFiles};
pub use judge::{
    evaluate, retrain, Candidate, EvalSet, JudgeError, ModelMetrics, RetrainOptions, RetrainReport,
    ScoredBy, Serving, TrainingInput, CALIBRATION_FPR,
};
pub use run::{promote, run, RunError, Settings};
pub use threshold::{
    threshold_from_labels, threshold_from_percentiles, threshold_from_scores, LabelThreshold,
};

/// `<model key>.metrics.json`.
pub fn metrics_key(model_key: &str) -> String {
    format!("{model_key}.metrics.json")
}

/// `…/current/<name>` → `(…/, <name>)`, the layout `models/current/model.ipsm`.
fn in_current(key: &str) -> Option<(&str, &str)> {
    let (dir, name) = key.rsplit_once('/')?;
    let parent = dir.strip_suffix("current")?;
    (parent.is_empty() || parent.ends_with('/')).then_some((parent, name))
}

/// `name.ext` + tag → `name.<tag>.ext` (`name-<tag>` without an extension): the tag goes before the
/// extension so that the sidecar beside it (`.ipsb` for the extension) is its own.
fn tagged(key: &str, tag: &str) -> String {
    let (dir, name) = key.rsplit_once('/').map_or(("", key), |(d, n)| (d, n));
    let name = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{tag}.{ext}"),
        _ => format!("{name}-{tag}"),
    };
    if dir.is_empty() {
        name
    } else {
        format!("{dir}/{name}")
    }
}

/// Where the serving model's predecessor is kept: `…/current/<name>` → `…/previous/<name>`,
/// otherwise `name.previous.ext`.
pub fn previous_key(serving_key: &str) -> String {
    match in_current(serving_key) {
        Some((parent, name)) => format!("{parent}previous/{name}"),
        None => tagged(serving_key, "previous"),
    }
}

/// Where a run keeps the candidate it trained (promoted or not, with its sidecar and metrics):
/// `…/current/<name>` → `…/candidates/<stamp>-<name>`, otherwise `name.candidate-<stamp>.ext`.
pub fn candidate_key(serving_key: &str, stamp: &str) -> String {
    match in_current(serving_key) {
        Some((parent, name)) => format!("{parent}candidates/{stamp}-{name}"),
        None => tagged(serving_key, &format!("candidate-{stamp}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipsight_model::sidecar::sidecar_key;

    #[test]
    fn keys() {
        assert_eq!(metrics_key("m/new.ipsm"), "m/new.ipsm.metrics.json");
        assert_eq!(
            previous_key("models/current/model.ipsm"),
            "models/previous/model.ipsm"
        );
        assert_eq!(previous_key("current/model.ipsm"), "previous/model.ipsm");
        assert_eq!(previous_key("x/serving.ipsm"), "x/serving.previous.ipsm");
        assert_eq!(previous_key("serving"), "serving-previous");
        assert_eq!(
            candidate_key("models/current/model.ipsm", "20261122T2150Z"),
            "models/candidates/20261122T2150Z-model.ipsm"
        );
        assert_eq!(
            candidate_key("serving.ipsm", "S"),
            "serving.candidate-S.ipsm"
        );
        // Every model of a layout has a sidecar of its own.
        for serving in ["models/current/model.ipsm", "a/serving.ipsm", "serving"] {
            let keys = [
                serving.to_owned(),
                previous_key(serving),
                candidate_key(serving, "S"),
            ];
            let sidecars: std::collections::HashSet<_> =
                keys.iter().map(|k| sidecar_key(k)).collect();
            assert_eq!(sidecars.len(), 3, "{keys:?}");
        }
    }
}
