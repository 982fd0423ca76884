//! `ipsight demo`: the main job end to end on built-in synthetic data, no AWS account needed.
//!
//! A synthetic organisation's CloudTrail bucket is written to disk, prepared into tuples with the
//! preparer Lambda's code, an IP Insights-compatible model is trained on the early days, and the
//! later days' real activity is scored against the same principals acting from IP ranges they never
//! use (the situation ipsight exists to catch).
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ipsight_formats::PrepareOptions;
use ipsight_model::{
    eval, read_training_data, train, Hyperparameters, IpEncoderLayout, Malformed, TrainOptions,
};
use ipsight_synth::{write_cloudtrail, CloudTrailOptions, SynthConfig, World};

use super::prepare::prepare_cloudtrail_paths;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the synthetic bucket, tuples, model and report
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// People in the synthetic organisation (plus automation roles)
    #[arg(long, default_value_t = 150)]
    users: u32,
    /// Days of CloudTrail; the last 7 are "recent" activity to score
    #[arg(long, default_value_t = 21)]
    days: u32,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.days > 7,
        "--days must be more than 7 (the last 7 days are scored)"
    );
    let t0 = Instant::now();
    let train_days = a.days - 7;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let step = |n: u32, what: &str| eprintln!("[{n}] {what}");

    step(
        1,
        "writing a synthetic CloudTrail bucket (organization trail, digests, Insights)",
    );
    let world = World::new(SynthConfig::new(a.seed, a.users, a.days));
    let history = a.out.join("cloudtrail-history");
    let recent = a.out.join("cloudtrail-recent");
    for (dir, days) in [(&history, 0..train_days), (&recent, train_days..a.days)] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        let s = write_cloudtrail(
            &world,
            dir,
            &CloudTrailOptions {
                days: Some(days),
                organization_trail: true,
                ..Default::default()
            },
        )?;
        eprintln!(
            "    {}: {} log files, {} digests, {} records, {:.1} MB of JSON",
            dir.display(),
            s.log_files,
            s.digest_files,
            s.records,
            s.uncompressed_bytes as f64 / 1e6
        );
    }

    step(
        2,
        "preparing tuples with the preparer's rules (ipsight prepare cloudtrail)",
    );
    let prep = |dir: &PathBuf, csv: PathBuf| -> anyhow::Result<PathBuf> {
        let mut w = BufWriter::new(std::fs::File::create(&csv)?);
        let r = prepare_cloudtrail_paths(
            std::slice::from_ref(dir),
            false,
            &PrepareOptions::default(),
            0,
            &mut w,
        )?;
        w.flush()?;
        anyhow::ensure!(r.failed.is_empty(), "prepare failed: {:?}", r.failed);
        let st = &r.stats;
        eprintln!(
            "    {} files ({} skipped: digests/Insights) → {} tuples from {} records; no tuple: {} AWS-internal, {} service host, {} IPv6, {} no principal, {} no IP",
            r.files,
            r.skipped.len(),
            st.tuples,
            st.records,
            st.aws_internal,
            st.service_host,
            st.ipv6,
            st.no_principal,
            st.missing_ip
        );
        Ok(csv)
    };
    let train_csv = prep(&history, a.out.join("train.csv"))?;
    let recent_csv = prep(&recent, a.out.join("recent.csv"))?;

    step(
        3,
        "training the embedded IP Insights model on the history (ipsight train)",
    );
    let read = |p: &PathBuf| -> anyhow::Result<ipsight_model::TrainingData> {
        Ok(read_training_data(BufReader::new(std::fs::File::open(p)?), Malformed::Fail)?.0)
    };
    let data = read(&train_csv)?;
    let mut hp = Hyperparameters::new((world.entities().len() as u64 * 4).max(64), 32);
    hp.epochs = 4;
    hp.mini_batch_size = 1000;
    hp.learning_rate = 0.01;
    hp.random_negative_sampling_rate = 5;
    let opts = TrainOptions {
        seed: a.seed,
        layout: IpEncoderLayout {
            prefix24_buckets: 8192,
            address_buckets: 8192,
        },
        ..TrainOptions::default()
    };
    let tt = Instant::now();
    let model = train(&hp, &opts, &data, None, &mut |_| {})?;
    let model_path = a.out.join("model.ipsm");
    model.save(&model_path)?;
    eprintln!(
        "    {} pairs, {} entities, trained in {:.1} s → {}",
        data.len(),
        world.entities().len(),
        tt.elapsed().as_secs_f64(),
        model_path.display()
    );

    step(
        4,
        "scoring the last 7 days, and the same principals from IP ranges they never use",
    );
    let recent_pairs: Vec<(String, std::net::Ipv4Addr)> = {
        let text = std::fs::read_to_string(&recent_csv)?;
        text.lines()
            .filter_map(|l| {
                ipsight_formats::tuples::split_tuple(l)
                    .and_then(|(e, ip)| Some((e.into_owned(), ip.parse().ok()?)))
            })
            .collect()
    };
    let attacks = world.anomalous_pairs(recent_pairs.len().min(20_000), a.seed ^ 0xa77ac);
    let ns = model.score_pairs(&recent_pairs);
    let an = model.score_pairs(&attacks);
    let auc = eval::auc(&ns, &an);
    let threshold = model.threshold_for_fpr(0.01);
    let m = eval::metrics_at(&ns, &an, threshold);
    println!();
    println!(
        "ipsight demo — {} principals, {} days of history, 7 recent days",
        world.entities().len(),
        train_days
    );
    println!("  recent normal activity scored : {}", ns.len());
    println!("  anomalous <principal, IP> pairs: {}", an.len());
    println!("  AUC (normal vs anomalous)      : {auc:.4}");
    println!(
        "  alert threshold (1% of known activity is less normal): dot_product < {threshold:.3} → recall {:.3}, false-positive rate on recent normal activity {:.4}",
        m.recall, m.false_positive_rate
    );
    let mut worst: Vec<(f32, &String, &std::net::Ipv4Addr)> = an
        .iter()
        .zip(&attacks)
        .map(|(s, (e, ip))| (*s, e, ip))
        .collect();
    worst.sort_by(|x, y| x.0.total_cmp(&y.0));
    println!("  most unusual pairs:");
    for (s, e, ip) in worst.iter().take(5) {
        println!(
            "    {e:<24} {ip:<16} dot_product {s:>8.3}  less normal than {:.2}% of known activity",
            100.0 - model.percentile(*s)
        );
    }
    println!(
        "  outputs in {} ; total {:.1} s",
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
