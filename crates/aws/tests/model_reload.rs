//! A promoted model reaches a warm container: the reloading scorer against S3 (moto, real
//! aws-sdk-s3), through `scorer_from_vars` exactly as ipcheck and fuse build it.
use std::net::Ipv4Addr;

use ipsight_aws::{scorer_from_vars, AnyScorer, S3Store};
use ipsight_model::Model;
use ipsight_ports::{ObjectLister, ObjectRef, Pair, Scorer, ScorerInitError};

fn model(seed: u64) -> Model {
    ipsight_testkit::tiny_model(seed)
}

fn bytes(m: &Model) -> Vec<u8> {
    let mut v = Vec::new();
    m.write_to(&mut v).unwrap();
    v
}

use ipsight_testkit::vars as env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_model_is_picked_up_and_a_bad_one_is_not() {
    let s3 = ipsight_testkit::S3Server::start().await;
    let bucket = s3.unique_bucket("reload");
    s3.create_bucket(&bucket).await;
    let key = "models/current/model.ipsm";
    let (a, b) = (model(1), model(2));
    let pair = Pair {
        entity: "user3".into(),
        ip: Ipv4Addr::new(10, 3, 0, 4).into(),
    };
    assert_ne!(
        a.score_ip(&pair.entity, pair.ip).unwrap().to_bits(),
        b.score_ip(&pair.entity, pair.ip).unwrap().to_bits(),
        "two seeds must give two distinguishable models"
    );
    s3.put(&bucket, key, bytes(&a)).await;
    let uri = format!("s3://{bucket}/{key}");
    let conf = s3.sdk_config();

    // A bad interval is refused at cold start, naming the variable.
    let e = scorer_from_vars(
        &conf,
        env(&[("MODEL_URI", &uri), ("MODEL_CHECK_SECONDS", "soon")]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, ScorerInitError::Config(ref m) if m.contains("MODEL_CHECK_SECONDS")),
        "{e}"
    );
    // An s3:// model is followed by default; MODEL_CHECK_SECONDS=0 loads it once.
    let s = scorer_from_vars(&conf, env(&[("MODEL_URI", &uri)]))
        .await
        .unwrap();
    assert!(matches!(s, AnyScorer::Reloading(_)), "{}", s.describe());
    assert!(s.describe().contains("every 300 s"), "{}", s.describe());
    let s = scorer_from_vars(
        &conf,
        env(&[("MODEL_URI", &uri), ("MODEL_CHECK_SECONDS", "0")]),
    )
    .await
    .unwrap();
    assert!(matches!(s, AnyScorer::Embedded(_)), "{}", s.describe());

    // Checked on every call, so the test needs no sleeping.
    let r = ipsight_ports::ReloadingScorer::load(
        S3Store::from_conf(&conf),
        ObjectRef::new(&bucket, key),
        std::time::Duration::ZERO,
    )
    .await
    .unwrap();
    let score = |s: f32| s.to_bits();
    let got = r.score(std::slice::from_ref(&pair)).await.unwrap()[0].dot_product;
    assert_eq!(
        score(got),
        score(a.score_ip(&pair.entity, pair.ip).unwrap())
    );
    let tag_a = r.version_tag();

    // Promotion rewrites the object: the next call scores with the new model.
    s3.put(&bucket, key, bytes(&b)).await;
    let got = r.score(std::slice::from_ref(&pair)).await.unwrap()[0].dot_product;
    assert_eq!(
        score(got),
        score(b.score_ip(&pair.entity, pair.ip).unwrap())
    );
    assert_ne!(r.version_tag(), tag_a);
    let store = S3Store::from_conf(&conf);
    assert_eq!(
        r.version_tag(),
        store
            .head(&ObjectRef::new(&bucket, key))
            .await
            .unwrap()
            .version_tag
    );

    // A truncated upload: the check fails, the model in memory keeps serving, no error reaches
    // the caller.
    let mut half = bytes(&a);
    half.truncate(half.len() / 2);
    s3.put(&bucket, key, half).await;
    let got = r.score(std::slice::from_ref(&pair)).await.unwrap()[0].dot_product;
    assert_eq!(
        score(got),
        score(b.score_ip(&pair.entity, pair.ip).unwrap())
    );
    assert!(r.refresh().await.is_err());

    // The object deleted: still serving the last good model.
    s3.client()
        .delete_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let got = r.score(std::slice::from_ref(&pair)).await.unwrap()[0].dot_product;
    assert_eq!(
        score(got),
        score(b.score_ip(&pair.entity, pair.ip).unwrap())
    );

    // A good model again: picked up.
    s3.put(&bucket, key, bytes(&a)).await;
    let got = r.score(std::slice::from_ref(&pair)).await.unwrap()[0].dot_product;
    assert_eq!(
        score(got),
        score(a.score_ip(&pair.entity, pair.ip).unwrap())
    );

    // A model of another entity definition is not swapped in (every pair would be a stranger).
    let mut c = model(3);
    c.set_entity_definition("user_agent_family");
    s3.put(&bucket, key, bytes(&c)).await;
    let e = r.refresh().await.unwrap_err();
    assert!(e.to_string().contains("user_agent_family"), "{e}");
    let got = r.score(std::slice::from_ref(&pair)).await.unwrap()[0].dot_product;
    assert_eq!(
        score(got),
        score(a.score_ip(&pair.entity, pair.ip).unwrap())
    );

    // At cold start, a model that does not match ENTITY is refused, naming both.
    let s = scorer_from_vars(&conf, env(&[("MODEL_URI", &uri)]))
        .await
        .unwrap();
    assert_eq!(s.entity_definition().as_deref(), Some("user_agent_family"));
    let e = s
        .check_entity(ipsight_formats::EntityKind::Principal)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("user_agent_family") && e.contains("ENTITY=principal"),
        "{e}"
    );
    s.check_entity(ipsight_formats::EntityKind::UserAgentFamily)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_info_and_head_report_size_age_and_version() {
    let s3 = ipsight_testkit::S3Server::start().await;
    let bucket = s3.unique_bucket("listinfo");
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "train/b.csv", b"u,10.0.0.1\n".to_vec())
        .await;
    s3.put(&bucket, "train/a.csv", b"u,10.0.0.1\nv,10.0.0.2\n".to_vec())
        .await;
    s3.put(&bucket, "other/c.csv", b"x".to_vec()).await;
    let store = S3Store::from_conf(&s3.sdk_config());
    let infos = store.list_info(&bucket, "train/").await.unwrap();
    let keys: Vec<_> = infos.iter().map(|i| (i.key.as_str(), i.size)).collect();
    assert_eq!(keys, [("train/a.csv", 22), ("train/b.csv", 11)]);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for i in &infos {
        assert!((now_ms - i.last_modified_ms).abs() < 120_000, "{i:?}");
        assert!(!i.version_tag.is_empty());
    }
    let h = store
        .head(&ObjectRef::new(&bucket, "train/a.csv"))
        .await
        .unwrap();
    assert_eq!(h, infos[0]);
    let e = store
        .head(&ObjectRef::new(&bucket, "train/none.csv"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ipsight_ports::StoreError::NotFound(_)),
        "{e}: a missing object is NotFound"
    );

    // The directory store answers the same way.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bk/train")).unwrap();
    std::fs::write(dir.path().join("bk/train/a.csv"), b"abc").unwrap();
    let ds = ipsight_ports::DirStore::new(dir.path());
    let infos = ds.list_info("bk", "train/").await.unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!((infos[0].key.as_str(), infos[0].size), ("train/a.csv", 3));
    let tag = infos[0].version_tag.clone();
    std::fs::write(dir.path().join("bk/train/a.csv"), b"abcd").unwrap();
    let h = ds.head(&ObjectRef::new("bk", "train/a.csv")).await.unwrap();
    assert_ne!(h.version_tag, tag);
}
