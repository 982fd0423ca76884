//! What the baseline knows of a principal, in ipcheck's alerts (issue 14): "first time this
//! principal is seen from AS64511 (Example Hosting)" as a field and in the why, from the IP
//! databases placing the principal's known prefixes; and the tuning file's learning period counted
//! from the principal's first-seen day in the baseline, not only for principals it never saw.
//! Real trained hybrid detector, real S3 (moto) and the real SDK.
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use ipcheck::alerts::AlertSink;
use ipcheck::{handle_with, Alert, Config};
use ipsight_aws::triage::load_enricher;
use ipsight_aws::S3Store;
use ipsight_model::{train_hybrid, HybridOptions, Hyperparameters, NewPrincipals, PairLog};
use ipsight_ports::{Baseline, EmbeddedScorer, Scorer};
use ipsight_testkit::events::{s3_notification, sqs};
use ipsight_testkit::mmdb::write_mmdb;
use ipsight_testkit::S3Server;
use serde_json::{json, Value};

#[derive(Default)]
struct Recorder(Mutex<Vec<Alert>>);

impl AlertSink for Recorder {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), String> {
        self.0.lock().unwrap().extend_from_slice(alerts);
        Ok(())
    }
}

/// 20 users from 10.u.0.0/24 for 200 days; `user0` only for the last 3 days (all inside both
/// halves of the history the detector is trained on).
fn scorer(today: u32) -> EmbeddedScorer {
    let mut log = PairLog::new();
    for k in 0..10u8 {
        for u in 0..20u8 {
            let (first, last) = if u == 0 {
                (today - 3, today - 1)
            } else {
                (today - 200 + k as u32, today - 1)
            };
            log.push(
                &format!("user{u}"),
                Ipv4Addr::new(10, u, 0, k).into(),
                3,
                Some(first),
                Some(last),
            );
        }
    }
    let mut hp = Hyperparameters::new(64, 8);
    hp.epochs = 2;
    hp.mini_batch_size = 50;
    let opts = ipsight_model::TrainOptions {
        threads: Some(1),
        seed: 5,
        ..ipsight_model::TrainOptions::default()
    };
    let (model, det, _) = train_hybrid(
        &hp,
        &opts,
        &HybridOptions::default(),
        &log,
        None,
        &mut |_| {},
    )
    .unwrap();
    EmbeddedScorer::new(Arc::new(model))
        .with_baseline(Baseline::new(Arc::new(det), NewPrincipals::Alert, "test"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_say_first_network_and_learning_counts_from_first_seen() {
    let today = (ipsight_core::time::now_secs() / 86_400) as u32;
    let scorer = scorer(today);
    let p = scorer.profile("user5").expect("user5 in the baseline");
    assert_eq!(p.prefixes.len(), 1, "{p:?}");
    let s3 = S3Server::start().await;
    let data = s3.unique_bucket("principal");
    s3.create_bucket(&data).await;
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn.mmdb");
    write_mmdb(
        &asn,
        "GeoLite2-ASN",
        6,
        &[
            (
                "10.0.0.0/8",
                json!({"autonomous_system_number": 64500, "autonomous_system_organization": "Example Corp"}),
            ),
            (
                "198.51.100.0/24",
                json!({"autonomous_system_number": 64511, "autonomous_system_organization": "Example Hosting"}),
            ),
        ],
    );
    s3.put(&data, "enrichment/asn.mmdb", std::fs::read(&asn).unwrap())
        .await;
    s3.put(
        &data,
        "config/tuning.toml",
        b"version = 1\n[learning]\ndays = 14\n".to_vec(),
    )
    .await;
    let cfg = Config::from_lookup(ipsight_testkit::vars(&[
        ("OUTPUT_BUCKET", &data),
        ("ALERT_MAX_DOT_PRODUCT", "100"),
        ("IP_DB_URIS", &format!("s3://{data}/enrichment/")),
        ("TUNING_URI", &format!("s3://{data}/config/tuning.toml")),
    ]))
    .unwrap();
    let store = S3Store::from_conf(&s3.sdk_config());
    let enricher = load_enricher(&store, &cfg.ip_dbs).await.unwrap();
    let key = "infer/tuples/context.csv";
    s3.put(
        &data,
        key,
        b"user5,198.51.100.7\nuser6,10.99.0.1\nuser0,198.51.100.8\n".to_vec(),
    )
    .await;
    let sink = Recorder::default();
    let resp = handle_with(
        &cfg,
        &store,
        &scorer,
        &sink,
        enricher.as_ref(),
        sqs(&[("m1", s3_notification(&data, key))]),
    )
    .await
    .unwrap();
    assert_eq!(resp["batchItemFailures"], json!([]), "{resp}");
    let scores: Vec<Value> =
        String::from_utf8(s3.get(&data, &format!("scores/{key}.jsonl")).await.unwrap())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let by = |e: &str| scores.iter().find(|r| r["entity"] == e).unwrap().clone();
    // An old principal from a new AS: said so, as a field and in the why.
    let new_as = by("user5");
    assert_eq!(new_as["alert"], true, "{new_as}");
    assert_eq!(new_as["network_history"]["asn"], "first");
    assert!(new_as["explanation"]
        .as_str()
        .unwrap()
        .ends_with("First time this principal is seen from AS64511 (Example Hosting)."));
    // From its own AS: seen, no sentence.
    let same_as = by("user6");
    assert_eq!(same_as["network_history"]["asn"], "seen");
    assert!(!same_as["explanation"]
        .as_str()
        .unwrap()
        .contains("First time"));
    // A principal the baseline knows, first seen 3 days ago: still learning (day 4 of 14).
    let learning = by("user0");
    assert_ne!(learning["history"], "new_principal", "{learning}");
    assert_eq!(learning["alert"], false);
    let why = learning["suppressed_reason"].as_str().unwrap();
    assert!(
        why.contains("learning.days = 14") && why.contains("(day 4 of 14)"),
        "{why}"
    );
    let alerted: Vec<String> = sink
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.record.entity.clone())
        .collect();
    assert_eq!(alerted, ["user5", "user6"]);
}
