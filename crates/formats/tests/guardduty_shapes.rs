//! Every GuardDuty finding family, shape variants, and the same findings as Security Hub delivers
//! them (ASFF). Fixtures: `fixtures/guardduty/` (written by `make_fixtures.py` from the documented
//! finding format; no third-party files).
use std::collections::BTreeMap;
use std::io::Write;

use ipsight_formats::guardduty::{
    extract_all, extract_value, extract_value_as, ExtractStats, FindingRecord, FindingSkip,
    ReadOptions, SkippedFinding,
};
use ipsight_formats::{prepare_cloudtrail, EntityKind, PrepareOptions};
use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/guardduty")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn export(kind: EntityKind) -> (Vec<FindingRecord>, ExtractStats) {
    let opts = ReadOptions {
        entity: kind,
        ..ReadOptions::default()
    };
    extract_all(&fixture("export.jsonl")[..], &opts).unwrap()
}

fn by_id(recs: &[FindingRecord]) -> BTreeMap<String, FindingRecord> {
    recs.iter()
        .map(|r| (r.finding_id.clone(), r.clone()))
        .collect()
}

fn pairs(r: &FindingRecord) -> Vec<(String, String, String)> {
    r.pairs
        .iter()
        .map(|p| (p.entity.clone(), p.ip.to_string(), p.action.clone()))
        .collect()
}

fn skipped(st: &ExtractStats, reason: FindingSkip) -> Vec<Option<String>> {
    st.skipped
        .iter()
        .filter(|s| s.reason == reason)
        .map(|s| s.id.clone())
        .collect()
}

/// Issue 17: an EKS finding (`userAgent` a string) failed the whole export object. Every family
/// is read, the unusable findings are counted by reason and named by id, none fails another.
#[test]
fn an_export_of_every_family_fails_nothing() {
    let (recs, st) = export(EntityKind::Principal);
    assert_eq!(st.findings, 17, "{st:?}");
    assert_eq!(
        st.records
            + st.no_id
            + st.no_principal
            + st.no_remote_ip
            + st.other_product
            + st.unreadable,
        st.findings
    );
    let recs = by_id(&recs);
    let ids: Vec<&str> = recs.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "a1iam0000000000000000000000000001",
            "a2root000000000000000000000000002",
            "a3s3000000000000000000000000000003",
            "a6eks0000000000000000000000000006",
            "b4sequence00000000000000000000014",
            "b5variant00000000000000000000015",
        ]
    );
    // EC2 network and port probe, anonymous Kubernetes access, runtime, RDS, Lambda and both
    // malware findings name no IAM principal; the broken one has none readable either.
    let mut no_principal = skipped(&st, FindingSkip::NoPrincipal);
    no_principal.sort();
    assert_eq!(no_principal.len(), 10, "{no_principal:?}");
    assert!(no_principal.contains(&Some("b0rds0000000000000000000000000010".into())));
    assert!(no_principal.contains(&Some("b6broken00000000000000000000016".into())));
    assert_eq!(skipped(&st, FindingSkip::NoId), [None]);
    assert_eq!(st.unreadable, 0);
    // Each reason's findings are listed for the logs, with their ids.
    let logged = serde_json::to_value(&st).unwrap();
    assert_eq!(logged["skipped"][0]["reason"], "no_principal");
    assert_eq!(
        logged["skipped"][0]["id"],
        "a4ec2000000000000000000000000004"
    );

    // IAM: the role session is cut, as for CloudTrail.
    let r = &recs["a1iam0000000000000000000000000001"];
    assert_eq!(
        pairs(r),
        [(
            "AROAEXAMPLEWEBROLE01".into(),
            "198.51.100.7".into(),
            "AWS_API_CALL".into()
        )]
    );
    assert_eq!(r.pairs[0].country.as_deref(), Some("Netherlands"));
    assert_eq!(
        pairs(&recs["a2root000000000000000000000000002"])[0].0,
        "111122223333"
    );
    // EKS audit logs: the IAM principal behind the Kubernetes user, every client address.
    let r = &recs["a6eks0000000000000000000000000006"];
    assert_eq!(
        pairs(r),
        [
            (
                "AROAEXAMPLEEKSADMIN1".into(),
                "203.0.113.50".into(),
                "KUBERNETES_API_CALL".into()
            ),
            (
                "AROAEXAMPLEEKSADMIN1".into(),
                "203.0.113.51".into(),
                "KUBERNETES_API_CALL".into()
            ),
        ]
    );
    assert_eq!(r.finding_type, "Discovery:Kubernetes/MaliciousIPCaller");
    // Attack sequence: the actor with the endpoints its signals name (not ep-3).
    let r = &recs["b4sequence00000000000000000000014"];
    assert_eq!(
        pairs(r),
        [
            (
                "AROAEXAMPLEDEPLOY001".into(),
                "198.51.100.200".into(),
                "ATTACK_SEQUENCE".into()
            ),
            (
                "AROAEXAMPLEDEPLOY001".into(),
                "198.51.100.201".into(),
                "ATTACK_SEQUENCE".into()
            ),
        ]
    );
    // Shape variants: odd sub-objects read as absent, numbers as strings still count.
    let r = &recs["b5variant00000000000000000000015"];
    assert_eq!(pairs(r)[0].1, "198.51.100.111");
    assert_eq!((r.severity, r.count), (5.0, 7));
    assert_eq!(r.pairs[0].country, None);
}

/// The EKS principal is the one CloudTrail records for the same role: the same entity.
#[test]
fn eks_principal_matches_cloudtrail() {
    let (recs, _) = export(EntityKind::Principal);
    let eks = by_id(&recs)["a6eks0000000000000000000000000006"].clone();
    let trail = json!({"Records": [{"eventSource": "eks.amazonaws.com", "sourceIPAddress": "203.0.113.50",
        "userIdentity": {"type": "AssumedRole", "principalId": "AROAEXAMPLEEKSADMIN1:alice",
            "arn": "arn:aws:sts::111122223333:assumed-role/EksAdmin/alice", "accountId": "111122223333"}}]});
    for kind in [EntityKind::Principal, EntityKind::Arn] {
        let mut csv = Vec::new();
        let opts = PrepareOptions {
            entity: kind,
            ..PrepareOptions::default()
        };
        prepare_cloudtrail(trail.to_string().as_bytes(), &mut csv, &opts).unwrap();
        let (recs, _) = export(kind);
        let r = by_id(&recs)["a6eks0000000000000000000000000006"].clone();
        let first = String::from_utf8(r.tuples_csv()).unwrap();
        assert_eq!(
            first.lines().next(),
            String::from_utf8(csv).unwrap().lines().next(),
            "{kind}"
        );
    }
    // The user agent of a Kubernetes API call (a string) is its family.
    let (recs, _) = export(EntityKind::UserAgentFamily);
    assert_eq!(
        by_id(&recs)["a6eks0000000000000000000000000006"].pairs[0].entity,
        "kubectl"
    );
    assert!(eks.ipv6.is_empty());
}

/// Under `instance_id`, the EC2, runtime and malware-free network families pair their instance.
#[test]
fn instance_entities_from_ec2_and_runtime_findings() {
    let (recs, _) = export(EntityKind::InstanceId);
    let recs = by_id(&recs);
    for id in [
        "a4ec2000000000000000000000000004",
        "a5probe0000000000000000000000005",
        "a9runtimenet000000000000000000009",
    ] {
        assert!(
            recs[id]
                .pairs
                .iter()
                .all(|p| p.entity == "i-0123456789abcdef0"),
            "{id}"
        );
    }
    assert_eq!(recs["a5probe0000000000000000000000005"].pairs.len(), 2);
}

/// A bad line of an export is still an error naming it (corrupt data, not a finding).
#[test]
fn corrupt_lines_and_foreign_objects_are_errors() {
    let mut text = fixture("export.jsonl");
    text.extend_from_slice(b"{\"id\":\n");
    let e = extract_all(&text[..], &ReadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("line 18"), "{e}");
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b).unwrap();
    gz.finish().unwrap()
}

/// Security Hub's copy of a GuardDuty finding gives the record of the native finding.
#[test]
fn asff_gives_the_native_records() {
    let (native, _) = export(EntityKind::Principal);
    let native = by_id(&native);
    let get_findings = fixture("asff-get-findings.json");
    for input in [get_findings.clone(), gzip(&get_findings)] {
        let (recs, st) = extract_all(&input[..], &ReadOptions::default()).unwrap();
        // 15 GuardDuty findings and one Security Hub control finding.
        assert_eq!(st.findings, 16);
        assert_eq!(st.other_product, 1);
        assert_eq!(
            skipped(&st, FindingSkip::OtherProduct)[0]
                .as_deref()
                .unwrap()
                .split('/')
                .next_back(),
            Some("0f0e0d0c")
        );
        let asff = by_id(&recs);
        let mut compared = 0;
        for (id, want) in &native {
            if id.starts_with("a6eks") {
                // Security Hub carries the Kubernetes call (ProductFields) but not the Kubernetes
                // user: no principal, counted.
                assert!(!asff.contains_key(id));
                assert!(skipped(&st, FindingSkip::NoPrincipal).contains(&Some(id.clone())));
                continue;
            }
            let got = asff.get(id).unwrap_or_else(|| panic!("{id} missing"));
            assert_eq!(got, want, "{id}");
            compared += 1;
        }
        assert_eq!(compared, 5);
    }
}

#[test]
fn security_hub_imported_event_and_entity_kinds() {
    let ev: Value = serde_json::from_slice(&fixture("asff-imported-event.json")).unwrap();
    let (recs, st) = extract_value(ev.clone()).unwrap();
    assert_eq!(st.findings, 3);
    let ids: Vec<&str> = recs.iter().map(|r| r.finding_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "a1iam0000000000000000000000000001",
            "a2root000000000000000000000000002",
            "a3s3000000000000000000000000000003"
        ]
    );
    let (native, _) = export(EntityKind::Principal);
    assert_eq!(recs[..], native[..3]);
    // The entity definition applies to ASFF as to native findings.
    let (recs, _) = extract_value_as(ev.clone(), EntityKind::PrincipalEventSource).unwrap();
    assert_eq!(
        recs[0].pairs[0].entity,
        "AROAEXAMPLEWEBROLE01|s3.amazonaws.com"
    );
    let (recs, _) = extract_value_as(ev, EntityKind::InstanceId).unwrap();
    assert_eq!(recs[0].pairs[0].entity, "i-0123456789abcdef0");
    // Another product's event is not ours; an Imported event without findings is named.
    let other = json!({"detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub",
        "detail": {"no": "findings"}});
    let e = extract_value(other).unwrap_err();
    assert!(e.to_string().contains("detail.findings"), "{e}");
}

#[test]
fn skipped_findings_are_listed_up_to_a_cap() {
    let line = json!({"schemaVersion": "2.0", "id": "x", "type": "t"}).to_string();
    let text = format!("{line}\n").repeat(250);
    let (_, st) = extract_all(text.as_bytes(), &ReadOptions::default()).unwrap();
    assert_eq!(st.no_principal, 250);
    assert_eq!(
        st.skipped.len(),
        ipsight_formats::guardduty::MAX_SKIPPED_LISTED
    );
    let mut total = ExtractStats::default();
    total.add(&st);
    total.add(&st);
    assert_eq!(total.no_principal, 500);
    assert_eq!(
        total.skipped.len(),
        ipsight_formats::guardduty::MAX_SKIPPED_LISTED
    );
    assert_eq!(
        st.skipped[0],
        SkippedFinding {
            id: Some("x".into()),
            line: None,
            reason: FindingSkip::NoPrincipal
        }
    );
}

/// Real Security Hub findings (Security Lake's validation inputs: Security Hub control findings in
/// ASFF) are another product's: counted and named, never an error.
#[test]
fn real_security_hub_control_findings_are_counted_not_errors() {
    let Some(dir) = ipsight_testkit::real_data(
        "aws-security-lake-ocsf-validation/samples/1.0.0-rc.2/SH_FINDINGS/inputs",
        "formats guardduty_shapes::real_security_hub_control_findings_are_counted_not_errors",
    ) else {
        return;
    };
    let mut files = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let f = std::fs::File::open(&path).unwrap();
        let (recs, st) = extract_all(std::io::BufReader::new(f), &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(recs.is_empty());
        assert_eq!(
            (st.findings, st.other_product),
            (1, 1),
            "{}",
            path.display()
        );
        assert!(st.skipped[0]
            .id
            .as_deref()
            .unwrap()
            .starts_with("arn:aws:securityhub:"));
        files += 1;
    }
    assert_eq!(files, 4);
}

/// Hostile shapes stay bounded: an attack sequence naming 2,000 actors and endpoints in one signal,
/// ASFF product fields with huge indices and deep paths.
#[test]
fn hostile_sequences_and_product_fields_stay_bounded() {
    let n = 2_000;
    let actors: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("a{i}"), "user": {"uid": format!("AIDAEXAMPLE{i:09}"), "type": "IAMUser"}}))
        .collect();
    let endpoints: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("e{i}"), "ip": format!("198.51.{}.{}", i / 256 % 256, i % 256)}))
        .collect();
    let ids = |p: &str| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    let f = json!({"schemaVersion": "2.0", "id": "seq", "type": "AttackSequence:IAM/CompromisedCredentials",
        "service": {"detection": {"sequence": {"actors": actors, "endpoints": endpoints,
            "signals": [{"actorIds": ids("a"), "endpointIds": ids("e")}]}}}});
    let started = std::time::Instant::now();
    let (recs, _) = extract_value(f).unwrap();
    assert!(recs[0].pairs.len() < 100_000, "{}", recs[0].pairs.len());
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());

    let mut pf = serde_json::Map::new();
    pf.insert("aws/securityhub/ProductName".into(), "GuardDuty".into());
    for i in 0..1000 {
        pf.insert(
            format!("aws/guardduty/service/x{i}.4000000000_"),
            "v".into(),
        );
    }
    pf.insert(
        format!("aws/guardduty/{}", "a/".repeat(100_000)),
        "deep".into(),
    );
    let asff = json!({"SchemaVersion": "2018-10-08", "Id": "arn:aws:guardduty:r:1:detector/d/finding/h",
        "ProductArn": "arn:aws:securityhub:r::product/aws/guardduty", "AwsAccountId": "1", "ProductFields": pf});
    let (recs, st) = extract_value(json!({ "Findings": [asff] })).unwrap();
    assert!(recs.is_empty());
    assert_eq!(st.no_principal, 1);
    assert_eq!(st.skipped[0].id.as_deref(), Some("h"));
}
