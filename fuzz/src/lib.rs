//! The fuzz target functions, shared by the cargo-fuzz binaries (`fuzz_targets/`) and the stable
//! driver (`examples/fuzz_stable.rs`). Each takes arbitrary bytes and must never panic, abort or
//! allocate without bound; beyond "no crash", each checks an invariant the rest of ipsight relies
//! on (stats that add up, outputs that round-trip through the tuple contract).
//!
//! Limits are set far below production values so a mutated input reaches the cap paths quickly and a
//! single execution stays cheap; the code paths are the same.
use std::io::Cursor;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use ipsight_formats::cloudtrail::{for_each_record, prepare_cloudtrail, PrepareOptions};
use ipsight_formats::guardduty::{self, ReadOptions};
use ipsight_formats::ocsf::{self, JsonLimits, OcsfMapping};
use ipsight_formats::{classify_ip, notify, tuples};
use ipsight_model::wire::{self, Accept, ContentType};
use ipsight_model::Model;

/// A fuzz target: arbitrary bytes in, panics are findings.
pub type Target = fn(&[u8]);

/// The names the drivers accept, in a fixed order.
pub const TARGETS: &[(&str, Target)] = &[
    ("cloudtrail", cloudtrail),
    ("guardduty", guardduty),
    ("ocsf_json", ocsf_json),
    ("notification", notification),
    ("tuple_csv", tuple_csv),
    ("sagemaker_request", sagemaker_request),
    ("model_file", model_file),
];

/// A CloudTrail object (gzip or plain): the record stream must count every record exactly once,
/// and every output line must be a valid tuple.
pub fn cloudtrail(data: &[u8]) {
    let opts = PrepareOptions {
        max_uncompressed_bytes: 1 << 20,
        max_record_bytes: 64 << 10,
        ..PrepareOptions::default()
    };
    let mut out = Vec::new();
    let res = prepare_cloudtrail(Cursor::new(data), &mut out, &opts);
    let mut n = 0u64;
    let res2 = for_each_record(Cursor::new(data), &opts, |_| {
        n += 1;
        true
    });
    assert_eq!(res.is_ok(), res2.is_ok(), "the two entry points disagree");
    if let Ok(stats) = res {
        assert_eq!(stats.records, n);
        assert_eq!(
            stats.tuples
                + stats.no_principal
                + stats.aws_internal
                + stats.service_host
                + stats.ipv6
                + stats.missing_ip
                + stats.invalid_ip,
            stats.records,
            "every record lands in exactly one bucket"
        );
        check_tuple_csv(&out, stats.tuples);
    }
}

/// Output tuple CSV: `count` lines, each splitting into an entity and a canonical IPv4 address.
fn check_tuple_csv(out: &[u8], count: u64) {
    let text = std::str::from_utf8(out).expect("tuple CSV is UTF-8");
    let mut lines = 0u64;
    // Quoted entities may hold newlines, so split records the way the model's reader does: by
    // re-reading each written record rather than by `lines()`.
    let mut rest = text;
    while !rest.is_empty() {
        let end = record_end(rest);
        let line = &rest[..end];
        rest = &rest[end + 1..];
        let (e, ip) =
            tuples::split_tuple(line).unwrap_or_else(|| panic!("bad tuple line {line:?}"));
        assert!(!e.is_empty(), "empty entity in {line:?}");
        let parsed: Ipv4Addr = ip.parse().expect("canonical IPv4");
        assert_eq!(parsed.to_string(), ip);
        lines += 1;
    }
    assert_eq!(lines, count);
}

/// Index of the newline ending the first CSV record of `s` (quotes respected).
fn record_end(s: &str) -> usize {
    let mut quoted = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => return i,
            _ => {}
        }
    }
    panic!("tuple CSV does not end with a newline: {s:?}");
}

/// A GuardDuty input (event, API response, JSONL export, gzip or not).
pub fn guardduty(data: &[u8]) {
    let opts = ReadOptions {
        max_uncompressed_bytes: 1 << 20,
        max_line_bytes: 64 << 10,
        ..ReadOptions::default()
    };
    if let Ok((records, stats)) = guardduty::extract_all(Cursor::new(data), &opts) {
        assert_eq!(
            stats.records
                + stats.no_id
                + stats.no_principal
                + stats.no_remote_ip
                + stats.other_product
                + stats.unreadable,
            stats.findings,
            "every finding lands in exactly one bucket"
        );
        assert_eq!(stats.records, records.len() as u64);
        let pairs: usize = records.iter().map(|r| r.pairs.len()).sum();
        let csv = records
            .iter()
            .flat_map(|r| r.tuples_csv())
            .collect::<Vec<u8>>();
        check_tuple_csv(&csv, pairs as u64);
        for r in &records {
            let (a, b) = ipsight_core::keys::finding_output_keys(
                "infer/guardduty",
                &r.account_id,
                &r.region,
                &r.finding_id,
            );
            // Keys are built from attacker-controlled ids: they must not climb out of the prefix.
            for k in [a, b] {
                assert!(k.starts_with("infer/guardduty/"));
                assert!(!k.split('/').any(|c| c == ".." || c == "."), "{k}");
            }
        }
        let _ = guardduty::keep_latest(records);
    }
    if let Ok(v) = serde_json::from_slice(data) {
        let _ = guardduty::extract_value(v);
    }
}

/// OCSF JSON (lines or one document) with the default (Security Lake blog) mapping.
pub fn ocsf_json(data: &[u8]) {
    let limits = JsonLimits {
        max_uncompressed_bytes: 1 << 20,
        max_line_bytes: 64 << 10,
    };
    let m = OcsfMapping::default();
    let mut pairs = 0u64;
    let _ = ocsf::read_json(Cursor::new(data), &m, &limits, |p| {
        assert!(!p.entity.is_empty());
        pairs += 1;
    });
}

/// An SQS / SNS body or a Lambda event, and every key it names.
pub fn notification(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = notify::decode_notification_key(text);
    if let Ok(notify::Notification::Sqs(msgs)) = notify::parse_body(text) {
        for m in msgs {
            let _ = notify::parse_body(&m.body);
        }
    }
    if let Ok(v) = serde_json::from_str(text) {
        let _ = notify::parse_notification(&v);
    }
}

/// Tuple CSV and IP text: the reader never panics, `classify_ip` agrees with itself on its own
/// canonical output (IPv4 and IPv6: RFC 5952 text is a fixed point, never holds a zone, brackets
/// or an IPv4-mapped address), the model's wire parser accepts exactly the addresses the tuple
/// rule accepts in canonical form, and any entity written by `write_tuple` reads back unchanged.
pub fn tuple_csv(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Some((_, ip)) = tuples::split_tuple(line) {
            let class = classify_ip(ip);
            if let Some(a) = class.address() {
                let canonical = a.to_string();
                assert_eq!(classify_ip(&canonical), class, "{ip:?} -> {canonical}");
                assert!(!canonical.contains(['%', '[', ']', ' ']), "{canonical}");
                // An IPv4-mapped address is the IPv4 host; `::ffff:1` (0:…:ffff:1) is not one.
                if let std::net::IpAddr::V6(v6) = a {
                    assert!(v6.to_ipv4_mapped().is_none(), "{canonical}");
                }
                assert_eq!(wire::parse_ip(&canonical), Ok(a), "{canonical}");
            }
        }
        let _ = wire::split_csv_pair(line).map(|(_, ip)| wire::parse_ip(ip));
    }
    // Round trip: the whole input as one entity.
    let mut out = Vec::new();
    tuples::write_tuple(&mut out, &text, Ipv4Addr::new(192, 0, 2, 1)).unwrap();
    let line = std::str::from_utf8(&out[..out.len() - 1]).unwrap();
    let (e, ip) = tuples::split_tuple(line).expect("written tuple reads back");
    assert_eq!(e, text, "entity round trip");
    assert_eq!(ip, "192.0.2.1");
}

/// A SageMaker inference request: byte 0 picks the content type, the rest is the body. Parsed
/// records are scored with a tiny model and the response is written in both formats.
pub fn sagemaker_request(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let ct = [ContentType::Csv, ContentType::Json, ContentType::JsonLines][sel as usize % 3];
    let Ok(records) = wire::parse_request(body, ct) else {
        return;
    };
    let model = template_model();
    // The template model has IPv6 rows: every parsed record, IPv4 or IPv6, is scored.
    let preds =
        wire::predict(model, &records, sel & 4 != 0).expect("the model scores both families");
    assert_eq!(preds.len(), records.len());
    for jsonlines in [false, true] {
        let out = wire::write_response(
            &preds,
            Accept {
                jsonlines,
                verbose: sel & 4 != 0,
            },
        );
        assert!(std::str::from_utf8(&out).is_ok());
    }
    if let Ok(s) = std::str::from_utf8(body) {
        let _ = ContentType::parse(s);
        let _ = Accept::parse(s);
    }
}

/// A model file. Random bytes only exercise the magic check, so byte 0 picks a mode:
/// even → the bytes are the file; odd → the rest is a list of `(offset u32 LE, byte)` patches applied
/// to a valid tiny model file, with the checksum recomputed when bit 1 is set so header and shape
/// checks are reached past the CRC.
pub fn model_file(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let _ = Model::read_from(&mut Cursor::new(rest));
        return;
    }
    let mut file = template_file().to_vec();
    for p in rest.chunks_exact(5) {
        let off = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize;
        // Bias offsets towards the header, where the interesting structure is.
        let off = if mode & 4 != 0 { off % 512 } else { off } % file.len();
        file[off] = p[4];
    }
    if mode & 8 != 0 {
        let cut = (rest.len() * 7919) % file.len();
        file.truncate(cut);
    }
    if mode & 2 != 0 && file.len() >= 4 {
        let n = file.len() - 4;
        let crc = crc32fast::hash(&file[..n]);
        file[n..].copy_from_slice(&crc.to_le_bytes());
    }
    if let Ok(m) = Model::read_from(&mut Cursor::new(&file)) {
        // A model that loads must score without panicking.
        let _ = m.score("e", Ipv4Addr::new(1, 2, 3, 4));
    }
}

/// A tiny trained model (vector_dim 4, small hash tables), built once per process.
pub fn template_model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        let mut d = ipsight_model::TrainingData::new();
        for u in 0..8u8 {
            d.push(&format!("user{u}"), Ipv4Addr::new(10, u, 0, 1));
        }
        let mut hp = ipsight_model::Hyperparameters::new(16, 4);
        hp.epochs = 1;
        hp.mini_batch_size = 8;
        let opts = ipsight_model::TrainOptions {
            seed: 1,
            threads: Some(1),
            layout: ipsight_model::IpEncoderLayout {
                prefix24_buckets: 4,
                address_buckets: 4,
                ipv6_buckets: 4,
            },
            ..Default::default()
        };
        ipsight_model::train(&hp, &opts, &d, None, &mut |_| {}).expect("tiny model trains")
    })
}

/// The template model's file bytes.
pub fn template_file() -> &'static [u8] {
    static F: OnceLock<Vec<u8>> = OnceLock::new();
    F.get_or_init(|| {
        let mut v = Vec::new();
        template_model().write_to(&mut v).expect("write to Vec");
        v
    })
}
