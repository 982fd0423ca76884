//! The handler against a real S3-protocol server (moto_server) through the real aws-sdk-s3 client.

use extract_guardduty::{handle, Config};
use ipsight_aws::S3Store;
use ipsight_formats::guardduty::FindingRecord;
use ipsight_testkit::events::{gz, s3_record, sqs};
use ipsight_testkit::{guardduty_shapes as shapes, S3Server};
use serde_json::{json, Value};

const ACCT: &str = "111122223333";

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
    // A generated sample finding through EventBridge, in the real shape: IAM user, Tor caller.
    let resp = handle(&cfg, &store, shapes::sample_finding_event())
        .await
        .unwrap();
    let key =
        "infer/guardduty/findings/444455556666/us-east-1/5e0c7a9b1d3f4a6c8e0b2d4f6a8c0e1f.json";
    assert_eq!(resp["written"], json!([key]), "{resp}");
    let rec = record(&s3, &db, key).await;
    assert_eq!(rec.pairs[0].entity, "GeneratedFindingPrincipalId");
    assert!(rec.sample);
    assert_eq!(
        s3.get(
            &db,
            "infer/guardduty/tuples/444455556666/us-east-1/5e0c7a9b1d3f4a6c8e0b2d4f6a8c0e1f.csv"
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
            "infer/guardduty/tuples/444455556666/us-east-1/5e0c7a9b1d3f4a6c8e0b2d4f6a8c0e1f.csv",
        ]
    );

    // A finding without a principal is counted, not an error, and writes nothing.
    let resp = handle(&cfg, &store, event(shapes::ec2_network_finding()))
        .await
        .unwrap();
    assert_eq!(resp["stats"]["no_principal"], 1);
    assert_eq!(resp["written"], json!([]));
}

/// The same through GuardDuty's and cloud-custodian's published findings, when the sample data is there.
#[tokio::test]
async fn real_findings_through_the_handler() {
    let Some(dir) = ipsight_testkit::real_data(
        "guardduty",
        "extract-guardduty real_findings_through_the_handler",
    ) else {
        return;
    };
    let real = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };
    let iam = real("cloud-custodian__iam-duty-event.json");
    let ec2 = real("cloud-custodian__ec2-duty-event.json");
    let ec2_doc = real("aws-samples-gd-automated-response__guardduty_ec2_event.json");
    let (s3, store, cfg, eb, db) = setup().await;
    let resp = handle(&cfg, &store, iam).await.unwrap();
    let key =
        "infer/guardduty/findings/883606788610/us-east-1/36b01b60fc22bb4edb19d62d9899e953.json";
    assert_eq!(resp["written"], json!([key]), "{resp}");
    let rec = record(&s3, &db, key).await;
    assert_eq!(rec.pairs[0].entity, "GeneratedFindingPrincipalId");
    assert!(rec.sample);
    let raw = String::from_utf8(s3.get(&db, key).await.unwrap()).unwrap();
    assert!(!raw.contains("GeneratedFindingAccessKeyId"), "{raw}");
    let resp = handle(&cfg, &store, ec2).await.unwrap();
    assert_eq!(resp["stats"]["no_principal"], 1);
    // A real finding document as an export line: counted, not an error.
    let export = export_key("real");
    s3.put(&eb, &export, gz(format!("{ec2_doc}\n").as_bytes()))
        .await;
    let resp = handle(&cfg, &store, json!({"Records": [s3_record(&eb, &export)]}))
        .await
        .unwrap();
    assert_eq!(resp["stats"]["no_principal"], 1, "{resp}");
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
        shapes::ec2_network_finding(),
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

fn shape_fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../formats/tests/fixtures/guardduty/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Issue 17: one EKS finding (`userAgent` a string) failed the whole export object and sent the
/// message to the DLQ. An export holding every finding family is now written whole.
#[tokio::test]
async fn an_export_of_every_finding_family_is_written_whole() {
    let (s3, store, cfg, eb, db) = setup().await;
    let key = export_key("families");
    s3.put(&eb, &key, gz(&shape_fixture("export.jsonl"))).await;
    let resp = handle(&cfg, &store, json!({"Records": [s3_record(&eb, &key)]}))
        .await
        .unwrap();
    assert_eq!(resp["failed"], json!([]), "{resp}");
    assert_eq!(resp["stats"]["findings"], 17, "{resp}");
    assert_eq!(resp["stats"]["records"], 6, "{resp}");
    assert_eq!(resp["stats"]["no_principal"], 10, "{resp}");
    let eks =
        format!("infer/guardduty/tuples/{ACCT}/eu-west-1/a6eks0000000000000000000000000006.csv");
    assert_eq!(
        s3.get(&db, &eks).await.unwrap(),
        b"AROAEXAMPLEEKSADMIN1,203.0.113.50\nAROAEXAMPLEEKSADMIN1,203.0.113.51\n"
    );
}

/// Security Hub's "Findings - Imported" events (directly and through SQS) give the records of the
/// native GuardDuty findings, at the same keys.
#[tokio::test]
async fn security_hub_imported_findings_are_extracted() {
    let (s3, store, cfg, _eb, db) = setup().await;
    let ev: Value = serde_json::from_slice(&shape_fixture("asff-imported-event.json")).unwrap();
    let resp = handle(&cfg, &store, ev.clone()).await.unwrap();
    assert_eq!(resp["written"].as_array().unwrap().len(), 3, "{resp}");
    let key =
        format!("infer/guardduty/findings/{ACCT}/eu-west-1/a1iam0000000000000000000000000001.json");
    let r = record(&s3, &db, &key).await;
    assert_eq!(
        r.finding_type,
        "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
    );
    assert_eq!(r.pairs[0].entity, "AROAEXAMPLEWEBROLE01");
    assert_eq!(r.pairs[0].ip.to_string(), "198.51.100.7");
    // The native finding, extracted the same way, is the same record.
    let native = ipsight_formats::guardduty::extract_all(
        &shape_fixture("export.jsonl")[..],
        &Default::default(),
    )
    .unwrap()
    .0;
    assert_eq!(r, native[0]);
    // Through SQS (EventBridge → SQS): one message, no failure.
    let resp = handle(&cfg, &store, sqs(&[("m1", ev.to_string())]))
        .await
        .unwrap();
    assert_eq!(resp["batchItemFailures"], json!([]), "{resp}");
}

/// IPv6 is never lost: `ipAddressV6` of an API call, of port probes and of a network connection
/// lands in the record's `ipv6` pairs (canonical RFC 5952 text, which ipcheck and fuse score), the
/// tuple CSV — SageMaker's IPv4-only format — keeps the IPv4 pairs, and the counters say how many.
#[tokio::test]
async fn ipv6_remote_addresses_are_kept_in_the_record() {
    let (s3, store, cfg, _eb, db) = setup().await;
    let mut api = finding("v6api", "IAMUser", "AIDAALICE", "198.51.100.7", 1);
    api["service"]["action"]["awsApiCallAction"]["remoteIpDetails"]["ipAddressV6"] =
        json!("2A02:1234:0:AB00:0:0:0:7");
    let probe = json!({"schemaVersion":"2.0","accountId":ACCT,"region":"eu-west-1","partition":"aws","id":"v6probe",
        "type":"Recon:EC2/PortProbeUnprotectedPort","severity":2,"updatedAt":"2026-01-05T10:00:00.000Z",
        "resource":{"resourceType":"Instance","accessKeyDetails":{"principalId":"AROABUILD:i-0abc","userType":"AssumedRole"},
            "instanceDetails":{"instanceId":"i-0abc"}},
        "service":{"count":1,"action":{"actionType":"PORT_PROBE",
            "portProbeAction":{"portProbeDetails":[
                {"remoteIpDetails":{"ipAddressV6":"2001:db8:aa::1"}},
                {"remoteIpDetails":{"ipAddressV6":"2001:0db8:00aa:0000:0000:0000:0000:0001"}},
                {"remoteIpDetails":{"ipAddressV4":"203.0.113.5"}}]},
            "networkConnectionAction":{"remoteIpDetails":{"ipAddressV6":"2600:1f18::9"}}}}});
    let resp = handle(&cfg, &store, event(api)).await.unwrap();
    assert_eq!(resp["stats"]["ipv6_pairs"], 1, "{resp}");
    let rec = record(
        &s3,
        &db,
        &format!("infer/guardduty/findings/{ACCT}/eu-west-1/v6api.json"),
    )
    .await;
    assert_eq!(rec.pairs.len(), 1);
    assert_eq!(rec.ipv6.len(), 1);
    assert_eq!(rec.ipv6[0].entity, "AIDAALICE");
    assert_eq!(rec.ipv6[0].ip.to_string(), "2a02:1234:0:ab00::7");
    let raw = String::from_utf8(
        s3.get(
            &db,
            &format!("infer/guardduty/findings/{ACCT}/eu-west-1/v6api.json"),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert!(raw.contains(r#""ip":"2a02:1234:0:ab00::7""#), "{raw}");
    assert_eq!(
        s3.get(
            &db,
            &format!("infer/guardduty/tuples/{ACCT}/eu-west-1/v6api.csv")
        )
        .await
        .unwrap(),
        b"AIDAALICE,198.51.100.7\n"
    );

    let resp = handle(&cfg, &store, event(probe)).await.unwrap();
    // The two spellings of one probe address are one pair.
    assert_eq!(resp["stats"]["ipv6_pairs"], 2, "{resp}");
    let rec = record(
        &s3,
        &db,
        &format!("infer/guardduty/findings/{ACCT}/eu-west-1/v6probe.json"),
    )
    .await;
    let v6: Vec<(String, String, String)> = rec
        .ipv6
        .iter()
        .map(|p| (p.entity.clone(), p.ip.to_string(), p.action.clone()))
        .collect();
    assert_eq!(
        v6,
        [
            (
                "AROABUILD".into(),
                "2600:1f18::9".into(),
                "NETWORK_CONNECTION".into()
            ),
            (
                "AROABUILD".into(),
                "2001:db8:aa::1".into(),
                "PORT_PROBE".into()
            ),
        ]
    );
    assert_eq!(rec.pairs.len(), 1);
    assert_eq!(rec.pairs[0].ip.to_string(), "203.0.113.5");
}
