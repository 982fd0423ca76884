//! ipcheck with the baseline sidecar loaded (the hybrid detector: every record carries its
//! combined percentile, history, explanation and nearest prefixes): pairs per second through the
//! handler and the handler's peak RSS, for one tuple CSV of DISTINCT_PAIRS distinct pairs.
//!
//! ```text
//! cargo build --release -p ipcheck --example bench_sidecar
//! /usr/bin/time -v target/release/examples/bench_sidecar [DISTINCT_PAIRS] [ENTITIES]   # 1000000 200000
//! ALERT_MIN_PERCENTILE=90 target/release/examples/bench_sidecar                          # more alerts
//! ```
//! The model: 2,000 training entities, vector_dim 32 (as `bench`). The sidecar: ENTITIES principals,
//! each with a home /24 (2 addresses), an office /24 (2) and a travel address (as `bench_why` in
//! ipsight-model), calibrated on the known addresses of 20,000 of them. The input: DISTINCT_PAIRS /
//! ENTITIES pairs per principal (5 by default), four at its known addresses, the rest at addresses
//! it never used (their records carry the nearest known prefixes and the longest sentences, and
//! most of them alert: a bad day, 20% alert candidates, all held until the dedup window). Storage is local (DirStore), alerts go nowhere (NoAlerts): the figure is
//! parse + score + judge + write. Peak RSS is the process's high-water mark reset just before the
//! handler runs (`/proc/self/clear_refs`), so the model, the sidecar and the input file written by
//! the setup are counted only as far as the handler touches them.
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use ipcheck::alerts::NoAlerts;
use ipcheck::{handle, Config};
use ipsight_model::baseline::BaselineBuilder;
use ipsight_model::combine::{Combiner, Detector, FitInfo};
use ipsight_model::{
    train, Calibration, Hyperparameters, IpEncoderLayout, NewPrincipals, TrainOptions, TrainingData,
};
use ipsight_ports::{Baseline, DirStore, EmbeddedScorer};
use serde_json::json;

fn entity(e: usize) -> String {
    format!("AROA{:017X}", e as u64 * 0x9E37_79B9)
}

/// The principal's known addresses: home ×2, office ×2, travel.
fn known(e: usize) -> [Ipv4Addr; 5] {
    let h = (e as u32).wrapping_mul(2_654_435_761);
    let home = 0x0b00_0000 | ((h >> 8) & 0x00ff_ff00);
    let office = 0x2c00_0000 | ((h.rotate_left(11) >> 8) & 0x00ff_ff00);
    let travel = 0x5000_0000 | (h.rotate_left(19) >> 4);
    [home | 7, home | 9, office | 1, office | 2, travel].map(Ipv4Addr::from)
}

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let pairs: usize = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let entities: usize = args.next().map_or(200_000, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path());

    let t = Instant::now();
    let mut d = TrainingData::new();
    for e in 0..2000 {
        for ip in known(e) {
            for _ in 0..4 {
                d.push(&entity(e), ip);
            }
        }
    }
    let mut hp = Hyperparameters::new(10_000, 32);
    hp.epochs = 2;
    let opts = TrainOptions {
        layout: IpEncoderLayout {
            prefix24_buckets: 1 << 16,
            address_buckets: 1 << 16,
            ipv6_buckets: 1 << 13,
        },
        entity: Some("principal".into()),
        ..TrainOptions::default()
    };
    let model = Arc::new(train(&hp, &opts, &d, None, &mut |_| {}).unwrap());
    let mut b = BaselineBuilder::new();
    for e in 0..entities {
        for (k, ip) in known(e).into_iter().enumerate() {
            let events = [40, 3, 200, 50, 2][k];
            b.add(
                &entity(e),
                IpAddr::V4(ip),
                events,
                Some(20_400),
                Some(20_420),
            );
        }
    }
    let mut det = Detector {
        baseline: b.build(model.entity_definition()),
        combiner: Combiner::prior(0.0, 1.0),
        combined_calibration: Calibration::default(),
        combined_calibration_v6: None,
        embedding_calibration: Calibration::default(),
        fit: FitInfo {
            model_fingerprint: Some(model.fingerprint()),
            ..FitInfo::default()
        },
    };
    // Calibrated, as training does, on normal activity: the known addresses of 20,000 principals.
    let (mut z, mut dots) = (Vec::new(), Vec::new());
    for e in 0..entities.min(20_000) {
        for ip in known(e) {
            let ip = IpAddr::V4(ip);
            let dot = ipsight_model::hybrid::model_dot(&model, &entity(e), ip).unwrap();
            z.push(
                det.combiner
                    .score(dot, &det.baseline.lookup(&entity(e), ip)) as f32,
            );
            dots.push(dot);
        }
    }
    let n = z.len() as u64;
    det.combined_calibration = Calibration::conservative(&mut z, n);
    det.embedding_calibration = Calibration::conservative(&mut dots, n);
    let scorer = EmbeddedScorer::new(model.clone())
        .with_baseline(Baseline::new(
            Arc::new(det),
            NewPrincipals::Alert,
            "bench sidecar",
        ))
        .unwrap();

    // The input: per principal, its own addresses and addresses it never used, alternating.
    let in_dir = dir.path().join("input");
    std::fs::create_dir_all(&in_dir).unwrap();
    let mut csv =
        std::io::BufWriter::new(std::fs::File::create(in_dir.join("tuples.csv")).unwrap());
    let per = pairs.div_ceil(entities);
    let mut written = 0;
    'outer: for e in 0..entities {
        let own = known(e);
        for k in 0..per {
            if written == pairs {
                break 'outer;
            }
            // Four known addresses, then addresses the principal never used.
            let ip = match own.get(k) {
                Some(&ip) if k < 4 => ip,
                _ => Ipv4Addr::from(0x6000_0000 | ((e as u32) << 4) ^ (k as u32 * 0x0101_0101)),
            };
            writeln!(csv, "{},{ip}", entity(e)).unwrap();
            written += 1;
        }
    }
    csv.flush().unwrap();
    drop(csv);
    eprintln!(
        "setup: model, sidecar of {entities} principals, {written} pairs in {:.1} s; RSS {}",
        t.elapsed().as_secs_f64(),
        status("VmRSS:")
    );

    // ALERT_MIN_PERCENTILE from the environment (default 99.5): a lower one makes more alert
    // candidates, which the handler keeps in memory until the dedup window has run.
    let min = std::env::var("ALERT_MIN_PERCENTILE").unwrap_or_else(|_| "99.5".into());
    let cfg = Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some("output".into()),
        "ALERT_MIN_PERCENTILE" => Some(min.clone()),
        _ => None,
    })
    .unwrap();
    let ev = json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
        "s3":{"bucket":{"name":"input"},"object":{"key":"tuples.csv"}}}]});
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status("VmHWM:");
    let t = Instant::now();
    let out = handle(&cfg, &store, &scorer, &NoAlerts, ev).await.unwrap();
    let s = t.elapsed().as_secs_f64();
    assert_eq!(out["pairs"], written, "{out}");
    let scores = dir.path().join("output/scores/tuples.csv.jsonl");
    let bytes = std::fs::metadata(&scores).map_or(0, |m| m.len());
    println!("| distinct pairs | sidecar principals | handler wall | pairs/s | alerts | scores object | peak RSS before → during the handler |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {written} | {entities} | {s:.2} s | {:.0} | {} | {:.0} MB | {before} → {} |",
        written as f64 / s,
        out["alerts"],
        bytes as f64 / 1e6,
        status("VmHWM:")
    );
}
