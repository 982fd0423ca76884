//! The fuse Lambda's handler with `IP_DB_URIS` and `SECURITY_HUB=true`, against moto_server
//! (S3 and Security Hub) through the real SDK clients: databases read from S3 at cold start, rows
//! carry their network, unsuppressed rows land in Security Hub once however often the run is
//! retried.
use fuse::triage::{load_enricher, Triage};
use fuse::{handle_with, Config, NoScorer};
use ipsight_aws::S3Store;
use ipsight_testkit::mmdb::write_mmdb;
use ipsight_testkit::S3Server;
use serde_json::{json, Value};

fn record(id: &str, entity: &str, ip: &str, severity: f64) -> Value {
    json!({"finding_id": id, "type": "UnauthorizedAccess:IAMUser/MaliciousIPCaller", "severity": severity,
           "account_id": "123456789012", "region": "us-east-1",
           "created_at": "2026-01-19T10:00:00Z", "updated_at": "2026-01-19T10:00:00Z",
           "event_first_seen": "2026-01-19T09:00:00Z", "event_last_seen": "2026-01-19T10:00:00Z",
           "count": 1, "sample": false,
           "pairs": [{"entity": entity, "ip": ip, "action": "AWS_API_CALL"}]})
}

fn run_in_big_stack<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    // The Security Hub SDK's unoptimised serialiser needs more than a test thread's 2 MB stack.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f)
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn enriched_report_and_security_hub_findings() {
    run_in_big_stack(scenario());
}

async fn scenario() {
    let s3 = S3Server::start().await;
    let bucket = s3.unique_bucket("triage");
    s3.create_bucket(&bucket).await;
    for (id, entity, ip, sev) in [
        ("t1", "AIDATRIAGEALICE", "203.0.113.7", 8.0),
        ("t2", "AROATRIAGEBUILD", "52.94.76.10", 5.0),
        ("t3", "AIDATRIAGETRUST", "10.1.2.3", 8.0),
    ] {
        s3.put(
            &bucket,
            &format!("infer/guardduty/findings/{id}.json"),
            record(id, entity, ip, sev).to_string().into_bytes(),
        )
        .await;
    }
    s3.put(&bucket, "lists/trusted.txt", b"10.0.0.0/8\n".to_vec())
        .await;
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn.mmdb");
    write_mmdb(
        &asn,
        "GeoLite2-ASN",
        6,
        &[(
            "203.0.113.0/24",
            json!({"autonomous_system_number": 64500, "autonomous_system_organization": "Example Transit"}),
        )],
    );
    s3.put(
        &bucket,
        "enrichment/GeoLite2-ASN.mmdb",
        std::fs::read(&asn).unwrap(),
    )
    .await;
    s3.put(
        &bucket,
        "enrichment/ip-ranges.json",
        json!({"syncToken": "1", "createDate": "2026-01-01-00-00-00", "ipv6_prefixes": [],
               "prefixes": [{"ip_prefix": "52.94.76.0/22", "region": "us-west-2", "service": "DYNAMODB", "network_border_group": "us-west-2"}]})
        .to_string()
        .into_bytes(),
    )
    .await;
    s3.put(&bucket, "enrichment/README.txt", b"not a database".to_vec())
        .await;

    let cfg = Config::from_lookup(ipsight_testkit::vars(&[
        ("DATA_BUCKET", &bucket),
        ("TRUSTED_IPS", &format!("s3://{bucket}/lists/trusted.txt")),
        ("LOOKBACK_DAYS", "all"),
        ("IP_DB_URIS", &format!("s3://{bucket}/enrichment/")),
        ("SECURITY_HUB", "true"),
        ("AWS_ACCOUNT_ID", "123456789012"),
        ("AWS_REGION", "us-east-1"),
    ]))
    .unwrap();
    let store = S3Store::from_conf(&s3.sdk_config());
    let client = ipsight_securityhub::publish::client(&s3.sdk_config());
    let triage = Triage {
        enricher: load_enricher(&store, &cfg.ip_dbs).await.unwrap(),
        security_hub: cfg.security_hub.clone().map(|t| (client.clone(), t)),
        events: None,
    };
    let event = json!({"date": "2026-01-20"});
    let resp = handle_with(&cfg, &store, None::<&NoScorer>, &triage, event.clone())
        .await
        .unwrap();
    assert_eq!(resp["security_hub"]["outcome"]["imported"], 2, "{resp}");
    assert_eq!(resp["security_hub"]["skipped"]["suppressed"], 1, "{resp}");
    // A retried run sends the same findings again: updates, not duplicates.
    handle_with(&cfg, &store, None::<&NoScorer>, &triage, event)
        .await
        .unwrap();

    let report: Value = serde_json::from_slice(
        &s3.get(&bucket, "reports/2026-01-20/suspicious.json")
            .await
            .unwrap(),
    )
    .unwrap();
    let row = |ip: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ip"] == ip)
            .unwrap()
            .clone()
    };
    assert_eq!(row("203.0.113.7")["network"]["asn"], 64500);
    assert_eq!(row("203.0.113.7")["network"]["as_org"], "Example Transit");
    assert_eq!(
        row("52.94.76.10")["network"]["aws"]["services"],
        json!(["DYNAMODB"])
    );
    assert_eq!(row("10.1.2.3")["status"], "suppressed");

    let found = client.get_findings().max_results(100).send().await.unwrap();
    let ours: Vec<_> = found
        .findings()
        .iter()
        .filter(|f| {
            f.resources()
                .iter()
                .any(|r| r.id().is_some_and(|id| id.contains("TRIAGE")))
        })
        .collect();
    assert_eq!(ours.len(), 2);
    assert!(ours.iter().all(|f| f.product_arn()
        == Some("arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default")));
}

#[test]
fn bad_configuration_is_refused() {
    let bad = Config::from_lookup(ipsight_testkit::vars(&[
        ("DATA_BUCKET", "d"),
        ("IP_DB_URIS", "s3://cfg/a.mmdb, /local/path.mmdb"),
    ]))
    .unwrap_err();
    assert!(bad.to_string().contains("/local/path.mmdb"), "{bad}");
    let bad = Config::from_lookup(ipsight_testkit::vars(&[
        ("DATA_BUCKET", "d"),
        ("SECURITY_HUB", "true"),
    ]))
    .unwrap_err();
    assert!(bad.to_string().contains("AWS_ACCOUNT_ID"), "{bad}");
}

/// `TUNING_URI`: one allow line silences a known egress by ASN (from the databases), AWS service
/// addresses are excluded, a threat-listed address stays escalated whatever the allowlist says;
/// suppressed rows stay in the report with the rule, the rest are re-ranked; the page is written
/// beside the JSON and CSV. A tuning file with a mistake fails the run, naming entry and reason.
#[test]
fn tuning_file_from_s3() {
    run_in_big_stack(tuning_scenario());
}

async fn tuning_scenario() {
    let s3 = S3Server::start().await;
    let bucket = s3.unique_bucket("tuned");
    s3.create_bucket(&bucket).await;
    for (id, entity, ip, sev) in [
        ("u1", "AIDATUNEDCI", "203.0.113.7", 8.0),
        ("u2", "AIDATUNEDDYN", "52.94.76.10", 5.0),
        ("u3", "AIDATUNEDEVIL", "203.0.113.66", 2.0),
        ("u4", "AIDATUNEDKEEP", "192.0.2.1", 3.0),
    ] {
        s3.put(
            &bucket,
            &format!("infer/guardduty/findings/{id}.json"),
            record(id, entity, ip, sev).to_string().into_bytes(),
        )
        .await;
    }
    s3.put(&bucket, "lists/threats.txt", b"203.0.113.66\n".to_vec())
        .await;
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn.mmdb");
    write_mmdb(
        &asn,
        "GeoLite2-ASN",
        6,
        &[(
            "203.0.113.0/24",
            json!({"autonomous_system_number": 64500, "autonomous_system_organization": "Example CI Provider"}),
        )],
    );
    s3.put(&bucket, "enrichment/asn.mmdb", std::fs::read(&asn).unwrap())
        .await;
    s3.put(
        &bucket,
        "enrichment/ip-ranges.json",
        json!({"syncToken": "1", "createDate": "2026-01-01-00-00-00", "ipv6_prefixes": [],
               "prefixes": [{"ip_prefix": "52.94.76.0/22", "region": "us-west-2", "service": "DYNAMODB", "network_border_group": "us-west-2"}]})
        .to_string()
        .into_bytes(),
    )
    .await;
    s3.put(
        &bucket,
        "config/tuning.toml",
        b"allow = [\n  { asn = 64500, expires = \"2026-12-31\", reason = \"CI provider egress\" },\n]\n[aws_callers]\nservice_addresses = true\n".to_vec(),
    )
    .await;
    let vars = |tuning: &str| {
        Config::from_lookup(ipsight_testkit::vars(&[
            ("DATA_BUCKET", &bucket),
            ("THREAT_IPS", &format!("s3://{bucket}/lists/threats.txt")),
            ("LOOKBACK_DAYS", "all"),
            ("IP_DB_URIS", &format!("s3://{bucket}/enrichment/")),
            ("TUNING_URI", &format!("s3://{bucket}/config/{tuning}")),
        ]))
        .unwrap()
    };
    let cfg = vars("tuning.toml");
    let store = S3Store::from_conf(&s3.sdk_config());
    let triage = Triage {
        enricher: load_enricher(&store, &cfg.ip_dbs).await.unwrap(),
        security_hub: None,
        events: None,
    };
    let resp = handle_with(
        &cfg,
        &store,
        None::<&NoScorer>,
        &triage,
        json!({"date": "2026-01-20"}),
    )
    .await
    .unwrap();
    assert_eq!(
        resp["tuning"]["suppressed"],
        json!({"allow": 1, "aws_service_address": 1}),
        "{resp}"
    );
    let report: Value = serde_json::from_slice(
        &s3.get(&bucket, "reports/2026-01-20/suspicious.json")
            .await
            .unwrap(),
    )
    .unwrap();
    let rows = report["rows"].as_array().unwrap();
    let row = |e: &str| rows.iter().find(|r| r["entity"] == e).unwrap().clone();
    let ci = row("AIDATUNEDCI");
    assert_eq!(ci["status"], "suppressed");
    assert_eq!(ci["rank"], Value::Null);
    assert_eq!(
        ci["suppressed_reason"],
        format!("s3://{bucket}/config/tuning.toml allow[0] (line 2): asn 64500 — \"CI provider egress\", expires 2026-12-31")
    );
    assert!(ci["explanation"]
        .as_str()
        .unwrap()
        .starts_with("SUPPRESSED (s3://"));
    assert_eq!(row("AIDATUNEDDYN")["status"], "suppressed");
    // Same ASN as the allowlisted egress, but on the threat list: stays escalated and ranked first.
    assert_eq!(row("AIDATUNEDEVIL")["status"], "escalated");
    assert_eq!(row("AIDATUNEDEVIL")["rank"], 1);
    assert_eq!(row("AIDATUNEDKEEP")["rank"], 2);
    assert_eq!(report["summary"]["ranked"], 2);
    assert_eq!(report["summary"]["suppressed"], 2);
    let page = s3
        .get(&bucket, "reports/2026-01-20/suspicious.html")
        .await
        .unwrap();
    let page = String::from_utf8(page).unwrap();
    assert!(page.starts_with("<!doctype html>") && page.contains("CI provider egress"));

    // A later report date past the rule's expiry: the egress is ranked again, the rule listed.
    let resp = handle_with(
        &cfg,
        &store,
        None::<&NoScorer>,
        &triage,
        json!({"date": "2027-01-01"}),
    )
    .await
    .unwrap();
    assert_eq!(resp["tuning"]["expired"], json!(["allow[0] (line 2)"]));
    assert_eq!(
        resp["tuning"]["suppressed"],
        json!({"aws_service_address": 1})
    );

    // Mistakes name the file, the entry and the reason; a missing file is an error too.
    s3.put(
        &bucket,
        "config/bad.toml",
        b"allow = [\n  { asn = 64500, expires = \"2026-12-31\", reason = \"CI\" },\n  { country = \"Portugal\", expires = \"never\", reason = \"Lisbon\" },\n]\n".to_vec(),
    )
    .await;
    let e = handle_with(
        &vars("bad.toml"),
        &store,
        None::<&NoScorer>,
        &triage,
        json!({"date": "2026-01-20"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("tuning file s3://{bucket}/config/bad.toml: allow[1] (line 3): country \"Portugal\" is not an ISO 3166-1 alpha-2 code like \"FR\"")
    );
    let e = handle_with(
        &vars("missing.toml"),
        &store,
        None::<&NoScorer>,
        &triage,
        json!({"date": "2026-01-20"}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("missing.toml"), "{e}");
}
