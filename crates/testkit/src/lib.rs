//! A real S3-protocol server for tests: `moto_server` (PyPI `moto[server]`), reached over HTTP by the
//! real `aws-sdk-s3` client.
//!
//! If `IPSIGHT_TEST_S3_ENDPOINT` is set (the README's test command starts one server for the whole
//! run), tests use it; otherwise the first test of a binary starts a private `moto_server` on a free
//! loopback port, shared by that binary's tests and killed when the binary exits.
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

static SERVER: OnceLock<String> = OnceLock::new();
static CHILD: OnceLock<std::sync::Mutex<Option<Child>>> = OnceLock::new();
static BUCKETS: AtomicU32 = AtomicU32::new(0);

/// Handle on the shared local S3 server.
#[derive(Clone)]
pub struct S3Server {
    pub endpoint: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_moto() -> String {
    let port = free_port();
    let mut cmd = Command::new("moto_server");
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The server must not outlive the test binary, even when a test panics or is killed.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start moto_server ({e}): install it with `pip install \"moto[server]==5.2.5\"` \
             (the README's test command does), or set IPSIGHT_TEST_S3_ENDPOINT"
        )
    });
    CHILD.get_or_init(|| std::sync::Mutex::new(Some(child)));
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return endpoint;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto_server did not start listening on port {port} within 30 s");
}

/// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, and test threads come and
/// go: fork from a thread that lives as long as the process.
fn spawn_moto_on_keeper_thread() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let endpoint = spawn_moto();
        tx.send(endpoint).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("moto_server keeper thread died")
}

impl S3Server {
    /// The shared server (started on first use).
    pub async fn start() -> Self {
        let endpoint = SERVER
            .get_or_init(|| {
                std::env::var("IPSIGHT_TEST_S3_ENDPOINT")
                    .unwrap_or_else(|_| spawn_moto_on_keeper_thread())
            })
            .clone();
        Self { endpoint }
    }

    /// SDK config with static test credentials, pointed at the server. Used by handler tests exactly
    /// as a Lambda would use `aws_config::load_from_env()` with `AWS_ENDPOINT_URL` set.
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
                Credentials::new("testing", "testing", None, None, "ipsight-testkit"),
            ))
            .build()
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk_config())
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// A bucket name unique within this server's lifetime (tests share the server).
    pub fn unique_bucket(&self, prefix: &str) -> String {
        let n = BUCKETS.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{}-{n}", std::process::id())
    }

    pub async fn create_bucket(&self, name: &str) {
        self.client()
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {name}: {e:?}"));
    }

    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
    }

    /// The object's bytes, or `None` if it does not exist.
    pub async fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        match self
            .client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Some(o.body.collect().await.unwrap().into_bytes().to_vec()),
            Err(_) => None,
        }
    }

    /// All keys in a bucket, sorted.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut pages = self
            .client()
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for o in page.unwrap().contents() {
                keys.push(o.key().unwrap_or_default().to_owned());
            }
        }
        keys.sort();
        keys
    }
}

/// A tiny embedded model (20 users × 10 addresses in 10.u.0.0/24, dim 8, two epochs, one thread),
/// trained in milliseconds, for tests of what surrounds a model. Two seeds give two models that
/// score the same pair differently.
pub fn tiny_model(seed: u64) -> ipsight_model::Model {
    use ipsight_model::{train, Hyperparameters, IpEncoderLayout, TrainOptions, TrainingData};
    let mut d = TrainingData::new();
    for u in 0..20u8 {
        for k in 0..10u8 {
            d.push(&format!("user{u}"), std::net::Ipv4Addr::new(10, u, 0, k));
        }
    }
    let mut hp = Hyperparameters::new(64, 8);
    hp.epochs = 2;
    hp.mini_batch_size = 50;
    let opts = TrainOptions {
        threads: Some(1),
        seed,
        layout: IpEncoderLayout {
            prefix24_buckets: 128,
            address_buckets: 128,
        },
        ..TrainOptions::default()
    };
    train(&hp, &opts, &d, None, &mut |_| {}).expect("the tiny model trains")
}

/// The seed [`ipsight_model::TrainOptions`] uses by default.
pub fn default_seed() -> u64 {
    ipsight_model::TrainOptions::default().seed
}

/// An environment lookup over fixed pairs: what the `Config::from_lookup` / `from_vars` functions
/// take in tests instead of the process environment.
pub fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}
