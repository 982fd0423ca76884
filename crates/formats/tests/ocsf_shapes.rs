//! OCSF shapes against the CloudTrail records they were translated from.
//!
//! `fixtures/ocsf/cloudtrail.json` holds CloudTrail records the project wrote (every identity type,
//! API Activity, Account Change and Authentication events, addresses, `AWS Internal`, service host
//! names, IPv6, a missing address); `rc2.jsonl`, `v1_1.json` and `v1_3_single.json` are their OCSF
//! translations under Security Lake's published mapping for 1.0.0-rc.2 and 1.1 (`translate.py`
//! says how they were made). Each translated event must give exactly the `<entity, ip>` the
//! CloudTrail preparer gives for its raw record, under every entity definition.
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipsight_formats::ocsf::{
    event_pair, read_json, JsonLimits, OcsfError, OcsfMapping, OcsfPair, OcsfStats,
};
use ipsight_formats::{prepare_cloudtrail, EntityKind, PrepareOptions};
use serde_json::{json, Value};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ocsf")
        .join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn records() -> Vec<Value> {
    let v: Value = serde_json::from_slice(&bytes("cloudtrail.json")).unwrap();
    v["Records"].as_array().unwrap().clone()
}

/// The tuple the CloudTrail preparer writes for one record, if any (IPv6 kept, as OCSF keeps it).
fn cloudtrail_tuple(rec: &Value, entity: EntityKind) -> Option<(String, IpAddr)> {
    let mut csv = Vec::new();
    let opts = PrepareOptions {
        entity,
        ipv6: ipsight_formats::Ipv6Tuples::Keep,
        ..PrepareOptions::default()
    };
    let doc = json!({ "Records": [rec] }).to_string();
    prepare_cloudtrail(doc.as_bytes(), &mut csv, &opts).unwrap();
    let text = String::from_utf8(csv).unwrap();
    let line = text.lines().next()?;
    let (e, ip) = ipsight_formats::tuples::split_tuple(line).unwrap();
    Some((e.into_owned(), ip.parse().unwrap()))
}

fn mapping(entity: EntityKind) -> OcsfMapping {
    OcsfMapping {
        entity,
        ..OcsfMapping::default()
    }
}

fn read(input: &[u8], m: &OcsfMapping) -> Result<(Vec<OcsfPair>, OcsfStats), OcsfError> {
    let mut out = Vec::new();
    let stats = read_json(input, m, &JsonLimits::default(), |p| out.push(p))?;
    Ok((out, stats))
}

/// Every event of a fixture file, through the file reader's shape detection.
fn events(name: &str) -> Vec<Value> {
    let text = bytes(name);
    match serde_json::from_slice::<Value>(&text) {
        Ok(Value::Array(a)) => a,
        Ok(v) => vec![v],
        Err(_) => text
            .split(|b| *b == b'\n')
            .filter(|l| !l.trim_ascii().is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect(),
    }
}

#[test]
fn every_translation_gives_the_cloudtrail_pair_under_every_entity_definition() {
    let recs = records();
    for file in ["rc2.jsonl", "v1_1.json"] {
        let evs = events(file);
        assert_eq!(evs.len(), recs.len(), "{file}");
        for kind in EntityKind::ALL {
            let m = mapping(kind);
            let mut with_pairs = 0;
            for (i, (rec, ev)) in recs.iter().zip(&evs).enumerate() {
                let want = cloudtrail_tuple(rec, kind);
                let got = event_pair(ev, &m).ok().map(|p| (p.entity, p.ip));
                assert_eq!(
                    got, want,
                    "{file} record {i} ({kind}): {}",
                    rec["eventName"]
                );
                with_pairs += usize::from(got.is_some());
            }
            // Not vacuous: principal and ARN entities exist for most records.
            let floor = match kind {
                EntityKind::Principal => 8,
                EntityKind::Arn => 6,
                EntityKind::UserAgentFamily | EntityKind::PrincipalEventSource => 8,
                EntityKind::InstanceId => 0,
            };
            assert!(with_pairs >= floor, "{file} {kind}: {with_pairs} pairs");
        }
        // The reader gives the same pairs, in order, as the records one by one.
        let (pairs, stats) = read(&bytes(file), &OcsfMapping::default()).unwrap();
        let want: Vec<_> = recs
            .iter()
            .filter_map(|r| cloudtrail_tuple(r, EntityKind::Principal))
            .collect();
        let got: Vec<_> = pairs.iter().map(|p| (p.entity.clone(), p.ip)).collect();
        assert_eq!(got, want, "{file}");
        assert_eq!(stats.events, recs.len() as u64);
        // IPv6 pairs are among `pairs` (counted again in `ipv6`).
        assert_eq!(
            stats.pairs + stats.no_entity + stats.missing_ip + stats.invalid_ip,
            stats.events
        );
        assert_eq!(stats.ipv6, 1, "{file}");
    }
}

/// The defect of issue 17: OCSF 1.1 `actor.user.uid` is the ARN. Taking it made IAM users their ARN
/// and cut every assumed role at its first `:` into one entity `arn`.
#[test]
fn ocsf_1_1_roles_and_users_keep_their_principal_ids() {
    let evs = events("v1_1.json");
    let m = OcsfMapping::default();
    let entities: Vec<String> = evs
        .iter()
        .filter_map(|e| event_pair(e, &m).ok())
        .map(|p| p.entity)
        .collect();
    assert!(
        !entities
            .iter()
            .any(|e| e == "arn" || e.starts_with("arn:aws:sts")),
        "{entities:?}"
    );
    let p = event_pair(&evs[1], &m).unwrap();
    assert_eq!(p.entity, "AROAEXAMPLEBUILD0001");
    assert_eq!(p.class_uid, Some(6003));
    assert_eq!(p.account.as_deref(), Some("111122223333"));
    assert_eq!(
        event_pair(&evs[0], &m).unwrap().entity,
        "AIDAEXAMPLEALICE0001"
    );
    // Authentication (ConsoleLogin) and Account Change (CreateUser) are actor classes too.
    assert_eq!(event_pair(&evs[4], &m).unwrap().class_uid, Some(3002));
    assert_eq!(event_pair(&evs[2], &m).unwrap().class_uid, Some(3001));
    // An OIDC web identity's principal id starts with `arn:` and is still the principal.
    assert!(event_pair(&evs[10], &m)
        .unwrap()
        .entity
        .contains(":oidc-provider/"));
    // ENTITY=arn: the session is cut from the assumed-role ARN, as in CloudTrail.
    let p = event_pair(&evs[1], &mapping(EntityKind::Arn)).unwrap();
    assert_eq!(p.entity, "arn:aws:sts::111122223333:assumed-role/BuildRole");
    // Without `uid_alt`, a 1.1 event whose `uid` is an ARN has no principal id: no pair, rather
    // than the ARN cut at `:`.
    let mut ev = evs[1].clone();
    ev["actor"]["user"]
        .as_object_mut()
        .unwrap()
        .remove("uid_alt");
    assert!(event_pair(&ev, &m).is_err());
    assert_eq!(
        event_pair(&ev, &mapping(EntityKind::Arn)).unwrap().entity,
        "arn:aws:sts::111122223333:assumed-role/BuildRole"
    );
}

#[test]
fn later_versions_read_like_1_1() {
    let (pairs, stats) = read(&bytes("v1_3_single.json"), &OcsfMapping::default()).unwrap();
    assert_eq!(stats.events, 1);
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].entity, "AROAEXAMPLEBUILD0001");
    assert_eq!(pairs[0].ip, Ipv4Addr::new(203, 0, 113, 77));
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b).unwrap();
    gz.finish().unwrap()
}

/// Issue 17: a `.json` file holding one pretty-printed event or an array failed with "EOF while
/// parsing". Every layout of the same events gives the same pairs.
#[test]
fn json_documents_and_json_lines_give_the_same_pairs() {
    let evs = events("v1_1.json");
    let m = OcsfMapping::default();
    let (want, want_stats) = read(&bytes("v1_1.json"), &m).unwrap();
    // Eight IPv4 pairs and one IPv6 pair.
    assert_eq!(want.len(), 9);
    assert_eq!(want_stats.ipv6, 1);
    let lines: String = evs.iter().map(|e| format!("{e}\n")).collect();
    let compact = serde_json::to_string(&evs).unwrap();
    let pretty = serde_json::to_string_pretty(&evs).unwrap();
    let crlf = pretty.replace('\n', "\r\n");
    let leading_blank = format!("\n  \n{pretty}\n\n");
    for (what, input) in [
        ("json lines", lines.clone().into_bytes()),
        ("compact array", compact.into_bytes()),
        ("pretty array", pretty.clone().into_bytes()),
        ("crlf", crlf.into_bytes()),
        ("leading blank lines", leading_blank.into_bytes()),
        ("gzip pretty", gzip(pretty.as_bytes())),
        ("gzip lines", gzip(lines.as_bytes())),
    ] {
        let (got, stats) = read(&input, &m).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(got, want, "{what}");
        assert_eq!(stats, want_stats, "{what}");
    }
    // One pretty-printed object.
    let one = serde_json::to_string_pretty(&evs[0]).unwrap();
    let (got, _) = read(one.as_bytes(), &m).unwrap();
    assert_eq!(got, want[..1]);
    // An empty array or an empty file: no events, no error.
    assert_eq!(read(b"[\n]\n", &m).unwrap().1.events, 0);
    assert_eq!(read(b"", &m).unwrap().1.events, 0);
}

#[test]
fn broken_documents_are_errors_naming_the_place() {
    let m = OcsfMapping::default();
    let pretty = serde_json::to_string_pretty(&events("v1_1.json")).unwrap();
    // Truncated: the line where the parser stopped, counted from the file's first line.
    let cut = &pretty[..pretty.len() / 2];
    let want_line = cut.lines().count() as u64;
    match read(format!("\n\n{cut}").as_bytes(), &m).unwrap_err() {
        OcsfError::Json { line, .. } => assert_eq!(line, want_line + 2),
        e => panic!("{e}"),
    }
    let e = read(b"[\n  {\"class_uid\": 6003},\n  42\n]\n", &m).unwrap_err();
    assert!(
        e.to_string()
            .contains("array element 1 is not a JSON object"),
        "{e}"
    );
    // The parser reports where it stood after reading the element: the line after it.
    assert!(matches!(e, OcsfError::Json { line: 4, .. }), "{e}");
    let e = read(b"{\n \"class_uid\": 6003\n}\ntrailing", &m).unwrap_err();
    assert!(matches!(e, OcsfError::Json { line: 4, .. }), "{e}");
    // The uncompressed cap holds for documents too, gzipped or not.
    let small = JsonLimits {
        max_uncompressed_bytes: 1000,
        ..JsonLimits::default()
    };
    for input in [pretty.as_bytes().to_vec(), gzip(pretty.as_bytes())] {
        let e = read_json(&input[..], &m, &small, |_| {}).unwrap_err();
        assert!(matches!(e, OcsfError::TooLarge { cap: 1000 }), "{e}");
    }
}

#[test]
fn entity_definition_from_configuration() {
    let m =
        OcsfMapping::from_lookup(|k| (k == "ENTITY").then(|| "user_agent_family".into())).unwrap();
    assert_eq!(m.entity, EntityKind::UserAgentFamily);
    let (pairs, _) = read(&bytes("rc2.jsonl"), &m).unwrap();
    assert_eq!(pairs[0].entity, "aws-cli");
    assert_eq!(pairs[1].entity, "Boto3");
    let e = OcsfMapping::from_lookup(|k| (k == "ENTITY").then(|| "role".into())).unwrap_err();
    assert!(e.to_string().contains("ENTITY"), "{e}");
    assert!(e.to_string().contains("user_agent_family"), "{e}");
}
