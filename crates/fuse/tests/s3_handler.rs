//! The scheduled handler against a real S3-protocol server (moto_server) through the real
//! aws-sdk-s3 client, and the same handler on a local directory store.
use fuse::{handle, Config, NoScorer, ObjectLister};
use ipsight_aws::S3Store;
use ipsight_formats::guardduty::{FindingPair, FindingRecord};
use ipsight_ports::{DirStore, ObjectRef, ObjectStore, Pair, Score, ScoreError, Scorer};
use ipsight_testkit::S3Server;
use serde_json::{json, Value};

fn rec(id: &str, entity: &str, ip: &str, severity: f64) -> FindingRecord {
    FindingRecord {
        finding_id: id.into(),
        finding_type: "UnauthorizedAccess:IAMUser/MaliciousIPCaller".into(),
        severity,
        account_id: "111122223333".into(),
        region: "eu-west-1".into(),
        created_at: Some("2026-01-19T10:00:00Z".into()),
        updated_at: Some("2026-01-19T10:00:00Z".into()),
        event_first_seen: Some("2026-01-19T09:00:00Z".into()),
        event_last_seen: Some("2026-01-19T10:00:00Z".into()),
        count: 1,
        sample: false,
        user_type: Some("IAMUser".into()),
        title: None,
        pairs: vec![FindingPair {
            entity: entity.into(),
            ip: ip.parse().unwrap(),
            action: "AWS_API_CALL".into(),
            country: None,
            network: None,
        }],
        ipv6: vec![],
        entity_kind: Default::default(),
    }
}

fn schedule(time: &str) -> Value {
    json!({"version":"0","id":"s","detail-type":"Scheduled Event","source":"aws.events","account":"111122223333",
        "time":time,"region":"eu-west-1","resources":["arn:aws:events:eu-west-1:111122223333:rule/fuse"],"detail":{}})
}

/// A scorer that makes everything on 203.0.113.0/24 maximally unusual and records what it was asked.
struct FakeScorer(std::sync::Mutex<Vec<Pair>>);

impl Scorer for FakeScorer {
    async fn score(&self, pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
        self.0.lock().unwrap().extend(pairs.iter().cloned());
        Ok(pairs
            .iter()
            .map(|p| {
                let odd =
                    matches!(p.ip, std::net::IpAddr::V4(v4) if v4.octets()[..3] == [203, 0, 113]);
                Score::embedding_only(
                    if odd { -8.0 } else { 5.0 },
                    Some(if odd { 99.99 } else { 3.0 }),
                    "test scorer",
                )
            })
            .collect())
    }
}

async fn seed(store: &impl ObjectStore, bucket: &str) {
    let put = |key: String, body: Vec<u8>| async move {
        store
            .put_bytes(
                &ObjectRef::new(bucket, key),
                body.into(),
                "application/json",
            )
            .await
            .unwrap()
    };
    for r in [
        rec("f1", "AIDAALICE", "198.51.100.7", 8.0),
        rec("f2", "AROABUILD", "203.0.113.9", 5.0),
        rec("f3", "AIDABOB", "192.0.2.10", 5.0),
        rec("f4", "AIDATRUST", "10.1.2.3", 8.0),
    ] {
        put(
            format!(
                "infer/guardduty/findings/111122223333/eu-west-1/{}.json",
                r.finding_id
            ),
            serde_json::to_vec(&r).unwrap(),
        )
        .await;
    }
    put(
        "infer/guardduty/findings/111122223333/eu-west-1/broken.json".into(),
        b"{\"finding_id\":".to_vec(),
    )
    .await;
    put(
        "scores/infer/guardduty/tuples/111122223333/eu-west-1/f1.jsonl".into(),
        b"{\"entity\":\"AIDAALICE\",\"ip\":\"198.51.100.7\",\"dot_product\":2.5,\"percentile\":70.0}\n{\"entity\":\"AIDAOTHER\",\"ip\":\"1.1.1.1\",\"dot_product\":1.0}\n".to_vec(),
    )
    .await;
    put(
        "lists/trusted.txt".into(),
        b"# corporate egress\n10.0.0.0/8\n".to_vec(),
    )
    .await;
    put("lists/threats.txt".into(), b"192.0.2.10\n".to_vec()).await;
}

fn config(bucket: &str) -> Config {
    Config::from_lookup(|k| match k {
        "DATA_BUCKET" => Some(bucket.to_owned()),
        "TRUSTED_IPS" => Some(format!("s3://{bucket}/lists/trusted.txt")),
        "THREAT_IPS" => Some(format!("s3://{bucket}/lists/threats.txt")),
        "LOOKBACK_DAYS" => Some("7".into()),
        _ => None,
    })
    .unwrap()
}

#[tokio::test]
async fn scheduled_report_on_s3_is_ranked_and_idempotent() {
    let s3 = S3Server::start().await;
    let bucket = s3.unique_bucket("data");
    s3.create_bucket(&bucket).await;
    let store = S3Store::from_conf(&s3.sdk_config());
    seed(&store, &bucket).await;
    let cfg = config(&bucket);
    let scorer = FakeScorer(Default::default());

    let resp = handle(
        &cfg,
        &store,
        Some(&scorer),
        schedule("2026-01-20T06:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(resp["bad_records"], 1, "{resp}");
    // Only the pairs without a score in scores/ went to the scorer, in a stable order.
    let asked: Vec<String> = scorer
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|p| format!("{},{}", p.entity, p.ip))
        .collect();
    assert_eq!(
        asked,
        [
            "AIDABOB,192.0.2.10",
            "AIDATRUST,10.1.2.3",
            "AROABUILD,203.0.113.9"
        ]
    );
    let json_key = "reports/2026-01-20/suspicious.json";
    let report: Value = serde_json::from_slice(&s3.get(&bucket, json_key).await.unwrap()).unwrap();
    let rows: Vec<(String, Value, String, String)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["entity"].as_str().unwrap().to_owned(),
                r["rank"].clone(),
                r["status"].as_str().unwrap().to_owned(),
                r["score_source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "AROABUILD".into(),
                json!(1),
                "active".into(),
                "scorer".into()
            ),
            (
                "AIDABOB".into(),
                json!(2),
                "escalated".into(),
                "scorer".into()
            ),
            (
                "AIDAALICE".into(),
                json!(3),
                "active".into(),
                "scores".into()
            ),
            (
                "AIDATRUST".into(),
                Value::Null,
                "suppressed".into(),
                "scorer".into()
            ),
        ]
    );
    // percentile 70 in the scores file (the model's convention) = 30% unusual.
    assert_eq!(report["rows"][2]["unusual_percentile"], 30.0);
    let csv1 = s3
        .get(&bucket, "reports/2026-01-20/suspicious.csv")
        .await
        .unwrap();
    let json1 = s3.get(&bucket, json_key).await.unwrap();

    // A retried invocation writes the same bytes.
    handle(
        &cfg,
        &store,
        Some(&scorer),
        schedule("2026-01-20T06:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(s3.get(&bucket, json_key).await.unwrap(), json1);
    assert_eq!(
        s3.get(&bucket, "reports/2026-01-20/suspicious.csv")
            .await
            .unwrap(),
        csv1
    );

    // Without a scorer the unscored rows say so; a later date outside the lookback has no rows.
    let resp = handle::<NoScorer>(&cfg, &store, None, json!({"date": "2026-01-20"}))
        .await
        .unwrap();
    assert_eq!(resp["summary"]["unscored"], 3, "{resp}");
    let resp = handle::<NoScorer>(&cfg, &store, None, schedule("2026-03-01T06:00:00Z"))
        .await
        .unwrap();
    assert_eq!(resp["summary"]["rows"], 0, "{resp}");
    let keys = s3.keys(&bucket).await;
    assert!(keys.contains(&"reports/2026-03-01/suspicious.csv".to_owned()));
}

#[tokio::test]
async fn dir_store_lists_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path());
    seed(&store, "data").await;
    let keys = store.list("data", "infer/guardduty/find").await.unwrap();
    assert_eq!(keys.len(), 5);
    assert!(keys
        .iter()
        .all(|k| k.starts_with("infer/guardduty/findings/")));
    assert!(store.list("data", "nothing/").await.unwrap().is_empty());
    let cfg = config("data");
    let resp = handle::<NoScorer>(&cfg, &store, None, json!({"date": "2026-01-19"}))
        .await
        .unwrap();
    assert_eq!(resp["summary"]["rows"], 4, "{resp}");
    assert!(dir
        .path()
        .join("data/reports/2026-01-19/suspicious.json")
        .exists());
}

#[tokio::test]
async fn bad_events_and_lists_fail_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path());
    seed(&store, "data").await;
    let cfg = config("data");
    let e = handle::<NoScorer>(&cfg, &store, None, json!({"hello": 1}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot date the report"), "{e}");
    store
        .put_bytes(
            &ObjectRef::new("data", "lists/threats.txt"),
            b"192.0.2.10\nnot-an-ip\n".to_vec().into(),
            "text/plain",
        )
        .await
        .unwrap();
    let e = handle::<NoScorer>(&cfg, &store, None, json!({"date": "2026-01-19"}))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("s3://data/lists/threats.txt line 2"),
        "{e}"
    );
}

/// Issue 11: rows carry the history and the why — from ipcheck's score lines, and for pairs scored
/// on the fly by the embedded model with its baseline sidecar beside it in S3 (built from the
/// configuration as the Lambda's main does) — and the fused risk uses the combined percentile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_carry_history_and_why_with_the_baseline_sidecar() {
    let (model, det) = ipsight_testkit::tiny_hybrid(7);
    let s3 = S3Server::start().await;
    let bucket = s3.unique_bucket("why");
    s3.create_bucket(&bucket).await;
    let mut m = Vec::new();
    model.write_to(&mut m).unwrap();
    s3.put(&bucket, "models/current/model.ipsm", m).await;
    let mut b = Vec::new();
    det.write_to(&mut b).unwrap();
    s3.put(&bucket, "models/current/model.ipsb", b).await;
    let store = S3Store::from_conf(&s3.sdk_config());
    for r in [
        rec("f1", "user3", "10.3.0.2", 5.0),
        rec("f2", "user3", "198.51.100.9", 5.0),
        rec("f3", "AIDANEWPRINCIPAL", "10.3.0.2", 5.0),
        rec("f4", "user5", "10.5.0.250", 5.0),
    ] {
        s3.put(
            &bucket,
            &format!("infer/guardduty/findings/{}.json", r.finding_id),
            serde_json::to_vec(&r).unwrap(),
        )
        .await;
    }
    // A score line as ipcheck writes it (with the why): read, not re-scored.
    let line = json!({"entity":"user5","ip":"10.5.0.250","dot_product":0.5,"unusual_percentile":42.0,
        "embedding_percentile":61.5,"history":"/24","explanation":"seen from this /24 (5 events); written by ipcheck",
        "nearest":[{"prefix":"10.5.0.0/24","events":5}],"alert":false,"count":1,"source":"s3://x/y","kind":"tuples"});
    s3.put(
        &bucket,
        "scores/infer/tuples/a.csv.jsonl",
        format!("{line}\n").into_bytes(),
    )
    .await;
    let model_uri = format!("s3://{bucket}/models/current/model.ipsm");
    let cfg = Config::from_lookup(|k| match k {
        "DATA_BUCKET" => Some(bucket.clone()),
        "MODEL_URI" => Some(model_uri.clone()),
        "LOOKBACK_DAYS" => Some("all".into()),
        _ => None,
    })
    .unwrap();
    let scorer = cfg
        .scorer
        .as_ref()
        .unwrap()
        .build(&s3.sdk_config())
        .await
        .unwrap();
    scorer.check_entity(cfg.entity).unwrap();
    let resp = handle(
        &cfg,
        &store,
        Some(&scorer),
        schedule("2026-01-20T06:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(resp["scored_on_the_fly"], 3, "{resp}");
    let report: Value = serde_json::from_slice(
        &s3.get(&bucket, "reports/2026-01-20/suspicious.json")
            .await
            .unwrap(),
    )
    .unwrap();
    let rows = report["rows"].as_array().unwrap();
    let row = |e: &str, ip: &str| {
        rows.iter()
            .find(|r| r["entity"] == e && r["ip"] == ip)
            .unwrap_or_else(|| panic!("no row {e},{ip}"))
            .clone()
    };
    for (e, ip, history) in [
        ("user3", "10.3.0.2", "ip"),
        ("user3", "198.51.100.9", "none"),
        ("AIDANEWPRINCIPAL", "10.3.0.2", "new_principal"),
        ("user5", "10.5.0.250", "/24"),
    ] {
        let r = row(e, ip);
        assert_eq!(r["history"], history, "{r}");
        let why = r["score_explanation"].as_str().unwrap();
        assert!(r["explanation"].as_str().unwrap().contains(why), "{r}");
        assert!(!r["embedding_percentile"].is_null(), "{r}");
        if r["score_source"] == "scorer" {
            // On the fly: exactly what the detector says, and the risk built on its combined percentile.
            let ipa: std::net::IpAddr = ip.parse().unwrap();
            let want = det.report(
                e,
                ipa,
                model.score_ip(e, ipa).unwrap(),
                ipsight_model::NewPrincipals::Alert,
            );
            assert_eq!(why, want.explanation);
            let u = r["unusual_percentile"].as_f64().unwrap();
            assert!((u - want.unusual_percentile).abs() < 1e-3, "{r}");
            assert!(
                (r["risk"].as_f64().unwrap() - fuse::risk(5.0, Some(u / 100.0), false)).abs()
                    < 1e-3
            );
        }
    }
    let read = row("user5", "10.5.0.250");
    assert_eq!(read["score_source"], "scores");
    assert_eq!(read["unusual_percentile"], 42.0);
    assert_eq!(read["embedding_percentile"], 61.5);
    assert_eq!(read["nearest"][0]["prefix"], "10.5.0.0/24");
    assert!(!row("user3", "198.51.100.9")["nearest"]
        .as_array()
        .unwrap()
        .is_empty());
    // Same severity everywhere: the new principal (alerting by default) and the stranger address
    // rank above the principal's own address.
    let rank = |e: &str, ip: &str| row(e, ip)["rank"].as_u64().unwrap();
    assert!(rank("AIDANEWPRINCIPAL", "10.3.0.2") < rank("user3", "10.3.0.2"));
    assert!(rank("user3", "198.51.100.9") < rank("user3", "10.3.0.2"));
    // The CSV has the same fields.
    let csv = String::from_utf8(
        s3.get(&bucket, "reports/2026-01-20/suspicious.csv")
            .await
            .unwrap(),
    )
    .unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for f in [
        "history",
        "embedding_percentile",
        "nearest",
        "score_explanation",
    ] {
        assert!(header.contains(&f), "{f} in {header:?}");
    }
    assert!(csv.contains(",new_principal,"), "{csv}");
    assert!(csv.contains("10.5.0.0/24 (5 events)"), "{csv}");
}
