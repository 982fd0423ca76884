//! The cost of the "why" the scorer port puts on every result (ipcheck's records and alerts, fuse's
//! rows): `Detector::judge` (the combined score alone) against `Detector::report` (judge + the
//! sentence + the nearest known prefixes), on the same pairs, one thread, measured per CPU-second of
//! the thread (the machine is shared); and the bytes of explanation a result carries.
//!
//! Batched beside per pair: `judge_many` and `report_many` (history lookups of 16 pairs prefetched
//! together), and `report_all` (what `ipsight score --output ipsight` and the scorer port —
//! ipcheck, fuse — call: `report_many` on the rayon pool, wall-clock). "report, before" is the path
//! the port and the CLI took until 2026-12-06: judge, the sentence (which looked the nearest
//! prefixes up) and the nearest prefixes looked up a second time, pair by pair.
//!
//! ```text
//! cargo build --release -p ipsight-model --example bench_why
//! ./target/release/examples/bench_why [entities] [pairs]      # default 100000 200000
//! ```
//! Baseline as `bench_baseline`: per entity a home /24 (2 addresses), an office /24 (2), a travel
//! address, with first/last seen days. Pairs: half the entity's office address, half random addresses.
use std::net::{IpAddr, Ipv4Addr};

use ipsight_model::baseline::BaselineBuilder;
use ipsight_model::combine::{Combiner, Detector, FitInfo};
use ipsight_model::{Calibration, NewPrincipals};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let n = args.next().unwrap_or(100_000);
    let m = args.next().unwrap_or(200_000);
    let mut rng = SmallRng::seed_from_u64(n as u64);
    let mut b = BaselineBuilder::new();
    let mut known: Vec<(String, IpAddr)> = Vec::with_capacity(n);
    for i in 0..n {
        let entity = format!("AROA{:017X}", i as u64 * 0x9E37_79B9);
        let home: u32 = rng.random::<u32>() & 0xffff_ff00;
        let office: u32 = rng.random::<u32>() & 0xffff_ff00;
        let travel: u32 = rng.random();
        let day0 = 20_400 + rng.random_range(0..30);
        for (ip, events) in [
            (home | 7, 40),
            (home | 9, 3),
            (office | 1, 200),
            (office | 2, 50),
            (travel, 2),
        ] {
            let last = day0 + rng.random_range(0..60);
            b.add(
                &entity,
                IpAddr::V4(Ipv4Addr::from(ip)),
                events,
                Some(day0),
                Some(last),
            );
        }
        known.push((entity, IpAddr::V4(Ipv4Addr::from(office | 1))));
    }
    let mut z: Vec<f32> = (0..10_000).map(|i| i as f32 / 1000.0 - 5.0).collect();
    let det = Detector {
        baseline: b.build("principal"),
        combiner: Combiner::prior(0.0, 1.0),
        combined_calibration: Calibration::from_scores(&mut z.clone()),
        combined_calibration_v6: None,
        embedding_calibration: Calibration::from_scores(&mut z),
        fit: FitInfo::default(),
    };
    let pairs: Vec<(&str, IpAddr, f32)> = (0..m)
        .map(|i| {
            let (e, ip) = &known[rng.random_range(0..n)];
            let ip = if i % 2 == 0 {
                *ip
            } else {
                IpAddr::V4(Ipv4Addr::from(rng.random::<u32>()))
            };
            (e.as_str(), ip, rng.random::<f32>() * 4.0 - 2.0)
        })
        .collect();
    let cpu = thread_cpu_seconds();
    let mut acc = 0.0;
    for (e, ip, dot) in &pairs {
        acc += det
            .judge(e, *ip, *dot, NewPrincipals::Alert)
            .unusual_percentile;
    }
    let judge = thread_cpu_seconds() - cpu;
    std::hint::black_box(acc);
    let cpu = thread_cpu_seconds();
    let (mut bytes, mut nearest) = (0usize, 0usize);
    for (e, ip, dot) in &pairs {
        let r = det.report(e, *ip, *dot, NewPrincipals::Alert);
        bytes += r.explanation.len();
        nearest += r.nearest.len();
    }
    let report = thread_cpu_seconds() - cpu;
    let cpu = thread_cpu_seconds();
    let mut check = 0usize;
    for (e, ip, dot) in &pairs {
        let v = det.judge(e, *ip, *dot, NewPrincipals::Alert);
        check += det.explain(e, *ip, &v).len();
        if v.history != ipsight_model::History::Ip {
            check += det.baseline.nearest(e, *ip, 3).len();
        }
    }
    let before = thread_cpu_seconds() - cpu;
    std::hint::black_box(check);
    let tuples: Vec<(&str, IpAddr)> = pairs.iter().map(|(e, ip, _)| (*e, *ip)).collect();
    let dots: Vec<f32> = pairs.iter().map(|p| p.2).collect();
    let cpu = thread_cpu_seconds();
    let many = det.judge_many(&tuples, &dots, NewPrincipals::Alert);
    let judge_many = thread_cpu_seconds() - cpu;
    std::hint::black_box(&many);
    let cpu = thread_cpu_seconds();
    let reports = det.report_many(&tuples, &dots, NewPrincipals::Alert);
    let report_many = thread_cpu_seconds() - cpu;
    assert_eq!(
        reports.iter().map(|r| r.explanation.len()).sum::<usize>(),
        bytes,
        "report_many writes the same results"
    );
    drop(reports);
    let wall = std::time::Instant::now();
    let all = det.report_all(&tuples, &dots, NewPrincipals::Alert);
    let report_all = wall.elapsed().as_secs_f64();
    assert_eq!(all.len(), m);
    drop(all);
    println!("| entities | pairs | `judge` per CPU-second | `judge_many` | report, before (per pair, nearest twice) | `report` (per pair) | `report_many` | `report_all`, wall, {} threads | explanation bytes per pair (mean) | nearest prefixes per pair (mean) |", rayon::current_num_threads());
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {n} | {m} | {:.2} M | {:.2} M | {:.3} M | {:.3} M | {:.3} M | {:.3} M/s | {:.0} | {:.2} |",
        m as f64 / judge / 1e6,
        m as f64 / judge_many / 1e6,
        m as f64 / before / 1e6,
        m as f64 / report / 1e6,
        m as f64 / report_many / 1e6,
        m as f64 / report_all / 1e6,
        bytes as f64 / m as f64,
        nearest as f64 / m as f64
    );
}

/// CPU time of the calling thread (user + system), from /proc (as `bench_baseline`).
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
