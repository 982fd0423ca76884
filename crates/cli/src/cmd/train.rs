//! `ipsight train`: SageMaker IP Insights training from a tuple CSV, with the same hyperparameters.
use std::fs::File;
use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use ipsight_model::{
    read_training_data, train, Hyperparameters, IpEncoderLayout, Malformed, TrainEvent,
    TrainOptions, TrainingData,
};

#[derive(clap::Args)]
pub struct Args {
    /// Training tuple CSV (entity,ip lines, no header), SageMaker's `train` channel format
    #[arg(long)]
    train: PathBuf,
    /// Validation tuple CSV; prints validation:discriminator_auc (random-IP negatives, as SageMaker)
    #[arg(long)]
    validation: Option<PathBuf>,
    /// Where to write the model file
    #[arg(long)]
    model: PathBuf,
    /// Skip malformed lines (and report how many) instead of failing on the first one
    #[arg(long)]
    skip_malformed: bool,

    #[command(flatten)]
    hyper: Box<SageMakerHyperparameters>,

    #[command(flatten)]
    ipsight: IpsightTrainOptions,
}

/// SageMaker IP Insights hyperparameters, by their SageMaker names (dashes or underscores). Kept as
/// text and parsed by `Hyperparameters::set`, exactly as SageMaker receives them.
#[derive(clap::Args)]
pub(crate) struct SageMakerHyperparameters {
    /// [SageMaker, required] entity vectors (hash buckets), 1–250,000,000
    #[arg(
        long = "num-entity-vectors",
        alias = "num_entity_vectors",
        help_heading = "SageMaker hyperparameters"
    )]
    num_entity_vectors: Option<String>,
    /// [SageMaker, required] embedding size, 4–4096
    #[arg(
        long = "vector-dim",
        alias = "vector_dim",
        help_heading = "SageMaker hyperparameters"
    )]
    vector_dim: Option<String>,
    /// [SageMaker] ≥ 1, default 1000
    #[arg(
        long = "batch-metrics-publish-interval",
        alias = "batch_metrics_publish_interval",
        help_heading = "SageMaker hyperparameters"
    )]
    batch_metrics_publish_interval: Option<String>,
    /// [SageMaker] ≥ 1, default 10
    #[arg(long, help_heading = "SageMaker hyperparameters")]
    epochs: Option<String>,
    /// [SageMaker] 1e-6–10, default 0.001
    #[arg(
        long = "learning-rate",
        alias = "learning_rate",
        help_heading = "SageMaker hyperparameters"
    )]
    learning_rate: Option<String>,
    /// [SageMaker] 1–500,000, default 10,000
    #[arg(
        long = "mini-batch-size",
        alias = "mini_batch_size",
        help_heading = "SageMaker hyperparameters"
    )]
    mini_batch_size: Option<String>,
    /// [SageMaker] 0–100, default 1
    #[arg(
        long = "num-ip-encoder-layers",
        alias = "num_ip_encoder_layers",
        help_heading = "SageMaker hyperparameters"
    )]
    num_ip_encoder_layers: Option<String>,
    /// [SageMaker] 0–500, default 1
    #[arg(
        long = "random-negative-sampling-rate",
        alias = "random_negative_sampling_rate",
        help_heading = "SageMaker hyperparameters"
    )]
    random_negative_sampling_rate: Option<String>,
    /// [SageMaker] 0–500, default 1
    #[arg(
        long = "shuffled-negative-sampling-rate",
        alias = "shuffled_negative_sampling_rate",
        help_heading = "SageMaker hyperparameters"
    )]
    shuffled_negative_sampling_rate: Option<String>,
    /// [SageMaker] 0–10, default 0.00001
    #[arg(
        long = "weight-decay",
        alias = "weight_decay",
        help_heading = "SageMaker hyperparameters"
    )]
    weight_decay: Option<String>,
}

fn read(path: &PathBuf, skip: bool, what: &str) -> anyhow::Result<TrainingData> {
    let file =
        File::open(path).with_context(|| format!("opening {what} file {}", path.display()))?;
    let mode = if skip {
        Malformed::Skip
    } else {
        Malformed::Fail
    };
    let (data, stats) = read_training_data(BufReader::with_capacity(1 << 20, file), mode)
        .with_context(|| format!("reading {what} file {}", path.display()))?;
    if stats.skipped > 0 {
        eprintln!(
            "{what}: skipped {} malformed line(s) of {}",
            stats.skipped, stats.lines
        );
        for e in &stats.first_errors {
            eprintln!("  {e}");
        }
    }
    eprintln!("{what}: {} pairs from {}", data.len(), path.display());
    Ok(data)
}

impl SageMakerHyperparameters {
    /// The hyperparameters as SageMaker would receive them, validated.
    pub(crate) fn to_hyperparameters(&self) -> anyhow::Result<Hyperparameters> {
        let h = self;
        let (Some(nev), Some(dim)) = (&h.num_entity_vectors, &h.vector_dim) else {
            bail!(
                "--num-entity-vectors and --vector-dim are required (as in SageMaker IP Insights)"
            );
        };
        let mut hp = Hyperparameters::new(0, 0);
        hp.set("num_entity_vectors", nev)?;
        hp.set("vector_dim", dim)?;
        for (name, value) in [
            (
                "batch_metrics_publish_interval",
                &h.batch_metrics_publish_interval,
            ),
            ("epochs", &h.epochs),
            ("learning_rate", &h.learning_rate),
            ("mini_batch_size", &h.mini_batch_size),
            ("num_ip_encoder_layers", &h.num_ip_encoder_layers),
            (
                "random_negative_sampling_rate",
                &h.random_negative_sampling_rate,
            ),
            (
                "shuffled_negative_sampling_rate",
                &h.shuffled_negative_sampling_rate,
            ),
            ("weight_decay", &h.weight_decay),
        ] {
            if let Some(v) = value {
                hp.set(name, v)?;
            }
        }
        hp.validate()?;
        Ok(hp)
    }
}

/// ipsight's own training knobs (none of them exist in SageMaker), shared by `train` and `retrain`.
#[derive(clap::Args)]
pub(crate) struct IpsightTrainOptions {
    /// [ipsight] what the tuples' entities are, recorded in the model (principal,
    /// principal+event_source, user_agent_family, arn, instance_id; as the preparer's --entity)
    #[arg(
        long,
        env = "ENTITY",
        default_value = "principal",
        help_heading = "ipsight options"
    )]
    entity: ipsight_formats::EntityKind,
    /// [ipsight] random seed (with --threads 1 a run is reproducible)
    #[arg(long, help_heading = "ipsight options")]
    seed: Option<u64>,
    /// [ipsight] worker threads (default: all cores)
    #[arg(long, help_heading = "ipsight options")]
    threads: Option<usize>,
    /// [ipsight] hash buckets for /24 prefixes
    #[arg(
        long = "prefix24-buckets",
        alias = "prefix24_buckets",
        help_heading = "ipsight options"
    )]
    prefix24_buckets: Option<u32>,
    /// [ipsight] hash buckets for whole addresses
    #[arg(
        long = "address-buckets",
        alias = "address_buckets",
        help_heading = "ipsight options"
    )]
    address_buckets: Option<u32>,
}

impl IpsightTrainOptions {
    pub(crate) fn to_train_options(&self) -> anyhow::Result<TrainOptions> {
        let defaults = IpEncoderLayout::default();
        let opts = TrainOptions {
            threads: self.threads,
            entity: Some(self.entity.as_str().to_owned()),
            seed: self.seed.unwrap_or(TrainOptions::default().seed),
            layout: IpEncoderLayout {
                prefix24_buckets: self.prefix24_buckets.unwrap_or(defaults.prefix24_buckets),
                address_buckets: self.address_buckets.unwrap_or(defaults.address_buckets),
            },
            ..TrainOptions::default()
        };
        opts.layout.validate()?;
        Ok(opts)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let hp = args.hyper.to_hyperparameters()?;
    let opts = args.ipsight.to_train_options()?;

    let data = read(&args.train, args.skip_malformed, "train")?;
    let validation = args
        .validation
        .as_ref()
        .map(|p| read(p, args.skip_malformed, "validation"))
        .transpose()?;

    let interactive = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        Some(data.len() as u64 * hp.epochs as u64),
        if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {human_pos}/{human_len} pairs  {rate}  eta {eta}  loss {msg}",
        )?
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} pairs/s", s.per_sec());
        })
        .progress_chars("=> "),
    );
    let start = Instant::now();
    let model = train(&hp, &opts, &data, validation.as_ref(), &mut |ev| match ev {
        TrainEvent::Batch(p) => {
            bar.set_position(p.pairs_done);
            bar.set_prefix(format!("{}/{}", p.epoch, p.epochs));
            bar.set_message(format!("{:.4}", p.loss));
            if p.publish && !interactive {
                eprintln!(
                    "epoch {} batch {}/{}: loss {:.4}, {:.0} pairs/s",
                    p.epoch,
                    p.batch,
                    p.batches_per_epoch,
                    p.loss,
                    p.pairs_done as f64 / p.elapsed_secs
                );
            }
        }
        TrainEvent::Epoch(e) => {
            let auc = e
                .validation_discriminator_auc
                .map(|a| format!(", validation:discriminator_auc={a:.6}"))
                .unwrap_or_default();
            let line = format!(
                "epoch {}: loss {:.4}, {:.1} s, {:.0} pairs/s{auc}",
                e.epoch, e.mean_loss, e.seconds, e.pairs_per_sec
            );
            // A hidden bar swallows println, so without a terminal write the line directly.
            if interactive {
                bar.println(line);
            } else {
                eprintln!("{line}");
            }
        }
    })?;
    bar.finish_and_clear();
    model
        .save(&args.model)
        .with_context(|| format!("writing model {}", args.model.display()))?;
    let c = model.calibration();
    eprintln!(
        "trained on {} pairs in {:.1} s; model written to {} (1% FPR threshold on training pairs: {:.4})",
        data.len(),
        start.elapsed().as_secs_f64(),
        args.model.display(),
        c.threshold_for_fpr(0.01)
    );
    if let Some(auc) = model.training_info().validation_discriminator_auc {
        println!("validation:discriminator_auc={auc:.6}");
    }
    Ok(())
}
