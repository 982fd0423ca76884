//! The scheduled retrain in its Lambda configuration (the template's default hyperparameters,
//! training on all cores) on a synthetic organisation, through the same `run` the Lambda calls, with
//! a directory as the object store — once on the preparer's tuple CSVs (one object a day) and once
//! on its pair files (one a day, the rolling window), side by side on the same world. Prints each
//! run's time, the candidate's AUC (combined and embedding alone, on its own held-back days), and
//! the process's peak RSS after each.
//!
//!   cargo run --release -p scheduled-retrain --example bench_retrain -- [USERS] [DAYS] [tuples|pairs|both]
//!
//! (default 1,380 principals over 30 days of synthetic activity: about 1.1 M tuples, as
//! `ipsight synth pairs --seed 8 --users 1380 --days 30`; both inputs).
use std::net::IpAddr;
use std::time::Instant;

use ipsight_formats::pairs::{PairAggregate, PairHistory};
use ipsight_ports::DirStore;
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
    let which = args.next().unwrap_or_else(|| "both".into());
    let world = World::new(SynthConfig::new(8, users, days));
    for kind in ["tuples", "pairs"] {
        if which != "both" && which != kind {
            continue;
        }
        let dir = tempfile::tempdir()?;
        let b = dir.path().join("data");
        let started = Instant::now();
        let (mut records, mut bytes) = (0usize, 0usize);
        for day in 0..days {
            let body = if kind == "tuples" {
                let mut csv = String::new();
                for (e, ip) in world.normal_pairs(day..day + 1) {
                    csv.push_str(&format!("{e},{ip}\n"));
                    records += 1;
                }
                csv.into_bytes()
            } else {
                let mut agg = PairAggregate::new();
                for ((e, ip), (events, first, last)) in world.expected_pair_history(day..day + 1) {
                    let h = PairHistory {
                        events,
                        first_seen: ipsight_core::time::rfc3339(first),
                        last_seen: ipsight_core::time::rfc3339(last),
                    };
                    agg.add(&e, IpAddr::V4(ip), &h);
                    records += 1;
                }
                let mut body = Vec::new();
                agg.write(&mut body)?;
                body
            };
            bytes += body.len();
            let path = if kind == "tuples" {
                b.join(format!("train/cloudtrail/day-{day:03}.csv"))
            } else {
                let date = ipsight_core::time::date(world.day_start(day));
                b.join(format!("pairs/objects/dt={date}/day.csv"))
            };
            std::fs::create_dir_all(path.parent().expect("a file"))?;
            std::fs::write(path, body)?;
        }
        eprintln!(
            "{kind}: wrote {records} lines of {users} principals in {days} daily objects ({:.1} MB) in {:.1} s",
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        let days_text = days.to_string();
        let cfg = scheduled_retrain::Config::from_vars(
            |k| match k {
                "TRAINING_URI" if kind == "tuples" => Some("s3://data/train/".into()),
                "PAIRS_URI" if kind == "pairs" => Some("s3://data/pairs/objects/".into()),
                "TRAINING_DAYS" => Some(days_text.clone()),
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
        // The day after the world's last day: the whole world is in the window and complete.
        let now_ms = world.day_start(days) * 1000;
        let started = Instant::now();
        let out = scheduled_retrain::run(&cfg, &store, None, now_ms, dir.path()).await?;
        let secs = started.elapsed().as_secs_f64();
        let r = &out["report"];
        println!(
            "retrain on {kind}: {} training observations ({} embedding, {} combiner), {} held-back pairs; \
             training {:.1} s; whole run {:.1} s; candidate AUC {:.4} combined, {:.4} embedding alone; \
             1% budget flags {:.2}% of held-back days; {}; peak RSS so far {:.0} MiB; threads {}",
            r["training_pairs"],
            r["embedding_pairs"],
            r["combiner_pairs"],
            r["holdout_pairs"],
            r["train_seconds"].as_f64().unwrap_or(f64::NAN),
            secs,
            r["candidate"]["auc"].as_f64().unwrap_or(f64::NAN),
            r["candidate"]["embedding_auc"].as_f64().unwrap_or(f64::NAN),
            100.0 * r["candidate"]["holdout_flagged_at_1pct"].as_f64().unwrap_or(f64::NAN),
            out["action"],
            peak_rss_mib(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        );
    }
    Ok(())
}
