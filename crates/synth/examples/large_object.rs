//! Write one huge CloudTrail object: `cargo run --release -p ipsight-synth --example large_object -- <path[.gz]> <MiB> [seed]`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = std::path::PathBuf::from(
        args.get(1)
            .expect("usage: large_object <path> <MiB> [seed]"),
    );
    let mib: u64 = args.get(2).map_or(1024, |s| s.parse().expect("MiB"));
    let seed: u64 = args.get(3).map_or(42, |s| s.parse().expect("seed"));
    let t = std::time::Instant::now();
    let sum = ipsight_synth::write_large_object(&path, mib << 20, seed).expect("write");
    eprintln!(
        "{} records, {} tuples, {} MiB JSON, {} MiB on disk, {:?}",
        sum.records,
        sum.expected_tuples,
        sum.uncompressed_bytes >> 20,
        sum.compressed_bytes >> 20,
        t.elapsed()
    );
}
