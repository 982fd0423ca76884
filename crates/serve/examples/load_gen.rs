//! Load generator for `ipsight serve`: concurrent `InvokeEndpoint` calls through the real
//! `aws-sdk-sagemakerruntime` client, from a separate process, loopback only, bounded in count and time.
//!
//! cargo run --release -p ipsight-serve --example load_gen -- \
//!     --url http://127.0.0.1:18080 --concurrency 8 --requests 400 --pairs 10000 --max-seconds 60
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sagemakerruntime::config::retry::RetryConfig;
use aws_sdk_sagemakerruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sagemakerruntime::primitives::Blob;

struct Args {
    url: String,
    concurrency: usize,
    requests: u64,
    pairs: usize,
    max_seconds: f64,
    accept: String,
}

fn args() -> Args {
    let mut a = Args {
        url: "http://127.0.0.1:8080".into(),
        concurrency: 8,
        requests: 400,
        pairs: 10_000,
        max_seconds: 60.0,
        accept: "application/json".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--url" => a.url = v,
            "--concurrency" => a.concurrency = v.parse().expect("--concurrency"),
            "--requests" => a.requests = v.parse().expect("--requests"),
            "--pairs" => a.pairs = v.parse().expect("--pairs"),
            "--max-seconds" => a.max_seconds = v.parse().expect("--max-seconds"),
            "--accept" => a.accept = v,
            _ => panic!("unknown argument {k}"),
        }
    }
    // Hard bounds: this is a benchmark for one machine, not a load-testing tool.
    a.requests = a.requests.min(100_000);
    a.max_seconds = a.max_seconds.min(600.0);
    a.concurrency = a.concurrency.clamp(1, 256);
    let host = a
        .url
        .strip_prefix("http://")
        .and_then(|r| r.split(['/']).next())
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    assert!(
        matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        "load_gen only targets loopback (got {:?})",
        a.url
    );
    a
}

/// `n` CSV lines over 5,000 entities and pseudo-random addresses (half in a small "home" range).
fn body(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n * 28);
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ip = if i % 2 == 0 {
            std::net::Ipv4Addr::new(10, (x >> 8) as u8 % 16, (x >> 16) as u8, (x >> 24) as u8)
        } else {
            std::net::Ipv4Addr::from((x >> 32) as u32)
        };
        out.extend_from_slice(format!("AIDAEXAMPLE{:05},{ip}\n", x % 5000).as_bytes());
    }
    out
}

#[tokio::main]
async fn main() {
    let a = args();
    let conf = aws_sdk_sagemakerruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "load_gen"))
        .endpoint_url(&a.url)
        .retry_config(RetryConfig::disabled())
        .build();
    let client = aws_sdk_sagemakerruntime::Client::from_conf(conf);
    // A few distinct bodies, built before the clock starts.
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..8).map(|s| body(a.pairs, s + 1)).collect());
    let body_bytes = bodies[0].len();

    // Warm-up: one request (connection set-up, page faults in the server's tables).
    client
        .invoke_endpoint()
        .endpoint_name("bench")
        .content_type("text/csv")
        .body(Blob::new(bodies[0].clone()))
        .send()
        .await
        .expect("warm-up request failed: is `ipsight serve` running?");

    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(a.max_seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (client, bodies, issued, accept) = (
            client.clone(),
            bodies.clone(),
            issued.clone(),
            a.accept.clone(),
        );
        let requests = a.requests;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= requests || Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                let r = client
                    .invoke_endpoint()
                    .endpoint_name("bench")
                    .content_type("text/csv")
                    .accept(&accept)
                    .body(Blob::new(bodies[n as usize % bodies.len()].clone()))
                    .send()
                    .await;
                match r {
                    Ok(out) => {
                        assert!(out
                            .body
                            .is_some_and(|b| b.as_ref().starts_with(b"{\"predictions\"")
                                || b.as_ref().starts_with(b"{\"dot_product\"")));
                        lat.push(t.elapsed().as_secs_f64());
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize] * 1e3;
    let ok = lat.len();
    println!(
        "{ok} requests ok, {errors} failed, in {secs:.2} s with {} concurrent clients; {} pairs ({:.0} KB) per request",
        a.concurrency,
        a.pairs,
        body_bytes as f64 / 1e3
    );
    println!(
        "throughput: {:.1} requests/s, {:.0} pairs/s, {:.1} MB/s of request bodies",
        ok as f64 / secs,
        (ok * a.pairs) as f64 / secs,
        (ok * body_bytes) as f64 / secs / 1e6
    );
    if ok > 0 {
        println!(
            "latency ms: p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0)
        );
    }
}
