//! ipcheck with `SECURITY_HUB=true`: its alerts imported as ASFF findings through the same
//! `ipsight-securityhub` code as fuse's rows, against moto_server's Security Hub and S3 through
//! the real SDK clients. One finding per alerted pair in ipcheck's own id space, carrying the
//! network; a redelivered object updates the findings instead of duplicating them.
use std::sync::Arc;

use ipcheck::{handle_with, Config, SecurityHubSink, Sinks};
use ipsight_aws::triage::load_enricher;
use ipsight_aws::S3Store;
use ipsight_ports::EmbeddedScorer;
use ipsight_testkit::events::{s3_notification, sqs};
use ipsight_testkit::mmdb::write_mmdb;
use ipsight_testkit::S3Server;
use serde_json::json;

/// The Security Hub SDK's unoptimised serialiser needs more than a test thread's 2 MB stack.
#[test]
fn alerts_become_security_hub_findings() {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(scenario())
        })
        .unwrap()
        .join()
        .unwrap();
}

async fn scenario() {
    let s3 = S3Server::start().await;
    let data = s3.unique_bucket("ipcheck-sh");
    s3.create_bucket(&data).await;
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn.mmdb");
    write_mmdb(
        &asn,
        "GeoLite2-ASN",
        6,
        &[(
            "192.0.2.0/24",
            json!({"autonomous_system_number": 64511, "autonomous_system_organization": "Example Hosting"}),
        )],
    );
    s3.put(&data, "enrichment/asn.mmdb", std::fs::read(&asn).unwrap())
        .await;
    // Every pair crosses the threshold.
    let cfg = Config::from_lookup(ipsight_testkit::vars(&[
        ("OUTPUT_BUCKET", &data),
        ("ALERT_MAX_DOT_PRODUCT", "100"),
        ("IP_DB_URIS", &format!("s3://{data}/enrichment/")),
        ("SECURITY_HUB", "true"),
        ("AWS_ACCOUNT_ID", "123456789012"),
        ("AWS_REGION", "us-east-1"),
    ]))
    .unwrap();
    let target = cfg.security_hub.clone().expect("SECURITY_HUB=true");
    let conf = s3.sdk_config();
    let client = ipsight_securityhub::publish::client(&conf);
    let sinks = Sinks {
        event_bridge: None,
        security_hub: Some(SecurityHubSink::new(client.clone(), target)),
    };
    let store = S3Store::from_conf(&conf);
    let enricher = load_enricher(&store, &cfg.ip_dbs).await.unwrap();
    let scorer = EmbeddedScorer::new(Arc::new(ipsight_testkit::tiny_model(3)));
    let key = "infer/tuples/shfindings.csv";
    s3.put(
        &data,
        key,
        b"AIDASHALERTONE,192.0.2.44\nAIDASHALERTTWO,198.51.100.9\n".to_vec(),
    )
    .await;
    let ev = || sqs(&[("m1", s3_notification(&data, key))]);
    for _ in 0..2 {
        // The second run is a redelivery: the same findings again, updated in place.
        let resp = handle_with(&cfg, &store, &scorer, &sinks, enricher.as_ref(), ev())
            .await
            .unwrap();
        assert_eq!(resp["batchItemFailures"], json!([]), "{resp}");
    }
    let found = client.get_findings().max_results(100).send().await.unwrap();
    let ours: Vec<_> = found
        .findings()
        .iter()
        .filter(|f| {
            f.generator_id() == Some("ipsight-ipcheck")
                && f.resources()
                    .iter()
                    .any(|r| r.id().is_some_and(|id| id.starts_with("AIDASHALERT")))
        })
        .collect();
    assert_eq!(ours.len(), 2, "one finding per alerted pair, no duplicates");
    let f = ours
        .iter()
        .find(|f| f.id() == Some("123456789012/ipsight/ipcheck-alert/AIDASHALERTONE/192.0.2.44"))
        .expect("finding by its deterministic id");
    assert_eq!(
        f.product_arn(),
        Some("arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default")
    );
    assert_eq!(f.aws_account_id(), Some("123456789012"));
    assert_eq!(
        f.network().and_then(|n| n.source_ipv4()),
        Some("192.0.2.44")
    );
    let fields = f.product_fields().unwrap();
    assert_eq!(fields.get("ipsight/asn").map(String::as_str), Some("64511"));
    assert_eq!(
        fields.get("ipsight/as_org").map(String::as_str),
        Some("Example Hosting")
    );
    // The alert's why is the finding's description.
    let alerts: Vec<serde_json::Value> =
        String::from_utf8(s3.get(&data, &format!("alerts/{key}.jsonl")).await.unwrap())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let a = alerts
        .iter()
        .find(|a| a["entity"] == "AIDASHALERTONE")
        .unwrap();
    assert!(f
        .description()
        .unwrap()
        .contains(a["explanation"].as_str().unwrap()));
    assert_eq!(
        fields.get("ipsight/explanation").map(String::as_str),
        a["explanation"].as_str()
    );
}

#[test]
fn security_hub_needs_its_account() {
    let e = Config::from_lookup(ipsight_testkit::vars(&[
        ("OUTPUT_BUCKET", "d"),
        ("SECURITY_HUB", "true"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("AWS_ACCOUNT_ID"), "{e}");
    let off = Config::from_lookup(ipsight_testkit::vars(&[("OUTPUT_BUCKET", "d")])).unwrap();
    assert!(off.security_hub.is_none());
}
