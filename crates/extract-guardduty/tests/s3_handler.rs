//! The handler against a real S3-protocol server (moto_server) through the real aws-sdk-s3 client.
use std::io::Write;

use extract_guardduty::{handle, Config};
use flate2::{write::GzEncoder, Compression};
use ipsight_aws::S3Store;
use ipsight_formats::guardduty::FindingRecord;
use ipsight_testkit::S3Server;
use serde_json::{json, Value};

const ACCT: &str = "111122223333";

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn real(name: &str) -> Value {
    let p = format!(
        "{}/../../../shared/data/real/guardduty/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn finding(id: &str, user_type: &str, principal: &str, ip: &str, count: u64) -> Value {
    json!({"schemaVersion":"2.0","accountId":ACCT,"region":"eu-west-1","partition":"aws","id":id,
        "type":"UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS","severity":8,
        "createdAt":"2026-01-05T10:00:00.000Z","updatedAt":format!("2026-01-05T1{}:00:00.000Z", count.min(9)),
        "resource":{"resourceType":"AccessKey","accessKeyDetails":{"accessKeyId":"ASIAEXAMPLEEXAMPLE","principalId":principal,"userType":user_type}},
        "service":{"count":count,"eventFirstSeen":"2026-01-05T09:00:00Z","eventLastSeen":"2026-01-05T10:00:00Z",
            "action":{"actionType":"AWS_API_CALL","awsApiCallAction":{"remoteIpDetails":{"ipAddressV4":ip}}}}})
}

fn event(detail: Value) -> Value {
    json!({"version":"0","id":"ev-1","detail-type":"GuardDuty Finding","source":"aws.guardduty","account":ACCT,
        "time":"2026-01-05T10:00:00Z","region":"eu-west-1","resources":[],"detail":detail})
}

fn export_key(name: &str) -> String {
    format!("AWSLogs/{ACCT}/GuardDuty/eu-west-1/2026/01/05/{name}.jsonl.gz")
}

fn s3_record(bucket: &str, key: &str) -> Value {
    json!({"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"eu-west-1","eventName":"ObjectCreated:Put",
           "s3":{"s3SchemaVersion":"1.0","bucket":{"name":bucket},"object":{"key":key.replace(' ', "+"),"size":100}}})
}

fn sqs(messages: &[(&str, String)]) -> Value {
    json!({"Records": messages.iter().map(|(id, body)| json!({"messageId": id, "receiptHandle": "rh", "body": body,
        "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-west-1:111122223333:q", "awsRegion": "eu-west-1"})).collect::<Vec<_>>()})
}

async fn setup() -> (S3Server, S3Store, Config, String, String) {
    let s3 = S3Server::start().await;
    let export_bucket = s3.unique_bucket("gdexport");
    let data_bucket = s3.unique_bucket("data");
    s3.create_bucket(&export_bucket).await;
    s3.create_bucket(&data_bucket).await;
    let cfg = Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some(data_bucket.clone()),
        "INPUT_BUCKET" => Some(export_bucket.clone()),
        "INPUT_PREFIX" => Some("AWSLogs/".into()),
        _ => None,
    })
    .unwrap();
    let store = S3Store::from_conf(&s3.sdk_config());
    (s3, store, cfg, export_bucket, data_bucket)
}

async fn record(s3: &S3Server, bucket: &str, key: &str) -> FindingRecord {
    serde_json::from_slice(&s3.get(bucket, key).await.unwrap()).unwrap()
}

#[tokio::test]
async fn eventbridge_finding_is_written_and_updates_overwrite() {
    let (s3, store, cfg, _eb, db) = setup().await;
    // A real event (cloud-custodian fixture): IAM user, Tor caller, sample.
    let resp = handle(&cfg, &store, real("cloud-custodian__iam-duty-event.json"))
        .await
        .unwrap();
    let key =
        "infer/guardduty/findings/883606788610/us-east-1/36b01b60fc22bb4edb19d62d9899e953.json";
    assert_eq!(resp["written"], json!([key]), "{resp}");
    let rec = record(&s3, &db, key).await;
    assert_eq!(rec.pairs[0].entity, "GeneratedFindingPrincipalId");
    assert!(rec.sample);
    assert_eq!(
        s3.get(
            &db,
            "infer/guardduty/tuples/883606788610/us-east-1/36b01b60fc22bb4edb19d62d9899e953.csv"
        )
        .await
        .unwrap(),
        b"GeneratedFindingPrincipalId,198.51.100.0\n"
    );
    let raw = String::from_utf8(s3.get(&db, key).await.unwrap()).unwrap();
    assert!(!raw.contains("GeneratedFindingAccessKeyId"), "{raw}");

    // An assumed-role finding, then its update (count 5), then a stale redelivery (count 2).
    let id = "a1b2c3";
    let k = format!("infer/guardduty/findings/{ACCT}/eu-west-1/{id}.json");
    let send = |count| {
        event(finding(
            id,
            "AssumedRole",
            "AROABUILD:i-0abc",
            "203.0.113.9",
            count,
        ))
    };
    handle(&cfg, &store, send(2)).await.unwrap();
    assert_eq!(record(&s3, &db, &k).await.count, 2);
    let resp = handle(&cfg, &store, send(5)).await.unwrap();
    assert_eq!(resp["written"], json!([k]));
    assert_eq!(record(&s3, &db, &k).await.count, 5);
    let resp = handle(&cfg, &store, send(2)).await.unwrap();
    assert_eq!(resp["stale"], 1, "{resp}");
    let rec = record(&s3, &db, &k).await;
    assert_eq!(rec.count, 5);
    assert_eq!(rec.pairs[0].entity, "AROABUILD");
    // One record and one tuple file per finding: updates never duplicate.
    assert_eq!(
        s3.keys(&db).await,
        vec![
            "infer/guardduty/findings/111122223333/eu-west-1/a1b2c3.json",
            key,
            "infer/guardduty/tuples/111122223333/eu-west-1/a1b2c3.csv",
            "infer/guardduty/tuples/883606788610/us-east-1/36b01b60fc22bb4edb19d62d9899e953.csv",
        ]
    );

    // A finding without a principal is counted, not an error, and writes nothing.
    let resp = handle(&cfg, &store, real("cloud-custodian__ec2-duty-event.json"))
        .await
        .unwrap();
    assert_eq!(resp["stats"]["no_principal"], 1);
    assert_eq!(resp["written"], json!([]));
}

#[tokio::test]
async fn s3_export_objects_via_notification() {
    let (s3, store, cfg, eb, db) = setup().await;
    let good = export_key("0b4f 9c1e");
    let lines = [
        finding("f1", "IAMUser", "AIDAALICE", "198.51.100.7", 1),
        finding("f2", "FederatedUser", "111122223333:carol", "192.0.2.44", 1),
        // The same finding again, updated later in the same export: one record, the newer one.
        finding("f1", "IAMUser", "AIDAALICE", "198.51.100.7", 3),
        real("aws-samples-gd-automated-response__guardduty_ec2_event.json"),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    s3.put(&eb, &good, gz(body.as_bytes())).await;
    let bad = export_key("broken");
    s3.put(
        &eb,
        &bad,
        gz(format!("{}\n{{\"id\": oops\n", lines[0]).as_bytes()),
    )
    .await;
    let not_export = format!("AWSLogs/{ACCT}/GuardDuty/eu-west-1/2026/01/05/readme.txt");

    let ev = json!({"Records": [s3_record(&eb, &good), s3_record(&eb, &bad), s3_record(&eb, &not_export)]});
    let err = handle(&cfg, &store, ev).await.unwrap_err().to_string();
    assert!(err.contains("1 of 3 objects failed"), "{err}");
    assert!(err.contains(&bad) && err.contains("line 2"), "{err}");
    let mut keys = s3.keys(&db).await;
    keys.sort();
    assert_eq!(
        keys,
        vec![
            format!("infer/guardduty/findings/{ACCT}/eu-west-1/f1.json"),
            format!("infer/guardduty/findings/{ACCT}/eu-west-1/f2.json"),
            format!("infer/guardduty/tuples/{ACCT}/eu-west-1/f1.csv"),
            format!("infer/guardduty/tuples/{ACCT}/eu-west-1/f2.csv"),
        ]
    );
    let f1 = record(&s3, &db, &keys[0]).await;
    assert_eq!(f1.count, 3);
    assert_eq!(
        s3.get(&db, &keys[3]).await.unwrap(),
        b"111122223333:carol,192.0.2.44\n"
    );
}

#[tokio::test]
async fn sqs_batch_reports_exactly_the_failed_messages() {
    let (s3, store, cfg, eb, db) = setup().await;
    let good = export_key("good");
    s3.put(
        &eb,
        &good,
        gz(format!(
            "{}\n",
            finding("g1", "Root", "111122223333", "192.0.2.1", 1)
        )
        .as_bytes()),
    )
    .await;
    let corrupt = export_key("corrupt");
    s3.put(&eb, &corrupt, b"\x1f\x8bnot gzip at all".to_vec())
        .await;
    let notification = |k: &str| json!({"Records": [s3_record(&eb, k)]}).to_string();
    let ev = sqs(&[
        ("m-good", notification(&good)),
        ("m-garbage", "{not json".to_owned()),
        (
            "m-test",
            json!({"Service":"Amazon S3","Event":"s3:TestEvent"}).to_string(),
        ),
        ("m-corrupt", notification(&corrupt)),
        // EventBridge → SQS: the body is the GuardDuty event itself.
        (
            "m-event",
            event(finding("e1", "IAMUser", "AIDABOB", "198.51.100.20", 1)).to_string(),
        ),
        ("m-missing", notification(&export_key("gone"))),
        (
            "m-schedule",
            json!({"source":"aws.events","detail-type":"Scheduled Event","detail":{}}).to_string(),
        ),
    ]);
    let resp = handle(&cfg, &store, ev).await.unwrap();
    let failed: Vec<&str> = resp["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        vec!["m-garbage", "m-corrupt", "m-missing", "m-schedule"]
    );
    assert_eq!(
        s3.keys(&db).await,
        vec![
            format!("infer/guardduty/findings/{ACCT}/eu-west-1/e1.json"),
            format!("infer/guardduty/findings/{ACCT}/eu-west-1/g1.json"),
            format!("infer/guardduty/tuples/{ACCT}/eu-west-1/e1.csv"),
            format!("infer/guardduty/tuples/{ACCT}/eu-west-1/g1.csv"),
        ]
    );
    assert_eq!(
        s3.get(
            &db,
            &format!("infer/guardduty/tuples/{ACCT}/eu-west-1/g1.csv")
        )
        .await
        .unwrap(),
        b"111122223333,192.0.2.1\n"
    );
}

#[tokio::test]
async fn own_output_and_unsupported_events() {
    let (_s3, store, cfg, _eb, db) = setup().await;
    let ev = json!({"Records": [s3_record(&db, "infer/guardduty/findings/1/r/x.jsonl.gz")]});
    let resp = handle(&cfg, &store, ev).await.unwrap();
    assert_eq!(resp["skipped"][0]["reason"], "own_output");
    let err = handle(
        &cfg,
        &store,
        json!({"source":"aws.events","detail-type":"Scheduled Event","detail":{}}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("unsupported event"), "{err}");
}
