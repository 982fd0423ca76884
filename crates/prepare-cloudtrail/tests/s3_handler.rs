//! The handler against a real S3-protocol server (moto_server) through the real aws-sdk-s3 client.

use ipsight_aws::S3Store;
use ipsight_testkit::events::{gz, s3_record, sqs};
use ipsight_testkit::S3Server;
use prepare_cloudtrail::{handle, Config};
use serde_json::{json, Value};

const ACCT: &str = "111122223333";

fn log_key(name: &str) -> String {
    format!("AWSLogs/{ACCT}/CloudTrail/us-east-1/2026/01/05/{ACCT}_CloudTrail_us-east-1_20260105T0000Z_{name}.json.gz")
}

fn trail(records: &[(&str, &str, &str)]) -> Vec<u8> {
    let recs: Vec<Value> = records
        .iter()
        .map(|(t, p, ip)| json!({"eventVersion":"1.08","userIdentity":{"type":t,"principalId":p,"accountId":ACCT,"accessKeyId":"ASIAEXAMPLEEXAMPLE"},"eventSource":"s3.amazonaws.com","sourceIPAddress":ip,"userAgent":"aws-cli/2"}))
        .collect();
    gz(json!({ "Records": recs }).to_string().as_bytes())
}

async fn setup() -> (S3Server, S3Store, Config, String, String) {
    let s3 = S3Server::start().await;
    let trail_bucket = s3.unique_bucket("trail");
    let data_bucket = s3.unique_bucket("data");
    s3.create_bucket(&trail_bucket).await;
    s3.create_bucket(&data_bucket).await;
    let cfg = Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some(data_bucket.clone()),
        "INPUT_BUCKET" => Some(trail_bucket.clone()),
        _ => None,
    })
    .unwrap();
    let store = S3Store::from_conf(&s3.sdk_config());
    (s3, store, cfg, trail_bucket, data_bucket)
}

#[tokio::test]
async fn direct_s3_event_writes_tuples_skips_digests_and_names_failures() {
    let (s3, store, cfg, tb, db) = setup().await;
    let good = log_key("good");
    let bad = log_key("truncated");
    let digest = format!("AWSLogs/{ACCT}/CloudTrail-Digest/us-east-1/2026/01/05/{ACCT}_CloudTrail-Digest_us-east-1_t_us-east-1_20260105T0000Z.json.gz");
    s3.put(
        &tb,
        &good,
        trail(&[
            ("IAMUser", "AIDAALICE", "198.51.100.7"),
            ("AssumedRole", "AROABUILD:i-0abc", "203.0.113.9"),
            ("IAMUser", "AIDAALICE", "AWS Internal"),
        ]),
    )
    .await;
    let t = trail(&[("IAMUser", "AIDABOB", "192.0.2.1")]);
    s3.put(&tb, &bad, t[..t.len() - 12].to_vec()).await;
    s3.put(
        &tb,
        &digest,
        gz(br#"{"awsAccountId":"111122223333","logFiles":[]}"#),
    )
    .await;

    let ev =
        json!({"Records": [s3_record(&tb, &good), s3_record(&tb, &bad), s3_record(&tb, &digest)]});
    let err = handle(&cfg, &store, ev.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 of 3 objects failed"), "{err}");
    assert!(
        err.contains(&bad) && err.contains("truncated or corrupt gzip"),
        "{err}"
    );

    let out = s3
        .get(
            &db,
            &format!("train/cloudtrail/{}", good.replace(".json.gz", ".csv")),
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "AIDAALICE,198.51.100.7\nAROABUILD,203.0.113.9\n"
    );
    // Nothing half-written for the failed object, nothing for the digest.
    let keys = s3.keys(&db).await;
    assert_eq!(
        keys,
        vec![format!(
            "train/cloudtrail/{}",
            good.replace(".json.gz", ".csv")
        )]
    );

    // Redelivery overwrites: same keys, same bytes.
    let _ = handle(&cfg, &store, ev).await;
    assert_eq!(s3.keys(&db).await, keys);
}

#[tokio::test]
async fn sqs_batch_reports_exactly_the_failed_messages() {
    let (s3, store, cfg, tb, db) = setup().await;
    let spaced = format!("AWSLogs/{ACCT}/CloudTrail/us-east-1/2026/01/05/{ACCT}_CloudTrail_us-east-1_20260105T0000Z_a b=c+d.json.gz");
    let corrupt = log_key("corrupt");
    let not_json = log_key("notjson");
    s3.put(
        &tb,
        &spaced,
        trail(&[("FederatedUser", "111122223333:carol", "192.0.2.44")]),
    )
    .await;
    s3.put(&tb, &corrupt, b"\x1f\x8bthis is not gzip".to_vec())
        .await;
    s3.put(&tb, &not_json, gz(b"{\"Records\":[{\"userIdentity\":}]}"))
        .await;
    let notification = |k: &str| json!({"Records": [s3_record(&tb, k)]}).to_string();
    let sns_wrapped =
        json!({"Type":"Notification","MessageId":"x","Message": notification(&spaced)}).to_string();
    let ev = sqs(&[
        ("m-good", notification(&spaced)),
        (
            "m-test",
            json!({"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":tb}).to_string(),
        ),
        ("m-garbage", "{not json".to_owned()),
        ("m-corrupt", notification(&corrupt)),
        ("m-notjson", notification(&not_json)),
        ("m-sns", sns_wrapped),
        ("m-missing", notification(&log_key("does-not-exist"))),
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
        vec!["m-garbage", "m-corrupt", "m-notjson", "m-missing"]
    );
    let out_key = format!("train/cloudtrail/{}", spaced.replace(".json.gz", ".csv"));
    assert_eq!(s3.keys(&db).await, vec![out_key.clone()]);
    assert_eq!(
        s3.get(&db, &out_key).await.as_deref(),
        Some(&b"111122223333:carol,192.0.2.44\n"[..])
    );
    assert_eq!(s3.keys(&db).await, vec![out_key]);
}

#[tokio::test]
async fn eventbridge_object_created_with_own_trail() {
    // A pretty-printed bare array of records, as `aws cloudtrail lookup-events` exports and
    // Stratus Red Team's samples look: a tuple, a service without a principal, an `AWS Internal`
    // and an IPv6 caller (kept by default, `IPV6=keep`: ipsight's own model takes it).
    let records = json!([
        {"eventVersion": "1.08", "eventTime": "2024-08-01T13:29:57Z", "eventSource": "iam.amazonaws.com",
         "eventName": "UpdateAssumeRolePolicy", "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.23",
         "userAgent": "stratus-red-team_4d6b", "requestParameters": {"roleName": "backdoor", "policyDocument": "{\"Version\":\"2012-10-17\"}"},
         "userIdentity": {"type": "AssumedRole", "principalId": "AROA5EXAMPLEROLE:attacker-session", "accountId": ACCT,
            "arn": format!("arn:aws:sts::{ACCT}:assumed-role/admin/attacker-session"),
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROA5EXAMPLEROLE", "userName": "admin"},
                "attributes": {"creationDate": "2024-08-01T13:20:00Z", "mfaAuthenticated": "false"}}}},
        {"eventVersion": "1.08", "eventTime": "2024-08-01T13:30:01Z", "eventSource": "sts.amazonaws.com",
         "eventName": "AssumeRole", "awsRegion": "us-east-1", "sourceIPAddress": "iam.amazonaws.com",
         "userIdentity": {"type": "AWSService", "invokedBy": "iam.amazonaws.com"}},
        {"eventVersion": "1.08", "eventTime": "2024-08-01T13:30:02Z", "eventSource": "iam.amazonaws.com",
         "eventName": "GetRole", "awsRegion": "us-east-1", "sourceIPAddress": "AWS Internal",
         "userIdentity": {"type": "IAMUser", "principalId": "AIDA5EXAMPLEUSER", "accountId": ACCT}},
        {"eventVersion": "1.08", "eventTime": "2024-08-01T13:30:03Z", "eventSource": "iam.amazonaws.com",
         "eventName": "ListRoles", "awsRegion": "us-east-1", "sourceIPAddress": "2001:db8::7",
         "userIdentity": {"type": "IAMUser", "principalId": "AIDA5EXAMPLEUSER", "accountId": ACCT}}
    ]);
    let body = serde_json::to_string_pretty(&records).unwrap();
    let (csv, resp) = prepare_through_eventbridge("own", body.as_bytes()).await;
    assert_eq!(
        csv,
        "AROA5EXAMPLEROLE,198.51.100.23\nAIDA5EXAMPLEUSER,2001:db8::7\n"
    );
    let stats = &resp["stats"];
    assert_eq!(
        (stats["records"].as_u64(), stats["tuples"].as_u64()),
        (Some(4), Some(2)),
        "{stats}"
    );
    assert_eq!(
        (
            stats["no_principal"].as_u64(),
            stats["aws_internal"].as_u64(),
            stats["ipv6"].as_u64(),
            stats["ipv6_tuples"].as_u64()
        ),
        (Some(1), Some(1), Some(0), Some(1)),
        "{stats}"
    );
}

#[tokio::test]
async fn eventbridge_object_created_with_real_sample() {
    let Some(path) = ipsight_testkit::real_data(
        "stratus-red-team/aws.persistence.iam-backdoor-role.json",
        "prepare-cloudtrail eventbridge_object_created_with_real_sample",
    ) else {
        return;
    };
    let (csv, resp) = prepare_through_eventbridge("stratus", &std::fs::read(path).unwrap()).await;
    assert!(!csv.is_empty());
    for line in csv.lines() {
        let (e, ip) = line.split_once(',').unwrap();
        assert!(
            !e.is_empty() && ip.parse::<std::net::Ipv4Addr>().is_ok(),
            "{line}"
        );
    }
    assert_eq!(
        resp["stats"]["tuples"].as_u64().unwrap() as usize,
        csv.lines().count()
    );
}

/// Puts `trail` gzipped under a CloudTrail key and prepares it through an EventBridge "Object
/// Created" event; returns the tuple CSV written and the handler's response.
async fn prepare_through_eventbridge(name: &str, trail: &[u8]) -> (String, Value) {
    let (s3, store, cfg, tb, db) = setup().await;
    let key = log_key(name);
    s3.put(&tb, &key, gz(trail)).await;
    let ev = json!({"version":"0","id":"e","detail-type":"Object Created","source":"aws.s3","account":ACCT,"time":"2026-01-05T00:00:00Z",
        "region":"us-east-1","resources":[],"detail":{"version":"0","bucket":{"name":tb},"object":{"key":key,"size":trail.len()},"reason":"PutObject"}});
    let resp = handle(&cfg, &store, ev).await.unwrap();
    assert_eq!(resp["written"].as_array().unwrap().len(), 1, "{resp}");
    let csv = String::from_utf8(
        s3.get(
            &db,
            &format!("train/cloudtrail/{}", key.replace(".json.gz", ".csv")),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    (csv, resp)
}

#[tokio::test]
async fn own_output_and_unsupported_events() {
    let (_s3, store, cfg, _tb, db) = setup().await;
    // A notification for our own output is skipped even if the trigger was misconfigured.
    let ev = json!({"Records": [s3_record(&db, "train/cloudtrail/AWSLogs/1/CloudTrail/r/x_CloudTrail_r.json.gz")]});
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
    let err = handle(&cfg, &store, json!({"hello": "world"}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unrecognised event shape"),
        "{err}"
    );
}
