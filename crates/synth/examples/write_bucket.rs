//! Write a synthetic CloudTrail bucket: `cargo run -p ipsight-synth --example write_bucket -- <dir> [users] [days] [seed]`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(
        args.get(1)
            .expect("usage: write_bucket <dir> [users] [days] [seed]"),
    );
    let num = |i: usize, d: u64| args.get(i).map_or(d, |s| s.parse().expect("a number"));
    let cfg = ipsight_synth::SynthConfig::new(num(4, 42), num(2, 40) as u32, num(3, 14) as u32);
    let world = ipsight_synth::World::new(cfg);
    let t = std::time::Instant::now();
    let sum = ipsight_synth::write_cloudtrail(&world, &dir, &Default::default()).expect("write");
    eprintln!(
        "{} files, {} records, {} tuples, skipped {:?}, {} MB uncompressed, {} MB gz, {:?}",
        sum.log_files,
        sum.records,
        sum.expected_tuples,
        sum.skipped,
        sum.uncompressed_bytes >> 20,
        sum.compressed_bytes >> 20,
        t.elapsed()
    );
}
