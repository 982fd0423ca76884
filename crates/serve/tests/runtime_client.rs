//! `ipsight serve` driven by the real `aws-sdk-sagemakerruntime` client (endpoint override to a
//! loopback port, static test credentials), plus the bare container contract over raw HTTP/1.1.
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use aws_sdk_sagemakerruntime::config::retry::RetryConfig;
use aws_sdk_sagemakerruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sagemakerruntime::error::SdkError;
use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError;
use aws_sdk_sagemakerruntime::primitives::Blob;
use aws_sdk_sagemakerruntime::Client;
use ipsight_model::{
    train, wire, Hyperparameters, IpEncoderLayout, Model, TrainOptions, TrainingData,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tiny_model() -> Model {
    let mut d = TrainingData::new();
    for u in 0..20u8 {
        for k in 0..10u8 {
            d.push(&format!("user{u}"), Ipv4Addr::new(10, u, 0, k));
        }
    }
    let mut hp = Hyperparameters::new(64, 8);
    hp.epochs = 2;
    hp.mini_batch_size = 50;
    let opts = TrainOptions {
        threads: Some(1),
        layout: IpEncoderLayout {
            prefix24_buckets: 128,
            address_buckets: 128,
            ipv6_buckets: 64,
        },
        ..TrainOptions::default()
    };
    train(&hp, &opts, &d, None, &mut |_| {}).unwrap()
}

struct Server {
    addr: SocketAddr,
    model: Arc<Model>,
    client: Client,
}

async fn start() -> Server {
    let model = Arc::new(tiny_model());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ipsight_serve::serve_on(
        model.clone(),
        listener,
        std::future::pending(),
    ));
    let conf = aws_sdk_sagemakerruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(format!("http://{addr}"))
        .retry_config(RetryConfig::disabled())
        .build();
    Server {
        addr,
        model,
        client: Client::from_conf(conf),
    }
}

impl Server {
    async fn invoke(
        &self,
        body: impl Into<Vec<u8>>,
        content_type: &str,
        accept: Option<&str>,
    ) -> Result<(Vec<u8>, String), SdkError<InvokeEndpointError>> {
        let mut req = self
            .client
            .invoke_endpoint()
            .endpoint_name("ipsight-test")
            .content_type(content_type)
            .body(Blob::new(body.into()));
        if let Some(a) = accept {
            req = req.accept(a);
        }
        let out = req.send().await?;
        assert_eq!(out.invoked_production_variant(), Some("AllTraffic"));
        Ok((
            out.body.map(Blob::into_inner).unwrap_or_default(),
            out.content_type.unwrap_or_default(),
        ))
    }

    /// The expected response: the model crate's own wire handling of the same request.
    fn expected(&self, body: &[u8], content_type: &str, accept: &str) -> Vec<u8> {
        wire::invoke(&self.model, body, content_type, accept).unwrap()
    }
}

const CSV: &[u8] = b"user1,10.1.0.3\nuser1, 203.0.113.9\nnever-seen-entity,10.1.0.3\n";
const JSON_BOTH_SHAPES: &[u8] = br#"{"instances":[{"data":{"features":{"values":["user1","10.1.0.3"]}}},{"features":["user1","203.0.113.9"]},{"features":["never-seen-entity","10.1.0.3"]}]}"#;
const JSONL: &[u8] = b"{\"data\": {\"features\": {\"values\": [\"user1\", \"10.1.0.3\"]}}}\n{\"features\": [\"user1\", \"203.0.113.9\"]}\n{\"features\":[\"never-seen-entity\",\"10.1.0.3\"]}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_format_through_the_sdk_matches_the_wire_format() {
    let s = start().await;
    for (body, ct) in [
        (CSV, "text/csv"),
        (JSON_BOTH_SHAPES, "application/json"),
        (JSONL, "application/jsonlines"),
    ] {
        for accept in [
            None,
            Some("application/json"),
            Some("application/jsonlines"),
            Some("application/json; verbose=True"),
        ] {
            let (got, got_ct) = s.invoke(body, ct, accept).await.unwrap();
            let want = s.expected(body, ct, accept.unwrap_or("application/json"));
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want).unwrap(),
                "{ct} / {accept:?}"
            );
            let want_ct = if accept == Some("application/jsonlines") {
                "application/jsonlines"
            } else {
                "application/json"
            };
            assert_eq!(got_ct, want_ct);
        }
    }
    // The three formats carry the same pairs: the same scores, in the same order.
    let csv = s.invoke(CSV, "text/csv", None).await.unwrap().0;
    let json = s
        .invoke(JSON_BOTH_SHAPES, "application/json", None)
        .await
        .unwrap()
        .0;
    assert_eq!(csv, json);
    let v: serde_json::Value = serde_json::from_slice(&csv).unwrap();
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 3);
    // Known pair scores higher (more normal) than the same user from an unseen network.
    assert!(preds[0]["dot_product"].as_f64().unwrap() > preds[1]["dot_product"].as_f64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_adds_both_embeddings() {
    let s = start().await;
    let (got, _) = s
        .invoke(CSV, "text/csv", Some("application/json; verbose=True"))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&got).unwrap();
    for p in v["predictions"].as_array().unwrap() {
        assert_eq!(p["entity_embedding"].as_array().unwrap().len(), 8);
        assert_eq!(p["ip_embedding"].as_array().unwrap().len(), 8);
        let dot: f64 = p["entity_embedding"]
            .as_array()
            .unwrap()
            .iter()
            .zip(p["ip_embedding"].as_array().unwrap())
            .map(|(a, b)| a.as_f64().unwrap() * b.as_f64().unwrap())
            .sum();
        assert!((dot - p["dot_product"].as_f64().unwrap()).abs() < 1e-4);
    }
}

/// A CSV body of exactly `len` bytes (blank lines pad it; the wire format skips them).
fn csv_body(len: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(len);
    let mut i = 0u32;
    loop {
        let line = format!(
            "user{},10.{}.{}.{}\n",
            i % 20,
            i % 20,
            (i >> 8) & 255,
            i & 255
        );
        if b.len() + line.len() > len {
            break;
        }
        b.extend_from_slice(line.as_bytes());
        i += 1;
    }
    b.resize(len, b'\n');
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_mib_is_accepted_and_one_byte_more_is_413() {
    let s = start().await;
    let limit = ipsight_serve::MAX_BODY_BYTES;
    let body = csv_body(limit);
    let lines = body.iter().filter(|&&c| c == b'\n').count();
    let (got, _) = s.invoke(body.clone(), "text/csv", None).await.unwrap();
    let preds = wire::parse_request(&body, wire::ContentType::Csv)
        .unwrap()
        .len();
    assert!(preds > 200_000 && preds <= lines);
    assert_eq!(got, s.expected(&body, "text/csv", "application/json"));

    let err = s
        .invoke(csv_body(limit + 1), "text/csv", None)
        .await
        .unwrap_err();
    let SdkError::ServiceError(se) = &err else {
        panic!("expected a service error, got {err:?}")
    };
    assert_eq!(se.raw().status().as_u16(), 413);
    let InvokeEndpointError::ValidationError(v) = se.err() else {
        panic!("expected ValidationError, got {:?}", se.err())
    };
    let msg = v.message().unwrap();
    assert!(
        msg.contains("6291457 bytes") && msg.contains("6 MiB"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_ip_is_a_model_error_naming_the_record() {
    let s = start().await;
    let err = s
        .invoke(&b"user1,10.1.0.3\nuser2,10.1.0.300\n"[..], "text/csv", None)
        .await
        .unwrap_err();
    let SdkError::ServiceError(se) = &err else {
        panic!("expected a service error, got {err:?}")
    };
    // What SageMaker Runtime returns for a container's 400: HTTP 424 ModelError.
    assert_eq!(se.raw().status().as_u16(), 424);
    let InvokeEndpointError::ModelError(m) = se.err() else {
        panic!("expected ModelError, got {:?}", se.err())
    };
    assert_eq!(m.original_status_code(), Some(400));
    assert_eq!(
        m.original_message(),
        Some("record 2: \"10.1.0.300\" is not a dotted-quad IPv4 address")
    );
    assert!(m.message().unwrap().contains("Received client error (400)"));

    // IPv6 is scored by a format-2 model; a zone id is not an address of a remote caller.
    s.invoke(
        &br#"{"instances":[{"features":["a","1.2.3.4"]},{"features":["b","2001:db8::1"]}]}"#[..],
        "application/json",
        None,
    )
    .await
    .unwrap();
    let err = s
        .invoke(
            &br#"{"instances":[{"features":["a","1.2.3.4"]},{"features":["b","fe80::1%eth0"]}]}"#[..],
            "application/json",
            None,
        )
        .await
        .unwrap_err();
    let m = match err.into_service_error() {
        InvokeEndpointError::ModelError(m) => m,
        e => panic!("{e:?}"),
    };
    assert!(
        m.original_message().unwrap().starts_with("record 2:"),
        "{m:?}"
    );
    assert!(
        m.original_message()
            .unwrap()
            .contains("not an IPv4 or IPv6 address"),
        "{m:?}"
    );

    // Unsupported formats: the container's 415 / 406.
    let m = match s
        .invoke(CSV, "text/plain", None)
        .await
        .unwrap_err()
        .into_service_error()
    {
        InvokeEndpointError::ModelError(m) => m,
        e => panic!("{e:?}"),
    };
    assert_eq!(m.original_status_code(), Some(415));
    let m = match s
        .invoke(CSV, "text/csv", Some("text/html"))
        .await
        .unwrap_err()
        .into_service_error()
    {
        InvokeEndpointError::ModelError(m) => m,
        e => panic!("{e:?}"),
    };
    assert_eq!(m.original_status_code(), Some(406));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_all_answered_correctly() {
    let s = Arc::new(start().await);
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let body: Vec<u8> = (0..5_000u32)
                .flat_map(|i| format!("user{},10.{}.0.{}\n", (i + t) % 20, t, i % 256).into_bytes())
                .collect();
            let (got, _) = s.invoke(body.clone(), "text/csv", None).await.unwrap();
            assert_eq!(got, s.expected(&body, "text/csv", "application/json"));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// One raw HTTP/1.1 exchange: (status, body).
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(request).await.unwrap();
    let mut resp = Vec::new();
    c.read_to_end(&mut resp).await.unwrap();
    let resp = String::from_utf8(resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_contract_ping_and_invocations() {
    let s = start().await;
    let (status, _) = raw(
        s.addr,
        b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);

    let req = format!(
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        CSV.len()
    );
    let (status, body) = raw(s.addr, &[req.as_bytes(), CSV].concat()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body.as_bytes(),
        s.expected(CSV, "text/csv", "application/json")
    );

    let bad = b"user1,not-an-ip\n";
    let req = format!(
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bad.len()
    );
    let (status, body) = raw(s.addr, &[req.as_bytes(), bad].concat()).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        "record 1: \"not-an-ip\" is not a dotted-quad IPv4 address"
    );

    // An over-limit declared length is refused without waiting for the body to be buffered.
    let big = csv_body(ipsight_serve::MAX_BODY_BYTES + 10);
    let req = format!(
        "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        big.len()
    );
    let (status, body) = raw(s.addr, &[req.as_bytes(), &big].concat()).await;
    assert_eq!(status, 413);
    assert!(
        body.contains("exceeds the SageMaker InvokeEndpoint limit"),
        "{body}"
    );
}
