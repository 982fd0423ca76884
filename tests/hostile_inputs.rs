//! Hostile inputs: every parser and the prepare-cloudtrail handler fed what an attacker (or a broken
//! producer) can put in a log object or an event. Each case ends in a clear error or a documented
//! result (docs/robustness.md has the table); none may panic, overflow the stack, write a partial
//! output, or use memory in proportion to the input.
//!
//! Memory is measured per thread by a counting allocator: the parsers run synchronously on the test
//! thread, so its peak live bytes are the parser's working set, whatever other tests do meanwhile.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Cursor, Read};
use std::net::Ipv4Addr;

use flate2::{write::GzEncoder, Compression};
use ipsight_aws::S3Store;
use ipsight_formats::cloudtrail::{prepare_cloudtrail, CloudTrailError, PrepareOptions};
use ipsight_formats::guardduty::{self, GuardDutyError, ReadOptions};
use ipsight_formats::notify::{self, Notification};
use ipsight_formats::ocsf::{self, JsonLimits, OcsfError, OcsfMapping};
use ipsight_formats::{classify_ip, IpClass};
use ipsight_model::wire::{self, ContentType, WireError};
use ipsight_testkit::S3Server;
use prepare_cloudtrail::{handle, Config};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Per-thread allocation accounting.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    // `try_with`: allocations during thread teardown must not panic.
    let _ = LIVE.try_with(|l| {
        let v = l.get() + delta;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        account(l.size() as isize);
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        account(l.size() as isize);
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        account(n as isize - l.size() as isize);
        System.realloc(p, l, n)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        account(-(l.size() as isize));
        System.dealloc(p, l)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result and the peak bytes it had live on this thread.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    (r, (PEAK.with(Cell::get) - base).max(0) as usize)
}

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Generated inputs, streamed: never materialised.

/// `head`, then `n` copies of `fill`, then `tail`, produced on demand.
struct Gen {
    parts: Vec<(Vec<u8>, u64)>,
    i: usize,
    off: u64,
}

impl Gen {
    fn new(head: &[u8], fill: &[u8], n: u64, tail: &[u8]) -> Self {
        Self {
            parts: vec![(head.to_vec(), 1), (fill.to_vec(), n), (tail.to_vec(), 1)],
            i: 0,
            off: 0,
        }
    }
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut w = 0;
        while w < buf.len() && self.i < self.parts.len() {
            let (chunk, reps) = &self.parts[self.i];
            let total = chunk.len() as u64 * reps;
            if self.off >= total {
                self.i += 1;
                self.off = 0;
                continue;
            }
            let at = (self.off % chunk.len() as u64) as usize;
            let n = (chunk.len() - at).min(buf.len() - w);
            buf[w..w + n].copy_from_slice(&chunk[at..at + n]);
            w += n;
            self.off += n as u64;
        }
        Ok(w)
    }
}

/// A gzip bomb: `head`, `mib` MiB of `fill`, then `tail`, as concatenated gzip members (one
/// compressed MiB repeated), so building a 1 GiB bomb costs one MiB of compression.
fn bomb(head: &[u8], fill: u8, mib: usize, tail: &[u8]) -> Vec<u8> {
    let one = gzip(Cursor::new(vec![fill; MIB]));
    let mut out = gzip(Cursor::new(head.to_vec()));
    for _ in 0..mib {
        out.extend_from_slice(&one);
    }
    out.extend(gzip(Cursor::new(tail.to_vec())));
    out
}

fn gzip(data: impl Read) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    io::copy(&mut io::BufReader::new(data), &mut enc).unwrap();
    enc.finish().unwrap()
}

fn record(pid: &str, ip: &str) -> Value {
    json!({"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":pid},
           "eventTime":"2024-01-01T00:00:00Z","eventName":"ListBuckets","sourceIPAddress":ip})
}

fn trail(records: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

fn prepare(
    input: impl io::BufRead,
    opts: &PrepareOptions,
) -> (Result<u64, CloudTrailError>, Vec<u8>) {
    let mut out = Vec::new();
    let r = prepare_cloudtrail(input, &mut out, opts).map(|s| s.tuples);
    (r, out)
}

// ---------------------------------------------------------------------------------------------
// Gzip bombs.

#[test]
fn gzip_bomb_is_stopped_at_the_uncompressed_cap_in_bounded_memory() {
    // 1 GiB of whitespace inside a valid envelope: about 1 MB compressed.
    let bomb = bomb(b"{\"Records\":[", b' ', 1024, b"]}");
    assert!(bomb.len() < 2 * MIB, "bomb is {} bytes", bomb.len());
    let opts = PrepareOptions {
        max_uncompressed_bytes: 64 * MIB as u64,
        ..Default::default()
    };
    let ((r, out), peak) = peak_of(|| prepare(Cursor::new(&bomb), &opts));
    assert!(
        matches!(r, Err(CloudTrailError::TooLarge { cap }) if cap == 64 * MIB as u64),
        "{r:?}"
    );
    assert!(out.is_empty());
    assert!(peak < 4 * MIB, "peak {peak} bytes");
    eprintln!(
        "1 GiB gzip bomb (CloudTrail): refused at the cap, peak {} KiB",
        peak >> 10
    );

    // The same bomb as a GuardDuty export and as OCSF JSON lines.
    let gd = ReadOptions {
        max_uncompressed_bytes: 64 * MIB as u64,
        ..Default::default()
    };
    let bomb_lines = self::bomb(b"", b'\n', 1024, b"");
    let (r, peak) = peak_of(|| guardduty::extract_all(Cursor::new(&bomb_lines), &gd));
    assert!(matches!(r, Err(GuardDutyError::TooLarge { .. })), "{r:?}");
    assert!(peak < 4 * MIB, "peak {peak} bytes");
    let lim = JsonLimits {
        max_uncompressed_bytes: 64 * MIB as u64,
        ..Default::default()
    };
    let (r, peak) = peak_of(|| {
        ocsf::read_json(
            Cursor::new(&bomb_lines),
            &OcsfMapping::default(),
            &lim,
            |_| {},
        )
    });
    assert!(matches!(r, Err(OcsfError::TooLarge { .. })), "{r:?}");
    assert!(peak < 4 * MIB, "peak {peak} bytes");
}

#[test]
fn concatenated_and_truncated_gzip_members() {
    // Concatenated members (what `cat a.gz b.gz` makes) are one stream; a truncated member is an error.
    let mut two = gzip(Cursor::new(b"{\"Records\":[".to_vec()));
    two.extend(gzip(Cursor::new(
        serde_json::to_vec(&record("AIDA1", "1.2.3.4")).unwrap(),
    )));
    two.extend(gzip(Cursor::new(b"]}".to_vec())));
    let (r, out) = prepare(Cursor::new(&two), &PrepareOptions::default());
    assert_eq!(r.unwrap(), 1);
    assert_eq!(out, b"AIDA1,1.2.3.4\n");

    let whole = gzip(Cursor::new(trail(&[record("AIDA1", "1.2.3.4")])));
    let (r, out) = prepare(
        Cursor::new(&whole[..whole.len() - 10]),
        &PrepareOptions::default(),
    );
    assert!(matches!(r, Err(CloudTrailError::Read { .. })), "{r:?}");
    // Records before the truncation were written to `out`; the handler publishes only on success,
    // which `failed_objects_leave_no_output` checks end to end.
    let _ = out;
}

// ---------------------------------------------------------------------------------------------
// Deep nesting.

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let deep_arr = "[".repeat(100_000);
    let deep_obj = "{\"a\":".repeat(100_000);
    for deep in [&deep_arr, &deep_obj] {
        // Inside a record, as a non-Records member, and as the whole document.
        for doc in [
            format!("{{\"Records\":[{deep}"),
            format!("{{\"Records\":[{{\"x\":{deep}}}]}}"),
            format!("{{\"other\":{deep}, \"Records\":[]}}"),
            deep.to_string(),
        ] {
            let (r, out) = prepare(Cursor::new(doc.as_bytes()), &PrepareOptions::default());
            assert!(r.is_err(), "accepted {:?}…", &doc[..20]);
            assert!(out.is_empty());
        }
        assert!(
            guardduty::extract_all(Cursor::new(deep.as_bytes()), &ReadOptions::default()).is_err()
        );
        assert!(ocsf::read_json(
            Cursor::new(deep.as_bytes()),
            &OcsfMapping::default(),
            &JsonLimits::default(),
            |_| {}
        )
        .is_err());
        assert!(notify::parse_body(deep).is_err());
        // Double-encoded: a JSON string holding the deep document.
        assert!(notify::parse_body(&serde_json::to_string(deep).unwrap()).is_err());
        for ct in [ContentType::Json, ContentType::JsonLines] {
            assert!(wire::parse_request(deep.as_bytes(), ct).is_err());
        }
    }
    // serde_json's recursion limit is 128: real CloudTrail requestParameters (nested policy
    // documents) stay far below it; 100 levels still parse.
    let ok = format!(
        "{{\"Records\":[{{\"userIdentity\":{{\"principalId\":\"AIDA1\"}},\"sourceIPAddress\":\"1.2.3.4\",\"requestParameters\":{}1{}}}]}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert_eq!(
        prepare(Cursor::new(ok.as_bytes()), &PrepareOptions::default())
            .0
            .unwrap(),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// One 100 MB record.

#[test]
fn a_100_mb_record_is_rejected_by_the_record_cap_in_bounded_memory() {
    let head = br#"{"Records":[{"userIdentity":{"principalId":"AIDA1"},"sourceIPAddress":"1.2.3.4","requestParameters":{"blob":""#;
    let tail = br#""}}]}"#;
    let n = 100 * MIB as u64 / 4096;
    let input = io::BufReader::new(Gen::new(head, &[b'A'; 4096], n, tail));
    let opts = PrepareOptions::default(); // 32 MiB per record
    let ((r, out), peak) = peak_of(|| prepare(input, &opts));
    assert!(
        matches!(r, Err(CloudTrailError::RecordTooLarge { limit, record: 1 }) if limit == 32 * MIB),
        "{r:?}"
    );
    assert!(out.is_empty());
    // The window doubles while a record is incomplete, but stops just past the record cap.
    assert!(peak <= 32 * MIB + 2 * MIB, "peak {} MiB", peak / MIB);
    eprintln!("100 MB record: rejected, peak {} MiB", peak / MIB);

    // A 100 MB line is refused the same way by the line-based readers.
    let line = || io::BufReader::new(Gen::new(b"{\"a\":\"", &[b'A'; 4096], n, b"\"}\n"));
    let (r, peak) = peak_of(|| guardduty::extract_all(line(), &ReadOptions::default()));
    assert!(
        matches!(r, Err(GuardDutyError::LineTooLong { line: 1, .. })),
        "{r:?}"
    );
    assert!(peak < 32 * MIB, "peak {} MiB", peak / MIB);
    let (r, peak) = peak_of(|| {
        ocsf::read_json(
            line(),
            &OcsfMapping::default(),
            &JsonLimits::default(),
            |_| {},
        )
    });
    assert!(
        matches!(r, Err(OcsfError::LineTooLarge { line: 1, .. })),
        "{r:?}"
    );
    assert!(peak < 32 * MIB, "peak {} MiB", peak / MIB);
}

// ---------------------------------------------------------------------------------------------
// Invalid UTF-8 and NUL bytes.

#[test]
fn invalid_utf8_and_nul_bytes() {
    let opts = PrepareOptions::default();
    // Raw invalid UTF-8 inside a string we read: a JSON error naming the record.
    let bad = b"{\"Records\":[{\"userIdentity\":{\"principalId\":\"AIDA\xff\"},\"sourceIPAddress\":\"1.2.3.4\"}]}";
    let (r, out) = prepare(Cursor::new(&bad[..]), &opts);
    assert!(
        matches!(r, Err(CloudTrailError::Json { record: 1, .. })),
        "{r:?}"
    );
    assert!(out.is_empty());
    // ... but inside `userAgent` it is accepted: that field is kept as raw bytes (only the
    // user-agent entity definition reads it), and nothing from it reaches this output.
    let bad = b"{\"Records\":[{\"userAgent\":\"\xc3\x28\",\"userIdentity\":{\"principalId\":\"AIDA\"},\"sourceIPAddress\":\"1.2.3.4\"}]}";
    let (r, out) = prepare(Cursor::new(&bad[..]), &opts);
    assert_eq!(r.unwrap(), 1);
    assert_eq!(out, b"AIDA,1.2.3.4\n");
    // A raw NUL is a control character: invalid JSON.
    let nul = b"{\"Records\":[{\"userIdentity\":{\"principalId\":\"AI\0DA\"},\"sourceIPAddress\":\"1.2.3.4\"}]}";
    assert!(matches!(
        prepare(Cursor::new(&nul[..]), &opts).0,
        Err(CloudTrailError::Json { .. })
    ));
    // An escaped NUL is valid JSON: the entity keeps it (documented; the CSV stays well-formed and
    // SageMaker treats the entity as an opaque string).
    let esc = trail(&[record("AIDA\u{0}X", "1.2.3.4")]);
    let (r, out) = prepare(Cursor::new(&esc), &opts);
    assert_eq!(r.unwrap(), 1);
    assert_eq!(out, b"AIDA\0X,1.2.3.4\n");
    // A NUL inside the IP field makes the IP invalid (counted, no tuple).
    let (r, out) = prepare(
        Cursor::new(trail(&[record("AIDA1", "1.2.3.4\u{0}")])),
        &opts,
    );
    assert_eq!(r.unwrap(), 0);
    assert!(out.is_empty());
    // Lone surrogate escapes are refused by serde_json.
    let sur =
        br#"{"Records":[{"userIdentity":{"principalId":"\ud800"},"sourceIPAddress":"1.2.3.4"}]}"#;
    assert!(prepare(Cursor::new(&sur[..]), &opts).0.is_err());

    // SageMaker requests: not UTF-8 → an error naming the byte.
    assert_eq!(
        wire::parse_request(b"e,1.2.3.4\n\xffe,1.2.3.4", ContentType::Csv),
        Err(WireError::Utf8(10))
    );
    // Notification keys: an invalid percent-escaped byte is decoded lossily (U+FFFD), so the
    // GetObject that follows fails with a recognisable key instead of the message being dropped.
    assert_eq!(notify::decode_notification_key("a%ffb+c"), "a\u{fffd}b c");
    assert_eq!(notify::decode_notification_key("nul%00key"), "nul\0key");
}

// ---------------------------------------------------------------------------------------------
// IP text.

#[test]
fn odd_ip_text_is_classified_as_documented() {
    let v4 = |s: &str| match classify_ip(s) {
        IpClass::V4(a) => Some(a),
        _ => None,
    };
    assert_eq!(v4("1.2.3.4.5"), None);
    assert_eq!(classify_ip("1.2.3.4.5"), IpClass::Invalid);
    // Zero-padded octets are decimal (CloudTrail never writes octal; anonymised samples pad).
    assert_eq!(v4("01.02.03.04"), Some(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(v4("010.001.002.003"), Some(Ipv4Addr::new(10, 1, 2, 3)));
    // IPv4-mapped IPv6 is the IPv4 host.
    assert_eq!(v4("::ffff:1.2.3.4"), Some(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(v4("::FFFF:102:304"), Some(Ipv4Addr::new(1, 2, 3, 4)));
    assert!(matches!(classify_ip("::1"), IpClass::V6(_)));
    assert!(matches!(classify_ip("2001:db8::1"), IpClass::V6(_)));
    for bad in [
        "256.1.1.1",
        "1.2.3",
        "1..2.3",
        "0x7f.0.0.1",
        "2130706433",
        "1.2.3.4 5",
        "1.2.3.-4",
        "１.２.３.４",
        "0001.2.3.4",
        "",
        " ",
        "1.2.3.4/24",
    ] {
        assert_eq!(v4(bad), None, "{bad:?}");
    }
    assert_eq!(v4(" 1.2.3.4\t"), Some(Ipv4Addr::new(1, 2, 3, 4)));

    // The same text through the CloudTrail path: counted, never a tuple with a non-canonical IP.
    let recs: Vec<Value> = [
        "1.2.3.4.5",
        "01.02.03.04",
        "::ffff:1.2.3.4",
        "::1",
        "AWS Internal",
        "s3.amazonaws.com",
    ]
    .iter()
    .map(|ip| record("AIDA1", ip))
    .collect();
    let mut out = Vec::new();
    let s = prepare_cloudtrail(
        Cursor::new(trail(&recs)),
        &mut out,
        &PrepareOptions::default(),
    )
    .unwrap();
    assert_eq!(out, b"AIDA1,1.2.3.4\nAIDA1,1.2.3.4\n");
    assert_eq!(
        (s.invalid_ip, s.ipv6, s.aws_internal, s.service_host),
        (1, 1, 1, 1)
    );

    // The SageMaker wire side (endpoint, `ipsight serve`, training CSV) is strict dotted-quad, like
    // the built-in algorithm: anything else is a per-request error naming the record. ipsight's
    // own producers canonicalise first (above), so both sides hash the same address.
    for text in ["01.02.03.04", "::ffff:1.2.3.4", "1.2.3.4.5"] {
        let r = wire::parse_request(format!("e,{text}").as_bytes(), ContentType::Csv);
        assert!(
            matches!(&r, Err(WireError::Record { record: 1, message }) if message.contains(text)),
            "{text}: {r:?}"
        );
    }
    assert_eq!(
        wire::parse_request(b"e,1.2.3.4", ContentType::Csv).unwrap()[0].ip,
        Ipv4Addr::new(1, 2, 3, 4)
    );

    // IPv6 text through the CloudTrail path with IPv6 kept: canonical RFC 5952 text or counted
    // as invalid, never a tuple holding a zone, brackets or an over-long group.
    let recs: Vec<Value> = [
        "2001:DB8:0000::0001",
        "fe80::1%eth0",
        "[2001:db8::1]",
        ":::",
        "2001:db8:00000::1",
        "2001:db8:1:2:3:4:5:6:7",
        "::1.2.3.4",
        "64:ff9b::1.2.3.4",
        "ff02::1",
        "::",
    ]
    .iter()
    .map(|ip| record("AIDA1", ip))
    .collect();
    let mut out = Vec::new();
    let s = prepare_cloudtrail(
        Cursor::new(trail(&recs)),
        &mut out,
        &PrepareOptions {
            ipv6: ipsight_formats::Ipv6Tuples::Keep,
            ..PrepareOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "AIDA1,2001:db8::1\nAIDA1,::102:304\nAIDA1,64:ff9b::102:304\n"
    );
    assert_eq!((s.tuples, s.ipv6_tuples, s.invalid_ip), (3, 3, 7));
}

// ---------------------------------------------------------------------------------------------
// Huge SQS batches (parser level; the handler level is below).

#[test]
fn a_10000_message_sqs_batch_parses_in_order() {
    let records: Vec<Value> = (0..10_000)
        .map(|i| {
            let body = json!({"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":"b"},"object":{"key":format!("k{i}"),"size":1}}}]});
            json!({"messageId": format!("m{i}"), "eventSource":"aws:sqs", "body": body.to_string()})
        })
        .collect();
    let ev = json!({ "Records": records });
    let Notification::Sqs(msgs) = notify::parse_notification(&ev).unwrap() else {
        panic!("not an SQS batch")
    };
    assert_eq!(msgs.len(), 10_000);
    assert!(msgs
        .iter()
        .enumerate()
        .all(|(i, m)| m.message_id == format!("m{i}")));
}

// ---------------------------------------------------------------------------------------------
// Through the real handler and a real S3 server.

/// Form-URL-encode a key as S3 does in event notifications.
fn form_encode(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b'*' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn sqs_batch(bucket: &str, keys: &[(String, String)]) -> Value {
    // (message id, key)
    let records: Vec<Value> = keys
        .iter()
        .map(|(id, k)| {
            let note = json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":bucket},"object":{"key":form_encode(k),"size":100}}}]});
            json!({"messageId": id, "eventSource": "aws:sqs", "body": note.to_string()})
        })
        .collect();
    json!({ "Records": records })
}

struct Env {
    s3: S3Server,
    input: String,
    output: String,
    cfg: Config,
    store: S3Store,
}

async fn env(extra: &[(&str, &str)]) -> Env {
    let s3 = S3Server::start().await;
    let input = s3.unique_bucket("hostile-trail");
    let output = s3.unique_bucket("hostile-data");
    s3.create_bucket(&input).await;
    s3.create_bucket(&output).await;
    let extra: BTreeMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (i2, o2) = (input.clone(), output.clone());
    let cfg = Config::from_lookup(move |k| match k {
        "OUTPUT_BUCKET" => Some(o2.clone()),
        "INPUT_BUCKET" => Some(i2.clone()),
        k => extra.get(k).cloned(),
    })
    .unwrap();
    let store = S3Store::from_conf(&s3.sdk_config());
    Env {
        s3,
        input,
        output,
        cfg,
        store,
    }
}

async fn outputs(e: &Env) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for k in e.s3.keys(&e.output).await {
        let body = e.s3.get(&e.output, &k).await.unwrap();
        m.insert(k, body);
    }
    m
}

fn log_key(name: &str) -> String {
    format!("AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/01/111122223333_CloudTrail_us-east-1_20240101T0000Z_{name}.json.gz")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_every_special_character_round_trip_through_notification_and_s3() {
    let e = env(&[]).await;
    // Every printable ASCII punctuation, a space, a plus, percent sequences that must not be
    // double-decoded, non-ASCII, and an emoji.
    let names = [
        "a b+c%2Bd%20e",
        "!\"#$&'()*,:;<=>?@[\\]^`{|}~",
        "caf\u{e9}-\u{65e5}\u{672c}-\u{1f600}",
        "100%",
        "tab\there",
    ];
    let mut batch = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let key = log_key(n);
        let body = gzip(Cursor::new(trail(&[record(
            &format!("AIDA{i}"),
            "198.51.100.7",
        )])));
        e.s3.put(&e.input, &key, body).await;
        batch.push((format!("m{i}"), key));
    }
    let resp = handle(&e.cfg, &e.store, sqs_batch(&e.input, &batch))
        .await
        .unwrap();
    assert_eq!(resp["batchItemFailures"], json!([]), "{resp}");
    let out = outputs(&e).await;
    assert_eq!(out.len(), names.len());
    for (i, (_, key)) in batch.iter().enumerate() {
        let want = format!(
            "train/cloudtrail/{}.csv",
            key.strip_suffix(".json.gz").unwrap()
        );
        assert_eq!(
            out.get(&want).map(Vec::as_slice),
            Some(format!("AIDA{i},198.51.100.7\n").as_bytes()),
            "{want:?} in {:?}",
            out.keys().collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_objects_leave_no_output_and_fail_only_their_message() {
    let e = env(&[
        ("MAX_UNCOMPRESSED_BYTES", "8388608"),
        ("MAX_RECORD_BYTES", "1048576"),
    ])
    .await;
    let good = gzip(Cursor::new(trail(&[record("AIDAGOOD", "1.2.3.4")])));
    // Valid records first, then the failure: a streaming parser has already emitted tuples when it
    // fails, and none of them may be published.
    let mut recs: Vec<Value> = (0..1000)
        .map(|i| record(&format!("AIDA{i}"), "1.2.3.4"))
        .collect();
    let mut bad_json = trail(&recs);
    bad_json.truncate(bad_json.len() - 3);
    recs.truncate(10);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("good", good.clone()),
        ("bomb", bomb(b"{\"Records\":[", b' ', 64, b"]}")),
        (
            "bigrecord",
            gzip(Gen::new(
                br#"{"Records":[{"x":""#,
                &[b'A'; 4096],
                1024,
                b"\"}]}",
            )),
        ),
        ("truncated-json", gzip(Cursor::new(bad_json))),
        ("truncated-gzip", {
            let g = gzip(Cursor::new(trail(&recs)));
            g[..g.len() / 2].to_vec()
        }),
        ("not-gzip-garbage", b"\x1f\x8bgarbage".to_vec()),
        (
            "deep",
            gzip(Cursor::new(format!(
                "{{\"Records\":[{}",
                "[".repeat(100_000)
            ))),
        ),
        (
            "utf8",
            gzip(Cursor::new(
                &b"{\"Records\":[{\"userIdentity\":{\"principalId\":\"\xff\"}}]}"[..],
            )),
        ),
        (
            "digest-shaped",
            gzip(Cursor::new(
                &b"{\"awsAccountId\":\"1\",\"logFiles\":[]}"[..],
            )),
        ),
    ];
    let mut batch = Vec::new();
    for (name, body) in &cases {
        e.s3.put(&e.input, &log_key(name), body.clone()).await;
        batch.push((name.to_string(), log_key(name)));
    }
    // Plus messages that are not notifications at all.
    let mut ev = sqs_batch(&e.input, &batch);
    let recs = ev["Records"].as_array_mut().unwrap();
    recs.push(json!({"messageId":"not-json","eventSource":"aws:sqs","body":"{\"Records\":["}));
    recs.push(json!({"messageId":"missing-object","eventSource":"aws:sqs","body":
        json!({"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":e.input},"object":{"key":form_encode(&log_key("absent")),"size":5}}}]}).to_string()}));
    let resp = handle(&e.cfg, &e.store, ev).await.unwrap();
    let mut failed: Vec<String> = resp["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect();
    failed.sort();
    let mut want: Vec<String> = cases
        .iter()
        .map(|c| c.0.to_string())
        .filter(|n| n != "good")
        .chain(["not-json".into(), "missing-object".into()])
        .collect();
    want.sort();
    assert_eq!(failed, want);
    let out = outputs(&e).await;
    assert_eq!(
        out.keys().cloned().collect::<Vec<_>>(),
        vec![format!(
            "train/cloudtrail/{}.csv",
            log_key("good").strip_suffix(".json.gz").unwrap()
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_reordered_and_huge_batches_give_the_outputs_of_one_clean_delivery() {
    // 100 objects: one batch of 100 (200 when duplicated) messages; moto makes more slow.
    let n = 100;
    let objects: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let recs: Vec<Value> = (0..5)
                .map(|j| {
                    record(
                        &format!("AIDA{}", (i * 7 + j) % 40),
                        &format!("10.{}.{}.{j}", i % 7, i % 11),
                    )
                })
                .collect();
            (
                log_key(&format!("obj{i:04}")),
                gzip(Cursor::new(trail(&recs))),
            )
        })
        .collect();
    let mut results = Vec::new();
    for mode in ["clean", "duplicated", "reversed"] {
        let e = env(&[]).await;
        for (k, b) in &objects {
            e.s3.put(&e.input, k, b.clone()).await;
        }
        let mut msgs: Vec<(String, String)> = objects
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (format!("m{i}"), k.clone()))
            .collect();
        match mode {
            // Every message twice in one batch (at-least-once delivery), then the batch again.
            "duplicated" => msgs = msgs.iter().flat_map(|m| [m.clone(), m.clone()]).collect(),
            "reversed" => msgs.reverse(),
            _ => {}
        }
        let rounds = if mode == "duplicated" { 2 } else { 1 };
        for _ in 0..rounds {
            let resp = handle(&e.cfg, &e.store, sqs_batch(&e.input, &msgs))
                .await
                .unwrap();
            assert_eq!(resp["batchItemFailures"], json!([]), "{mode}: {resp}");
        }
        let out = outputs(&e).await;
        assert_eq!(out.len(), n, "{mode}");
        results.push(out);
    }
    assert_eq!(
        results[0], results[1],
        "duplicated delivery changed the outputs"
    );
    assert_eq!(
        results[0], results[2],
        "re-ordered delivery changed the outputs"
    );
}
