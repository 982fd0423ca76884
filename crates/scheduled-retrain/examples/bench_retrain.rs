//! The scheduled retrain in its Lambda configuration (the template's default hyperparameters,
//! training on all cores) on N synthetic pairs, through the same `run` the Lambda calls, with a
//! directory as the object store. Prints the run's time and the process's peak RSS.
//!
//!   cargo run --release -p scheduled-retrain --example bench_retrain -- [USERS] [DAYS]
//!
//! (default 1,380 principals over 30 days of synthetic activity: about 1.1 M pairs, one object a
//! day, as `ipsight synth pairs --seed 8 --users 1380 --days 30`).
use std::time::Instant;

use ipsight_aws::DirStore;
use ipsight_synth::{SynthConfig, World};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let users: u32 = args.next().map_or(Ok(1_380), |a| a.parse())?;
    let days: u32 = args.next().map_or(Ok(30), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let train = dir.path().join("data/train/cloudtrail");
    std::fs::create_dir_all(&train)?;
    // One object a day, as the preparer writes them (many per day in reality; the split is by age).
    let world = World::new(SynthConfig::new(8, users, days));
    let (mut pairs, mut bytes) = (0usize, 0usize);
    let started = Instant::now();
    for day in 0..days {
        let mut csv = String::new();
        for (e, ip) in world.normal_pairs(day..day + 1) {
            csv.push_str(&format!("{e},{ip}\n"));
            pairs += 1;
        }
        bytes += csv.len();
        std::fs::write(train.join(format!("day-{day:03}.csv")), csv)?;
    }
    eprintln!(
        "wrote {pairs} pairs of {users} principals in {days} daily objects ({:.1} MB) in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let cfg = scheduled_retrain::Config::from_vars(
        |k| match k {
            "TRAINING_URI" => Some("s3://data/train/".into()),
            "MODEL_URI" => Some("s3://data/models/current/model.ipsm".into()),
            // template.yaml's RetrainHyperparameters default.
            "HYPERPARAMETERS" => {
                Some(r#"{"num_entity_vectors": 20000, "vector_dim": 128, "epochs": 10}"#.into())
            }
            "MAX_EMBEDDED_TRAINING_BYTES" => Some(u64::MAX.to_string()),
            _ => None,
        },
        None,
    )?;
    let store = DirStore::new(dir.path());
    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let out = scheduled_retrain::run(&cfg, &store, None, 1_768_953_600_000, dir.path()).await?;
    let secs = started.elapsed().as_secs_f64();
    let r = &out["report"];
    println!(
        "retrain: {} training pairs ({} objects), {} held-back pairs; training {:.1} s; whole run {:.1} s; \
         candidate AUC {:.4}; {}; peak RSS {:.0} MiB (before the run {:.0} MiB); threads {}",
        r["training_pairs"],
        out["training_objects"],
        r["holdout_pairs"],
        r["train_seconds"].as_f64().unwrap_or(f64::NAN),
        secs,
        r["candidate"]["auc"].as_f64().unwrap_or(f64::NAN),
        out["action"],
        peak_rss_mib(),
        rss_before,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    Ok(())
}
