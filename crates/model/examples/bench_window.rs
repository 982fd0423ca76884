//! Retrain cost against history length, simulated at the pair level (no CloudTrail is written).
//!
//!   cargo run --release -p ipsight-model --example bench_window -- DAY [TRAINING_DAYS] [EPOCHS] [PRINCIPALS]
//!
//! An organisation of PRINCIPALS (default 50,000: 84% people, 16% automation) making about 10 million
//! API calls a day is simulated day by day as per-day pair files (what the daily compaction writes:
//! one line per `<entity, ip>` used that day, with its count and first/last time). Address
//! stickiness follows the synthetic world's rules at organisation scale: a person keeps a home
//! address for 30–60 days, works from an office NAT pool shared by colleagues (1–4 addresses per
//! office) or through the corporate VPN's shared egress (16 addresses) on some days, travels now and
//! then (a hotel address per day); automation runs from 1–3 EC2 addresses that are replaced when
//! instances are (1 in 20 per day).
//!
//! On DAY, the retrain reads the last TRAINING_DAYS daily files (default 30) through the real
//! reader (`read_training_data`, one file at a time, each line weighted) and trains the embedded
//! model for EPOCHS (default 1; the scheduled retrain uses 10, which multiplies training time by
//! 10 and leaves memory unchanged) with num_entity_vectors = 2 × principals, vector_dim 128,
//! mini_batch_size 10,000. Printed: history size (all days up to DAY) next to what the window reads,
//! the read and training times, and the process's peak RSS (run one DAY per process).
use std::io::BufReader;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use ipsight_formats::pairs::{PairAggregate, PairHistory};
use ipsight_model::hashing::splitmix64;
use ipsight_model::{
    read_training_data, train, Hyperparameters, Malformed, TrainOptions, TrainingData,
};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A deterministic random number from a tuple of integers.
fn h(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x9e37_79b9_7f4a_7c15, |acc, &p| splitmix64(acc ^ p))
}

/// A uniform value in [0, 1).
fn unit(parts: &[u64]) -> f64 {
    (h(parts) >> 11) as f64 / (1u64 << 53) as f64
}

fn addr(parts: &[u64]) -> Ipv4Addr {
    // Public-looking unicast: first octet 11–222.
    let x = h(parts);
    Ipv4Addr::new(
        11 + (x % 212) as u8,
        (x >> 8) as u8,
        (x >> 16) as u8,
        1 + ((x >> 24) % 254) as u8,
    )
}

const OFFICES: u64 = 120;
const VPN_EGRESS: u64 = 16;

/// The pairs principal `p` produces on `day`: (ip, events).
fn principal_day(p: u64, people: u64, day: u64, out: &mut Vec<(Ipv4Addr, u64)>) {
    out.clear();
    if p >= people {
        // Automation: every day, ~900 calls over 1–3 addresses, each replaced with its instance.
        let n = 1 + h(&[p, 1]) % 3;
        let calls = 600 + h(&[p, day, 2]) % 600;
        for slot in 0..n {
            // Instances live 10–30 days (about 1 in 20 replaced a day), each with a new address.
            let life = 10 + h(&[p, slot, 3]) % 21;
            let gen = (day + h(&[p, slot, 21]) % life) / life;
            out.push((addr(&[p, slot, gen, 4]), calls / n + 1));
        }
        return;
    }
    let weekend = day % 7 >= 5;
    if unit(&[p, day, 5]) >= if weekend { 0.15 } else { 0.92 } {
        return;
    }
    let calls = 20 + h(&[p, day, 6]) % 110;
    // Trips: 40% travel, about one trip a month of 2–5 days, a hotel address each day.
    let traveller = unit(&[p, 7]) < 0.4;
    let month = day / 30;
    let trip_start = month * 30 + h(&[p, month, 8]) % 26;
    let trip_len = 2 + h(&[p, month, 9]) % 4;
    if traveller && day >= trip_start && day < trip_start + trip_len {
        out.push((addr(&[p, day, 10]), calls));
        return;
    }
    // Home: kept for a period of 30–60 days, then a new lease.
    let period = 30 + h(&[p, 11]) % 31;
    let home = addr(&[p, (day + h(&[p, 12]) % period) / period, 13]);
    let office = h(&[p, 14]) % OFFICES;
    let nat_pool = 1 + h(&[office, 15]) % 4;
    let r = unit(&[p, day, 16]);
    if !weekend && r < 0.55 {
        // Office day: the NAT pool's addresses, evenings from home.
        let nat = addr(&[office, h(&[p, day, 17]) % nat_pool, 18]);
        out.push((nat, calls * 3 / 4));
        out.push((home, calls / 4 + 1));
    } else if r < 0.75 {
        // Through the corporate VPN: one of its shared egress addresses.
        out.push((addr(&[h(&[p, day, 19]) % VPN_EGRESS, 20]), calls));
    } else {
        out.push((home, calls));
    }
}

fn stamp(day: u64, secs: u64) -> String {
    // 2026-01-01 + day, as CloudTrail's eventTime text (days of 28 per "month" keep this simple:
    // only the order and the day count matter to the retrain).
    let (m, d) = (1 + (day / 28) % 12, 1 + day % 28);
    let y = 2026 + day / 336;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let day: u64 = args.next().map_or(Ok(30), |a| a.parse())?;
    let window: u64 = args.next().map_or(Ok(30), |a| a.parse())?;
    let epochs: u32 = args.next().map_or(Ok(1), |a| a.parse())?;
    let principals: u64 = args.next().map_or(Ok(50_000), |a| a.parse())?;
    let people = principals * 84 / 100;
    let dir = tempfile::tempdir()?;

    // Every day of history, as the daily compaction would have written it; only the window's days
    // are kept on disk (lifecycle rules expire the rest).
    let started = Instant::now();
    let (mut all_lines, mut all_events, mut all_bytes) = (0u64, 0u64, 0u64);
    let (mut win_lines, mut win_events, mut win_bytes) = (0u64, 0u64, 0u64);
    let mut ips = Vec::new();
    for d in 0..day {
        let mut agg = PairAggregate::new();
        for p in 0..principals {
            principal_day(p, people, d, &mut ips);
            let entity = format!("AROA{p:017}");
            for &(ip, events) in &ips {
                let day_of_pair = PairHistory {
                    events,
                    first_seen: stamp(d, 7 * 3600 + h(&[p, d, 30]) % 7200),
                    last_seen: stamp(d, 15 * 3600 + h(&[p, d, 31]) % 7200),
                };
                agg.add(&entity, IpAddr::V4(ip), &day_of_pair);
            }
        }
        let in_window = d + window >= day;
        let mut bytes = Vec::new();
        let n = agg.write(&mut bytes)?;
        all_lines += agg.len() as u64;
        all_events += agg.events();
        all_bytes += n;
        if in_window {
            win_lines += agg.len() as u64;
            win_events += agg.events();
            win_bytes += n;
            std::fs::write(dir.path().join(format!("day-{d:04}.csv")), &bytes)?;
        }
    }
    eprintln!(
        "simulated {day} days of {principals} principals in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "history to day {day}: {all_events} events ({:.1} M/day), {all_lines} daily pair lines, {:.1} MB of pair files",
        all_events as f64 / day as f64 / 1e6,
        all_bytes as f64 / 1e6,
    );
    println!(
        "window of {window} days: {win_events} events, {win_lines} daily pair lines, {:.1} MB",
        win_bytes as f64 / 1e6
    );

    // The retrain: read the window's daily files one by one through the real reader.
    let t = Instant::now();
    let mut data = TrainingData::new();
    let mut files: Vec<_> = std::fs::read_dir(dir.path())?.collect::<Result<_, _>>()?;
    files.sort_by_key(|e| e.file_name());
    for f in files {
        let (d, _) = read_training_data(
            BufReader::new(std::fs::File::open(f.path())?),
            Malformed::Fail,
        )?;
        data.entity_hashes.extend(d.entity_hashes);
        data.ips.extend(d.ips);
    }
    let read_s = t.elapsed().as_secs_f64();
    println!(
        "read + weight: {:.1} s → {} samples ({:.0} MB in memory)",
        read_s,
        data.len(),
        data.len() as f64 * 12.0 / 1e6
    );

    let mut hp = Hyperparameters::new(principals * 2, 128);
    hp.epochs = epochs;
    hp.mini_batch_size = 10_000;
    let t = Instant::now();
    let model = train(&hp, &TrainOptions::default(), &data, None, &mut |_| {})?;
    let train_s = t.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "train: {epochs} epoch(s) in {train_s:.1} s on {threads} threads ({:.0} samples/s; 10 epochs ≈ {:.0} s), final loss {:.4}",
        data.len() as f64 * epochs as f64 / train_s,
        train_s / epochs as f64 * 10.0,
        model.training_info().final_loss
    );
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    Ok(())
}
