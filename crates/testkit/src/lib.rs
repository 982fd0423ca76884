//! A real S3-protocol server for tests: `moto_server` (PyPI `moto[server]`), reached over HTTP by the
//! real `aws-sdk-s3` client.
//!
//! If `IPSIGHT_TEST_S3_ENDPOINT` is set (the README's test command starts one server for the whole
//! run), tests use it; otherwise the first test of a binary starts a private `moto_server` on a free
//! loopback port, shared by that binary's tests and killed when the binary exits.
pub mod events;
pub mod hooked;
pub mod mmdb;

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

/// A tiny embedded model (20 users × 10 addresses in 10.u.0.0/24 and 5 in 2001:db8:u::/64, dim 8,
/// two epochs, one thread), trained in milliseconds, for tests of what surrounds a model. Two seeds
/// give two models that score the same pair differently.
pub fn tiny_model(seed: u64) -> ipsight_model::Model {
    use ipsight_model::{train, Hyperparameters, IpEncoderLayout, TrainOptions, TrainingData};
    let mut d = TrainingData::new();
    for u in 0..20u8 {
        for k in 0..10u8 {
            d.push(&format!("user{u}"), std::net::Ipv4Addr::new(10, u, 0, k));
        }
        for k in 0..5u16 {
            let v6 = std::net::Ipv6Addr::new(0x2001, 0xdb8, u.into(), 0, 0, 0, 0, k + 1);
            d.push(&format!("user{u}"), v6);
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
            ipv6_buckets: 64,
        },
        ..TrainOptions::default()
    };
    train(&hp, &opts, &d, None, &mut |_| {}).expect("the tiny model trains")
}

/// A small model for handler tests: forty synthetic users (`AIDASYNTH0`–`39`) in their own /16s
/// (`10+u%5.u.k%4.k`), and each `(entity, [a, b, c])` of `known` on `a.b.c.0`–`a.b.c.59`, dim 16,
/// 20 epochs, one thread (seconds to train; reproducible).
pub fn small_model(known: &[(&str, [u8; 3])]) -> ipsight_model::Model {
    use ipsight_model::{train, Hyperparameters, IpEncoderLayout, TrainOptions, TrainingData};
    use std::net::Ipv4Addr;
    let mut d = TrainingData::new();
    for u in 0..40u8 {
        for k in 0..60u8 {
            d.push(
                &format!("AIDASYNTH{u}"),
                Ipv4Addr::new(10 + u % 5, u, k % 4, k),
            );
        }
    }
    for k in 0..60u8 {
        for (entity, [a, b, c]) in known {
            d.push(entity, Ipv4Addr::new(*a, *b, *c, k));
        }
    }
    let mut hp = Hyperparameters::new(1000, 16);
    hp.epochs = 20;
    hp.mini_batch_size = 100;
    hp.learning_rate = 0.01;
    let opts = TrainOptions {
        seed: 7,
        threads: Some(1),
        layout: IpEncoderLayout {
            prefix24_buckets: 512,
            address_buckets: 512,
            ipv6_buckets: 256,
        },
        ..TrainOptions::default()
    };
    train(&hp, &opts, &d, None, &mut |_| {}).expect("the small model trains")
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

/// Where third-party sample data lives: `IPSIGHT_REAL_DATA`, else `shared/data/real` beside the
/// repository (the development machines and CI have it; a user's clone does not).
fn real_data_root() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("IPSIGHT_REAL_DATA") {
        let dir = std::path::PathBuf::from(dir);
        // Set on purpose: a wrong path must fail, not silently skip what the user asked to run.
        assert!(
            dir.is_dir(),
            "IPSIGHT_REAL_DATA={} is not a directory",
            dir.display()
        );
        return Some(dir);
    }
    let beside = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/real");
    beside.is_dir().then_some(beside)
}

/// A file or folder of the third-party sample data (`rel` inside it), or `None` — after one line on
/// stderr naming `what` was not run — when the data is not there. The project never copies these
/// files: tests that read them are extra checks on top of fixtures the project writes itself.
/// Once the data is there, a missing `rel` is a failure, not a skip.
///
/// ```ignore
/// let Some(dir) = ipsight_testkit::real_data("stratus-red-team", "CloudTrail preparer on Stratus samples") else { return };
/// ```
pub fn real_data(rel: &str, what: &str) -> Option<std::path::PathBuf> {
    let Some(root) = real_data_root() else {
        // Written to the process's stderr, not through `eprintln!`, so the test harness does not
        // swallow it for a passing test.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: real sample data not found (set IPSIGHT_REAL_DATA): {what}"
        );
        return None;
    };
    let path = root.join(rel);
    assert!(
        path.exists(),
        "real sample data at {} has no {rel}",
        root.display()
    );
    Some(path)
}

/// OCSF events as a Parquet object in Security Lake's layout (GZIP pages, one row group, the
/// nested `required`/`optional` groups, `LIST`s and the `unmapped` `MAP` its tables have), written
/// by us so that no OCSF test depends on third-party samples.
///
/// `schema` is a Parquet message type with primitive leaves `int32`, `int64`, `boolean`, `double`
/// or `binary`; each event gives a field's value at its path (`src_endpoint.ip`), absent or `null`
/// for a null. A `LIST` group takes a JSON array, a `MAP` group a JSON object. A `binary` leaf takes
/// a JSON string as is and any other JSON value as its text.
pub fn ocsf_parquet(schema: &str, events: &[serde_json::Value]) -> Vec<u8> {
    use parquet::basic::{Compression, GzipLevel, Repetition, Type as Physical};
    use parquet::data_type::{
        BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type,
    };
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::{SchemaDescriptor, Type};
    use serde_json::Value;

    /// One leaf's (repetition level, definition level, value) triples for one event, after
    /// Dremel's record shredding; `path` holds the schema field of every level down to the leaf.
    fn shred(
        at: &Value,
        path: &[&Type],
        (rep, def, depth): (i16, i16, i16),
        out: &mut Vec<(i16, i16, Option<Value>)>,
    ) {
        let Some((field, rest)) = path.split_first() else {
            out.push((rep, def, Some(at.clone())));
            return;
        };
        let info = field.get_basic_info();
        if info.repetition() == Repetition::REPEATED {
            // The repeated level's items are the parent's value: a LIST's array, a MAP's entries.
            let items: Vec<Value> = match at {
                Value::Array(a) => a.clone(),
                Value::Object(o) => o
                    .iter()
                    .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                    .collect(),
                other => panic!(
                    "ocsf_parquet: {} takes an array or object, not {other}",
                    info.name()
                ),
            };
            if items.is_empty() {
                out.push((rep, def, None));
            }
            for (i, item) in items.iter().enumerate() {
                let r = if i == 0 { rep } else { depth + 1 };
                if rest.is_empty() {
                    // A list of scalars: the repeated field is the leaf.
                    out.push((r, def + 1, Some(item.clone())));
                } else {
                    shred(item, rest, (r, def + 1, depth + 1), out);
                }
            }
            return;
        }
        let child = match at.get(info.name()) {
            Some(Value::Null) | None => None,
            Some(v) => Some(v),
        };
        match (info.repetition(), child) {
            (Repetition::OPTIONAL, None) => out.push((rep, def, None)),
            (Repetition::OPTIONAL, Some(v)) => shred(v, rest, (rep, def + 1, depth), out),
            (_, Some(v)) => shred(v, rest, (rep, def, depth), out),
            (_, None) => panic!(
                "ocsf_parquet: required field {} missing in {at}",
                info.name()
            ),
        }
    }

    let message = std::sync::Arc::new(
        parquet::schema::parser::parse_message_type(schema).expect("a valid Parquet schema"),
    );
    let columns = SchemaDescriptor::new(message.clone()).columns().to_vec();
    let props = WriterProperties::builder()
        .set_compression(Compression::GZIP(GzipLevel::default()))
        .build();
    let mut out = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut out, message.clone(), std::sync::Arc::new(props))
            .expect("a Parquet writer");
    let mut group = writer.next_row_group().unwrap();
    let mut index = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        let descr = &columns[index];
        let mut fields: Vec<&Type> = Vec::new();
        let mut node: &Type = &message;
        for part in descr.path().parts() {
            node = node
                .get_fields()
                .iter()
                .find(|f| f.name() == part)
                .expect("a column's path is in its schema");
            fields.push(node);
        }
        let mut triples = Vec::new();
        for event in events {
            shred(event, &fields, (0, 0, 0), &mut triples);
        }
        let reps: Vec<i16> = triples.iter().map(|t| t.0).collect();
        let defs: Vec<i16> = triples.iter().map(|t| t.1).collect();
        let values: Vec<Value> = triples.into_iter().filter_map(|t| t.2).collect();
        let (defs, reps) = (
            Some(&defs[..]),
            (descr.max_rep_level() > 0).then_some(&reps[..]),
        );
        let bad = |v: &Value| -> ! { panic!("ocsf_parquet: {v} is not a {}", descr.path()) };
        match descr.physical_type() {
            Physical::INT32 => {
                let v: Vec<i32> = values
                    .iter()
                    .map(|v| v.as_i64().unwrap_or_else(|| bad(v)) as i32)
                    .collect();
                column.typed::<Int32Type>().write_batch(&v, defs, reps)
            }
            Physical::INT64 => {
                let v: Vec<i64> = values
                    .iter()
                    .map(|v| v.as_i64().unwrap_or_else(|| bad(v)))
                    .collect();
                column.typed::<Int64Type>().write_batch(&v, defs, reps)
            }
            Physical::BOOLEAN => {
                let v: Vec<bool> = values
                    .iter()
                    .map(|v| v.as_bool().unwrap_or_else(|| bad(v)))
                    .collect();
                column.typed::<BoolType>().write_batch(&v, defs, reps)
            }
            Physical::DOUBLE => {
                let v: Vec<f64> = values
                    .iter()
                    .map(|v| v.as_f64().unwrap_or_else(|| bad(v)))
                    .collect();
                column.typed::<DoubleType>().write_batch(&v, defs, reps)
            }
            Physical::BYTE_ARRAY => {
                let v: Vec<ByteArray> = values
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => ByteArray::from(s.as_str()),
                        other => ByteArray::from(other.to_string().into_bytes()),
                    })
                    .collect();
                column.typed::<ByteArrayType>().write_batch(&v, defs, reps)
            }
            other => panic!("ocsf_parquet: {other} leaves are not supported"),
        }
        .unwrap();
        column.close().unwrap();
        index += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
    out
}

/// Amazon Security Lake tables, written by us for [`ocsf_parquet`]: schemas cut to the fields our
/// tests set but keeping the real tables' structure (`required` envelopes, optional leaves, the
/// `profiles` LIST and the `unmapped` MAP), and events in them.
pub mod security_lake {
    use serde_json::{json, Value};

    /// Source version 1 (OCSF 1.0.0-rc.2): VPC Flow Logs, Network Activity 4001.
    pub const NETWORK_ACTIVITY_RC2: &str = "message network_activity {
      required group metadata { required group product { required binary name (UTF8); required binary vendor_name (UTF8); }
        optional group profiles (LIST) { repeated binary array (UTF8); } required binary version (UTF8); }
      required group cloud { optional binary account_uid (UTF8); optional binary region (UTF8); required binary provider (UTF8); }
      required group src_endpoint { optional int32 port; optional binary ip (UTF8); optional binary vpc_uid (UTF8);
        optional binary instance_uid (UTF8); optional binary interface_uid (UTF8); }
      required group dst_endpoint { optional int32 port; optional binary ip (UTF8); optional binary instance_uid (UTF8); }
      required group connection_info { optional int32 direction_id; optional binary direction (UTF8); }
      required group traffic { optional int64 packets; optional int64 bytes; }
      required int64 time; required int32 class_uid; required binary class_name (UTF8); required int32 activity_id;
      optional group unmapped (MAP) { repeated group map (MAP_KEY_VALUE) { required binary key (UTF8); required binary value (UTF8); } }
    }";

    /// Source version 1: Route 53 resolver query logs, DNS Activity 4003.
    pub const DNS_ACTIVITY_RC2: &str = "message dns_activity {
      required group metadata { required group product { required binary name (UTF8); } required binary version (UTF8); }
      required group cloud { optional binary account_uid (UTF8); optional binary region (UTF8); required binary provider (UTF8); }
      required group src_endpoint { optional binary ip (UTF8); optional int32 port; optional binary vpc_uid (UTF8); optional binary instance_uid (UTF8); }
      required group query { optional binary hostname (UTF8); optional binary type (UTF8); }
      optional group answers (LIST) { repeated group array { optional binary rdata (UTF8); optional binary type (UTF8); } }
      required int64 time; required int32 class_uid; required int32 activity_id;
    }";

    /// Source version 1: CloudTrail management events (Account Change 3001 … API Activity 3005):
    /// the actor's principal under `actor.user`, the account there too (not under `cloud`).
    pub const CLOUDTRAIL_RC2: &str = "message account_change {
      required group metadata { required group product { required binary name (UTF8); required binary version (UTF8); }
        optional binary uid (UTF8); required binary version (UTF8); }
      required int64 time;
      required group cloud { optional binary region (UTF8); required binary provider (UTF8); }
      required group api { optional binary operation (UTF8); required group service { optional binary name (UTF8); } }
      required group actor { required group user { optional binary type (UTF8); optional binary name (UTF8);
          optional binary uid (UTF8); optional binary account_uid (UTF8); optional binary credential_uid (UTF8); }
        required group session { optional int64 created_time; optional boolean mfa; optional binary issuer (UTF8); }
        optional binary invoked_by (UTF8); }
      required group http_request { optional binary user_agent (UTF8); }
      required group src_endpoint { optional binary uid (UTF8); optional binary ip (UTF8); optional binary domain (UTF8); }
      required int32 class_uid; required int32 activity_id; optional int32 status_id;
      optional group unmapped (MAP) { repeated group map (MAP_KEY_VALUE) { required binary key (UTF8); required binary value (UTF8); } }
    }";

    /// Source version 1: Security Hub findings, Security Finding 2001 (no source endpoint).
    pub const FINDING_RC2: &str = "message security_finding {
      required group metadata { required group product { required binary name (UTF8); } required binary version (UTF8); }
      required group cloud { optional binary account_uid (UTF8); optional binary region (UTF8); required binary provider (UTF8); }
      required group finding { required binary uid (UTF8); optional binary title (UTF8);
        optional group types (LIST) { repeated binary array (UTF8); } }
      required int64 time; required int32 class_uid; required int32 activity_id; optional int32 severity_id;
    }";

    /// Source version 2 (OCSF 1.1): EKS audit logs, API Activity 6003: `cloud.account.uid`, a
    /// `type_id` instead of a type name, lists of groups.
    pub const API_ACTIVITY_1_1: &str = "message eks_activity {
      optional group metadata { optional group product { required binary name (UTF8); required binary vendor_name (UTF8); }
        required binary version (UTF8); }
      optional group api { optional binary operation (UTF8); optional group response { optional int32 code; } }
      optional group actor { optional group user { optional binary name (UTF8); optional binary uid (UTF8);
          optional group groups (LIST) { repeated group array { optional binary name (UTF8); } } optional int32 type_id; }
        optional group session { optional binary credential_uid (UTF8); optional binary issuer (UTF8); } }
      optional group cloud { optional group account { optional binary uid (UTF8); } required binary provider (UTF8); }
      optional group src_endpoint { optional binary ip (UTF8); }
      optional int64 time_dt (TIMESTAMP_MILLIS);
      required int64 time; required int32 class_uid; required int32 activity_id; required int64 type_uid;
      optional group observables (LIST) { repeated group array { optional binary name (UTF8); optional binary value (UTF8); optional int32 type_id; } }
    }";

    /// Raw VPC Flow Logs stored as Parquet (not OCSF: no `class_uid`).
    pub const RAW_VPC_FLOW: &str = "message vpc_flow {
      optional int32 version; optional binary account_id (UTF8); optional binary interface_id (UTF8);
      optional binary srcaddr (UTF8); optional binary dstaddr (UTF8); optional int32 srcport; optional int32 dstport;
      optional int64 start; optional int64 end; optional binary action (UTF8);
    }";

    /// A VPC Flow Logs record (4001) from `src_ip`, by `src_instance` when the flow is outbound;
    /// account 123456789012, us-east-2, at 2022-04-12T00:02:12Z.
    pub fn flow(src_instance: Option<&str>, src_ip: &str, direction: &str) -> Value {
        json!({"metadata": {"product": {"name": "Amazon VPC", "vendor_name": "AWS"}, "profiles": ["cloud", "security_control"],
            "version": "1.0.0-rc.2"}, "cloud": {"account_uid": "123456789012", "region": "us-east-2", "provider": "AWS"},
            "src_endpoint": {"port": 56858, "ip": src_ip, "vpc_uid": "vpc-0a1b2c3d", "instance_uid": src_instance, "interface_uid": "eni-0a1b2c3d4e5f"},
            "dst_endpoint": {"port": 443, "ip": "172.31.2.52", "instance_uid": null},
            "connection_info": {"direction_id": if direction == "Outbound" { 2 } else { 1 }, "direction": direction},
            "traffic": {"packets": 1, "bytes": 50}, "time": 1_649_721_732_000i64, "class_uid": 4001, "class_name": "Network Activity",
            "activity_id": 6, "unmapped": {"sublocation_id": "-", "sublocation_type": "-"}})
    }

    /// A Route 53 resolver query (4003) by `instance` in `vpc` from `src_ip`; account 111122223333.
    pub fn dns(instance: &str, vpc: &str, src_ip: &str) -> Value {
        json!({"metadata": {"product": {"name": "Route 53"}, "version": "1.0.0-rc.2"},
            "cloud": {"account_uid": "111122223333", "region": "us-east-1", "provider": "AWS"},
            "src_endpoint": {"ip": src_ip, "port": 53, "vpc_uid": vpc, "instance_uid": instance},
            "query": {"hostname": "example.com.", "type": "A"}, "answers": [{"rdata": "192.0.2.80", "type": "A"}],
            "time": 1_668_000_000_000i64, "class_uid": 4003, "activity_id": 1})
    }

    /// A Security Hub finding (2001): no source endpoint.
    pub fn finding() -> Value {
        json!({"metadata": {"product": {"name": "Security Hub"}, "version": "1.0.0-rc.2"},
            "cloud": {"account_uid": "111122223333", "region": "us-east-1", "provider": "AWS"},
            "finding": {"uid": "arn:aws:securityhub:us-east-1:111122223333:finding/1", "title": "S3 bucket is public",
                "types": ["Software and Configuration Checks"]}, "time": 1_668_000_000_000i64, "class_uid": 2001, "activity_id": 1, "severity_id": 3})
    }

    /// A CloudTrail record as Security Lake source version 1 converts it ([`CLOUDTRAIL_RC2`]):
    /// addresses to `src_endpoint.ip`, service names to `domain`, the principal and its account
    /// under `actor.user`; Account Change (3001) for IAM policy changes, API Activity (3005) else.
    /// `time_ms` is the record's `eventTime`.
    pub fn from_cloudtrail(record: &Value, time_ms: i64) -> Value {
        let src = record["sourceIPAddress"].as_str().unwrap_or_default();
        let is_ip = src.parse::<std::net::IpAddr>().is_ok();
        let user = &record["userIdentity"];
        let class = if record["eventName"]
            .as_str()
            .is_some_and(|n| n.starts_with("Attach"))
        {
            3001
        } else {
            3005
        };
        json!({"metadata": {"product": {"name": "CloudTrail", "version": "1.08"}, "uid": record.get("eventID"), "version": "1.0.0-rc.2"},
            "time": time_ms, "cloud": {"region": record["awsRegion"], "provider": "AWS"},
            "api": {"operation": record["eventName"], "service": {"name": record["eventSource"]}},
            "actor": {"user": {"type": user["type"], "uid": user.get("principalId"), "account_uid": user.get("accountId"),
                    "credential_uid": user.get("accessKeyId")},
                "session": {"mfa": false}, "invoked_by": user.get("invokedBy")},
            "http_request": {"user_agent": record.get("userAgent")},
            "src_endpoint": {"ip": if is_ip { Some(src) } else { None }, "domain": if is_ip { None } else { Some(src) }},
            "class_uid": class, "activity_id": 7, "status_id": 1, "unmapped": {"eventType": "AwsApiCall"}})
    }

    /// An EKS audit event (OCSF 1.1 API Activity 6003, [`API_ACTIVITY_1_1`]) by `user_uid` from
    /// `src_ip` (anonymised samples zero-pad octets: `12.000.22.33`), account 123456789012.
    pub fn eks(user_uid: &str, src_ip: &str) -> Value {
        json!({"metadata": {"product": {"name": "Amazon EKS", "vendor_name": "AWS"}, "version": "1.1.0"},
            "api": {"operation": "create", "response": {"code": 201}},
            "actor": {"user": {"name": "system:node:ip-192-0-2-3.ec2.internal", "uid": user_uid,
                "groups": [{"name": "system:bootstrappers"}, {"name": "system:nodes"}], "type_id": 0},
                "session": {"credential_uid": "EXAMPLEUID", "issuer": "arn:aws:iam::123456789012:role/NodeInstanceRole"}},
            "cloud": {"account": {"uid": "arn:aws:sts::123456789012:assumed-role/NodeInstanceRole/i-1"}, "provider": "AWS"},
            "src_endpoint": {"ip": src_ip}, "time_dt": 1_631_047_050_642i64, "time": 1_631_047_050_642i64,
            "class_uid": 6003, "activity_id": 1, "type_uid": 600_301,
            "observables": [{"name": "src_endpoint.ip", "value": src_ip, "type_id": 2}]})
    }

    /// A raw VPC Flow Logs record ([`RAW_VPC_FLOW`]): not OCSF.
    pub fn raw_flow() -> Value {
        json!({"version": 2, "account_id": "123456789012", "interface_id": "eni-0a1b2c3d4e5f",
            "srcaddr": "1.2.3.4", "dstaddr": "172.31.2.52", "srcport": 56858, "dstport": 443, "start": 1_649_721_732i64,
            "end": 1_649_721_788i64, "action": "ACCEPT"})
    }
}

/// GuardDuty findings in the shapes real ones have, written by us: what GuardDuty's "generate
/// sample findings" delivers through EventBridge, an S3 finding, an EC2 network finding.
pub mod guardduty_shapes {
    use serde_json::{json, Value};

    fn remote_ip() -> Value {
        json!({"ipAddressV4": "198.51.100.0", "organization": {"asn": -1, "asnOrg": "ExampleASNOrg", "isp": "ExampleISP", "org": "ExampleOrg"},
            "country": {"countryName": "United States"}, "city": {"cityName": "Example"}, "geoLocation": {"lat": 0, "lon": 0}})
    }

    /// An EventBridge "GuardDuty Finding" event from a delegated administrator (the envelope's
    /// account 101010101111 is not the finding's 444455556666) for a generated sample finding
    /// (`additionalInfo.sample`): IAM user `GeneratedFindingPrincipalId` calling from
    /// 198.51.100.0, finding id `5e0c7a9b1d3f4a6c8e0b2d4f6a8c0e1f` in us-east-1.
    pub fn sample_finding_event() -> Value {
        json!({"version": "0", "id": "805320a1-2f09-4237-64fc-f3f136e41a69", "detail-type": "GuardDuty Finding",
            "source": "aws.guardduty", "account": "101010101111", "time": "1970-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"schemaVersion": "2.0", "accountId": "444455556666", "region": "us-east-1", "partition": "aws",
                "id": "5e0c7a9b1d3f4a6c8e0b2d4f6a8c0e1f", "type": "UnauthorizedAccess:IAMUser/TorIPCaller", "severity": 5,
                "arn": "arn:aws:guardduty:us-east-1:444455556666:detector/444455556666/finding/5e0c7a9b1d3f4a6c8e0b2d4f6a8c0e1f",
                "createdAt": "2017-12-08T15:32:49.862Z", "updatedAt": "2017-12-08T15:32:49.862Z",
                "title": "API GeneratedFindingAPIName was invoked from a Tor exit node.",
                "resource": {"resourceType": "AccessKey", "accessKeyDetails": {"accessKeyId": "GeneratedFindingAccessKeyId",
                    "principalId": "GeneratedFindingPrincipalId", "userName": "GeneratedFindingUserName", "userType": "IAMUser"}},
                "service": {"serviceName": "guardduty", "detectorId": "444455556666", "count": 1, "archived": false, "resourceRole": "TARGET",
                    "eventFirstSeen": "2017-12-08T15:32:49Z", "eventLastSeen": "2017-12-08T15:32:49Z",
                    "additionalInfo": {"sample": true, "unusual": {"isps": "amazon.com"}, "threatListName": "GeneratedFindingCustomerListName"},
                    "action": {"actionType": "AWS_API_CALL", "awsApiCallAction": {"api": "GeneratedFindingAPIName",
                        "serviceName": "GeneratedFindingAPIServiceName", "callerType": "Remote IP", "remoteIpDetails": remote_ip(),
                        "affectedResources": {"AWS::EC2::Instance": "i-99999999"}}}}}})
    }

    /// A finding document (as `GetFindings` or an export line) about an S3 bucket that names the
    /// access key used: an AssumedRole session `AROAEXAMPLE:session`, sample, type `PenTest:S3/ParrotLinux`.
    pub fn s3_finding() -> Value {
        json!({"schemaVersion": "2.0", "accountId": "123456789012", "region": "us-east-1", "partition": "aws",
            "id": "2ab3c4d5e6f708192a3b4c5d6e7f8091", "type": "PenTest:S3/ParrotLinux", "severity": 5,
            "createdAt": "2022-01-13T00:00:47.000Z", "updatedAt": "2022-01-13T00:00:47.000Z",
            "resource": {"resourceType": "S3Bucket", "accessKeyDetails": {"accessKeyId": "ASIAEXAMPLE", "principalId": "AROAEXAMPLE:session",
                "userName": "role", "userType": "AssumedRole"},
                "s3BucketDetails": [{"arn": "arn:aws:s3:::example-bucket", "name": "example-bucket", "type": "Destination"}]},
            "service": {"serviceName": "guardduty", "count": 1, "eventFirstSeen": "2022-01-13T00:00:47Z",
                "eventLastSeen": "2022-01-13T00:00:47Z", "additionalInfo": {"value": "{\"sample\":true}", "type": "default"},
                "action": {"actionType": "AWS_API_CALL", "awsApiCallAction": {"api": "ListObjects", "serviceName": "s3.amazonaws.com",
                    "callerType": "Remote IP", "remoteIpDetails": remote_ip()}}}})
    }

    /// A finding document about an EC2 instance's outbound connection: no principal at all.
    pub fn ec2_network_finding() -> Value {
        json!({"schemaVersion": "2.0", "accountId": "123456789012", "region": "us-east-1", "partition": "aws",
            "id": "7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f", "type": "UnauthorizedAccess:EC2/TorClient", "severity": 8,
            "createdAt": "2022-01-13T00:00:47.000Z", "updatedAt": "2022-01-13T00:00:47.000Z",
            "resource": {"resourceType": "Instance", "instanceDetails": {"instanceId": "i-99999999", "instanceType": "m3.xlarge"}},
            "service": {"serviceName": "guardduty", "count": 1, "action": {"actionType": "NETWORK_CONNECTION",
                "networkConnectionAction": {"connectionDirection": "OUTBOUND", "blocked": false, "protocol": "TCP",
                    "remoteIpDetails": remote_ip(), "remotePortDetails": {"port": 80, "portName": "HTTP"}}}}})
    }
}

/// The input of [`tiny_hybrid`]: 20 users, 10 IPv4 addresses in 10.u.0.0/24 and 5 in
/// 2001:db8:u::/64 each, interleaved (every user's k-th address before anyone's k+1-th), so the
/// held-back newest half holds every user's later addresses: each user is known to the older
/// history, and 10.u.0.k for k ≥ 5 sits at the `/24` level of the older part, at `ip` in the whole.
pub fn tiny_log() -> ipsight_model::PairLog {
    let mut log = ipsight_model::PairLog::new();
    for k in 0..10u8 {
        for u in 0..20u8 {
            log.push_tuple(
                &format!("user{u}"),
                std::net::Ipv4Addr::new(10, u, 0, k).into(),
            );
            if k < 5 {
                let v6 = std::net::Ipv6Addr::new(0x2001, 0xdb8, u.into(), 0, 0, 0, 0, k as u16 + 1);
                log.push_tuple(&format!("user{u}"), v6.into());
            }
        }
    }
    log
}

/// A tiny model and its baseline sidecar (the hybrid detector) trained on [`tiny_log`] with the
/// settings of [`tiny_model`], in milliseconds.
pub fn tiny_hybrid(seed: u64) -> (ipsight_model::Model, ipsight_model::Detector) {
    use ipsight_model::{
        train_hybrid, HybridOptions, Hyperparameters, IpEncoderLayout, TrainOptions,
    };
    let mut hp = Hyperparameters::new(64, 8);
    hp.epochs = 2;
    hp.mini_batch_size = 50;
    let opts = TrainOptions {
        threads: Some(1),
        seed,
        layout: IpEncoderLayout {
            prefix24_buckets: 128,
            address_buckets: 128,
            ipv6_buckets: 64,
        },
        ..TrainOptions::default()
    };
    let (model, detector, _) = train_hybrid(
        &hp,
        &opts,
        &HybridOptions::default(),
        &tiny_log(),
        None,
        &mut |_| {},
    )
    .expect("the tiny hybrid detector trains");
    (model, detector)
}
