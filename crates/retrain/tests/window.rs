//! The retrain over a directory store (what `ipsight retrain --data DIR` runs, and the Lambda over
//! S3): the rolling window of per-object pair files by day, the daily compaction (written once per
//! complete day, idempotent, read instead of the day's objects afterwards), the hybrid candidate
//! promoted with its sidecar, a damaged pair file skipped and named, days outside the window left
//! out; and the explicit-files form with the same promotion.
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ipsight_core::labels::LabelSet;
use ipsight_formats::pairs::{PairAggregate, PairHistory};
use ipsight_model::{Detector, Hyperparameters, Model};
use ipsight_ports::{DirStore, ObjectRef};
use ipsight_retrain::run::{NoTrainingJobs, PairsSource};
use ipsight_retrain::{retrain_files, RetrainFiles, RetrainOptions, Settings};
use ipsight_synth::{SynthConfig, World};
use serde_json::Value;

fn hyper() -> Hyperparameters {
    let mut hp = Hyperparameters::new(2000, 16);
    hp.epochs = 4;
    hp.mini_batch_size = 1000;
    hp.learning_rate = 0.01;
    hp
}

/// Day `d` of the world as the preparer writes it: two objects (one per half of the principals),
/// each a pair file of its records with their times.
fn write_day(bucket_dir: &Path, world: &World, d: u32) -> usize {
    let hist = world.expected_pair_history(d..d + 1);
    let date = ipsight_core::time::date(world.day_start(d));
    let mut halves = [PairAggregate::new(), PairAggregate::new()];
    for ((e, ip), (events, first, last)) in &hist {
        let h = PairHistory {
            events: *events,
            first_seen: ipsight_core::time::rfc3339(*first),
            last_seen: ipsight_core::time::rfc3339(*last),
        };
        halves[e.len() % 2].add(e, IpAddr::V4(*ip), &h);
    }
    for (i, agg) in halves.iter().enumerate() {
        let dir = bucket_dir.join(format!("pairs/objects/dt={date}/AWSLogs"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut body = Vec::new();
        agg.write(&mut body).unwrap();
        std::fs::write(dir.join(format!("obj{i}.json.gz.csv")), body).unwrap();
    }
    hist.len()
}

fn settings(bucket: &str, days: u32) -> Settings {
    Settings {
        tuples: Some((bucket.into(), "train/".into())),
        pairs: Some(PairsSource {
            bucket: bucket.into(),
            objects_prefix: "pairs/objects/".into(),
            daily_prefix: "pairs/daily/".into(),
            days,
        }),
        model: ObjectRef::new(bucket, "models/current/model.ipsm"),
        labels: None,
        holdout_fraction: 0.15,
        max_embedded_bytes: u64::MAX,
        hyper: hyper(),
        hyper_pairs: Vec::new(),
        false_positive_repeat: 20,
        auc_tolerance: 0.005,
        alert_min_percentile: 99.5,
        threads: Some(1),
        sagemaker: None,
        entity: Default::default(),
        function: "test",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_window_compacts_trains_the_hybrid_and_promotes_model_and_sidecar() {
    let world = World::new(SynthConfig::new(7, 40, 12));
    let root = tempfile::tempdir().unwrap();
    let bucket = "data";
    let b = root.path().join(bucket);
    let mut lines = 0;
    for d in 0..12 {
        lines += write_day(&b, &world, d);
    }
    // A damaged pair file (truncated mid-line) on day 5: skipped, named, the rest trains.
    let d5 = ipsight_core::time::date(world.day_start(5));
    std::fs::write(
        b.join(format!("pairs/objects/dt={d5}/AWSLogs/damaged.csv")),
        "entity,ip,events,first_seen,last_seen\nAIDA,1.2.3.4,notanumber,,\n",
    )
    .unwrap();
    let store = DirStore::new(root.path());
    // "Today" is day 11 of the world: a 10-day window is days 2..=11; 0 and 1 are outside it.
    let now_ms = world.day_start(11) * 1000 + 3_600_000;
    let s = settings(bucket, 10);
    let work = tempfile::tempdir().unwrap();

    let out = ipsight_retrain::run(&s, &store, &NoTrainingJobs, now_ms, work.path())
        .await
        .unwrap();
    assert_eq!(out["action"], "promoted", "{out:#}");
    let src = &out["source"];
    assert_eq!(src["kind"], "pairs");
    assert_eq!(
        src["window"],
        serde_json::json!([
            ipsight_core::time::date(world.day_start(2)),
            ipsight_core::time::date(world.day_start(11))
        ])
    );
    // Days 0 and 1: two objects each, outside the window.
    assert_eq!(src["outside_window_objects"], 4, "{src:#}");
    let n_train = src["training_days"].as_array().unwrap().len();
    let n_hold = src["holdout_days"].as_array().unwrap().len();
    assert_eq!(n_train + n_hold, 10, "{src:#}");
    assert!(n_hold >= 1 && n_train >= 6, "{src:#}");
    let read = &out["read"];
    let damaged = read["damaged_objects"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{read:#}");
    assert!(
        damaged[0].as_str().unwrap().contains("damaged.csv")
            && damaged[0].as_str().unwrap().contains("line 2"),
        "{damaged:?}"
    );
    // Every complete day compacted (today, day 11, is still being written), except day 5 whose
    // damaged file would otherwise vanish from every later report.
    let compacted = read["compacted_days"].as_array().unwrap();
    assert_eq!(compacted.len(), 8, "{read:#}");
    assert!(!compacted.contains(&Value::from(ipsight_core::time::date(world.day_start(11)))));
    assert!(!compacted.contains(&Value::from(d5.clone())));
    let report = &out["report"];
    assert!(
        report["candidate"]["auc"].as_f64().unwrap() > 0.9,
        "{report:#}"
    );
    assert_eq!(report["candidate"]["scored_by"], "combined");
    assert!(report["training_pairs"].as_u64().unwrap() < lines as u64);

    // Model and sidecar at the serving key, a matching pair.
    let serving = b.join("models/current/model.ipsm");
    let model = Model::load(&serving).unwrap();
    let det = Detector::load(b.join("models/current/model.ipsb")).unwrap();
    let first_sidecar = std::fs::read(b.join("models/current/model.ipsb")).unwrap();
    det.check_compatible(model.entity_definition(), Some(model.fingerprint()))
        .unwrap();
    assert!(b.join("models/current/model.ipsm.metrics.json").exists());

    // A compaction holds the day's pairs once: the two objects merged, header first.
    let d6 = ipsight_core::time::date(world.day_start(6));
    let daily = std::fs::read_to_string(b.join(format!("pairs/daily/dt={d6}.csv"))).unwrap();
    let hist = world.expected_pair_history(6..7);
    assert_eq!(daily.lines().count(), hist.len() + 1);
    assert!(daily.starts_with("entity,ip,events,first_seen,last_seen\n"));

    // The next run (same inputs) reads the compactions instead of the objects, writes nothing new
    // for them, and judges against the serving detector on its combined score.
    let before: Vec<_> = compacted
        .iter()
        .map(|d| {
            std::fs::read(b.join(format!("pairs/daily/dt={}.csv", d.as_str().unwrap()))).unwrap()
        })
        .collect();
    let out2 = ipsight_retrain::run(&s, &store, &NoTrainingJobs, now_ms + 60_000, work.path())
        .await
        .unwrap();
    let read2 = &out2["read"];
    assert_eq!(
        read2["compacted_days"].as_array().unwrap().len(),
        0,
        "{read2:#}"
    );
    // 8 compactions + day 5's two good objects + today's two; the damage is reported again.
    assert_eq!(read2["objects_read"], 12, "{read2:#}");
    assert_eq!(read2["damaged_objects"].as_array().unwrap().len(), 1);
    for (d, bytes) in compacted.iter().zip(before) {
        let now =
            std::fs::read(b.join(format!("pairs/daily/dt={}.csv", d.as_str().unwrap()))).unwrap();
        assert_eq!(now, bytes, "compaction of {d} is idempotent");
    }
    assert_eq!(
        out2["report"]["current"]["scored_by"], "combined",
        "{out2:#}"
    );
    assert_eq!(
        out2["report"]["training_pairs"], out["report"]["training_pairs"],
        "the compacted window trains on the same pairs"
    );
    // Same input, not worse: promoted; the first detector is kept as previous, with its sidecar.
    assert_eq!(out2["action"], "promoted", "{out2:#}");
    assert!(b.join("models/previous/model.ipsm").exists());
    assert!(
        std::fs::read(b.join("models/previous/model.ipsb")).unwrap() == first_sidecar,
        "the replaced sidecar is kept as previous"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_form_promotes_model_and_sidecar_and_reports_a_refusal_without_failing() {
    let world = World::new(SynthConfig::new(7, 12, 10));
    let mut opts = RetrainOptions::new(hyper(), 0);
    opts.train.threads = Some(1);
    let dir = tempfile::tempdir().unwrap();
    let (tr, ho) = (dir.path().join("train.csv"), dir.path().join("holdout.csv"));
    let csv = |pairs: &mut dyn Iterator<Item = (String, Ipv4Addr)>| {
        pairs
            .map(|(e, ip)| format!("{e},{ip}\n"))
            .collect::<String>()
    };
    std::fs::write(&tr, csv(&mut world.normal_pairs(0..8))).unwrap();
    std::fs::write(&ho, csv(&mut world.normal_pairs(8..10))).unwrap();
    let serving = dir.path().join("current/model.ipsm");
    let labels = LabelSet::default();
    let run = |out: &str| {
        let out = dir.path().join(out);
        let (tr, ho, serving, labels, opts) = (&tr, &ho, &serving, &labels, &opts);
        async move {
            retrain_files(
                &RetrainFiles {
                    train: tr,
                    holdout: ho,
                    labels,
                    current: serving,
                    out: &out,
                },
                opts,
                &mut |_| {},
            )
            .await
            .unwrap()
        }
    };
    // First model: promoted with its sidecar, nothing to keep.
    let r = run("a.ipsm").await;
    assert!(r.promote && r.previous_kept_at.is_none(), "{r:?}");
    assert!(r.candidate.auc > 0.9, "{r:?}");
    assert!(serving.exists() && dir.path().join("current/model.ipsb").exists());
    assert!(dir.path().join("a.ipsb").exists());
    // Same recipe again: not worse, promoted; the first kept as previous (model and sidecar).
    let r = run("b.ipsm").await;
    assert!(r.promote, "{r:?}");
    assert_eq!(
        r.current.as_ref().unwrap().scored_by,
        ipsight_retrain::ScoredBy::Combined
    );
    for f in [
        "previous/model.ipsm",
        "previous/model.ipsb",
        "previous/model.ipsm.metrics.json",
    ] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    // A model trained on random pairs: refused — reported, not an error; serving pair untouched.
    let before = (
        std::fs::read(&serving).unwrap(),
        std::fs::read(dir.path().join("current/model.ipsb")).unwrap(),
    );
    let mut x: u32 = 1;
    let random: String = (0..world.normal_pairs(0..8).count())
        .map(|i| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            format!("E{},{}\n", i % 50, Ipv4Addr::from(x))
        })
        .collect();
    std::fs::write(&tr, random).unwrap();
    let r = run("bad.ipsm").await;
    assert!(!r.promote, "{r:?}");
    assert!(r.decision.starts_with("not promoted"), "{}", r.decision);
    assert_eq!(
        (
            std::fs::read(&serving).unwrap(),
            std::fs::read(dir.path().join("current/model.ipsb")).unwrap()
        ),
        before
    );
    let m: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bad.ipsm.metrics.json")).unwrap())
            .unwrap();
    assert_eq!(m["promote"], false);
    assert!(dir.path().join("bad.ipsb").exists());
}
