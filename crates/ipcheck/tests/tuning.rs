//! ipcheck with a tuning file (`TUNING_URI`) and network databases (`IP_DB_URIS`), against
//! moto_server through the real S3 client, scored by a really trained model: a known egress is
//! silenced by one line, AWS service callers and service addresses are excluded, every suppressed
//! pair keeps its score line with the rule, alerts carry their network, and the same pair alerts
//! once per dedup window — while a redelivery of the object that alerted alerts again with the
//! same id (idempotent under retries).
use std::sync::{Arc, Mutex};

use ipcheck::alerts::AlertSink;
use ipcheck::{handle_with, Alert, Config};
use ipsight_aws::triage::load_enricher;
use ipsight_aws::S3Store;
use ipsight_model::Model;
use ipsight_ports::EmbeddedScorer;
use ipsight_testkit::events::{gz, s3_notification, sqs};
use ipsight_testkit::mmdb::write_mmdb;
use ipsight_testkit::S3Server;
use serde_json::{json, Value};

const ALICE: &str = "AIDATUNEALICE";

/// Alice works from 198.51.100.0/24; forty other users from their own /16s.
fn model() -> Arc<Model> {
    Arc::new(ipsight_testkit::small_model(&[(ALICE, [198, 51, 100])]))
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Alert>>);

impl AlertSink for Recorder {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), String> {
        self.0.lock().unwrap().extend_from_slice(alerts);
        Ok(())
    }
}

fn event(ip: &str, invoked_by: Option<&str>) -> Value {
    let mut ui = json!({"type": "IAMUser", "principalId": ALICE, "accountId": "123456789012"});
    if let Some(by) = invoked_by {
        ui["invokedBy"] = json!(by);
    }
    json!({"eventTime": "2026-02-01T10:00:00Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
           "sourceIPAddress": ip, "userIdentity": ui})
}

fn cloudtrail(records: &[Value]) -> Vec<u8> {
    gz(json!({"Records": records}).to_string().as_bytes())
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const TUNING: &str = r#"version = 1
allow = [
  { cidr = "203.0.113.0/24", expires = "never", reason = "Paris office egress" },
]
[aws_callers]
invoked_by = true
service_addresses = true
[alerts]
dedup_hours = 24
"#;

#[tokio::test]
async fn tuning_suppresses_with_the_rule_and_dedups_alerts() {
    let s3 = S3Server::start().await;
    let data = s3.unique_bucket("tune");
    s3.create_bucket(&data).await;
    s3.put(&data, "config/tuning.toml", TUNING.as_bytes().to_vec())
        .await;
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
    s3.put(
        &data,
        "enrichment/ip-ranges.json",
        json!({"syncToken": "1", "createDate": "2026-01-01-00-00-00", "ipv6_prefixes": [],
               "prefixes": [{"ip_prefix": "52.94.76.0/22", "region": "us-west-2", "service": "DYNAMODB", "network_border_group": "us-west-2"},
                            {"ip_prefix": "52.94.76.0/22", "region": "us-west-2", "service": "AMAZON", "network_border_group": "us-west-2"}]})
        .to_string()
        .into_bytes(),
    )
    .await;
    let cfg = Config::from_lookup(ipsight_testkit::vars(&[
        ("OUTPUT_BUCKET", &data),
        ("INPUT_BUCKET", &data),
        ("INPUT_PREFIX", "AWSLogs/"),
        ("ALERT_MAX_DOT_PRODUCT", "100"),
        ("TUNING_URI", &format!("s3://{data}/config/tuning.toml")),
        ("IP_DB_URIS", &format!("s3://{data}/enrichment/")),
    ]))
    .unwrap();
    assert_eq!(cfg.alert_state_prefix, "alert-state/");
    let store = S3Store::from_conf(&s3.sdk_config());
    let enricher = load_enricher(&store, &cfg.ip_dbs).await.unwrap();
    assert!(enricher.is_some());
    let scorer = EmbeddedScorer::new(model());
    let key = |n: &str| {
        format!("AWSLogs/123456789012/CloudTrail/us-east-1/2026/02/01/123456789012_CloudTrail_us-east-1_20260201T1000Z_{n}.json.gz")
    };
    // Every pair crosses the threshold (ALERT_MAX_DOT_PRODUCT=100): only the tuning stops alerts.
    let first = key("a");
    s3.put(
        &data,
        &first,
        cloudtrail(&[
            event("203.0.113.9", None), // the office: allow[0]
            event("52.94.76.10", Some("dynamodb.amazonaws.com")), // AWS acting for Alice
            event("52.94.77.1", None),  // an AWS service address
            event("192.0.2.44", None),  // alerts, with its network
        ]),
    )
    .await;
    let sink = Recorder::default();
    let run = |k: String| sqs(&[("m1", s3_notification(&data, &k))]);
    let resp = handle_with(
        &cfg,
        &store,
        &scorer,
        &sink,
        enricher.as_ref(),
        run(first.clone()),
    )
    .await
    .unwrap();
    assert_eq!(resp["batchItemFailures"], json!([]), "{resp}");
    let scores = lines(
        &s3.get(&data, &format!("scores/{first}.jsonl"))
            .await
            .unwrap(),
    );
    assert_eq!(scores.len(), 4, "every pair keeps its score line");
    let by_ip = |ip: &str| scores.iter().find(|r| r["ip"] == ip).unwrap().clone();
    assert_eq!(by_ip("203.0.113.9")["alert"], false);
    assert_eq!(
        by_ip("203.0.113.9")["suppressed_reason"],
        format!("s3://{data}/config/tuning.toml allow[0] (line 3): cidr 203.0.113.0/24 — \"Paris office egress\", expires never")
    );
    let invoked = by_ip("52.94.76.10");
    assert_eq!(invoked["invoked_by"], "dynamodb.amazonaws.com");
    assert!(invoked["suppressed_reason"]
        .as_str()
        .unwrap()
        .contains("aws_callers.invoked_by"));
    assert!(by_ip("52.94.77.1")["suppressed_reason"]
        .as_str()
        .unwrap()
        .contains("an address AWS publishes for DYNAMODB"));
    let alerting = by_ip("192.0.2.44");
    assert_eq!(alerting["alert"], true);
    assert!(alerting.get("suppressed_reason").is_none());
    assert_eq!(alerting["network"]["asn"], 64511);
    assert_eq!(alerting["network"]["as_org"], "Example Hosting");
    let alerted: Vec<Alert> = std::mem::take(&mut *sink.0.lock().unwrap());
    assert_eq!(alerted.len(), 1);
    let first_id = alerted[0].alert_id.clone();
    assert_eq!(alerted[0].record.network.as_ref().unwrap().asn, Some(64511));

    // A redelivery of the same object is not a duplicate: the same alert, the same id.
    handle_with(
        &cfg,
        &store,
        &scorer,
        &sink,
        enricher.as_ref(),
        run(first.clone()),
    )
    .await
    .unwrap();
    let again: Vec<Alert> = std::mem::take(&mut *sink.0.lock().unwrap());
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].alert_id, first_id);

    // Another object with the same pair inside the window: scored, not alerted, and says why.
    let second = key("b");
    s3.put(&data, &second, cloudtrail(&[event("192.0.2.44", None)]))
        .await;
    handle_with(
        &cfg,
        &store,
        &scorer,
        &sink,
        enricher.as_ref(),
        run(second.clone()),
    )
    .await
    .unwrap();
    assert!(sink.0.lock().unwrap().is_empty(), "deduplicated");
    let scores = lines(
        &s3.get(&data, &format!("scores/{second}.jsonl"))
            .await
            .unwrap(),
    );
    assert_eq!(scores[0]["alert"], false);
    let why = scores[0]["suppressed_reason"].as_str().unwrap();
    assert!(
        why.contains("alerts.dedup_hours = 24: already alerted at")
            && why.contains(&format!("(alert {first_id}, from s3://{data}/{first})")),
        "{why}"
    );
    assert!(s3
        .get(&data, &format!("alerts/{second}.jsonl"))
        .await
        .is_none());
    // The state is one object per alerted pair, outside every output the trigger sees.
    let state: Vec<String> = s3
        .keys(&data)
        .await
        .into_iter()
        .filter(|k| k.starts_with("alert-state/"))
        .collect();
    assert_eq!(state.len(), 1, "{state:?}");
}

#[tokio::test]
async fn a_bad_tuning_file_fails_the_invocation_naming_entry_and_reason() {
    let s3 = S3Server::start().await;
    let data = s3.unique_bucket("tunebad");
    s3.create_bucket(&data).await;
    s3.put(
        &data,
        "config/tuning.toml",
        b"allow = [\n  { cidr = \"203.0.113.0/24\", reason = \"office\" },\n]\n".to_vec(),
    )
    .await;
    let cfg = Config::from_lookup(ipsight_testkit::vars(&[
        ("OUTPUT_BUCKET", &data),
        ("ALERT_MAX_DOT_PRODUCT", "100"),
        ("TUNING_URI", &format!("s3://{data}/config/tuning.toml")),
    ]))
    .unwrap();
    let store = S3Store::from_conf(&s3.sdk_config());
    let scorer = EmbeddedScorer::new(model());
    let e = handle_with(
        &cfg,
        &store,
        &scorer,
        &Recorder::default(),
        None,
        sqs(&[("m1", s3_notification(&data, "x/t.csv"))]),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        format!("tuning file s3://{data}/config/tuning.toml: allow[0] (line 2): no expires: give a date (\"2027-06-30\") or \"never\"")
    );
    // An output prefix inside the alert state is refused at cold start.
    let bad = Config::from_lookup(ipsight_testkit::vars(&[
        ("OUTPUT_BUCKET", "d"),
        ("ALERT_STATE_PREFIX", "scores/state/"),
    ]))
    .unwrap_err();
    assert!(bad.to_string().contains("ALERT_STATE_PREFIX"), "{bad}");
}

/// S3 with a gate: the first two reads of an alert mark wait for each other, so two invocations
/// both see "no mark yet" before either writes — the race of two objects carrying the same new
/// pair at the same moment, made certain instead of likely.
struct Gate {
    gate: tokio::sync::Barrier,
    gated: std::sync::atomic::AtomicUsize,
}

impl ipsight_testkit::hooked::AfterGet for Gate {
    async fn after_get(&self, obj: &ipsight_ports::ObjectRef) {
        if obj.key.starts_with("alert-state/")
            && self.gated.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2
        {
            self.gate.wait().await;
        }
    }
}

/// Two invocations, two objects, the same new pair, both past their read of the (missing) alert
/// mark before either writes: the conditional write (`If-None-Match: *`, honoured by moto) lets
/// exactly one alert; the other is suppressed by the winner's mark and publishes nothing.
/// Redelivering the winner's object alerts again with the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_objects_with_the_same_new_pair_alert_once() {
    let s3 = S3Server::start().await;
    let data = s3.unique_bucket("race");
    s3.create_bucket(&data).await;
    s3.put(
        &data,
        "config/tuning.toml",
        b"version = 1\n[alerts]\ndedup_hours = 24\n".to_vec(),
    )
    .await;
    let cfg = Config::from_lookup(ipsight_testkit::vars(&[
        ("OUTPUT_BUCKET", &data),
        ("ALERT_MAX_DOT_PRODUCT", "100"),
        ("TUNING_URI", &format!("s3://{data}/config/tuning.toml")),
    ]))
    .unwrap();
    let real = S3Store::from_conf(&s3.sdk_config());
    let store = ipsight_testkit::hooked::HookedStore {
        inner: &real,
        hook: Gate {
            gate: tokio::sync::Barrier::new(2),
            gated: Default::default(),
        },
    };
    let scorer = EmbeddedScorer::new(model());
    let key = |n: &str| {
        format!("AWSLogs/123456789012/CloudTrail/us-east-1/2026/02/01/123456789012_CloudTrail_us-east-1_20260201T1000Z_{n}.json.gz")
    };
    let (a, b) = (key("ra"), key("rb"));
    for k in [&a, &b] {
        s3.put(&data, k, cloudtrail(&[event("192.0.2.77", None)]))
            .await;
    }
    let (sink_a, sink_b) = (Recorder::default(), Recorder::default());
    let run = |k: &str| sqs(&[("m1", s3_notification(&data, k))]);
    let (ra, rb) = tokio::join!(
        handle_with(&cfg, &store, &scorer, &sink_a, None, run(&a)),
        handle_with(&cfg, &store, &scorer, &sink_b, None, run(&b)),
    );
    for r in [ra.unwrap(), rb.unwrap()] {
        assert_eq!(r["batchItemFailures"], json!([]), "{r}");
    }
    assert_eq!(
        store.hook.gated.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "both read the missing mark, then the loser read the winner's"
    );
    let got_a = std::mem::take(&mut *sink_a.0.lock().unwrap());
    let got_b = std::mem::take(&mut *sink_b.0.lock().unwrap());
    assert_eq!(got_a.len() + got_b.len(), 1, "exactly one alert published");
    let (winner, loser, alert) = if got_a.len() == 1 {
        (&a, &b, &got_a[0])
    } else {
        (&b, &a, &got_b[0])
    };
    let lost = lines(
        &s3.get(&data, &format!("scores/{loser}.jsonl"))
            .await
            .unwrap(),
    );
    assert_eq!(lost[0]["alert"], false);
    assert!(lost[0]["suppressed_reason"]
        .as_str()
        .unwrap()
        .contains(&format!(
            "(alert {}, from s3://{data}/{winner})",
            alert.alert_id
        )));
    assert!(s3
        .get(&data, &format!("alerts/{loser}.jsonl"))
        .await
        .is_none());
    // Redelivery of the winner: the same alert again.
    let sink = Recorder::default();
    handle_with(&cfg, &store, &scorer, &sink, None, run(winner))
        .await
        .unwrap();
    let again = std::mem::take(&mut *sink.0.lock().unwrap());
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].alert_id, alert.alert_id);
}
