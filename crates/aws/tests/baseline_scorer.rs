//! The baseline sidecar through the scorer port (issue 11): the embedded model loads the sidecar
//! beside it (S3 on moto, a directory, a path) and every score carries the combined percentile, the
//! history level, the nearest known prefixes and a sentence; beside a SageMaker endpoint
//! (`ipsight serve` through the real SageMaker Runtime client) `BASELINE_URI` gives the same
//! results from the endpoint's dot products; new principals follow `NEW_PRINCIPALS`; a corrupt
//! sidecar or one of another model is refused; a promoted model and its sidecar are swapped together.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use aws_sdk_sagemakerruntime::config::{
    BehaviorVersion, Credentials, Region, SharedCredentialsProvider,
};
use ipsight_aws::{scorer_from_vars, AnyScorer, S3Store, SageMakerOptions, SageMakerScorer};
use ipsight_model::{Detector, Model, NewPrincipals};
use ipsight_ports::{
    Baseline, DirStore, EmbeddedScorer, History, ObjectRef, Pair, Score, Scorer, ScorerInitError,
};
use ipsight_testkit::vars as env;

fn hybrid(seed: u64) -> (Model, Detector) {
    ipsight_testkit::tiny_hybrid(seed)
}

fn bytes_of_model(m: &Model) -> Vec<u8> {
    let mut v = Vec::new();
    m.write_to(&mut v).unwrap();
    v
}

fn bytes_of_sidecar(d: &Detector) -> Vec<u8> {
    let mut v = Vec::new();
    d.write_to(&mut v).unwrap();
    v
}

fn pair(entity: &str, ip: &str) -> Pair {
    Pair {
        entity: entity.into(),
        ip: ip.parse().unwrap(),
    }
}

/// A known address, a known /24, another user's network, a random address, IPv6 at /64, and a
/// principal the baseline has never seen.
fn probe() -> Vec<Pair> {
    vec![
        pair("user3", "10.3.0.2"),
        pair("user3", "10.3.0.200"),
        pair("user3", "10.7.0.2"),
        pair("user3", "198.51.100.9"),
        pair("user4", "2001:db8:4::99"),
        pair("AIDANEWPRINCIPAL", "10.3.0.2"),
    ]
}

/// What the detector itself says about each pair: the scorer must report exactly that.
fn expected(model: &Model, det: &Detector, ps: &[Pair], policy: NewPrincipals) -> Vec<Score> {
    let b = Baseline::new(Arc::new(det.clone()), policy, "expected");
    ps.iter()
        .map(|p| b.judge(&p.entity, p.ip, model.score_ip(&p.entity, p.ip).unwrap()))
        .collect()
}

fn check_why(got: &[Score], want: &[Score]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.dot_product.to_bits(), w.dot_product.to_bits(), "pair {i}");
        assert_eq!(g, w, "pair {i}");
        let pct = g.unusual_percentile.expect("a percentile with a baseline");
        assert!((0.0..=100.0).contains(&pct), "pair {i}: {pct}");
        assert!(g.embedding_percentile.is_some(), "pair {i}");
        assert!(g.history.is_some(), "pair {i}");
        assert!(
            !g.explanation.is_empty() && !g.explanation.contains("NaN"),
            "pair {i}: {}",
            g.explanation
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_model_loads_its_sidecar_from_s3_and_explains_every_score() {
    let (model, det) = hybrid(7);
    let s3 = ipsight_testkit::S3Server::start().await;
    let bucket = s3.unique_bucket("why");
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "models/current/model.ipsm", bytes_of_model(&model))
        .await;
    s3.put(&bucket, "models/current/model.ipsb", bytes_of_sidecar(&det))
        .await;
    let conf = s3.sdk_config();
    let uri = format!("s3://{bucket}/models/current/model.ipsm");

    for (check_seconds, policy) in [("0", "alert"), ("300", "ignore")] {
        let scorer = scorer_from_vars(
            &conf,
            env(&[
                ("MODEL_URI", &uri),
                ("MODEL_CHECK_SECONDS", check_seconds),
                ("NEW_PRINCIPALS", policy),
            ]),
        )
        .await
        .unwrap();
        assert!(
            scorer.describe().contains("model.ipsb") && scorer.describe().contains(policy),
            "{}",
            scorer.describe()
        );
        let policy: NewPrincipals = policy.parse().unwrap();
        let got = scorer.score(&probe()).await.unwrap();
        check_why(&got, &expected(&model, &det, &probe(), policy));

        assert_eq!(got[0].history, Some(History::Ip));
        assert!(got[0].nearest.is_empty(), "{:?}", got[0].nearest);
        assert_eq!(got[3].history, Some(History::None));
        assert!(
            got[3].explanation.contains("never seen from"),
            "{}",
            got[3].explanation
        );
        // The nearest known prefixes of a stranger address are the principal's own.
        assert!(!got[3].nearest.is_empty());
        assert!(got[3].nearest.iter().all(|n| n.prefix.starts_with("10.3.")));
        assert_eq!(got[4].history, Some(History::Prefix64));
        // A principal the baseline has never seen: said so, never a borrowed score.
        assert_eq!(got[5].history, Some(History::NewPrincipal));
        assert!(got[5].is_new_principal());
        let new_pct = got[5].unusual_percentile.unwrap();
        match policy {
            NewPrincipals::Alert => assert_eq!(new_pct, 100.0),
            NewPrincipals::Ignore => assert_eq!(new_pct, 0.0),
        }
        // History never lowers normality: the address seen beats a stranger address.
        assert!(got[0].unusual_percentile.unwrap() <= got[3].unusual_percentile.unwrap());
    }

    // A bad NEW_PRINCIPALS is refused at cold start, naming the variable.
    let e = scorer_from_vars(
        &conf,
        env(&[("MODEL_URI", &uri), ("NEW_PRINCIPALS", "sometimes")]),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("NEW_PRINCIPALS"), "{e}");
    // BASELINE_URI is for an endpoint: with the embedded model it would be ambiguous.
    let e = scorer_from_vars(
        &conf,
        env(&[("MODEL_URI", &uri), ("BASELINE_URI", "s3://b/x.ipsb")]),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("BASELINE_URI"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sidecar_the_embedding_alone_speaks_and_says_so() {
    let (model, _) = hybrid(7);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("m")).unwrap();
    model.save(dir.path().join("m/model.ipsm")).unwrap();
    let store = DirStore::new(dir.path());
    let s = EmbeddedScorer::from_store(&store, &ObjectRef::new("m", "model.ipsm"))
        .await
        .unwrap();
    assert!(s.baseline().is_none());
    assert!(
        s.describe().contains("no baseline sidecar"),
        "{}",
        s.describe()
    );
    let got = s.score(&probe()).await.unwrap();
    for (p, g) in probe().iter().zip(&got) {
        assert_eq!(g.history, None);
        assert!(
            g.explanation
                .contains("no baseline sidecar beside the model")
                && g.explanation.contains("the embedding alone"),
            "{}",
            g.explanation
        );
        let want = model.score_ip(&p.entity, p.ip).unwrap();
        assert_eq!(g.dot_product.to_bits(), want.to_bits());
        assert_eq!(g.unusual_percentile, g.embedding_percentile);
    }
    // From a path too.
    let s = EmbeddedScorer::load(dir.path().join("m/model.ipsm")).unwrap();
    assert!(s.baseline().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_sidecar_or_one_of_another_model_is_refused_naming_it() {
    let (model, det) = hybrid(7);
    let (other_model, other_det) = hybrid(8);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("m")).unwrap();
    let store = DirStore::new(dir.path());
    let obj = ObjectRef::new("m", "model.ipsm");
    model.save(dir.path().join("m/model.ipsm")).unwrap();

    let mut bad = bytes_of_sidecar(&det);
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    std::fs::write(dir.path().join("m/model.ipsb"), &bad).unwrap();
    let e = EmbeddedScorer::from_store(&store, &obj).await.unwrap_err();
    assert!(matches!(e, ScorerInitError::Baseline { .. }), "{e}");
    assert!(
        e.to_string().contains("model.ipsb") && e.to_string().contains("corrupt"),
        "{e}"
    );
    let e = EmbeddedScorer::load(dir.path().join("m/model.ipsm")).unwrap_err();
    assert!(e.to_string().contains("model.ipsb"), "{e}");

    // The sidecar of another training run: its history would be judged with the wrong combiner.
    std::fs::write(
        dir.path().join("m/model.ipsb"),
        bytes_of_sidecar(&other_det),
    )
    .unwrap();
    assert_ne!(model.fingerprint(), other_model.fingerprint());
    let e = EmbeddedScorer::from_store(&store, &obj).await.unwrap_err();
    assert!(
        e.to_string().contains("model.ipsb") && e.to_string().contains("another model"),
        "{e}"
    );
}

fn sagemaker_conf(addr: SocketAddr) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "test",
        )))
        .build()
}

/// `ipsight serve` on a loopback port: the SageMaker container contract behind the real
/// SageMaker Runtime client.
async fn serve(model: Arc<Model>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = ipsight_serve::router(model);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_a_sagemaker_endpoint_the_baseline_gives_the_same_why() {
    let (model, det) = hybrid(7);
    let model = Arc::new(model);
    let addr = serve(model.clone()).await;
    let conf = sagemaker_conf(addr);

    // BASELINE_URI read from S3 (moto) and combined with the endpoint's dot products.
    let s3 = ipsight_testkit::S3Server::start().await;
    let bucket = s3.unique_bucket("why-sm");
    s3.create_bucket(&bucket).await;
    s3.put(&bucket, "baselines/ipinsights.ipsb", bytes_of_sidecar(&det))
        .await;
    let loaded = ipsight_ports::baseline::load_object(
        &S3Store::from_conf(&s3.sdk_config()),
        &ObjectRef::new(&bucket, "baselines/ipinsights.ipsb"),
    )
    .await
    .unwrap();
    let sm = SageMakerScorer::new(&conf, "ipsight-test", SageMakerOptions::default())
        .with_baseline(Baseline::new(
            Arc::new(loaded),
            NewPrincipals::Alert,
            format!("s3://{bucket}/baselines/ipinsights.ipsb"),
        ));
    let v4: Vec<Pair> = probe().into_iter().filter(|p| p.ip.is_ipv4()).collect();
    let got = sm.score(&v4).await.unwrap();
    check_why(&got, &expected(&model, &det, &v4, NewPrincipals::Alert));
    assert_eq!(sm.calls().load(std::sync::atomic::Ordering::Relaxed), 1);
    // The same results as the embedded model with the same sidecar: one detector, two adapters.
    let embedded = EmbeddedScorer::new(model.clone())
        .with_baseline(Baseline::new(
            Arc::new(det.clone()),
            NewPrincipals::Alert,
            "local",
        ))
        .unwrap();
    assert_eq!(got, embedded.score(&v4).await.unwrap());

    // A large batch (the detector runs off the async workers) agrees pair for pair.
    let many: Vec<Pair> = (0..6_000u32)
        .map(|i| Pair {
            entity: format!("user{}", i % 25),
            ip: IpAddr::V4(Ipv4Addr::new(10, (i % 23) as u8, 0, (i % 13) as u8)),
        })
        .collect();
    let got = sm.score(&many).await.unwrap();
    assert_eq!(got, embedded.score(&many).await.unwrap());
    assert!(got.iter().any(|s| s.history == Some(History::NewPrincipal)));
    assert!(got.iter().any(|s| s.history == Some(History::Ip)));

    // From the environment, as ipcheck and fuse build it (a local BASELINE_URI here: the SDK
    // configuration of this test points every service at `ipsight serve`).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipinsights.ipsb");
    det.save(&path).unwrap();
    let s = scorer_from_vars(
        &conf,
        env(&[
            ("SAGEMAKER_ENDPOINT", "ipsight-test"),
            ("BASELINE_URI", path.to_str().unwrap()),
            ("NEW_PRINCIPALS", "ignore"),
        ]),
    )
    .await
    .unwrap();
    assert!(matches!(s, AnyScorer::SageMaker(_)));
    assert!(
        s.describe().contains("ipinsights.ipsb") && s.describe().contains("ignore"),
        "{}",
        s.describe()
    );
    // The baseline's entity definition is checked against ENTITY like a model's.
    assert_eq!(
        s.entity_definition().as_deref(),
        Some(det.baseline.entity_definition())
    );
    let got = s.score(&v4).await.unwrap();
    check_why(&got, &expected(&model, &det, &v4, NewPrincipals::Ignore));
    assert_eq!(got.last().unwrap().unusual_percentile, Some(0.0));

    // Without BASELINE_URI the endpoint's scores say the embedding alone speaks.
    let plain = SageMakerScorer::new(&conf, "ipsight-test", SageMakerOptions::default());
    let got = plain.score(&v4).await.unwrap();
    assert!(got.iter().all(
        |s| s.history.is_none() && s.explanation.contains("no baseline sidecar (BASELINE_URI)")
    ));
    // A missing BASELINE_URI object is a cold-start error naming it.
    let e = scorer_from_vars(
        &conf,
        env(&[
            ("SAGEMAKER_ENDPOINT", "ipsight-test"),
            ("BASELINE_URI", "/nonexistent/x.ipsb"),
        ]),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/x.ipsb"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_model_and_its_sidecar_are_swapped_together() {
    let (a, det_a) = hybrid(7);
    let (b, det_b) = hybrid(8);
    let s3 = ipsight_testkit::S3Server::start().await;
    let bucket = s3.unique_bucket("why-reload");
    s3.create_bucket(&bucket).await;
    let (mkey, skey) = ("models/current/model.ipsm", "models/current/model.ipsb");
    s3.put(&bucket, mkey, bytes_of_model(&a)).await;
    s3.put(&bucket, skey, bytes_of_sidecar(&det_a)).await;
    let conf = s3.sdk_config();
    let r = ipsight_ports::ReloadingScorer::load_with(
        S3Store::from_conf(&conf),
        ObjectRef::new(&bucket, mkey),
        std::time::Duration::ZERO,
        NewPrincipals::Alert,
    )
    .await
    .unwrap();
    let ps = probe();
    check_why(
        &r.score(&ps).await.unwrap(),
        &expected(&a, &det_a, &ps, NewPrincipals::Alert),
    );

    // The model promoted before its sidecar: the pair would not match, so the old pair serves.
    s3.put(&bucket, mkey, bytes_of_model(&b)).await;
    let e = r.refresh().await.unwrap_err();
    assert!(e.to_string().contains("another model"), "{e}");
    check_why(
        &r.score(&ps).await.unwrap(),
        &expected(&a, &det_a, &ps, NewPrincipals::Alert),
    );
    // Once the sidecar follows, both are swapped in together.
    s3.put(&bucket, skey, bytes_of_sidecar(&det_b)).await;
    check_why(
        &r.score(&ps).await.unwrap(),
        &expected(&b, &det_b, &ps, NewPrincipals::Alert),
    );
    assert!(r.scorer().baseline().is_some());
}

/// A sidecar for a SageMaker user: fitted beside the endpoint (`ipsight baseline`), from the
/// endpoint's own dot products for the held-back pairs and their negatives, then combined with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_fitted_beside_the_endpoint_judges_its_scores() {
    let (model, _) = hybrid(7);
    let model = Arc::new(model);
    let addr = serve(model.clone()).await;
    let conf = sagemaker_conf(addr);
    let sm = SageMakerScorer::new(&conf, "ipsight-test", SageMakerOptions::default());
    let log = ipsight_testkit::tiny_log();
    let (det, summary) = ipsight_ports::baseline::fit_beside(&sm, &log, 0.5, "principal", 1)
        .await
        .unwrap();
    assert_eq!(summary.older_pairs + summary.held_back_pairs, log.len());
    assert!(summary.held_back_ipv6 > 0, "{summary:?}");
    assert_eq!(det.fit.calibrated_on, "held_back", "{:?}", det.fit);
    assert_eq!(det.fit.model_fingerprint, None);
    assert!(det.fit.random_negatives > 0 && det.fit.shuffled_negatives > 0);
    // Every held-back IPv4 pair and negative went to the endpoint, once.
    assert_eq!(
        sm.ipv4_pairs().load(std::sync::atomic::Ordering::Relaxed) as usize,
        summary.scored
    );
    // The history covers the whole input, IPv6 included.
    assert_eq!(det.baseline.entities(), 20);
    let sm = sm.with_baseline(Baseline::new(Arc::new(det), NewPrincipals::Alert, "fitted"));
    let v4: Vec<Pair> = probe().into_iter().filter(|p| p.ip.is_ipv4()).collect();
    let got = sm.score(&v4).await.unwrap();
    assert_eq!(got[0].history, Some(History::Ip));
    assert_eq!(got[3].history, Some(History::None));
    for g in &got {
        let p = g.unusual_percentile.unwrap();
        assert!(
            (0.0..=100.0).contains(&p) && !g.explanation.contains("NaN"),
            "{g:?}"
        );
    }
    assert!(got[0].unusual_percentile.unwrap() < got[3].unusual_percentile.unwrap());
}
