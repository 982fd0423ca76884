//! Pair files from the preparer (`OUTPUTS`), against a real S3-protocol server (moto_server).
use std::io::Write;

use flate2::{write::GzEncoder, Compression};
use ipsight_aws::S3Store;
use ipsight_testkit::S3Server;
use prepare_cloudtrail::{handle, Config};
use serde_json::{json, Value};

const ACCT: &str = "111122223333";

fn log_key(name: &str) -> String {
    format!("AWSLogs/{ACCT}/CloudTrail/us-east-1/2026/01/05/{ACCT}_CloudTrail_us-east-1_20260104T2355Z_{name}.json.gz")
}

fn trail(records: &[(&str, &str, &str)]) -> Vec<u8> {
    let recs: Vec<Value> = records
        .iter()
        .map(|(time, p, ip)| json!({"eventVersion":"1.08","eventTime":time,"userIdentity":{"type":"AssumedRole","principalId":p,"accountId":ACCT},"eventSource":"s3.amazonaws.com","sourceIPAddress":ip}))
        .collect();
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(json!({ "Records": recs }).to_string().as_bytes())
        .unwrap();
    e.finish().unwrap()
}

fn event(bucket: &str, key: &str) -> Value {
    json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 100}}}]})
}

async fn run(outputs: &str) -> (S3Server, String, Value) {
    let s3 = S3Server::start().await;
    let (tb, db) = (s3.unique_bucket("trail"), s3.unique_bucket("data"));
    s3.create_bucket(&tb).await;
    s3.create_bucket(&db).await;
    let cfg = Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some(db.clone()),
        "INPUT_BUCKET" => Some(tb.clone()),
        "OUTPUTS" => Some(outputs.to_owned()),
        _ => None,
    })
    .unwrap();
    let store = S3Store::from_conf(&s3.sdk_config());
    s3.put(
        &tb,
        &log_key("a"),
        trail(&[
            ("2026-01-04T23:59:58Z", "AROABUILD:i-0abc", "203.0.113.9"),
            ("2026-01-04T23:55:01Z", "AROABUILD:i-0def", "203.0.113.9"),
            ("2026-01-05T00:00:03Z", "AROABUILD:i-0abc", "203.0.113.9"),
            ("2026-01-04T23:57:00Z", "AIDAALICE", "198.51.100.7"),
            ("2026-01-04T23:58:00Z", "AIDAALICE", "AWS Internal"),
        ]),
    )
    .await;
    let resp = handle(&cfg, &store, event(&tb, &log_key("a")))
        .await
        .unwrap();
    (s3, db, resp)
}

const PAIRS: &str = "entity,ip,events,first_seen,last_seen\n\
    AIDAALICE,198.51.100.7,1,2026-01-04T23:57:00Z,2026-01-04T23:57:00Z\n\
    AROABUILD,203.0.113.9,3,2026-01-04T23:55:01Z,2026-01-05T00:00:03Z\n";

#[tokio::test]
async fn tuples_and_a_pair_file_dated_by_delivery_day() {
    let (s3, db, resp) = run("tuples,pairs").await;
    let stem = log_key("a").trim_end_matches(".json.gz").to_owned();
    let tuples = format!("train/cloudtrail/{stem}.csv");
    let pairs = format!("pairs/objects/dt=2026-01-04/{stem}.csv");
    assert_eq!(
        resp["written"],
        json!([format!("s3://{db}/{tuples}"), format!("s3://{db}/{pairs}")]),
        "{resp}"
    );
    let pair_file = String::from_utf8(s3.get(&db, &pairs).await.unwrap()).unwrap();
    assert_eq!(pair_file, PAIRS);
    let tuple_file = String::from_utf8(s3.get(&db, &tuples).await.unwrap()).unwrap();
    assert_eq!(tuple_file.lines().count(), 4);
    assert_eq!(resp["stats"]["aws_internal"], 1);
}

#[tokio::test]
async fn pairs_instead_of_tuples() {
    let (s3, db, resp) = run("pairs").await;
    assert_eq!(resp["written"].as_array().unwrap().len(), 1, "{resp}");
    let keys = s3.keys(&db).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("pairs/objects/dt=2026-01-04/AWSLogs/"));
    assert_eq!(
        String::from_utf8(s3.get(&db, &keys[0]).await.unwrap()).unwrap(),
        PAIRS
    );
}

#[test]
fn outputs_and_the_pairs_prefix_are_checked_at_cold_start() {
    let e = Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some("d".into()),
        "OUTPUTS" => Some("tuples,csv".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(e.to_string().contains("OUTPUTS"), "{e}");
    // Pair files written where the trigger listens would re-trigger the function.
    let e = Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some("b".into()),
        "INPUT_BUCKET" => Some("b".into()),
        "INPUT_PREFIX" => Some("pairs/".into()),
        "OUTPUTS" => Some("tuples,pairs".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(e.to_string().contains("infinite loop"), "{e}");
}

/// `IPV6=keep` (the template's `Ipv6Sources`): IPv6 callers become tuples and pair-file lines in
/// canonical RFC 5952 text beside the IPv4 ones, as `prepare cloudtrail --ipv6`; the mapped form is
/// the IPv4 host; a zone id is invalid and counted. `set_aside` counts them instead.
#[tokio::test]
async fn ipv6_setting_keeps_ipv6_tuples_and_pairs() {
    let s3 = S3Server::start().await;
    let (tb, db) = (s3.unique_bucket("trail"), s3.unique_bucket("data"));
    s3.create_bucket(&tb).await;
    s3.create_bucket(&db).await;
    let config = |ipv6: &'static str| {
        let (tb, db) = (tb.clone(), db.clone());
        Config::from_lookup(move |k| match k {
            "OUTPUT_BUCKET" => Some(db.clone()),
            "INPUT_BUCKET" => Some(tb.clone()),
            "OUTPUTS" => Some("tuples,pairs".into()),
            "IPV6" => Some(ipv6.into()),
            _ => None,
        })
        .unwrap()
    };
    let store = S3Store::from_conf(&s3.sdk_config());
    s3.put(
        &tb,
        &log_key("v6"),
        trail(&[
            (
                "2026-01-04T23:56:00Z",
                "AIDAALICE",
                "2A02:1234:0:AB00:0:0:0:7",
            ),
            ("2026-01-04T23:57:00Z", "AIDAALICE", "2a02:1234:0:ab00::7"),
            ("2026-01-04T23:58:00Z", "AIDAALICE", "198.51.100.7"),
            (
                "2026-01-04T23:59:00Z",
                "AROABUILD:i-0abc",
                "::ffff:203.0.113.9",
            ),
            ("2026-01-04T23:59:30Z", "AROABUILD:i-0abc", "fe80::1%eth0"),
        ]),
    )
    .await;
    let tuples_key = format!(
        "train/cloudtrail/{}",
        log_key("v6").replace(".json.gz", ".csv")
    );
    let pairs_key = format!(
        "pairs/objects/dt=2026-01-04/{}",
        log_key("v6").replace(".json.gz", ".csv")
    );

    let resp = handle(&config("keep"), &store, event(&tb, &log_key("v6")))
        .await
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    assert_eq!(
        text(s3.get(&db, &tuples_key).await.unwrap()),
        "AIDAALICE,2a02:1234:0:ab00::7\nAIDAALICE,2a02:1234:0:ab00::7\nAIDAALICE,198.51.100.7\nAROABUILD,203.0.113.9\n"
    );
    assert_eq!(
        text(s3.get(&db, &pairs_key).await.unwrap()),
        "entity,ip,events,first_seen,last_seen\n\
         AIDAALICE,198.51.100.7,1,2026-01-04T23:58:00Z,2026-01-04T23:58:00Z\n\
         AIDAALICE,2a02:1234:0:ab00::7,2,2026-01-04T23:56:00Z,2026-01-04T23:57:00Z\n\
         AROABUILD,203.0.113.9,1,2026-01-04T23:59:00Z,2026-01-04T23:59:00Z\n"
    );
    let st = &resp["stats"];
    assert_eq!(
        (
            st["records"].as_u64(),
            st["tuples"].as_u64(),
            st["ipv6_tuples"].as_u64(),
            st["ipv6"].as_u64(),
            st["invalid_ip"].as_u64()
        ),
        (Some(5), Some(4), Some(2), Some(0), Some(1)),
        "{st}"
    );

    // set_aside: IPv6 counted, no tuple — nothing silently lost either way.
    let resp = handle(&config("set_aside"), &store, event(&tb, &log_key("v6")))
        .await
        .unwrap();
    assert_eq!(
        text(s3.get(&db, &tuples_key).await.unwrap()),
        "AIDAALICE,198.51.100.7\nAROABUILD,203.0.113.9\n"
    );
    let st = &resp["stats"];
    assert_eq!(
        (
            st["tuples"].as_u64(),
            st["ipv6"].as_u64(),
            st["ipv6_tuples"].as_u64()
        ),
        (Some(2), Some(2), Some(0)),
        "{st}"
    );
}
