//! `SageMakerScorer` against `ipsight serve` on loopback through the real SDK client: the same scores
//! as the embedded model, batching under the payload limit, retries on throttling / 503 / timeouts
//! (a fault-injecting front in the test), model errors rejected, configuration from the environment.
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sagemakerruntime::config::{
    BehaviorVersion, Credentials, Region, SharedCredentialsProvider,
};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipsight_aws::scorers::{calibration_from_bytes, parse_dot_products};
use ipsight_aws::{scorer_from_vars, AnyScorer, SageMakerOptions, SageMakerScorer};
use ipsight_model::Model;
use ipsight_ports::{EmbeddedScorer, Pair, ScoreError, Scorer, ScorerInitError};

fn tiny_model() -> Model {
    ipsight_testkit::tiny_model(ipsight_testkit::default_seed())
}

use ipsight_testkit::vars as env;

fn sdk_conf(addr: SocketAddr) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "test",
        )))
        .build()
}

/// What the fault-injecting front does to the first `n` requests.
#[derive(Clone, Copy)]
enum Fault {
    None,
    Status(u16, Option<&'static str>),
    Sleep(Duration),
    ModelError400,
}

#[derive(Clone)]
struct Front {
    fault: Fault,
    first_n: u64,
    seen: Arc<AtomicU64>,
}

async fn inject(State(f): State<Front>, req: Request, next: Next) -> Response {
    let n = f.seen.fetch_add(1, Ordering::SeqCst);
    if n >= f.first_n {
        return next.run(req).await;
    }
    match f.fault {
        Fault::None => next.run(req).await,
        Fault::Status(code, error_type) => {
            let mut r = (StatusCode::from_u16(code).unwrap(), "injected").into_response();
            if let Some(t) = error_type {
                r.headers_mut()
                    .insert("x-amzn-errortype", t.parse().unwrap());
            }
            r
        }
        Fault::Sleep(d) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Fault::ModelError400 => Response::builder()
            .status(424)
            .header("x-amzn-errortype", "ModelError")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"ErrorCode":"CLIENT_ERROR_FROM_MODEL","Message":"Received client error (400) from primary","OriginalStatusCode":400,"OriginalMessage":"record 2: bad entity"}"#,
            ))
            .unwrap(),
    }
}

struct Setup {
    model: Arc<Model>,
    addr: SocketAddr,
    seen: Arc<AtomicU64>,
}

/// `ipsight serve`'s router behind a fault-injecting front, on a loopback port.
async fn start(fault: Fault, first_n: u64) -> Setup {
    let model = Arc::new(tiny_model());
    let seen = Arc::new(AtomicU64::new(0));
    let front = Front {
        fault,
        first_n,
        seen: seen.clone(),
    };
    let app = ipsight_serve::router(model.clone())
        .layer(axum::middleware::from_fn_with_state(front, inject));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Setup { model, addr, seen }
}

fn fast_retries() -> SageMakerOptions {
    SageMakerOptions {
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(40),
        ..SageMakerOptions::default()
    }
}

fn pairs(n: usize) -> Vec<Pair> {
    (0..n)
        .map(|i| Pair {
            entity: format!("user{}", i % 23),
            ip: Ipv4Addr::from((i as u32).wrapping_mul(2_654_435_761)).into(),
        })
        .collect()
}

fn assert_same(a: &[ipsight_ports::Score], b: &[ipsight_ports::Score]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.dot_product.to_bits(), y.dot_product.to_bits(), "pair {i}");
        assert_eq!(x.unusual_percentile, y.unusual_percentile, "pair {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_scores_as_the_embedded_model_bit_for_bit() {
    let s = start(Fault::None, 0).await;
    let sm = SageMakerScorer::new(&sdk_conf(s.addr), "ipsight-test", fast_retries())
        .with_calibration(s.model.calibration().clone());
    let embedded = EmbeddedScorer::new(s.model.clone());
    let mut ps = pairs(2_000);
    // Entities the CSV writer must quote to keep intact.
    for (i, e) in [
        "Org,Unit:alice",
        "\"quoted\"",
        " padded ",
        "123456789012",
        "AROAEXAMPLE",
    ]
    .iter()
    .enumerate()
    {
        ps[i * 7].entity = e.to_string();
    }
    let got = sm.score(&ps).await.unwrap();
    let want = embedded.score(&ps).await.unwrap();
    assert_same(&got, &want);
    assert!(got.iter().all(|s| s.unusual_percentile.is_some()));
    assert_eq!(sm.calls().load(Ordering::Relaxed), 1);

    // Without a calibration there is no percentile.
    let plain = SageMakerScorer::new(&sdk_conf(s.addr), "ipsight-test", fast_retries());
    let got = plain.score(&ps[..10]).await.unwrap();
    assert!(got.iter().all(|s| s.unusual_percentile.is_none()));
    assert!(plain.score(&[]).await.unwrap().is_empty());
    assert_eq!(plain.calls().load(Ordering::Relaxed), 1);
}

/// IPv6 pairs never reach the IPv4-only endpoint: the embedded model beside it scores them, in
/// place, and the counters say how many went which way; without that model the batch is rejected
/// naming the first IPv6 pair, never silently dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_pairs_are_scored_beside_the_endpoint() {
    let s = start(Fault::None, 0).await;
    let embedded = EmbeddedScorer::new(s.model.clone());
    let sm = SageMakerScorer::new(&sdk_conf(s.addr), "ipsight-test", fast_retries())
        .with_calibration(s.model.calibration().clone())
        .with_ipv6_scorer(embedded.clone());
    let mut ps = pairs(30);
    for (i, p) in ps.iter_mut().enumerate().filter(|(i, _)| i % 3 == 1) {
        p.ip = format!("2001:db8:{:x}::{:x}", i % 20, i + 1)
            .parse()
            .unwrap();
    }
    let got = sm.score(&ps).await.unwrap();
    assert_same(&got, &embedded.score(&ps).await.unwrap());
    assert_eq!(sm.ipv4_pairs().load(Ordering::Relaxed), 20);
    assert_eq!(sm.ipv6_pairs().load(Ordering::Relaxed), 10);
    assert_eq!(sm.calls().load(Ordering::Relaxed), 1);
    assert_eq!(s.seen.load(Ordering::Relaxed), 1);

    let plain = SageMakerScorer::new(&sdk_conf(s.addr), "ipsight-test", fast_retries());
    let e = plain.score(&ps).await.unwrap_err();
    let ScoreError::Rejected(m) = &e else {
        panic!("{e}")
    };
    assert!(
        m.contains("10 IPv6 pair(s)") && m.contains("2001:db8:1::2") && m.contains("MODEL_URI"),
        "{m}"
    );
    assert_eq!(plain.calls().load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_over_six_mib_is_split_under_the_limit() {
    let s = start(Fault::None, 0).await;
    let opts = fast_retries();
    let sm = SageMakerScorer::new(&sdk_conf(s.addr), "ipsight-test", opts.clone());
    // Long principal ids make the body large quickly: about 7.6 MB of CSV.
    let ps: Vec<Pair> = (0..160_000u32)
        .map(|i| Pair {
            entity: format!("AROA{:016}:federated-session-{}", i % 97, i % 13),
            ip: Ipv4Addr::from(i.wrapping_mul(2_654_435_761)).into(),
        })
        .collect();
    let bytes: usize = ps
        .iter()
        .map(|p| p.entity.len() + 1 + p.ip.to_string().len() + 1)
        .sum();
    assert!(bytes > 6 * 1024 * 1024, "{bytes}");
    let got = sm.score(&ps).await.unwrap();
    let want = EmbeddedScorer::new(s.model.clone())
        .score(&ps)
        .await
        .unwrap();
    assert_eq!(got.len(), want.len());
    for (x, y) in got.iter().zip(&want) {
        assert_eq!(x.dot_product.to_bits(), y.dot_product.to_bits());
    }
    let calls = sm.calls().load(Ordering::Relaxed);
    assert_eq!(
        calls,
        bytes.div_ceil(opts.max_body_bytes) as u64,
        "{bytes} bytes"
    );
    assert_eq!(calls, 2);
    assert_eq!(s.seen.load(Ordering::Relaxed), calls);

    // The pair cap splits too.
    let capped = SageMakerScorer::new(
        &sdk_conf(s.addr),
        "ipsight-test",
        SageMakerOptions {
            max_pairs_per_request: 1_000,
            concurrency: 3,
            ..fast_retries()
        },
    );
    let got = capped.score(&ps[..5_500]).await.unwrap();
    assert_eq!(capped.calls().load(Ordering::Relaxed), 6);
    for (x, y) in got.iter().zip(&want[..5_500]) {
        assert_eq!(x.dot_product.to_bits(), y.dot_product.to_bits());
    }
}

async fn retried(
    fault: Fault,
    first_n: u64,
) -> (
    Setup,
    SageMakerScorer,
    Result<Vec<ipsight_ports::Score>, ScoreError>,
) {
    let s = start(fault, first_n).await;
    let sm = SageMakerScorer::new(
        &sdk_conf(s.addr),
        "ipsight-test",
        SageMakerOptions {
            attempt_timeout: Duration::from_millis(300),
            ..fast_retries()
        },
    );
    let r = sm.score(&pairs(50)).await;
    (s, sm, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_unavailable_503_is_retried_until_it_succeeds() {
    let (s, sm, r) = retried(Fault::Status(503, None), 2).await;
    let want = EmbeddedScorer::new(s.model.clone())
        .score(&pairs(50))
        .await
        .unwrap();
    let got = r.unwrap();
    for (x, y) in got.iter().zip(&want) {
        assert_eq!(x.dot_product.to_bits(), y.dot_product.to_bits());
    }
    assert_eq!(sm.calls().load(Ordering::Relaxed), 3);
    assert_eq!(sm.retries().load(Ordering::Relaxed), 2);
    assert_eq!(s.seen.load(Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_429_is_retried() {
    let (s, sm, r) = retried(Fault::Status(429, Some("ThrottlingException")), 3).await;
    assert_eq!(r.unwrap().len(), 50);
    assert_eq!(sm.calls().load(Ordering::Relaxed), 4);
    assert_eq!(s.seen.load(Ordering::Relaxed), 4);
    // SageMaker's typed 503.
    let (_, sm, r) = retried(Fault::Status(503, Some("ServiceUnavailable")), 1).await;
    assert_eq!(r.unwrap().len(), 50);
    assert_eq!(sm.calls().load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_attempt_is_retried() {
    let (_, sm, r) = retried(Fault::Sleep(Duration::from_millis(1_500)), 1).await;
    assert_eq!(r.unwrap().len(), 50);
    assert_eq!(sm.calls().load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_attempt_budget() {
    let s = start(Fault::Status(503, None), u64::MAX).await;
    let sm = SageMakerScorer::new(
        &sdk_conf(s.addr),
        "ipsight-test",
        SageMakerOptions {
            max_attempts: 3,
            ..fast_retries()
        },
    );
    let e = sm.score(&pairs(10)).await.unwrap_err();
    assert!(matches!(e, ScoreError::Unavailable(_)), "{e}");
    assert!(e.to_string().contains("gave up after 3 attempts"), "{e}");
    assert_eq!(sm.calls().load(Ordering::Relaxed), 3);

    // And at the time budget.
    let sm = SageMakerScorer::new(
        &sdk_conf(s.addr),
        "ipsight-test",
        SageMakerOptions {
            max_attempts: 1_000,
            max_retry_time: Duration::from_millis(300),
            ..fast_retries()
        },
    );
    let t = std::time::Instant::now();
    let e = sm.score(&pairs(10)).await.unwrap_err();
    assert!(matches!(e, ScoreError::Unavailable(_)), "{e}");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(sm.calls().load(Ordering::Relaxed) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_error_is_rejected_naming_the_batch_and_pair_without_retrying() {
    let (s, sm, r) = retried(Fault::ModelError400, 1).await;
    let e = r.unwrap_err();
    let ScoreError::Rejected(m) = &e else {
        panic!("expected Rejected, got {e}")
    };
    assert!(m.contains("batch 1 of 1 (pairs 1–50)"), "{m}");
    assert!(m.contains("model error (400): record 2: bad entity"), "{m}");
    assert!(m.contains("(pair 2 of the input)"), "{m}");
    assert_eq!(sm.calls().load(Ordering::Relaxed), 1);
    assert_eq!(s.seen.load(Ordering::Relaxed), 1);

    // A plain 4xx from the service (here: the 413 of an over-limit body) is rejected too.
    let big = SageMakerScorer::new(
        &sdk_conf(s.addr),
        "ipsight-test",
        SageMakerOptions {
            max_body_bytes: 16 * 1024 * 1024,
            max_pairs_per_request: usize::MAX,
            ..fast_retries()
        },
    );
    let ps: Vec<Pair> = (0..200_000u32)
        .map(|i| Pair {
            entity: format!("AROA{:016}:session-{}", i, i % 7),
            ip: Ipv4Addr::from(i).into(),
        })
        .collect();
    let e = big.score(&ps).await.unwrap_err();
    assert!(matches!(e, ScoreError::Rejected(_)), "{e}");
    assert!(e.to_string().contains("413"), "{e}");
    assert_eq!(big.calls().load(Ordering::Relaxed), 1);
}

#[test]
fn response_parsing_is_exact_and_tolerant_of_spacing() {
    let xs = [0.1f32, -3.402_823_5e38, 1e-45, 7.0, -0.0];
    let body = ipsight_model::wire::write_response(
        &xs.iter()
            .map(|&x| ipsight_model::wire::Prediction {
                dot_product: x,
                embeddings: None,
            })
            .collect::<Vec<_>>(),
        Default::default(),
    );
    let got = parse_dot_products(&body).unwrap();
    assert_eq!(
        got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    let spaced = br#"{ "predictions": [ {"dot_product": 1.5}, {"dot_product" : null} ] }"#;
    let got = parse_dot_products(spaced).unwrap();
    assert_eq!(got[0], 1.5);
    assert!(got[1].is_nan());
    assert!(parse_dot_products(b"oops").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_from_the_environment() {
    let model = tiny_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.ipsm");
    model.save(&path).unwrap();
    let conf = sdk_conf("127.0.0.1:9".parse().unwrap());
    let p = path.to_str().unwrap();

    let s = scorer_from_vars(&conf, env(&[("MODEL_URI", p)]))
        .await
        .unwrap();
    assert!(matches!(s, AnyScorer::Embedded(_)), "{}", s.describe());
    assert!(s.score(&pairs(3)).await.unwrap()[0]
        .unusual_percentile
        .is_some());

    let s = scorer_from_vars(
        &conf,
        env(&[
            ("SAGEMAKER_ENDPOINT", "ipsight-prod"),
            ("CALIBRATION_URI", p),
            ("SAGEMAKER_CONCURRENCY", "8"),
            ("SAGEMAKER_MAX_PAIRS_PER_REQUEST", "5000"),
        ]),
    )
    .await
    .unwrap();
    let AnyScorer::SageMaker(sm) = &s else {
        panic!("{}", s.describe())
    };
    assert_eq!(
        s.describe(),
        "SageMaker endpoint ipsight-prod (no baseline: the embedding alone; IPv4 only: no \
         embedded model for IPv6 pairs)"
    );
    assert_eq!(sm.endpoint(), "ipsight-prod");
    assert_eq!(sm.options().concurrency, 8);
    assert_eq!(sm.options().max_pairs_per_request, 5000);
    // MODEL_URI beside an endpoint: the model that scores IPv6 pairs, loaded at cold start.
    let s = scorer_from_vars(
        &conf,
        env(&[("SAGEMAKER_ENDPOINT", "ipsight-prod"), ("MODEL_URI", p)]),
    )
    .await
    .unwrap();
    assert_eq!(
        s.describe(),
        "SageMaker endpoint ipsight-prod (no baseline: the embedding alone; IPv6 pairs: the \
         embedded model beside it)"
    );
    let e = scorer_from_vars(
        &conf,
        env(&[
            ("SAGEMAKER_ENDPOINT", "ipsight-prod"),
            ("MODEL_URI", "/nonexistent"),
        ]),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ScorerInitError::Model { .. }), "{e}");

    let e = scorer_from_vars(
        &conf,
        env(&[
            ("SAGEMAKER_ENDPOINT", "x"),
            ("SAGEMAKER_CONCURRENCY", "lots"),
        ]),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ScorerInitError::Config(_)), "{e}");
    assert!(e.to_string().contains("SAGEMAKER_CONCURRENCY"), "{e}");

    let e = scorer_from_vars(&conf, env(&[("MODEL_URI", "/nonexistent/model.ipsm")]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/model.ipsm"), "{e}");

    // Calibration as JSON (the model header's `calibration` object).
    let json = serde_json::to_vec(model.calibration()).unwrap();
    let cal = calibration_from_bytes(&json, "cal.json").unwrap();
    assert_eq!(&cal, model.calibration());
    let e = calibration_from_bytes(b"{\"quantiles\":[3,2,1],\"pairs\":3}", "bad.json").unwrap_err();
    assert!(e.to_string().contains("non-decreasing"), "{e}");
}
