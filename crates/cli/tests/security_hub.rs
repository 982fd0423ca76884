//! The issue-14 contract of `ipsight fuse … --ip-db FILE --security-hub OUT --date D` through the
//! real binary: request bodies one per line, within Security Hub's limits, valid against
//! botocore's service model, network values exactly as the test's own databases hold them, and
//! the same bytes on a re-run.
use std::process::Command;

use ipsight_testkit::mmdb::write_mmdb;
use serde_json::{json, Value};

mod common;
use common::{path, succeed as ipsight};

/// A GuardDuty finding as the API and EventBridge write it.
fn finding(id: &str, principal: &str, ip: &str, severity: f64, account: &str) -> Value {
    json!({
        "schemaVersion": "2.0", "id": id, "accountId": account, "region": "eu-west-1",
        "partition": "aws", "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        "severity": severity, "createdAt": "2026-11-30T08:00:00.000Z", "updatedAt": "2026-11-30T09:00:00.000Z",
        "title": "Credentials used from outside AWS",
        "resource": {"resourceType": "AccessKey",
                     "accessKeyDetails": {"principalId": principal, "userType": "AssumedRole", "userName": "r"}},
        "service": {"serviceName": "guardduty", "count": 3,
                    "eventFirstSeen": "2026-11-30T07:59:00.000Z", "eventLastSeen": "2026-11-30T08:30:00.000Z",
                    "action": {"actionType": "AWS_API_CALL",
                               "awsApiCallAction": {"api": "ListBuckets", "serviceName": "s3.amazonaws.com",
                                                    "remoteIpDetails": {"ipAddressV4": ip}}}}
    })
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// `rows` findings on distinct principals; the first two come from the databases' networks,
    /// one from AWS space, one on the trusted list.
    fn new(rows: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let mut findings = String::new();
        let mut scores = String::new();
        for i in 0..rows {
            let ip = match i {
                0 => "203.0.113.7".to_owned(),
                1 => "2.17.5.9".to_owned(),
                2 => "52.94.76.10".to_owned(),
                3 => "192.0.2.50".to_owned(),
                _ => format!("198.18.{}.{}", i / 250, i % 250),
            };
            let principal = format!("AROAEXAMPLE{i:04}");
            findings.push_str(
                &finding(
                    &format!("f{i:04}"),
                    &principal,
                    &ip,
                    2.0 + (i % 7) as f64,
                    "111122223333",
                )
                .to_string(),
            );
            findings.push('\n');
            scores.push_str(&json!({"entity": principal, "ip": ip, "dot_product": -1.5, "unusual_percentile": 90.0 + (i % 10) as f64}).to_string());
            scores.push('\n');
        }
        std::fs::write(p.join("findings.jsonl"), findings).unwrap();
        std::fs::write(p.join("scores.jsonl"), scores).unwrap();
        std::fs::write(p.join("trusted.txt"), "192.0.2.0/24\n").unwrap();
        write_mmdb(
            &p.join("GeoLite2-ASN.mmdb"),
            "GeoLite2-ASN",
            6,
            &[
                (
                    "203.0.113.0/24",
                    json!({"autonomous_system_number": 64500, "autonomous_system_organization": "Example Transit"}),
                ),
                (
                    "2.16.0.0/13",
                    json!({"autonomous_system_number": 20940, "autonomous_system_organization": "Akamai International B.V."}),
                ),
            ],
        );
        write_mmdb(
            &p.join("GeoLite2-Country.mmdb"),
            "GeoLite2-Country",
            6,
            &[
                (
                    "203.0.113.0/24",
                    json!({"country": {"iso_code": "BR", "names": {"en": "Brazil"}}}),
                ),
                (
                    "2.16.0.0/13",
                    json!({"country": {"iso_code": "DE", "names": {"en": "Germany"}}}),
                ),
            ],
        );
        std::fs::write(
            p.join("ip-ranges.json"),
            json!({"syncToken": "1", "createDate": "2026-12-01-00-00-00",
                   "prefixes": [{"ip_prefix": "52.94.76.0/22", "region": "us-west-2", "service": "AMAZON", "network_border_group": "us-west-2"},
                                {"ip_prefix": "52.94.76.0/22", "region": "us-west-2", "service": "DYNAMODB", "network_border_group": "us-west-2"}],
                   "ipv6_prefixes": []})
            .to_string(),
        )
        .unwrap();
        Fixture { dir }
    }

    fn p(&self, name: &str) -> String {
        path(&self.dir.path().join(name)).to_owned()
    }

    /// Run fuse with the databases; returns the request bodies.
    fn run(&self, out: &str, extra: &[&str]) -> Vec<Value> {
        let (f, s, t) = (
            self.p("findings.jsonl"),
            self.p("scores.jsonl"),
            self.p("trusted.txt"),
        );
        let (asn, country, ranges) = (
            self.p("GeoLite2-ASN.mmdb"),
            self.p("GeoLite2-Country.mmdb"),
            self.p("ip-ranges.json"),
        );
        let out = self.p(out);
        let mut args = vec![
            "fuse",
            "--findings",
            &f,
            "--scores",
            &s,
            "--trusted",
            &t,
            "--ip-db",
            &asn,
            "--ip-db",
            &country,
            "--aws-ranges",
            &ranges,
            "--security-hub",
            &out,
            "--date",
            "2026-12-01",
        ];
        args.extend_from_slice(extra);
        ipsight(&args);
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn by_ip<'a>(bodies: &'a [Value], ip: &str) -> Option<&'a Value> {
    bodies
        .iter()
        .flat_map(|b| b["Findings"].as_array().unwrap())
        .find(|f| f["Network"]["SourceIpV4"] == ip)
}

/// botocore's own validator on every request body (offline: the service model ships with it).
fn botocore_validates(file: &str) {
    let script = r#"
import json, sys, botocore.session
from botocore.validate import validate_parameters
shape = botocore.session.get_session().get_service_model("securityhub").operation_model("BatchImportFindings").input_shape
n = 0
for line in open(sys.argv[1]):
    validate_parameters(json.loads(line), shape)
    n += 1
print(n)
"#;
    let out = Command::new("python3")
        .args(["-c", script, file])
        .output()
        .expect("python3 with botocore");
    assert!(
        out.status.success(),
        "botocore refuses {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fuse_writes_valid_reproducible_security_hub_requests_with_network_context() {
    let fx = Fixture::new(6);
    let bodies = fx.run("sh.jsonl", &["--ocsf", &fx.p("ocsf.jsonl")]);
    botocore_validates(&fx.p("sh.jsonl"));
    assert_eq!(bodies.len(), 1);
    let findings = bodies[0]["Findings"].as_array().unwrap();
    // Six rows, one suppressed by the trusted list: not published.
    assert_eq!(findings.len(), 5);
    assert!(by_ip(&bodies, "192.0.2.50").is_none());

    let f = by_ip(&bodies, "203.0.113.7").unwrap();
    assert_eq!(
        f["Id"],
        "111122223333/ipsight/unusual-ip/AROAEXAMPLE0000/203.0.113.7"
    );
    assert_eq!(
        f["ProductArn"],
        "arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default"
    );
    assert_eq!(f["AwsAccountId"], "111122223333");
    assert_eq!(f["Resources"][0]["Type"], "AwsIamRole");
    assert_eq!(f["Resources"][0]["Id"], "AROAEXAMPLE0000");
    assert_eq!(f["ProductFields"]["ipsight/asn"], "64500");
    assert_eq!(f["ProductFields"]["ipsight/as_org"], "Example Transit");
    assert_eq!(f["ProductFields"]["ipsight/country"], "BR");
    assert!(f["Description"]
        .as_str()
        .unwrap()
        .contains("AS64500 Example Transit, BR"));
    assert_eq!(f["CreatedAt"], "2026-11-30T07:59:00Z");
    assert_eq!(f["UpdatedAt"], "2026-12-01T00:00:00Z");
    // The analysts' fields are never sent.
    assert!(f.get("RecordState").is_none() && f.get("Workflow").is_none());
    // Severity follows the fused risk.
    let risk: f64 = f["ProductFields"]["ipsight/risk"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let label = f["Severity"]["Label"].as_str().unwrap();
    assert_eq!(label, ipsight_securityhub::asff::severity_label(risk));
    let aws = by_ip(&bodies, "52.94.76.10").unwrap();
    assert_eq!(
        aws["ProductFields"]["ipsight/aws_services"],
        "AMAZON,DYNAMODB"
    );
    assert_eq!(aws["ProductFields"]["ipsight/aws_region"], "us-west-2");
    assert_eq!(
        by_ip(&bodies, "2.17.5.9").unwrap()["ProductFields"]["ipsight/as_org"],
        "Akamai International B.V."
    );

    // Same inputs and date: the same bytes.
    let first = std::fs::read(fx.p("sh.jsonl")).unwrap();
    fx.run("sh2.jsonl", &[]);
    assert_eq!(first, std::fs::read(fx.p("sh2.jsonl")).unwrap());

    // OCSF Detection Findings name the same detections.
    let ocsf: Vec<Value> = std::fs::read_to_string(fx.p("ocsf.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ocsf.len(), 5);
    let o = ocsf
        .iter()
        .find(|o| o["evidences"][0]["src_endpoint"]["ip"] == "203.0.113.7")
        .unwrap();
    assert_eq!(
        (o["class_uid"].as_u64(), o["type_uid"].as_u64()),
        (Some(2004), Some(200401))
    );
    assert_eq!(o["finding_info"]["uid"], f["Id"]);
    assert_eq!(
        o["evidences"][0]["src_endpoint"]["autonomous_system"]["number"],
        64500
    );
    assert_eq!(
        o["evidences"][0]["src_endpoint"]["location"]["country"],
        "BR"
    );
}

#[test]
fn batches_hold_at_most_100_findings() {
    let fx = Fixture::new(250);
    let bodies = fx.run(
        "sh.jsonl",
        &["--account", "999988887777", "--region", "us-east-1"],
    );
    botocore_validates(&fx.p("sh.jsonl"));
    let sizes: Vec<usize> = bodies
        .iter()
        .map(|b| b["Findings"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 100, 49]);
    let f = &bodies[0]["Findings"][0];
    assert_eq!(
        f["ProductArn"],
        "arn:aws:securityhub:us-east-1:999988887777:product/999988887777/default"
    );
    // The finding stays the principal's account's.
    assert_eq!(f["AwsAccountId"], "111122223333");
    for b in &bodies {
        assert!(b.to_string().len() <= ipsight_securityhub::asff::MAX_REQUEST_BYTES);
    }
}

/// `--events-out FILE --publish-state FILE`: the PutEvents bodies the fuse Lambda would send for
/// the new top rows (valid against botocore's EventBridge model), keyed like the Security Hub
/// findings; a second run from the state it wrote sends nothing; the same inputs, date and
/// state give the same bytes.
#[test]
fn events_out_sends_the_new_top_rows_once() {
    let fx = Fixture::new(6);
    let args = |events: &str, state: &str| {
        vec![
            "--events-out".to_owned(),
            fx.p(events),
            "--publish-state".to_owned(),
            fx.p(state),
            "--publish-top".to_owned(),
            "3".to_owned(),
            "--event-bus".to_owned(),
            "ipsight-alerts".to_owned(),
        ]
    };
    let run = |events: &str, state: &str| {
        let a = args(events, state);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let sh = fx.run("sh.jsonl", &a);
        let bodies: Vec<Value> = std::fs::read_to_string(fx.p(events))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (sh, bodies)
    };
    let (sh, bodies) = run("ev1.jsonl", "state.json");
    let script = r#"
import json, sys, botocore.session
from botocore.validate import validate_parameters
shape = botocore.session.get_session().get_service_model("events").operation_model("PutEvents").input_shape
for line in open(sys.argv[1]):
    validate_parameters(json.loads(line), shape)
"#;
    let out = Command::new("python3")
        .args(["-c", script, &fx.p("ev1.jsonl")])
        .output()
        .expect("python3 with botocore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(bodies.len(), 1);
    let entries = bodies[0]["Entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let details: Vec<Value> = entries
        .iter()
        .map(|e| serde_json::from_str(e["Detail"].as_str().unwrap()).unwrap())
        .collect();
    assert!(entries
        .iter()
        .all(|e| e["EventBusName"] == "ipsight-alerts" && e["Source"] == "ipsight.fuse"));
    // The three highest ranks, each keyed by its Security Hub finding's Id.
    let ranks: Vec<u64> = details
        .iter()
        .map(|d| d["row"]["rank"].as_u64().unwrap())
        .collect();
    assert_eq!(ranks, [1, 2, 3]);
    for d in &details {
        let ip = d["row"]["ip"].as_str().unwrap();
        assert_eq!(d["row_id"], by_ip(&sh, ip).unwrap()["Id"], "{d}");
        assert_eq!(
            d["band"],
            ipsight_securityhub::asff::severity_label(d["row"]["risk"].as_f64().unwrap())
        );
    }
    let state = std::fs::read(fx.p("state.json")).unwrap();

    // The next hour's run from that state: nothing to send, the state unchanged.
    let (_, again) = run("ev2.jsonl", "state.json");
    assert!(again.is_empty());
    assert_eq!(std::fs::read(fx.p("state.json")).unwrap(), state);

    // From a fresh state: the same bytes as the first run.
    let (_, _) = run("ev3.jsonl", "state3.json");
    assert_eq!(
        std::fs::read(fx.p("ev1.jsonl")).unwrap(),
        std::fs::read(fx.p("ev3.jsonl")).unwrap()
    );
    assert_eq!(std::fs::read(fx.p("state3.json")).unwrap(), state);
}
