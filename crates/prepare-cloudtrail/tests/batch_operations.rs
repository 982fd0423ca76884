//! S3 Batch Operations invocations (the documented schema 1.0 and 2.0 shapes, from the fixtures in
//! `events/prepare-cloudtrail/`) against a real S3-protocol server (moto_server). moto does not run
//! Batch Operations jobs, so the job side (manifest → invocations → completion report) is not
//! exercised here; the function's side of the contract is.
use std::io::Write;

use flate2::{write::GzEncoder, Compression};
use ipsight_aws::S3Store;
use ipsight_testkit::S3Server;
use prepare_cloudtrail::{handle, Config};
use serde_json::{json, Value};

const ACCT: &str = "111122223333";

fn key(name: &str) -> String {
    format!("AWSLogs/{ACCT}/CloudTrail/us-east-1/2026/01/05/{ACCT}_CloudTrail_us-east-1_20260105T0000Z_{name}.json.gz")
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The documented invocation of `schema`, pointed at our bucket and `keys` (URL-encoded, as S3
/// Batch Operations sends them).
fn invocation(schema: &str, bucket: &str, keys: &[String]) -> Value {
    let path = format!(
        "{}/../../events/prepare-cloudtrail/s3-batch-operations-{schema}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let template = v["tasks"][0].clone();
    v["tasks"] = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut t = template.clone();
            t["taskId"] = json!(format!("task-{i}"));
            t["s3Key"] = json!(k.replace('=', "%3D").replace(' ', "+"));
            if schema == "1.0" {
                t["s3BucketArn"] = json!(format!("arn:aws:s3:::{bucket}"));
            } else {
                t["s3Bucket"] = json!(bucket);
            }
            t
        })
        .collect();
    v
}

#[tokio::test]
async fn every_task_gets_its_result_in_both_schemas() {
    let s3 = S3Server::start().await;
    let (tb, db) = (s3.unique_bucket("trail"), s3.unique_bucket("data"));
    s3.create_bucket(&tb).await;
    s3.create_bucket(&db).await;
    let cfg = Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some(db.clone()),
        "INPUT_BUCKET" => Some(tb.clone()),
        "OUTPUTS" => Some("tuples,pairs".into()),
        _ => None,
    })
    .unwrap();
    let store = S3Store::from_conf(&s3.sdk_config());
    let good = key("a b=1");
    let record = r#"{"Records":[{"eventTime":"2026-01-05T00:01:00Z","userIdentity":{"type":"IAMUser","principalId":"AIDAALICE"},"sourceIPAddress":"198.51.100.7"}]}"#;
    s3.put(&tb, &good, gz(record.as_bytes())).await;
    let truncated = key("truncated");
    let whole = gz(record.as_bytes());
    s3.put(&tb, &truncated, whole[..whole.len() / 2].to_vec())
        .await;
    let digest = format!("AWSLogs/{ACCT}/CloudTrail-Digest/us-east-1/2026/01/05/{ACCT}_CloudTrail-Digest_us-east-1_t_us-east-1_20260105T0000Z.json.gz");
    let missing = key("missing");
    for schema in ["1.0", "2.0"] {
        let inv = invocation(
            schema,
            &tb,
            &[
                good.clone(),
                truncated.clone(),
                digest.clone(),
                missing.clone(),
            ],
        );
        let resp = handle(&cfg, &store, inv.clone()).await.unwrap();
        assert_eq!(resp["invocationSchemaVersion"], schema);
        assert_eq!(resp["invocationId"], inv["invocationId"]);
        assert_eq!(resp["treatMissingKeysAs"], "PermanentFailure");
        let r = resp["results"].as_array().unwrap();
        let codes: Vec<_> = r
            .iter()
            .map(|x| x["resultCode"].as_str().unwrap())
            .collect();
        assert_eq!(
            codes,
            [
                "Succeeded",
                "PermanentFailure",
                "Succeeded",
                "PermanentFailure"
            ],
            "{resp}"
        );
        assert_eq!(r[0]["taskId"], "task-0");
        let stem = good.trim_end_matches(".json.gz");
        assert_eq!(
            r[0]["resultString"],
            format!("written: s3://{db}/train/cloudtrail/{stem}.csv s3://{db}/pairs/objects/dt=2026-01-05/{stem}.csv")
        );
        assert!(
            r[1]["resultString"].as_str().unwrap().contains("truncated"),
            "{resp}"
        );
        assert_eq!(r[2]["resultString"], "skipped: digest");
        assert!(
            r[3]["resultString"]
                .as_str()
                .unwrap()
                .contains("no such object"),
            "{resp}"
        );
    }
    assert_eq!(
        s3.get(
            &db,
            &format!("train/cloudtrail/{}.csv", good.trim_end_matches(".json.gz"))
        )
        .await
        .unwrap(),
        b"AIDAALICE,198.51.100.7\n"
    );
}

#[tokio::test]
async fn an_unreachable_s3_is_a_temporary_failure() {
    let s3 = S3Server::start().await;
    let cfg = Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some("data".into()),
        _ => None,
    })
    .unwrap();
    // Nothing listens on port 9: every attempt fails to connect, as in an S3 outage.
    let conf = s3
        .sdk_config()
        .into_builder()
        .endpoint_url("http://127.0.0.1:9")
        .build();
    let store = S3Store::from_conf(&conf);
    let resp = handle(&cfg, &store, invocation("2.0", "trail", &[key("x")]))
        .await
        .unwrap();
    assert_eq!(
        resp["results"][0]["resultCode"], "TemporaryFailure",
        "{resp}"
    );
    assert!(!resp["results"][0]["resultString"]
        .as_str()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_unreadable_invocation_fails_the_invocation() {
    let s3 = S3Server::start().await;
    let cfg = Config::from_lookup(|k| (k == "OUTPUT_BUCKET").then(|| "data".into())).unwrap();
    let store = S3Store::from_conf(&s3.sdk_config());
    let e = handle(
        &cfg,
        &store,
        json!({"invocationSchemaVersion": "9.9", "invocationId": "i", "tasks": []}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("\"9.9\" is not supported"), "{e}");
}
