//! Scoring throughput of the embedded model with the tutorial's shapes (vector_dim 128,
//! num_entity_vectors 20000, 1 encoder layer), plus model-file load time and the wire path.
//!
//! cargo run --release -p ipsight-model --example bench_score -- [pairs]
use std::time::Instant;

use ipsight_model::{train, wire, Hyperparameters, Model, TrainOptions, TrainingData};
use ipsight_synth::{SynthConfig, World};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |s| s.parse().expect("pairs"));
    let world = World::new(SynthConfig::new(7, 2000, 30));
    let normal: Vec<_> = world.normal_pairs(0..30).take(n).collect();
    let anomalous = world.anomalous_pairs(n, 1);
    // Half real activity (repeated entities and IPs, as in production), half random IPs (cache-cold rows).
    let pairs: Vec<_> = normal.into_iter().chain(anomalous).collect();
    let train_data: TrainingData = pairs
        .iter()
        .take(200_000)
        .map(|(e, ip)| (e.as_str(), *ip))
        .collect();
    let mut hp = Hyperparameters::sagemaker_tutorial();
    hp.epochs = 1;
    let model = train(
        &hp,
        &TrainOptions::default(),
        &train_data,
        None,
        &mut |_| {},
    )
    .unwrap();

    let path = std::env::temp_dir().join("ipsight-bench-score-model.bin");
    model.save(&path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let m = Model::load(&path).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(m.dim(), 128);
    }
    println!(
        "model file {:.1} MB: load best of 5 {:.1} ms (page cache warm)",
        size as f64 / 1e6,
        best * 1e3
    );

    // One core: a plain loop over Model::score.
    let mut sink = 0.0f32;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for (e, ip) in &pairs {
            sink += model.score(e, *ip);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "Model::score, 1 thread: {} pairs in {:.3} s = {:.2} M pairs/s (checksum {sink:.1})",
        pairs.len(),
        best,
        pairs.len() as f64 / best / 1e6
    );
    // All cores: Model::score_pairs (rayon).
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let s = model.score_pairs(&pairs);
        best = best.min(t.elapsed().as_secs_f64());
        assert_eq!(s.len(), pairs.len());
    }
    println!(
        "Model::score_pairs, {} threads: {:.2} M pairs/s",
        rayon::current_num_threads(),
        pairs.len() as f64 / best / 1e6
    );
    // The wire path: CSV request body → JSON response body (what `ipsight score` and serve do).
    let body: String = pairs.iter().map(|(e, ip)| format!("{e},{ip}\n")).collect();
    let t = Instant::now();
    let out = wire::invoke(&model, body.as_bytes(), "text/csv", "application/json").unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "wire::invoke text/csv → application/json: {:.1} MB in, {:.1} MB out, {:.2} M pairs/s",
        body.len() as f64 / 1e6,
        out.len() as f64 / 1e6,
        pairs.len() as f64 / secs / 1e6
    );
}
