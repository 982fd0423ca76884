//! Baseline sidecar size and load time at 10k, 100k and 1M entities, and the combined score's
//! throughput on one core.
//!
//! ```text
//! cargo build --release -p ipsight-model --examples
//! ./target/release/examples/bench_baseline            # [entities...], default 10000 100000 1000000
//! ```
//! Each entity gets a home /24 (2 addresses), an office /24 (2 addresses shared by nobody else) and a
//! travel address: 5 addresses, 3 /24s, up to 3 /16s — 11 entries on average, with first/last seen days.
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use ipsight_model::baseline::BaselineBuilder;
use ipsight_model::combine::{Combiner, Detector, FitInfo};
use ipsight_model::{Calibration, NewPrincipals};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("entity counts"))
        .collect();
    let sizes = if args.is_empty() {
        vec![10_000, 100_000, 1_000_000]
    } else {
        args
    };
    let dir = tempfile::tempdir().unwrap();
    println!("| entities | entries | file size | build | save | load (best of 5) | combined score, 1 thread, `judge` per pair: wall clock (per CPU-second of the thread) | `judge_many` (prefetched batches of 16), same pairs |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let mut rng = SmallRng::seed_from_u64(n as u64);
        let mut b = BaselineBuilder::new();
        let mut known: Vec<(String, IpAddr)> = Vec::with_capacity(n);
        let t = Instant::now();
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
        let baseline = b.build("principal");
        let build = t.elapsed().as_secs_f64();
        let mut z: Vec<f32> = (0..10_000).map(|i| i as f32 / 1000.0 - 5.0).collect();
        let det = Detector {
            baseline,
            combiner: Combiner::prior(0.0, 1.0),
            combined_calibration: Calibration::from_scores(&mut z.clone()),
            combined_calibration_v6: None,
            embedding_calibration: Calibration::from_scores(&mut z),
            fit: FitInfo::default(),
        };
        let path = dir.path().join(format!("b{n}.ipsb"));
        let t = Instant::now();
        det.save(&path).unwrap();
        let save = t.elapsed().as_secs_f64();
        let size = std::fs::metadata(&path).unwrap().len();
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            let loaded = Detector::load(&path).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
            assert_eq!(loaded.baseline.entities(), n);
        }
        // Half the pairs known addresses, half random ones of known entities (cache-cold lookups).
        let pairs: Vec<(&str, IpAddr, f32)> = (0..2_000_000)
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
        let t = Instant::now();
        let cpu = thread_cpu_seconds();
        let mut acc = 0.0;
        for (e, ip, dot) in &pairs {
            acc += det
                .judge(e, *ip, *dot, NewPrincipals::Alert)
                .unusual_percentile;
        }
        let secs = t.elapsed().as_secs_f64();
        let cpu = thread_cpu_seconds() - cpu;
        std::hint::black_box(acc);
        // The same pairs through judge_many (history lookups prefetched 16 at a time), same thread.
        let batch: Vec<(&str, IpAddr)> = pairs.iter().map(|(e, ip, _)| (*e, *ip)).collect();
        let dots: Vec<f32> = pairs.iter().map(|p| p.2).collect();
        let t = Instant::now();
        let cpu_b = thread_cpu_seconds();
        let mut acc_b = 0.0;
        for (chunk, ds) in batch.chunks(4096).zip(dots.chunks(4096)) {
            for v in det.judge_many(chunk, ds, NewPrincipals::Alert) {
                acc_b += v.unusual_percentile;
            }
        }
        let secs_b = t.elapsed().as_secs_f64();
        let cpu_b = thread_cpu_seconds() - cpu_b;
        assert_eq!(acc, acc_b, "judge_many gives judge's verdicts");
        println!(
            "| {n} | {} | {:.1} MB | {:.2} s | {:.3} s | {:.1} ms | {:.2} M pairs/s ({:.2} M per CPU-second) | {:.2} M pairs/s ({:.2} M per CPU-second) |",
            det.baseline.entries(),
            size as f64 / 1e6,
            build,
            save,
            best * 1000.0,
            pairs.len() as f64 / secs / 1e6,
            pairs.len() as f64 / cpu / 1e6,
            pairs.len() as f64 / secs_b / 1e6,
            pairs.len() as f64 / cpu_b / 1e6
        );
    }
}

/// CPU time of the calling thread (user + system), from /proc: on a shared machine the wall clock
/// counts other processes' time slices, the thread's CPU time does not.
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the ')' (state is 0).
    (ticks(11) + ticks(12)) / 100.0
}
