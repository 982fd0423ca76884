//! Throughput of the OCSF JSON reader on the same events laid out as JSON lines and as one
//! pretty-printed JSON document (an array), gzip or plain, single thread:
//!
//! ```text
//! cargo run --release -p ipsight-formats --example bench_ocsf_json -- [events] [runs]
//! ```
//! Events are the 1.1 CloudTrail translations of `tests/fixtures/ocsf/v1_1.json`, cycled with distinct
//! source addresses. Best of `runs` (default 3); the pairs of every layout are checked equal.
use std::io::Write;
use std::time::Instant;

use ipsight_formats::ocsf::{read_json, JsonLimits, OcsfMapping};
use serde_json::Value;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ocsf/v1_1.json");
    let base: Vec<Value> = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    let events: Vec<Value> = (0..n)
        .map(|i| {
            let mut e = base[i % base.len()].clone();
            if e["src_endpoint"]["ip"].is_string() {
                e["src_endpoint"]["ip"] =
                    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255).into();
            }
            e
        })
        .collect();
    let lines: Vec<u8> = events
        .iter()
        .flat_map(|e| format!("{e}\n").into_bytes())
        .collect();
    let pretty = serde_json::to_vec_pretty(&events).unwrap();
    let gz = |b: &[u8]| {
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        g.write_all(b).unwrap();
        g.finish().unwrap()
    };
    let m = OcsfMapping::default();
    let limits = JsonLimits::default();
    let mut want = None;
    println!("{n} events, best of {runs} runs, one thread");
    println!("| layout | input MB | uncompressed MB | seconds | uncompressed MB/s | events/s |");
    println!("|---|---|---|---|---|---|");
    for (name, input, raw) in [
        ("JSON lines", lines.clone(), lines.len()),
        ("pretty JSON document", pretty.clone(), pretty.len()),
        ("JSON lines, gzip", gz(&lines), lines.len()),
        ("pretty JSON document, gzip", gz(&pretty), pretty.len()),
    ] {
        let mut best = f64::MAX;
        for _ in 0..runs {
            let mut pairs = 0u64;
            let t = Instant::now();
            let st = read_json(&input[..], &m, &limits, |_| pairs += 1).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
            assert_eq!(st.events, n as u64);
            assert_eq!(*want.get_or_insert(pairs), pairs, "{name}");
        }
        println!(
            "| {name} | {:.1} | {:.1} | {:.3} | {:.0} | {:.0} |",
            input.len() as f64 / 1e6,
            raw as f64 / 1e6,
            best,
            raw as f64 / 1e6 / best,
            n as f64 / best
        );
    }
}
