//! `ipsight train`: SageMaker IP Insights training from a tuple CSV, with the same hyperparameters,
//! plus the baseline sidecar (per-principal history, combined score, held-back calibration).
//!
//! With no hyperparameter flags it chooses `Hyperparameters::ipsight_defaults`: num_entity_vectors
//! = 2 × distinct entities and the SageMaker tutorial's vector_dim 128, learning_rate 0.01,
//! mini_batch_size 1000, random_negative_sampling_rate 5 and 5 epochs.
use std::fs::File;
use std::io::{BufReader, IsTerminal};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use ipsight_model::combine::holdback_start;
use ipsight_model::tuples::{read_pair_log, ReadStats};
use ipsight_model::{
    read_training_data, sidecar_path, train_hybrid, HybridOptions, Hyperparameters,
    IpEncoderLayout, Malformed, PairLog, TrainEvent, TrainOptions, TrainingData,
};

#[derive(clap::Args)]
pub struct Args {
    /// Training tuple CSV (entity,ip lines, no header), SageMaker's `train` channel format, or a
    /// pair file (`entity,ip,events,first_seen,last_seen` header, from `ipsight prepare --pairs`):
    /// each pair line then counts active_days × (1 + ln(events per active day)) samples
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
    /// [ipsight] newest share of the input (in file order) held back from the embedding and the
    /// history they are compared with, to fit the combined score and calibrate its percentiles on
    /// activity the model has not seen
    #[arg(long, default_value_t = ipsight_model::hybrid::DEFAULT_HOLDBACK_FRACTION)]
    holdback_fraction: f64,

    #[command(flatten)]
    hyper: Box<SageMakerHyperparameters>,

    #[command(flatten)]
    ipsight: IpsightTrainOptions,
}

/// SageMaker IP Insights hyperparameters, by their SageMaker names (dashes or underscores). Kept as
/// text and parsed by `Hyperparameters::set`, exactly as SageMaker receives them. `ipsight train`
/// needs none of them (see its --help for what it chooses); any given is honoured exactly.
#[derive(clap::Args)]
pub(crate) struct SageMakerHyperparameters {
    /// [SageMaker: required] entity vectors (hash buckets), 1–250,000,000; `ipsight train` default: 2 × the distinct entities
    #[arg(
        long = "num-entity-vectors",
        alias = "num_entity_vectors",
        help_heading = "SageMaker hyperparameters"
    )]
    num_entity_vectors: Option<String>,
    /// [SageMaker: required] embedding size, 4–4096; `ipsight train` default: 128 (the SageMaker tutorial)
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
    /// [SageMaker] ≥ 1, default 10; `ipsight train` default: 5 (the SageMaker tutorial)
    #[arg(long, help_heading = "SageMaker hyperparameters")]
    epochs: Option<String>,
    /// [SageMaker] 1e-6–10, default 0.001; `ipsight train` default: 0.01 (the SageMaker tutorial)
    #[arg(
        long = "learning-rate",
        alias = "learning_rate",
        help_heading = "SageMaker hyperparameters"
    )]
    learning_rate: Option<String>,
    /// [SageMaker] 1–500,000, default 10,000; `ipsight train` default: 1000 (the SageMaker tutorial)
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
    /// [SageMaker] 0–500, default 1; `ipsight train` default: 5 (the SageMaker tutorial)
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

fn mode(skip: bool) -> Malformed {
    if skip {
        Malformed::Skip
    } else {
        Malformed::Fail
    }
}

fn read(path: &PathBuf, skip: bool, what: &str) -> anyhow::Result<TrainingData> {
    let file =
        File::open(path).with_context(|| format!("opening {what} file {}", path.display()))?;
    let (data, stats) = read_training_data(BufReader::with_capacity(1 << 20, file), mode(skip))
        .with_context(|| format!("reading {what} file {}", path.display()))?;
    report(what, path, &stats, data.len());
    Ok(data)
}

/// What a read found: skipped lines, and for a pair file what its lines stand for.
fn report(what: &str, path: &std::path::Path, stats: &ReadStats, samples: usize) {
    if stats.skipped > 0 {
        eprintln!(
            "{what}: skipped {} malformed line(s) of {}",
            stats.skipped, stats.lines
        );
        for e in &stats.first_errors {
            eprintln!("  {e}");
        }
    }
    if stats.pair_lines > 0 || stats.ipv6_pairs > 0 {
        eprintln!(
            "{what}: pair file {}: {} pairs standing for {} events → {} weighted samples{}",
            path.display(),
            stats.pair_lines,
            stats.events,
            samples,
            if stats.ipv6_pairs > 0 {
                format!(
                    " ({} IPv6 pairs: in the baseline, not in the IPv4 model)",
                    stats.ipv6_pairs
                )
            } else {
                String::new()
            }
        );
    } else {
        eprintln!("{what}: {samples} pairs from {}", path.display());
    }
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
        self.apply(&mut hp)?;
        hp.validate()?;
        Ok(hp)
    }

    /// Sets every hyperparameter given on the command line, exactly as given, over `hp`.
    pub(crate) fn apply(&self, hp: &mut Hyperparameters) -> anyhow::Result<()> {
        let h = self;
        for (name, value) in [
            ("num_entity_vectors", &h.num_entity_vectors),
            ("vector_dim", &h.vector_dim),
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
        Ok(())
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
    /// [ipsight] hash buckets for each IPv6 prefix level (/32, /48, /56, /64); 0 = IPv4 only
    #[arg(
        long = "ipv6-buckets",
        alias = "ipv6_buckets",
        help_heading = "ipsight options"
    )]
    ipv6_buckets: Option<u32>,
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
                ipv6_buckets: self.ipv6_buckets.unwrap_or(defaults.ipv6_buckets),
            },
            ..TrainOptions::default()
        };
        opts.layout.validate()?;
        Ok(opts)
    }
}

/// The training input in file order, as observations for the hybrid detector.
fn read_log(path: &PathBuf, skip: bool) -> anyhow::Result<PairLog> {
    let file =
        File::open(path).with_context(|| format!("opening train file {}", path.display()))?;
    let (log, stats) = read_pair_log(BufReader::with_capacity(1 << 20, file), mode(skip))
        .with_context(|| format!("reading train file {}", path.display()))?;
    report("train", path, &stats, stats.pairs as usize);
    eprintln!("train: {} distinct entities", log.entities());
    Ok(log)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&args.holdback_fraction) {
        bail!(
            "--holdback-fraction must be at least 0 and below 1, got {}",
            args.holdback_fraction
        );
    }
    let opts = args.ipsight.to_train_options()?;
    let log = read_log(&args.train, args.skip_malformed)?;
    if log.is_empty() {
        bail!("{} has no pairs", args.train.display());
    }
    let mut hp = Hyperparameters::ipsight_defaults(log.entities());
    args.hyper.apply(&mut hp)?;
    hp.validate()?;
    eprintln!(
        "hyperparameters: num_entity_vectors={} vector_dim={} epochs={} learning_rate={} mini_batch_size={} \
         num_ip_encoder_layers={} random_negative_sampling_rate={} shuffled_negative_sampling_rate={} weight_decay={}",
        hp.num_entity_vectors,
        hp.vector_dim,
        hp.epochs,
        hp.learning_rate,
        hp.mini_batch_size,
        hp.num_ip_encoder_layers,
        hp.random_negative_sampling_rate,
        hp.shuffled_negative_sampling_rate,
        hp.weight_decay
    );
    let data_len = holdback_start(log.len(), args.holdback_fraction);
    let validation = args
        .validation
        .as_ref()
        .map(|p| read(p, args.skip_malformed, "validation"))
        .transpose()?;

    let interactive = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        Some(data_len as u64 * hp.epochs as u64),
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
    let hybrid = HybridOptions {
        holdback_fraction: args.holdback_fraction,
    };
    let on_event = &mut |ev: TrainEvent| match ev {
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
    };
    let (model, detector, summary) =
        train_hybrid(&hp, &opts, &hybrid, &log, validation.as_ref(), on_event)?;
    bar.finish_and_clear();
    model
        .save(&args.model)
        .with_context(|| format!("writing model {}", args.model.display()))?;
    let sidecar = sidecar_path(&args.model);
    detector
        .save(&sidecar)
        .with_context(|| format!("writing baseline sidecar {}", sidecar.display()))?;
    let f = &detector.fit;
    eprintln!(
        "trained the embedding on the older {} pairs in {:.1} s; model written to {}",
        summary.older_pairs,
        start.elapsed().as_secs_f64(),
        args.model.display(),
    );
    eprintln!(
        "baseline: {} entities, {} prefixes; combiner {} on the newest {} pairs ({} of principals new to the older part, {} random and {} shuffled negatives); written to {}",
        detector.baseline.entities(),
        detector.baseline.entries(),
        if f.calibrated_on == "held_back" {
            "fitted and calibrated"
        } else {
            "NOT fitted (too few held-back pairs of known principals: prior weights)"
        },
        f.held_back_pairs,
        f.held_back_new_principals,
        f.random_negatives,
        f.shuffled_negatives,
        sidecar.display()
    );
    if f.held_back_by == "per_principal" {
        eprintln!(
            "note: the input's order is not time order (held back in file order, most pairs would have been of principals absent from the older part, e.g. a file sorted by principal): held back the newest share of each principal's own pairs instead; budgets are then calibrated on activity closer in time to the history than tomorrow's will be"
        );
    }
    if detector.is_calibrated() {
        eprintln!(
            "percentiles: 95% upper bound of the share of held-back recent activity scoring lower, {} distinct held-back pairs as the sample size{}",
            f.held_back_distinct_pairs,
            match f.input_days {
                Some(d) => format!("; the input spans {d} day(s)"),
                None => "; the input has no times (tuples): whether it spans a week is not known".into(),
            }
        );
    }
    if let Some(caveat) = detector.calibration_caveat() {
        eprintln!("note: {caveat}");
    }
    if !detector.is_calibrated() {
        eprintln!(
            "note: no held-back pair of a known principal (every principal has a single pair?): percentiles are uncalibrated, 100 × (1 − sigmoid(score)); train on more activity for honest budgets"
        );
    }
    if summary.embedding_skipped > 0 {
        eprintln!(
            "{} IPv6 pairs are in the baseline but not in the embedding (this model encodes IPv4)",
            summary.embedding_skipped
        );
    }
    if let Some(auc) = model.training_info().validation_discriminator_auc {
        println!("validation:discriminator_auc={auc:.6}");
    }
    Ok(())
}
