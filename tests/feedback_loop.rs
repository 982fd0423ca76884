//! The analyst feedback loop, end to end on the synthetic world with a real S3 server:
//! a normal-but-new pair (a user's new home address) alerts → an analyst labels it a false
//! positive (one object under `labels/`) → ipcheck stops alerting on it at once and fuse lists it
//! as suppressed → retraining with the label teaches the model the pair, which then scores normal
//! on its own (no label needed) → and promotion refuses a worse model.
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipsight_aws::{EmbeddedScorer, ObjectRef, ObjectStore, S3Store};
use ipsight_formats::guardduty::{FindingPair, FindingRecord};
use ipsight_formats::labels::{object_key, Label, LabelSet, Verdict};
use ipsight_model::{Hyperparameters, Model};
use ipsight_retrain::{retrain_files, RetrainError, RetrainFiles, RetrainOptions};
use ipsight_synth::{SynthConfig, World};
use ipsight_testkit::S3Server;
use serde_json::{json, Value};

const ALERT_MIN_PERCENTILE: f64 = 99.0;

fn csv(pairs: &[(String, Ipv4Addr)]) -> String {
    pairs.iter().map(|(e, ip)| format!("{e},{ip}\n")).collect()
}

fn options() -> RetrainOptions {
    let mut hp = Hyperparameters::new(4000, 32);
    hp.epochs = 6;
    hp.mini_batch_size = 1000;
    hp.learning_rate = 0.01;
    hp.random_negative_sampling_rate = 3;
    // Labels decided on 2026-01-20 apply.
    let mut o = RetrainOptions::new(hp, 1_768_953_600);
    o.train.threads = Some(1);
    o
}

fn ipcheck_config(bucket: &str, with_labels: bool) -> ipcheck::Config {
    let pct = ALERT_MIN_PERCENTILE.to_string();
    ipcheck::Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some(bucket.to_owned()),
        "ALERT_MIN_PERCENTILE" => Some(pct.clone()),
        "LABELS_PREFIX" if with_labels => Some("labels/".to_owned()),
        _ => None,
    })
    .unwrap()
}

fn s3_event(bucket: &str, key: &str) -> Value {
    json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
        "s3":{"bucket":{"name":bucket},"object":{"key":key}}}]})
}

/// The score line of `(entity, ip)` in `scores/<key>.jsonl`.
async fn score_line(s3: &S3Server, bucket: &str, key: &str, entity: &str, ip: Ipv4Addr) -> Value {
    let body = s3
        .get(bucket, &format!("scores/{key}.jsonl"))
        .await
        .expect("scores written");
    String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["entity"] == entity && v["ip"] == ip.to_string())
        .expect("pair scored")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn false_positive_label_suppresses_then_retraining_learns_it() {
    let world = World::new(SynthConfig::new(5, 30, 14));
    let train: Vec<_> = world.normal_pairs(0..12).collect();
    let holdout: Vec<_> = world.normal_pairs(12..14).collect();
    // A known principal at an address in a /24 it has never used: its new home ISP.
    let (entity, new_home) = world.anomalous_pairs(1, 3).remove(0);
    assert!(!world.is_usual(&entity, new_home));

    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("train.csv"), csv(&train)).unwrap();
    std::fs::write(p("holdout.csv"), csv(&holdout)).unwrap();
    let serving = p("models/current/model.ipsm");
    let opts = options();
    let no_labels = LabelSet::default();

    // The first model: nothing to compare with, promoted.
    let first = retrain_files(
        &RetrainFiles {
            train: &p("train.csv"),
            holdout: &p("holdout.csv"),
            labels: &no_labels,
            current: &serving,
            out: &p("models/candidates/m1.ipsm"),
        },
        &opts,
        &mut |_| {},
    )
    .unwrap();
    assert!(first.promote && first.candidate.auc > 0.9, "{first:#?}");

    let s3 = S3Server::start().await;
    let bucket = s3.unique_bucket("ipsight-feedback");
    s3.create_bucket(&bucket).await;
    let store = S3Store::from_conf(&s3.sdk_config());
    // Today's activity: the new home pair among ordinary recent pairs.
    let key = "infer/tuples/day14.csv";
    let mut today: Vec<_> = holdout.iter().take(200).cloned().collect();
    today.push((entity.clone(), new_home));
    s3.put(&bucket, key, csv(&today).into_bytes()).await;

    // 1. It alerts.
    let scorer = EmbeddedScorer::new(Arc::new(Model::load(&serving).unwrap()));
    let cfg = ipcheck_config(&bucket, true);
    let out = ipcheck::handle(
        &cfg,
        &store,
        &scorer,
        &ipcheck::NoAlerts,
        s3_event(&bucket, key),
    )
    .await
    .unwrap();
    assert!(out["alerts"].as_u64().unwrap() >= 1, "{out}");
    let line = score_line(&s3, &bucket, key, &entity, new_home).await;
    assert_eq!(line["alert"], true, "{line}");
    let before_pct = line["unusual_percentile"].as_f64().unwrap();

    // 2. The analyst labels it a false positive: one object under labels/.
    let label = Label {
        entity: entity.clone(),
        ip: Some(new_home),
        cidr: None,
        verdict: Verdict::FalsePositive,
        who: "alice@example.com".into(),
        when: "2026-01-19T10:00:00Z".into(),
        why: "new home ISP, confirmed with the user".into(),
        expires: None,
    }
    .validated()
    .unwrap();
    store
        .put_bytes(
            &ObjectRef::new(&bucket, object_key("labels/", &label)),
            format!("{}\n", label.to_line()).into(),
            "application/x-ndjson",
        )
        .await
        .unwrap();

    // 3. ipcheck honours it at once: same score, no alert, the decision recorded.
    ipcheck::handle(
        &cfg,
        &store,
        &scorer,
        &ipcheck::NoAlerts,
        s3_event(&bucket, key),
    )
    .await
    .unwrap();
    let line = score_line(&s3, &bucket, key, &entity, new_home).await;
    assert_eq!(line["alert"], false, "{line}");
    assert_eq!(line["label"], "false_positive");
    let alerts = s3
        .get(&bucket, &format!("alerts/{key}.jsonl"))
        .await
        .map(|b| String::from_utf8(b).unwrap())
        .unwrap_or_default();
    assert!(
        !alerts.contains(&format!("\"ip\":\"{new_home}\"")),
        "{alerts}"
    );

    // 4. The fuse report lists a GuardDuty finding on the pair as suppressed, saying why.
    let record = FindingRecord {
        finding_id: "feedbackfinding1".into(),
        finding_type: "UnauthorizedAccess:IAMUser/ConsoleLoginSuccess.B".into(),
        severity: 5.0,
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
        created_at: Some("2026-01-19T08:00:00Z".into()),
        updated_at: Some("2026-01-19T08:00:00Z".into()),
        event_first_seen: Some("2026-01-19T07:55:00Z".into()),
        event_last_seen: Some("2026-01-19T08:00:00Z".into()),
        count: 1,
        sample: false,
        user_type: Some("IAMUser".into()),
        title: None,
        pairs: vec![FindingPair {
            entity: entity.clone(),
            ip: new_home,
            action: "AWS_API_CALL".into(),
            country: None,
        }],
        ipv6: vec![],
    };
    s3.put(
        &bucket,
        "infer/guardduty/findings/111122223333/us-east-1/feedbackfinding1.json",
        serde_json::to_vec(&record).unwrap(),
    )
    .await;
    let fcfg = fuse::Config::from_lookup(|k| match k {
        "DATA_BUCKET" => Some(bucket.clone()),
        "LOOKBACK_DAYS" => Some("all".into()),
        "LABELS_PREFIX" => Some("labels/".into()),
        _ => None,
    })
    .unwrap();
    fuse::handle(&fcfg, &store, Some(&scorer), json!({"date": "2026-01-20"}))
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(
        &s3.get(&bucket, "reports/2026-01-20/suspicious.json")
            .await
            .unwrap(),
    )
    .unwrap();
    let row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["entity"] == entity.as_str() && r["ip"] == new_home.to_string())
        .expect("row for the pair");
    assert_eq!(row["status"], "suppressed", "{row:#}");
    assert_eq!(row["label"], "false_positive");
    assert!(row["suppressed_reason"]
        .as_str()
        .unwrap()
        .contains("alice@example.com"));
    assert!(row["rank"].is_null());

    // 5. Retrain with the label: promoted, and the model itself now finds the pair normal.
    let labels = LabelSet::new([label]);
    let second = retrain_files(
        &RetrainFiles {
            train: &p("train.csv"),
            holdout: &p("holdout.csv"),
            labels: &labels,
            current: &serving,
            out: &p("models/candidates/m2.ipsm"),
        },
        &opts,
        &mut |_| {},
    )
    .unwrap();
    assert!(second.promote, "{second:#?}");
    assert_eq!(second.false_positive_pairs, 1);
    assert_eq!(
        second.candidate.false_positives_still_flagged, 0,
        "{second:#?}"
    );
    assert!(p("models/previous/model.ipsm").exists());
    assert!(p("models/candidates/m2.ipsm.metrics.json").exists());

    let scorer = EmbeddedScorer::new(Arc::new(Model::load(&serving).unwrap()));
    // Without any label configured: the score alone no longer alerts.
    ipcheck::handle(
        &ipcheck_config(&bucket, false),
        &store,
        &scorer,
        &ipcheck::NoAlerts,
        s3_event(&bucket, key),
    )
    .await
    .unwrap();
    let line = score_line(&s3, &bucket, key, &entity, new_home).await;
    let after_pct = line["unusual_percentile"].as_f64().unwrap();
    assert_eq!(line["alert"], false, "{line}");
    assert!(
        after_pct < ALERT_MIN_PERCENTILE && after_pct < before_pct,
        "unusual percentile {before_pct} → {after_pct}"
    );
    assert!(line.get("label").is_none());
    eprintln!("new home pair: unusual percentile {before_pct:.2} → {after_pct:.2}");

    // 6. A worse model (one epoch on random pairs) is refused; the serving model is untouched.
    let served = std::fs::read(&serving).unwrap();
    let mut junk = String::new();
    let mut x: u32 = 12345;
    for i in 0..train.len() {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        junk.push_str(&format!("junk{},{}\n", i % 97, Ipv4Addr::from(x)));
    }
    std::fs::write(p("junk.csv"), junk).unwrap();
    let mut bad = options();
    bad.hyper.epochs = 1;
    let e = retrain_files(
        &RetrainFiles {
            train: &p("junk.csv"),
            holdout: &p("holdout.csv"),
            labels: &labels,
            current: &serving,
            out: &p("models/candidates/bad.ipsm"),
        },
        &bad,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, RetrainError::Refused { .. }), "{e}");
    eprintln!("{e}");
    assert_eq!(std::fs::read(&serving).unwrap(), served);
    let m: Value = serde_json::from_slice(
        &std::fs::read(p("models/candidates/bad.ipsm.metrics.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["promote"], false);
    assert!(m["candidate"]["auc"].as_f64().unwrap() < m["current"]["auc"].as_f64().unwrap());
}
