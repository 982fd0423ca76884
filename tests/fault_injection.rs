//! Fault injection between the handlers and their servers: a small HTTP proxy on loopback, in front
//! of moto_server (S3) for prepare-cloudtrail and in front of `ipsight serve` (SageMaker Runtime) for
//! ipcheck, answers 500/503/429, delays, resets connections and drops them mid-body, on a schedule.
//!
//! For every fault the handler either absorbs it (the AWS SDK's standard retry for S3, the
//! SageMakerScorer's own retries) and produces exactly the outputs of a clean run, or reports the
//! affected SQS messages as failed and writes nothing for them; re-driving those messages once the
//! fault is gone then yields exactly the clean outputs. Loopback only; every loop is bounded.
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipcheck::alerts::NoAlerts;
use ipsight_aws::scorers::{SageMakerOptions, SageMakerScorer};
use ipsight_aws::S3Store;
use ipsight_model::{train, Hyperparameters, IpEncoderLayout, Model, TrainOptions, TrainingData};
use ipsight_testkit::events::{gz, sqs};
use ipsight_testkit::S3Server;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------
// The proxy.

/// What the proxy does to one request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Pass,
    /// Answer with this status, error code and body instead of forwarding.
    Status(u16, &'static str),
    /// Forward after a delay.
    Delay(Duration),
    /// Read the request head, then close the connection without answering.
    Reset,
    /// Forward, then cut the connection after half of the response body.
    DropMidResponse,
}

type Plan = Box<dyn Fn(u64, &str) -> Fault + Send + Sync>;

/// A one-request-per-connection HTTP/1.1 proxy: `Connection: close` is added to both sides so the
/// end of each response is the end of its connection, which keeps the proxy free of body framing.
struct Proxy {
    addr: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    requests: Arc<AtomicU64>,
    faults: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let plan: Arc<Mutex<Plan>> = Arc::new(Mutex::new(Box::new(|_, _| Fault::Pass)));
        let requests = Arc::new(AtomicU64::new(0));
        let faults = Arc::new(AtomicU64::new(0));
        let (p, r, f) = (plan.clone(), requests.clone(), faults.clone());
        tokio::spawn(async move {
            loop {
                let Ok((c, _)) = listener.accept().await else {
                    return;
                };
                let (p, r, f) = (p.clone(), r.clone(), f.clone());
                tokio::spawn(async move {
                    let _ = one_request(c, upstream, p, r, f).await;
                });
            }
        });
        Self {
            addr,
            plan,
            requests,
            faults,
        }
    }

    /// Sets the schedule (request number from 0 since this call, request line) and resets counters.
    fn set(&self, plan: impl Fn(u64, &str) -> Fault + Send + Sync + 'static) {
        *self.plan.lock().unwrap() = Box::new(plan);
        self.requests.store(0, Ordering::SeqCst);
        self.faults.store(0, Ordering::SeqCst);
    }

    fn counts(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::SeqCst),
            self.faults.load(Ordering::SeqCst),
        )
    }
}

/// Reads up to the end of an HTTP head (bounded); returns (head, bytes read past it).
async fn read_head(s: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((buf, rest));
        }
        if buf.len() > 1 << 20 {
            return Err(std::io::Error::other("head too large"));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The head with any `Connection` header replaced by `Connection: close` (not a signed header).
fn with_close(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn content_length(head: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(head).split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })
}

async fn one_request(
    mut c: TcpStream,
    upstream: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    requests: Arc<AtomicU64>,
    faults: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let (head, mut body_start) = read_head(&mut c).await?;
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    let n = requests.fetch_add(1, Ordering::SeqCst);
    let fault = (plan.lock().unwrap())(n, &line);
    if fault != Fault::Pass {
        faults.fetch_add(1, Ordering::SeqCst);
    }
    match fault {
        Fault::Reset => return Ok(()),
        Fault::Status(code, err) => {
            // Drain the request body first, so the client reads our answer instead of a reset.
            let want = content_length(&head).unwrap_or(0);
            let mut buf = [0u8; 8192];
            let deadline = Instant::now() + Duration::from_secs(5);
            while body_start.len() < want && Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf)).await {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => body_start.extend_from_slice(&buf[..k]),
                }
            }
            // An S3-style XML error and SageMaker's x-amzn-ErrorType: each client reads its own.
            let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{err}</Code><Message>injected</Message></Error>");
            let resp = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/xml\r\nx-amzn-ErrorType: {err}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            c.write_all(resp.as_bytes()).await?;
            return c.shutdown().await;
        }
        Fault::Delay(d) => tokio::time::sleep(d).await,
        Fault::Pass | Fault::DropMidResponse => {}
    }
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(&with_close(&head)).await?;
    up.write_all(&body_start).await?;
    let (mut cr, mut cw) = c.into_split();
    let (mut ur, mut uw) = up.into_split();
    // The rest of the request body, while the response comes back.
    let req = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut uw).await;
    });
    let mut resp = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let k = ur.read(&mut chunk).await?;
        if k == 0 {
            req.abort();
            return Ok(());
        }
        resp.extend_from_slice(&chunk[..k]);
    };
    cw.write_all(&with_close(&resp[..head_end])).await?;
    let mut body = resp.split_off(head_end);
    if fault == Fault::DropMidResponse {
        let total = content_length(&resp[..head_end]).unwrap_or(0);
        let half = total / 2;
        while body.len() < half {
            let k = ur.read(&mut chunk).await?;
            if k == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..k]);
        }
        body.truncate(half);
        cw.write_all(&body).await?;
        req.abort();
        // Dropping both halves closes the connection with the body incomplete.
        return Ok(());
    }
    cw.write_all(&body).await?;
    tokio::io::copy(&mut ur, &mut cw).await?;
    cw.shutdown().await?;
    req.abort();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared helpers.

fn notification(bucket: &str, key: &str) -> String {
    json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
        "s3":{"bucket":{"name":bucket},"object":{"key":key,"size":100}}}]})
    .to_string()
}

fn failures(resp: &Value) -> Vec<String> {
    let mut v: Vec<String> = resp["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// Every output under `prefix`, as text, with the (per-scenario) bucket name replaced so that runs in
/// different buckets compare equal; everything else must match byte for byte.
async fn outputs(s3: &S3Server, bucket: &str, prefix: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for k in s3.keys(bucket).await {
        if k.starts_with(prefix) {
            let b = String::from_utf8(s3.get(bucket, &k).await.unwrap()).unwrap();
            m.insert(k, b.replace(bucket, "<bucket>"));
        }
    }
    m
}

fn sdk_conf(endpoint: &str, attempt_timeout: Duration) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "fault"),
        ))
        // The SDK's standard retry mode (3 attempts) is what a Lambda gets by default; the attempt
        // timeout makes a stalled server a retryable error instead of a hang.
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .build()
}

/// One scenario's outcome, printed for docs/robustness.md.
fn report(handler: &str, name: &str, proxy: &Proxy, failed: &[String], ms: u128) {
    let (req, faults) = proxy.counts();
    eprintln!(
        "FAULT {handler} | {name} | {req} requests, {faults} faulted | failed messages: {} | {ms} ms",
        if failed.is_empty() {
            "none".to_string()
        } else {
            failed.join(" ")
        }
    );
}

// ---------------------------------------------------------------------------------------------
// prepare-cloudtrail against S3 through the proxy.

fn trail_key(i: usize) -> String {
    format!("AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/01/111122223333_CloudTrail_us-east-1_20240101T0000Z_obj{i}.json.gz")
}

fn trail_object(i: usize) -> Vec<u8> {
    // Large enough (~200 KB uncompressed) that a response cut in half is really mid-body.
    let recs: Vec<Value> = (0..800)
        .map(|j| {
            json!({"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":format!("AIDA{}", (i * 31 + j) % 50)},
                "eventTime":"2024-01-01T00:00:00Z","eventName":"GetObject","userAgent":"aws-cli/2.15 Python/3.11 Linux/6.1 exe/x86_64",
                "sourceIPAddress":format!("10.{}.{}.{}", i, j % 200, j % 7)})
        })
        .collect();
    gz(json!({ "Records": recs }).to_string().as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_cloudtrail_under_s3_faults() {
    let s3 = S3Server::start().await;
    let upstream: SocketAddr = s3.endpoint.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let n = 4;
    let messages = |bucket: &str, ids: &[usize]| -> Value {
        sqs(&ids
            .iter()
            .map(|&i| (format!("obj{i}"), notification(bucket, &trail_key(i))))
            .collect::<Vec<_>>())
    };
    let all: Vec<usize> = (0..n).collect();
    let setup = || async {
        let input = s3.unique_bucket("fault-trail");
        let output = s3.unique_bucket("fault-data");
        s3.create_bucket(&input).await;
        s3.create_bucket(&output).await;
        for i in 0..n {
            s3.put(&input, &trail_key(i), trail_object(i)).await;
        }
        let (i2, o2) = (input.clone(), output.clone());
        let cfg = prepare_cloudtrail::Config::from_lookup(move |k| match k {
            "OUTPUT_BUCKET" => Some(o2.clone()),
            "INPUT_BUCKET" => Some(i2.clone()),
            _ => None,
        })
        .unwrap();
        (input, output, cfg)
    };

    // The clean run, straight to the server.
    let (input, output, cfg) = setup().await;
    let direct = S3Store::from_conf(&sdk_conf(&s3.endpoint, Duration::from_secs(10)));
    let resp = prepare_cloudtrail::handle(&cfg, &direct, messages(&input, &all))
        .await
        .unwrap();
    assert_eq!(failures(&resp), Vec::<String>::new());
    let clean: Vec<String> = outputs(&s3, &output, "train/")
        .await
        .into_values()
        .collect();
    assert_eq!(clean.len(), n);

    let via = S3Store::from_conf(&sdk_conf(
        &format!("http://{}", proxy.addr),
        Duration::from_secs(2),
    ));
    let is_get = |l: &str| l.starts_with("GET ");
    let is_put = |l: &str| l.starts_with("PUT ");
    type Scenario = (&'static str, Plan, Vec<&'static str>);
    let scenarios: Vec<Scenario> = vec![
        (
            "503 SlowDown on the first 2 requests",
            Box::new(|n, _| {
                if n < 2 {
                    Fault::Status(503, "SlowDown")
                } else {
                    Fault::Pass
                }
            }),
            vec![],
        ),
        (
            "500 InternalError on the first 2 requests",
            Box::new(|n, _| {
                if n < 2 {
                    Fault::Status(500, "InternalError")
                } else {
                    Fault::Pass
                }
            }),
            vec![],
        ),
        (
            "connection reset before the response, first 2 requests",
            Box::new(|n, _| if n < 2 { Fault::Reset } else { Fault::Pass }),
            vec![],
        ),
        (
            "every response delayed 300 ms",
            Box::new(|_, _| Fault::Delay(Duration::from_millis(300))),
            vec![],
        ),
        (
            "first GET stalls 5 s (attempt timeout 2 s)",
            Box::new(move |n, l| {
                if n == 0 && is_get(l) {
                    Fault::Delay(Duration::from_secs(5))
                } else {
                    Fault::Pass
                }
            }),
            vec![],
        ),
        (
            "first 2 PUTs answered 503",
            Box::new(move |_, l| {
                static PUTS: AtomicU64 = AtomicU64::new(0);
                if is_put(l) && PUTS.fetch_add(1, Ordering::SeqCst) < 2 {
                    Fault::Status(503, "SlowDown")
                } else {
                    Fault::Pass
                }
            }),
            vec![],
        ),
        (
            "every GET of obj1 cut mid-body",
            Box::new(move |_, l| {
                if is_get(l) && l.contains("obj1.json.gz") {
                    Fault::DropMidResponse
                } else {
                    Fault::Pass
                }
            }),
            vec!["obj1"],
        ),
        (
            "obj2 answered 503 on every attempt",
            Box::new(|_, l| {
                if l.contains("obj2.json.gz") {
                    Fault::Status(503, "SlowDown")
                } else {
                    Fault::Pass
                }
            }),
            vec!["obj2"],
        ),
        (
            "every PUT answered 500",
            Box::new(move |_, l| {
                if is_put(l) {
                    Fault::Status(500, "InternalError")
                } else {
                    Fault::Pass
                }
            }),
            vec!["obj0", "obj1", "obj2", "obj3"],
        ),
    ];
    for (name, plan, want_failed) in scenarios {
        let (input, output, cfg) = setup().await;
        proxy.set(plan);
        let t = Instant::now();
        let resp = prepare_cloudtrail::handle(&cfg, &via, messages(&input, &all))
            .await
            .unwrap();
        let failed = failures(&resp);
        report(
            "prepare-cloudtrail",
            name,
            &proxy,
            &failed,
            t.elapsed().as_millis(),
        );
        assert_eq!(failed, want_failed, "{name}");
        // Outputs: exactly the clean outputs of the messages that succeeded, nothing else.
        let got = outputs(&s3, &output, "train/").await;
        let want: Vec<&String> = (0..n)
            .filter(|i| !want_failed.contains(&format!("obj{i}").as_str()))
            .map(|i| &clean[i])
            .collect();
        assert_eq!(got.values().collect::<Vec<_>>(), want, "{name}");
        if !failed.is_empty() {
            // Re-drive the failed messages once the fault is gone.
            proxy.set(|_, _| Fault::Pass);
            let ids: Vec<usize> = failed
                .iter()
                .map(|f| f.trim_start_matches("obj").parse().unwrap())
                .collect();
            let resp = prepare_cloudtrail::handle(&cfg, &via, messages(&input, &ids))
                .await
                .unwrap();
            assert_eq!(failures(&resp), Vec::<String>::new(), "{name}: re-drive");
            let got: Vec<String> = outputs(&s3, &output, "train/")
                .await
                .into_values()
                .collect();
            assert_eq!(got, clean, "{name}: re-drive differs from the clean run");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ipcheck against `ipsight serve` (SageMaker Runtime) through the proxy.

fn model() -> Arc<Model> {
    let mut d = TrainingData::new();
    for u in 0..20u8 {
        for k in 0..20u8 {
            d.push(&format!("AIDA{u}"), Ipv4Addr::new(10, u, 0, k));
        }
    }
    let mut hp = Hyperparameters::new(64, 8);
    hp.epochs = 2;
    hp.mini_batch_size = 50;
    let opts = TrainOptions {
        seed: 3,
        threads: Some(1),
        layout: IpEncoderLayout {
            prefix24_buckets: 128,
            address_buckets: 128,
            ipv6_buckets: 64,
        },
        ..TrainOptions::default()
    };
    Arc::new(train(&hp, &opts, &d, None, &mut |_| {}).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipcheck_under_sagemaker_faults() {
    let model = model();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serve_addr = listener.local_addr().unwrap();
    tokio::spawn(ipsight_serve::serve_on(
        model.clone(),
        listener,
        std::future::pending(),
    ));
    let proxy = Proxy::start(serve_addr).await;
    let s3 = S3Server::start().await;
    let store = S3Store::from_conf(&s3.sdk_config());
    let n = 3;
    let key = |i: usize| format!("infer/tuples/batch{i}.csv");
    let setup = || async {
        let data = s3.unique_bucket("fault-ipcheck");
        s3.create_bucket(&data).await;
        for i in 0..n {
            let csv: String = (0..12)
                .map(|j| format!("AIDA{},10.{}.{}.{}\n", (i * 5 + j) % 20, j, i, j))
                .collect();
            s3.put(&data, &key(i), csv.into_bytes()).await;
        }
        let d2 = data.clone();
        let cfg = ipcheck::Config::from_lookup(move |k| match k {
            "OUTPUT_BUCKET" | "INPUT_BUCKET" => Some(d2.clone()),
            "INPUT_PREFIX" => Some("infer/".into()),
            _ => None,
        })
        .unwrap();
        (data, cfg)
    };
    let messages = |bucket: &str, ids: &[usize]| {
        sqs(&ids
            .iter()
            .map(|&i| (format!("m{i}"), notification(bucket, &key(i))))
            .collect::<Vec<_>>())
    };
    let all: Vec<usize> = (0..n).collect();
    let scorer = |addr: SocketAddr| {
        let opts = SageMakerOptions {
            // Several InvokeEndpoint calls per object, one at a time so the schedule is predictable.
            max_pairs_per_request: 4,
            concurrency: 1,
            base_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            attempt_timeout: Duration::from_secs(1),
            ..SageMakerOptions::default()
        };
        SageMakerScorer::new(
            &sdk_conf(&format!("http://{addr}"), Duration::from_secs(10)),
            "ipsight-fault",
            opts,
        )
        .with_calibration(model.calibration().clone())
    };

    let (data, cfg) = setup().await;
    let clean_scorer = scorer(serve_addr);
    let resp = ipcheck::handle(
        &cfg,
        &store,
        &clean_scorer,
        &NoAlerts,
        messages(&data, &all),
    )
    .await
    .unwrap();
    assert_eq!(failures(&resp), Vec::<String>::new());
    let clean: Vec<String> = outputs(&s3, &data, "scores/").await.into_values().collect();
    assert_eq!(clean.len(), n);

    let via = scorer(proxy.addr);
    type Scenario = (&'static str, Plan, Vec<&'static str>);
    let scenarios: Vec<Scenario> = vec![
        (
            "429 ThrottlingException on the first 3 requests",
            Box::new(|n, _| {
                if n < 3 {
                    Fault::Status(429, "ThrottlingException")
                } else {
                    Fault::Pass
                }
            }),
            vec![],
        ),
        (
            "503 ServiceUnavailable on the first 3 requests",
            Box::new(|n, _| {
                if n < 3 {
                    Fault::Status(503, "ServiceUnavailable")
                } else {
                    Fault::Pass
                }
            }),
            vec![],
        ),
        (
            "500 InternalFailure on the first 2 requests",
            Box::new(|n, _| {
                if n < 2 {
                    Fault::Status(500, "InternalFailure")
                } else {
                    Fault::Pass
                }
            }),
            vec![],
        ),
        (
            "connection reset before the response, first 2 requests",
            Box::new(|n, _| if n < 2 { Fault::Reset } else { Fault::Pass }),
            vec![],
        ),
        (
            "response cut mid-body, first 2 requests",
            Box::new(|n, _| {
                if n < 2 {
                    Fault::DropMidResponse
                } else {
                    Fault::Pass
                }
            }),
            vec![],
        ),
        (
            "first request stalls 3 s (attempt timeout 1 s)",
            Box::new(|n, _| {
                if n == 0 {
                    Fault::Delay(Duration::from_secs(3))
                } else {
                    Fault::Pass
                }
            }),
            vec![],
        ),
        (
            "endpoint down: every request 503",
            Box::new(|_, _| Fault::Status(503, "ServiceUnavailable")),
            vec!["m0", "m1", "m2"],
        ),
    ];
    for (name, plan, want_failed) in scenarios {
        let (data, cfg) = setup().await;
        proxy.set(plan);
        let t = Instant::now();
        let resp = ipcheck::handle(&cfg, &store, &via, &NoAlerts, messages(&data, &all))
            .await
            .unwrap();
        let failed = failures(&resp);
        report("ipcheck", name, &proxy, &failed, t.elapsed().as_millis());
        assert_eq!(failed, want_failed, "{name}");
        let got = outputs(&s3, &data, "scores/").await;
        let want: Vec<&String> = (0..n)
            .filter(|i| !want_failed.contains(&format!("m{i}").as_str()))
            .map(|i| &clean[i])
            .collect();
        assert_eq!(got.values().collect::<Vec<_>>(), want, "{name}");
        if !failed.is_empty() {
            proxy.set(|_, _| Fault::Pass);
            let ids: Vec<usize> = failed
                .iter()
                .map(|f| f.trim_start_matches('m').parse().unwrap())
                .collect();
            let resp = ipcheck::handle(&cfg, &store, &via, &NoAlerts, messages(&data, &ids))
                .await
                .unwrap();
            assert_eq!(failures(&resp), Vec::<String>::new(), "{name}: re-drive");
            let got: Vec<String> = outputs(&s3, &data, "scores/").await.into_values().collect();
            assert_eq!(got, clean, "{name}: re-drive differs from the clean run");
        }
    }
}
