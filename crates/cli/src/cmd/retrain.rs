//! `ipsight retrain`: the library `ipsight-retrain`, as the scheduled-retrain Lambda runs it, over
//! local files:
//! - `--data DIR`: DIR laid out like the data bucket (`pairs/objects/dt=…/`, `train/`, `labels/`,
//!   `models/current/model.ipsm`): exactly the Lambda's run, over a directory store;
//! - `--train T --holdout H --current SERVING --out NEW`: explicit files, the same judging and the
//!   same promotion.
//!
//! A refused candidate is a normal outcome: reported (`"promote": false`), exit status 0.
use std::path::PathBuf;

use anyhow::Context;
use ipsight_core::labels::LabelSet;
use ipsight_core::time::epoch_seconds;
use ipsight_model::TrainEvent;
use ipsight_ports::{DirStore, LabelSource, ObjectRef};
use ipsight_retrain::run::{NoTrainingJobs, PairsSource, DEFAULT_TRAINING_DAYS};
use ipsight_retrain::{retrain_files, RetrainFiles, RetrainOptions, Settings};

use super::train::{IpsightTrainOptions, SageMakerHyperparameters};

#[derive(clap::Args)]
pub struct Args {
    /// A directory laid out like the data bucket: trains on its rolling window of pair files
    /// (pairs/objects/dt=YYYY-MM-DD/, compacted into pairs/daily/) or else its tuple CSVs (train/),
    /// with its labels (labels/), and promotes to --model-key — the scheduled retrain's run
    #[arg(long, conflicts_with_all = ["train", "holdout", "current", "out", "labels"])]
    data: Option<PathBuf>,
    /// With --data: the serving model's key in it
    #[arg(long, default_value = "models/current/model.ipsm", requires = "data")]
    model_key: String,
    /// With --data: days of pair files read, ending today (UTC); the template's TrainingDays
    #[arg(long, default_value_t = DEFAULT_TRAINING_DAYS, requires = "data")]
    training_days: u32,
    /// With --data: share of the input (newest days / objects, by bytes) held back to judge
    #[arg(long, default_value_t = 0.1, requires = "data")]
    holdout_fraction: f64,
    /// Training input: tuple CSV (entity,ip) or pair file, e.g. the last N days of the preparer's output
    #[arg(long, required_unless_present = "data")]
    train: Option<PathBuf>,
    /// Analyst labels (`ipsight label add`): a JSON lines file or s3://bucket/prefix/
    #[arg(long)]
    labels: Option<String>,
    /// Held-back recent pairs (tuple CSV or pair file, not in --train): the normal side of the evaluation
    #[arg(long, required_unless_present = "data")]
    holdout: Option<PathBuf>,
    /// The serving model (replaced with its sidecar on promotion; both kept as `previous`). May not exist yet.
    #[arg(long, required_unless_present = "data")]
    current: Option<PathBuf>,
    /// Where the candidate model goes; its sidecar (.ipsb) and `<out>.metrics.json` beside it
    #[arg(long, required_unless_present = "data")]
    out: Option<PathBuf>,
    /// Training samples each false-positive pair stands for
    #[arg(long, default_value_t = 20)]
    false_positive_repeat: usize,
    /// Promote when candidate AUC ≥ serving AUC − max(this, 1.645 × the standard error of the
    /// difference of the two AUCs on the same held-back pairs)
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn on_epoch(ev: TrainEvent) {
    if let TrainEvent::Epoch(e) = ev {
        eprintln!(
            "epoch {}: loss {:.4}, {:.1} s, {:.0} pairs/s",
            e.epoch, e.mean_loss, e.seconds, e.pairs_per_sec
        );
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let hp = a.hyper.to_hyperparameters()?;
    let at_text = a
        .labels_at
        .clone()
        .unwrap_or_else(super::label::now_rfc3339);
    let at = epoch_seconds(&at_text)
        .with_context(|| format!("--labels-at {at_text:?}: expected YYYY-MM-DD or RFC 3339"))?;
    if let Some(dir) = &a.data {
        return run_data(&a, dir, hp, at);
    }
    let mut opts = RetrainOptions::new(hp, at);
    opts.false_positive_repeat = a.false_positive_repeat;
    opts.auc_tolerance = a.auc_tolerance;
    opts.alert_min_percentile = a.alert_min_percentile;
    opts.train = a.ipsight.to_train_options()?;
    let labels = match &a.labels {
        Some(l) => super::label::load(l)?,
        None => LabelSet::default(),
    };
    let (train, holdout, current, out) = (
        a.train.as_ref().expect("required"),
        a.holdout.as_ref().expect("required"),
        a.current.as_ref().expect("required"),
        a.out.as_ref().expect("required"),
    );
    let files = RetrainFiles {
        train,
        holdout,
        labels: &labels,
        current,
        out,
    };
    let r = runtime()?
        .block_on(retrain_files(&files, &opts, &mut on_epoch))
        .context("retrain")?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    if r.promote {
        eprintln!(
            "promoted {} → {} ({})",
            out.display(),
            current.display(),
            r.decision
        );
    } else {
        eprintln!(
            "{}; candidate and metrics kept at {}",
            r.decision,
            out.display()
        );
    }
    Ok(())
}

/// `--data DIR`: the scheduled retrain's own run over a directory store.
fn run_data(
    a: &Args,
    dir: &std::path::Path,
    hp: ipsight_model::Hyperparameters,
    labels_at: i64,
) -> anyhow::Result<()> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("--data {}", dir.display()))?;
    let (Some(root), Some(bucket)) = (dir.parent(), dir.file_name()) else {
        anyhow::bail!("--data {}: expected a directory below /", dir.display());
    };
    let bucket = bucket.to_string_lossy().into_owned();
    let train = a.ipsight.to_train_options()?;
    let settings = Settings {
        tuples: Some((bucket.clone(), "train/".into())),
        pairs: Some(PairsSource {
            bucket: bucket.clone(),
            objects_prefix: "pairs/objects/".into(),
            daily_prefix: "pairs/daily/".into(),
            days: a.training_days.max(2),
        }),
        model: ObjectRef::new(&bucket, &a.model_key),
        labels: Some(LabelSource::Prefix {
            bucket: bucket.clone(),
            prefix: "labels/".into(),
        }),
        holdout_fraction: a.holdout_fraction,
        // A machine has no Lambda's 15 minutes.
        max_embedded_bytes: u64::MAX,
        hyper: hp,
        hyper_pairs: Vec::new(),
        false_positive_repeat: a.false_positive_repeat,
        auc_tolerance: a.auc_tolerance,
        alert_min_percentile: a.alert_min_percentile,
        threads: train.threads,
        sagemaker: None,
        entity: train
            .entity
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--entity: {e}"))?,
        function: "ipsight retrain",
    };
    let store = DirStore::new(root);
    // Labels in force at --labels-at: the run takes "now" from it.
    let now_ms = labels_at.saturating_mul(1000);
    let out = runtime()?
        .block_on(ipsight_retrain::run(
            &settings,
            &store,
            &NoTrainingJobs,
            now_ms,
            &std::env::temp_dir(),
        ))
        .context("retrain")?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    eprintln!("{}: {}", out["action"], out["decision"]);
    Ok(())
}
