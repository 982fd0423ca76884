//! Benchmark writers: sizes, streaming shape, determinism.
use std::fs;
use std::io::Read;

use flate2::read::GzDecoder;
use ipsight_synth::{benchmark_config, write_benchmark_trail, write_large_object, World};
use serde_json::Value;

#[test]
fn large_object_reaches_target_and_parses() {
    let dir = std::env::temp_dir().join(format!("ipsight-synth-large-{}", std::process::id()));
    let target = 6 << 20;
    let gz = dir.join("big/object.json.gz");
    let sum = write_large_object(&gz, target, 11).unwrap();
    assert!(
        sum.uncompressed_bytes >= target && sum.uncompressed_bytes < target + 8192,
        "{sum:?}"
    );
    assert!(sum.compressed_bytes < sum.uncompressed_bytes / 3);
    let mut s = String::new();
    GzDecoder::new(fs::File::open(&gz).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s.len() as u64, sum.uncompressed_bytes);
    let v: Value = serde_json::from_str(&s).unwrap();
    let recs = v["Records"].as_array().unwrap();
    assert_eq!(recs.len() as u64, sum.records);
    assert_eq!(sum.records, sum.expected_tuples + sum.skipped.total());
    // Plain variant: same records, same bytes as the gzip's content.
    let plain = dir.join("object.json");
    let sum2 = write_large_object(&plain, target, 11).unwrap();
    assert_eq!(fs::read_to_string(&plain).unwrap(), s);
    assert_eq!(sum2.records, sum.records);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn benchmark_trail_is_sized_and_consistent() {
    let dir = std::env::temp_dir().join(format!("ipsight-synth-benchtrail-{}", std::process::id()));
    let sum = write_benchmark_trail(&dir, 1, 3).unwrap();
    let world = World::new(benchmark_config(1, 3));
    assert_eq!(world.config.days, 1);
    assert_eq!(sum.expected_tuples, world.normal_pairs(0..1).count() as u64);
    assert!(sum.log_files > 50, "{sum:?}");
    // The per-day size estimate used by benchmark_config stays within 2x of reality.
    let per_day = sum.uncompressed_bytes;
    assert!(per_day > 9 << 20 && per_day < 36 << 20, "{per_day}");
    fs::remove_dir_all(&dir).unwrap();
}
