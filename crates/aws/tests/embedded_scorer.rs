//! The embedded-model scorer: loaded from a path, a directory store and S3 (moto), scores identical
//! to the model's own, percentiles from the model's calibration.
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipsight_aws::{ModelLocation, S3Store};
use ipsight_model::Model;
use ipsight_ports::{
    DirStore, EmbeddedScorer, ObjectRef, ObjectStore, Pair, ScoreError, Scorer, ScorerInitError,
};

fn tiny_model() -> Model {
    ipsight_testkit::tiny_model(ipsight_testkit::default_seed())
}

fn pairs(n: usize) -> Vec<Pair> {
    (0..n)
        .map(|i| Pair {
            entity: format!("user{}", i % 23),
            ip: Ipv4Addr::from((i as u32).wrapping_mul(2_654_435_761)).into(),
        })
        .collect()
}

async fn check(scorer: &EmbeddedScorer, model: &Model, n: usize) {
    let ps = pairs(n);
    let got = scorer.score(&ps).await.unwrap();
    assert_eq!(got.len(), n);
    for (p, s) in ps.iter().zip(&got) {
        let want = model.score_ip(&p.entity, p.ip).unwrap();
        assert_eq!(s.dot_product.to_bits(), want.to_bits());
        let pct = s
            .unusual_percentile
            .expect("the embedded model is calibrated");
        assert!((pct - (100.0 - model.percentile(want))).abs() < 1e-9);
        assert!((0.0..=100.0).contains(&pct));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_from_path_and_dir_store_and_scores_like_the_model() {
    let model = tiny_model();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("models")).unwrap();
    let path = dir.path().join("models/m.ipsm");
    model.save(&path).unwrap();

    let from_path = EmbeddedScorer::load(&path).unwrap();
    check(&from_path, &model, 10).await;
    // Large enough to leave the inline path.
    check(&from_path, &model, 20_000).await;

    let store = DirStore::new(dir.path());
    let from_store = EmbeddedScorer::from_store(&store, &ObjectRef::new("models", "m.ipsm"))
        .await
        .unwrap();
    check(&from_store, &model, 5_000).await;
    assert!(from_store.score(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn current_thread_runtime_scores_large_batches_inline() {
    let model = tiny_model();
    let scorer = EmbeddedScorer::new(Arc::new(model.clone()));
    check(&scorer, &model, 10_000).await;
}

#[tokio::test]
async fn loads_from_s3_at_cold_start() {
    let s3 = ipsight_testkit::S3Server::start().await;
    let bucket = s3.unique_bucket("models");
    s3.create_bucket(&bucket).await;
    let model = tiny_model();
    let mut bytes = Vec::new();
    model.write_to(&mut bytes).unwrap();
    s3.put(&bucket, "ipsight/model.ipsm", bytes).await;
    let store = S3Store::from_conf(&s3.sdk_config());
    let loc = ModelLocation::parse(&format!("s3://{bucket}/ipsight/model.ipsm")).unwrap();
    let ModelLocation::S3(obj) = loc else {
        panic!("not an S3 location")
    };
    let scorer = EmbeddedScorer::from_store(&store, &obj).await.unwrap();
    check(&scorer, &model, 100).await;

    let missing = EmbeddedScorer::from_store(&store, &ObjectRef::new(&bucket, "nope.ipsm"))
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("no such object"), "{missing}");
}

#[tokio::test]
async fn refuses_a_corrupt_model_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    std::fs::write(dir.path().join("b/bad.ipsm"), b"not a model").unwrap();
    let store = DirStore::new(dir.path());
    let obj = ObjectRef::new("b", "bad.ipsm");
    let e = EmbeddedScorer::from_store(&store, &obj).await.unwrap_err();
    assert!(matches!(e, ScorerInitError::Model { .. }), "{e}");
    assert!(e.to_string().contains("s3://b/bad.ipsm"), "{e}");
    let e = EmbeddedScorer::load(dir.path().join("b/bad.ipsm")).unwrap_err();
    assert!(e.to_string().contains("bad.ipsm"), "{e}");
    // Keep the error type in the public API honest: the store is usable afterwards.
    assert!(store.get(&obj).await.is_ok());
    let _ = ScoreError::Rejected(String::new());
}

#[test]
fn model_locations() {
    assert_eq!(
        ModelLocation::parse("s3://b/k/m.ipsm").unwrap(),
        ModelLocation::S3(ObjectRef::new("b", "k/m.ipsm"))
    );
    assert!(ModelLocation::parse("s3://b").is_err());
    assert!(ModelLocation::parse("s3:///k").is_err());
    assert_eq!(
        ModelLocation::parse("/opt/ipsight/model.ipsm").unwrap(),
        ModelLocation::Local("/opt/ipsight/model.ipsm".into())
    );
}
