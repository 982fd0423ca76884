//! `ipsight retrain`: train a candidate with the analysts' false positives, compare it with the
//! serving model on held-back recent pairs, promote it only if it is not worse (the library in
//! `ipsight-retrain` is what a scheduled Lambda would call).
use std::path::PathBuf;

use anyhow::Context;
use ipsight_formats::labels::{epoch_seconds, LabelSet};
use ipsight_model::TrainEvent;
use ipsight_retrain::{retrain_files, RetrainError, RetrainFiles, RetrainOptions};

use super::train::{IpsightTrainOptions, SageMakerHyperparameters};

#[derive(clap::Args)]
pub struct Args {
    /// Training tuple CSV (entity,ip), e.g. the last N days of the preparer's output
    #[arg(long)]
    train: PathBuf,
    /// Analyst labels (`ipsight label add`): a JSON lines file or s3://bucket/prefix/
    #[arg(long)]
    labels: Option<String>,
    /// Held-back recent pairs (entity,ip CSV, not in --train): the normal side of the evaluation
    #[arg(long)]
    holdout: PathBuf,
    /// The serving model (replaced on promotion; kept as `previous`). May not exist yet.
    #[arg(long)]
    current: PathBuf,
    /// Where the candidate model goes; `<out>.metrics.json` beside it
    #[arg(long)]
    out: PathBuf,
    /// Copies of each false-positive pair added to the training set
    #[arg(long, default_value_t = 20)]
    false_positive_repeat: usize,
    /// Promote when candidate AUC ≥ serving AUC − this
    #[arg(long, default_value_t = 0.005)]
    auc_tolerance: f64,
    /// ipcheck's ALERT_MIN_PERCENTILE: the labelled pairs' threshold recommendation is against it
    #[arg(long, default_value_t = 99.5)]
    alert_min_percentile: f64,
    /// Labels in force at this date/time are used (default: now)
    #[arg(long)]
    labels_at: Option<String>,

    #[command(flatten)]
    hyper: Box<SageMakerHyperparameters>,

    #[command(flatten)]
    ipsight: IpsightTrainOptions,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let hp = a.hyper.to_hyperparameters()?;
    let at_text = a
        .labels_at
        .clone()
        .unwrap_or_else(super::label::now_rfc3339);
    let at = epoch_seconds(&at_text)
        .with_context(|| format!("--labels-at {at_text:?}: expected YYYY-MM-DD or RFC 3339"))?;
    let mut opts = RetrainOptions::new(hp, at);
    opts.false_positive_repeat = a.false_positive_repeat;
    opts.auc_tolerance = a.auc_tolerance;
    opts.alert_min_percentile = a.alert_min_percentile;
    opts.train = a.ipsight.to_train_options()?;
    let labels = match &a.labels {
        Some(l) => super::label::load(l)?,
        None => LabelSet::default(),
    };
    let files = RetrainFiles {
        train: &a.train,
        holdout: &a.holdout,
        labels: &labels,
        current: &a.current,
        out: &a.out,
    };
    let result = retrain_files(&files, &opts, &mut |ev| {
        if let TrainEvent::Epoch(e) = ev {
            eprintln!(
                "epoch {}: loss {:.4}, {:.1} s, {:.0} pairs/s",
                e.epoch, e.mean_loss, e.seconds, e.pairs_per_sec
            );
        }
    });
    match result {
        Ok(r) => {
            println!("{}", serde_json::to_string_pretty(&r)?);
            eprintln!(
                "promoted {} → {} ({})",
                a.out.display(),
                a.current.display(),
                r.decision
            );
            Ok(())
        }
        Err(e @ RetrainError::Refused { .. }) => Err(e.into()),
        Err(e) => Err(e).context("retrain"),
    }
}
