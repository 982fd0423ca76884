//! `ipsight baseline`: a baseline sidecar fitted beside a SageMaker IP Insights endpoint, so that
//! ipcheck and fuse (`BASELINE_URI`) give the built-in algorithm's users the same history, combined
//! percentile and "why" as the embedded model's.
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::{bail, Context};
use ipsight_aws::{SageMakerOptions, SageMakerScorer};
use ipsight_model::hybrid::DEFAULT_HOLDBACK_FRACTION;
use ipsight_model::tuples::read_pair_log;
use ipsight_model::Malformed;
use ipsight_ports::baseline::fit_beside;

#[derive(clap::Args)]
pub struct Args {
    /// The endpoint serving the model (SageMaker IP Insights, or `ipsight serve`; the AWS SDK's
    /// usual configuration, `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` included)
    #[arg(long)]
    endpoint: String,
    /// The tuple CSV or pair file the endpoint's model was trained from (its newest part held back)
    #[arg(long)]
    train: PathBuf,
    /// Where to write the sidecar (upload it and set BASELINE_URI / the BaselineUri parameter)
    #[arg(long)]
    out: PathBuf,
    /// Newest share of the input held back to fit the combined score and calibrate it. Train the
    /// endpoint's model on the rest only (`--older-out`), or its percentiles flatter it.
    #[arg(long, default_value_t = DEFAULT_HOLDBACK_FRACTION)]
    holdback_fraction: f64,
    /// What the entities are (as the preparer's and the Lambdas' ENTITY)
    #[arg(long, env = "ENTITY", default_value = "principal")]
    entity: ipsight_formats::EntityKind,
    /// Random seed of the negatives
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip malformed lines (counted) instead of failing
    #[arg(long)]
    skip_malformed: bool,
    /// Also write the older part's IPv4 pairs as a SageMaker `entity,ip` training channel, to train
    /// the endpoint's model on exactly what the sidecar treats as history-before-the-held-back-part
    #[arg(long)]
    older_out: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&a.holdback_fraction) {
        bail!(
            "--holdback-fraction must be at least 0 and below 1, got {}",
            a.holdback_fraction
        );
    }
    let file = File::open(&a.train).with_context(|| format!("opening {}", a.train.display()))?;
    let mode = if a.skip_malformed {
        Malformed::Skip
    } else {
        Malformed::Fail
    };
    let (log, stats) = read_pair_log(BufReader::with_capacity(1 << 20, file), mode)
        .with_context(|| format!("reading {}", a.train.display()))?;
    if log.is_empty() {
        bail!("{} has no pairs", a.train.display());
    }
    if stats.skipped > 0 {
        eprintln!("skipped {} malformed line(s)", stats.skipped);
    }
    if let Some(out) = &a.older_out {
        use std::io::Write;
        let split = log.hold_back(a.holdback_fraction);
        let mut w = std::io::BufWriter::new(
            File::create(out).with_context(|| format!("creating {}", out.display()))?,
        );
        let mut ipv6 = 0u64;
        for &i in &split.older {
            match log.ip(i).to_canonical() {
                std::net::IpAddr::V4(v4) => writeln!(w, "{},{v4}", csv_entity(log.entity(i)))?,
                std::net::IpAddr::V6(_) => ipv6 += 1,
            }
        }
        w.flush()?;
        eprintln!(
            "wrote the older part ({} pairs; {ipv6} IPv6 left out: IP Insights is IPv4-only) to {}",
            split.older.len() as u64 - ipv6,
            out.display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (det, summary) = rt.block_on(async {
        let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let scorer = SageMakerScorer::new(&conf, a.endpoint.clone(), SageMakerOptions::default());
        fit_beside(
            &scorer,
            &log,
            a.holdback_fraction,
            a.entity.as_str(),
            a.seed,
        )
        .await
        .with_context(|| {
            format!(
                "scoring the held-back pairs through endpoint {}",
                a.endpoint
            )
        })
    })?;
    det.save(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    let f = &det.fit;
    eprintln!(
        "baseline sidecar {}: {} principals; {} older pairs, {} held back ({} IPv6 kept in the \
         history only, {} of new principals); {} pairs scored by {}; combiner {} ({} random + {} \
         shuffled negatives)",
        a.out.display(),
        det.baseline.entities(),
        summary.older_pairs,
        summary.held_back_pairs,
        summary.held_back_ipv6,
        f.held_back_new_principals,
        summary.scored,
        a.endpoint,
        if f.calibrated_on == "held_back" {
            "fitted and calibrated on the held-back pairs"
        } else {
            "prior weights: too few held-back pairs of known principals"
        },
        f.random_negatives,
        f.shuffled_negatives
    );
    Ok(())
}

/// An entity as a CSV field SageMaker's reader keeps whole.
fn csv_entity(e: &str) -> String {
    if e.contains([',', '"']) || e.trim() != e {
        format!("\"{}\"", e.replace('"', "\"\""))
    } else {
        e.to_owned()
    }
}
