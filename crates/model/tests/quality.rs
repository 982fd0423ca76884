//! Quality on the project's synthetic world (home/work/travel behaviour, like the SageMaker IP
//! Insights tutorial): train on the early days, test later days' real activity against the same
//! entities from random public IP addresses.
use std::time::Instant;

use ipsight_model::{eval, train, Hyperparameters, IpEncoderLayout, TrainOptions, TrainingData};
use ipsight_synth::{SynthConfig, World};

#[test]
fn later_days_score_above_random_ips() {
    let world = World::new(SynthConfig::new(11, 200, 21));
    let data: TrainingData = world.normal_pairs(0..14).collect();
    let normal: Vec<_> = world.normal_pairs(14..21).collect();
    let anomalous = world.anomalous_pairs(normal.len(), 5);

    let mut hp = Hyperparameters::new(4000, 32);
    hp.epochs = 4;
    hp.mini_batch_size = 1000;
    hp.learning_rate = 0.01;
    hp.random_negative_sampling_rate = 5;
    let opts = TrainOptions {
        seed: 3,
        layout: IpEncoderLayout {
            prefix24_buckets: 8192,
            address_buckets: 8192,
            ipv6_buckets: 4096,
        },
        ..TrainOptions::default()
    };
    let t = Instant::now();
    let model = train(&hp, &opts, &data, None, &mut |_| {}).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let ns = model.score_pairs(&normal);
    let an = model.score_pairs(&anomalous);
    let auc = eval::auc(&ns, &an);
    let disc = eval::discriminator_auc(&model, &normal, 9);
    let t01 = model.threshold_for_fpr(0.01);
    let m = eval::metrics_at(&ns, &an, t01);
    eprintln!(
        "quality: {} training pairs, trained in {secs:.1} s; later-days AUC {auc:.4}, discriminator_auc {disc:.4}; \
         at the 1%-of-training-activity threshold {t01:.3}: FPR on later days {:.4}, recall {:.4}, precision {:.4}",
        data.len(),
        m.false_positive_rate,
        m.recall,
        m.precision
    );
    // Calibration: most random-IP pairs are less normal than nearly all known activity.
    let low = an.iter().filter(|&&s| model.percentile(s) < 1.0).count() as f64 / an.len() as f64;
    eprintln!(
        "quality: {:.1}% of anomalous pairs fall below the 1st percentile of training activity",
        low * 100.0
    );
    assert!(low > 0.8, "{low}");
    // Measured well above these (see BENCHMARKS.md); the floors only catch real regressions.
    assert!(auc > 0.90, "AUC {auc}");
    assert!(disc > 0.90, "discriminator AUC {disc}");
}
