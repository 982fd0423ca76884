//! Training throughput with the SageMaker IP Insights tutorial's settings (vector_dim 128,
//! random_negative_sampling_rate 5, shuffled 1, mini_batch_size 1000, learning_rate 0.01,
//! num_entity_vectors 20000, 1 encoder layer) on ~2.1 M synthetic pairs.
//!
//! cargo run --release -p ipsight-model --example bench_train -- [pairs] [epochs] [threads]
use std::time::Instant;

use ipsight_model::{eval, train, Hyperparameters, TrainEvent, TrainOptions, TrainingData};
use ipsight_synth::{SynthConfig, World};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pairs: usize = args.get(1).map_or(2_100_000, |s| s.parse().expect("pairs"));
    let epochs: u32 = args.get(2).map_or(1, |s| s.parse().expect("epochs"));
    let threads: Option<usize> = args.get(3).map(|s| s.parse().expect("threads"));

    let t = Instant::now();
    // 30 events per user-day: 2,000 users × 40 days ≈ 2.2 M tuples before skips.
    let users = 2000;
    let days = (pairs / (users as usize * 25)).max(2) as u32 + 2;
    let world = World::new(SynthConfig::new(7, users, days));
    let mut data = TrainingData::new();
    let mut test = Vec::new();
    for (e, ip) in world.normal_pairs(0..days) {
        if data.len() < pairs {
            data.push(&e, ip);
        } else if test.len() < 100_000 {
            test.push((e, ip));
        } else {
            break;
        }
    }
    eprintln!(
        "generated {} training pairs in {:.1} s",
        data.len(),
        t.elapsed().as_secs_f64()
    );

    let mut hp = Hyperparameters::sagemaker_tutorial();
    hp.epochs = epochs;
    let opts = TrainOptions {
        threads,
        ..TrainOptions::default()
    };
    let t = Instant::now();
    let model = train(&hp, &opts, &data, None, &mut |ev| {
        if let TrainEvent::Epoch(e) = ev {
            println!(
                "epoch {}: {:.2} s, {:.0} pairs/s, mean loss {:.4}",
                e.epoch, e.seconds, e.pairs_per_sec, e.mean_loss
            );
        }
    })
    .expect("train");
    println!(
        "total train() incl. setup and calibration: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let anomalous = world.anomalous_pairs(test.len(), 1);
    let normal_scores = model.score_pairs(&test);
    let anomalous_scores = model.score_pairs(&anomalous);
    println!(
        "held-out AUC (later pairs vs same entities from random public IPs): {:.4}",
        eval::auc(&normal_scores, &anomalous_scores)
    );
    let path = std::env::temp_dir().join("ipsight-bench-model.bin");
    model.save(&path).expect("save");
    let size = std::fs::metadata(&path).unwrap().len();
    let t = Instant::now();
    let loaded = ipsight_model::Model::load(&path).expect("load");
    println!(
        "model file {:.1} MB, load {:.1} ms",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(loaded, model);
}
