//! The ipcheck handler end to end: objects in a real S3-protocol server (moto_server) through the
//! real aws-sdk-s3 client, scored by a really trained model, either embedded or behind
//! `ipsight serve` reached with the real aws-sdk-sagemakerruntime client; alerts through a recording
//! sink and through the real aws-sdk-eventbridge client against moto.
use std::sync::{Arc, Mutex, OnceLock};

use ipcheck::alerts::{AlertSink, EventBridgeSink, NoAlerts};
use ipcheck::{handle, Alert, Config};
use ipsight_aws::scorers::{SageMakerOptions, SageMakerScorer};
use ipsight_aws::S3Store;
use ipsight_model::Model;
use ipsight_ports::EmbeddedScorer;
use ipsight_ports::Scorer;
use ipsight_testkit::events::{gz, s3_notification, sqs};
use ipsight_testkit::S3Server;
use serde_json::{json, Value};

const ALICE: &str = "AIDAALICE";
const ROLE: &str = "AROAIOJRFK4IOK6BW5ISY";
const VPC_INSTANCE: &str = "i-000000000000000000";
const DNS_INSTANCE: &str = "i-0d15cd0d3example";

/// A model trained on every entity's usual addresses: synthetic users in their own /16s, plus the
/// principals and instances of the Security Lake samples in the /24s those samples use.
fn model() -> Arc<Model> {
    static M: OnceLock<Arc<Model>> = OnceLock::new();
    M.get_or_init(|| {
        Arc::new(ipsight_testkit::small_model(&[
            (ALICE, [198, 51, 100]),
            (ROLE, [71, 192, 137]),
            (VPC_INSTANCE, [1, 2, 3]),
            (DNS_INSTANCE, [4, 5, 64]),
        ]))
    })
    .clone()
}

/// The Security Lake objects of the tests, written by us in the real tables' layout.
mod lake_objects {
    use super::*;
    use ipsight_testkit::ocsf_parquet;
    use ipsight_testkit::security_lake::{self as lake, *};

    /// VPC Flow: the instance, outbound from its usual address.
    pub fn vpc() -> Vec<u8> {
        ocsf_parquet(
            NETWORK_ACTIVITY_RC2,
            &[lake::flow(Some(VPC_INSTANCE), "1.2.3.4", "Outbound")],
        )
    }

    /// Route 53: the instance resolving from its usual address.
    pub fn dns() -> Vec<u8> {
        ocsf_parquet(
            DNS_ACTIVITY_RC2,
            &[lake::dns(
                DNS_INSTANCE,
                "vpc-00000000000000000",
                "4.5.64.102",
            )],
        )
    }

    /// CloudTrail (source version 1): the role's session attaching a policy from its usual /24.
    pub fn cloudtrail() -> Vec<u8> {
        let record = json!({"eventTime": "2023-03-17T16:31:50Z", "eventSource": "iam.amazonaws.com",
            "eventName": "AttachRolePolicy", "awsRegion": "us-east-1", "sourceIPAddress": "71.192.137.28",
            "userIdentity": {"type": "AssumedRole", "principalId": format!("{ROLE}:Admin-user"), "accountId": "112233445566"}});
        ocsf_parquet(
            CLOUDTRAIL_RC2,
            &[lake::from_cloudtrail(&record, 1_679_070_710_000)],
        )
    }

    /// OCSF 1.1 EKS audit: an entity the model never saw.
    pub fn eks() -> Vec<u8> {
        ocsf_parquet(
            API_ACTIVITY_1_1,
            &[lake::eks(
                "heptio-authenticator-aws:123456789012:ABCD1234567890EXAMPLE",
                "12.000.22.33",
            )],
        )
    }

    /// Raw VPC Flow Logs as Parquet: not OCSF.
    pub fn raw_flow() -> Vec<u8> {
        ocsf_parquet(RAW_VPC_FLOW, &[lake::raw_flow()])
    }
}

/// A Security Lake subscriber notification: the SQS body is a JSON *string* holding an
/// EventBridge "Object Created" event.
fn security_lake_notification(bucket: &str, key: &str) -> String {
    let ev = json!({"version":"0","id":"x","detail-type":"Object Created","source":"aws.s3","account":"123456789012",
        "time":"2023-01-01T00:00:00Z","region":"us-east-1","resources":[format!("arn:aws:s3:::{bucket}")],
        "detail":{"version":"0","bucket":{"name":bucket},"object":{"key":key,"size":1000,"etag":"e"},"request-id":"r","requester":"123456789012"}});
    Value::String(ev.to_string()).to_string()
}

fn sns(inner: &str) -> String {
    json!({"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":inner}).to_string()
}

fn failures(resp: &Value) -> Vec<String> {
    let mut ids: Vec<String> = resp["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Records alerts instead of sending them.
#[derive(Default)]
struct Recorder(Mutex<Vec<Alert>>);

impl AlertSink for Recorder {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), String> {
        self.0.lock().unwrap().extend_from_slice(alerts);
        Ok(())
    }
}

struct World {
    s3: S3Server,
    store: S3Store,
    cfg: Config,
    lake: String,
    data: String,
}

async fn world(extra: &[(&str, &str)]) -> World {
    let s3 = S3Server::start().await;
    let lake = s3.unique_bucket("lake");
    let data = s3.unique_bucket("data");
    s3.create_bucket(&lake).await;
    s3.create_bucket(&data).await;
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let cfg = Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some(data.clone()),
        "INPUT_BUCKET" => Some(data.clone()),
        "INPUT_PREFIX" => Some("infer/".into()),
        "OCSF_JSON_PREFIX" => Some("ext/custom/".into()),
        "ALERT_MIN_PERCENTILE" => Some("99.5".into()),
        _ => extra.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
    })
    .unwrap();
    let store = S3Store::from_conf(&s3.sdk_config());
    World {
        s3,
        store,
        cfg,
        lake,
        data,
    }
}

const VPC_KEY: &str = "aws/VPC_FLOW/1.0/region=us-east-2/accountId=123456789012/eventDay=20220412/flow one.gz.parquet";
const DNS_KEY: &str =
    "aws/ROUTE53/1.0/region=us-east-1/accountId=111122223333/eventDay=20221013/dns.gz.parquet";
const CT_KEY: &str =
    "aws/CLOUD_TRAIL_MGMT/1.0/region=us-east-1/accountId=123456789012/eventDay=20230101/ct.gz.parquet";
const EKS_KEY: &str =
    "aws/EKS_AUDIT/2.0/region=us-east-1/accountId=123456789012/eventDay=20210907/eks.parquet";
const BAD_PARQUET_KEY: &str =
    "aws/VPC_FLOW/1.0/region=us-east-1/accountId=1/eventDay=20230101/corrupt.gz.parquet";
const CSV_KEY: &str = "infer/tuples/batch a+b=1.csv";
const BAD_CSV_KEY: &str = "infer/tuples/bad.csv";
const FINDING_KEY: &str = "infer/guardduty/findings/111122223333/us-east-1/f-1.json";
const TRAIL_KEY: &str = "infer/AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/05/111122223333_CloudTrail_us-east-1_20260105T0000Z_x.json.gz";
const OCSF_JSON_KEY: &str = "ext/custom/app/events.json.gz";

fn finding_record() -> Vec<u8> {
    json!({"finding_id":"f-1","type":"UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        "severity":8.0,"account_id":"111122223333","region":"us-east-1","created_at":"2026-01-05T10:00:00Z",
        "updated_at":"2026-01-05T11:00:00Z","event_first_seen":"2026-01-05T09:58:00Z","event_last_seen":"2026-01-05T10:59:00Z",
        "count":3,"sample":false,"user_type":"AssumedRole","title":"Credentials used from outside AWS",
        "pairs":[{"entity":ROLE,"ip":"175.45.176.3","action":"AWS_API_CALL","country":"KP"},
                 {"entity":ROLE,"ip":"71.192.137.9","action":"AWS_API_CALL"}],"ipv6":[]})
    .to_string()
    .into_bytes()
}

fn trail() -> Vec<u8> {
    let rec = |t: &str, p: &str, ip: &str, time: &str| {
        json!({"eventVersion":"1.08","eventTime":time,
        "userIdentity":{"type":t,"principalId":p,"accountId":"111122223333"},"eventSource":"s3.amazonaws.com","sourceIPAddress":ip})
    };
    gz(json!({"Records":[
        rec("IAMUser", ALICE, "198.51.100.7", "2026-01-05T00:01:00Z"),
        rec("IAMUser", ALICE, "198.51.100.7", "2026-01-05T00:00:00Z"),
        rec("IAMUser", ALICE, "185.220.101.4", "2026-01-05T00:02:00Z"),
        rec("IAMUser", ALICE, "AWS Internal", "2026-01-05T00:03:00Z"),
    ]})
    .to_string()
    .as_bytes())
}

/// One pretty-printed OCSF JSON document (an array of events), as OCSF examples and exporters write
/// them; the 1.1 event names its actor as Security Lake v2 does (`uid` the ARN, `uid_alt` the
/// principal id).
fn ocsf_json() -> Vec<u8> {
    let v11 = json!({"metadata":{"version":"1.1.0"},"class_uid":6003,"time":1767571200000i64,
        "cloud":{"account":{"uid":"111122223333"},"region":"us-east-1"},
        "actor":{"user":{"type":"IAMUser","uid":"arn:aws:iam::111122223333:user/alice","uid_alt":ALICE}},
        "src_endpoint":{"ip":"198.51.100.20"}});
    let v10 = json!({"class_uid":4001,"time":1767571260000i64,"cloud":{"account_uid":"123456789012","region":"us-east-2"},
        "src_endpoint":{"instance_uid":VPC_INSTANCE,"ip":"45.155.205.233"}});
    gz(serde_json::to_string_pretty(&json!([v11, v10]))
        .unwrap()
        .as_bytes())
}

/// Put every input object; returns the SQS batch of good, malformed and test-event messages and
/// the ids expected to fail.
async fn populate(w: &World) -> (Value, Vec<String>) {
    let (s3, lake, data) = (&w.s3, &w.lake, &w.data);
    s3.put(lake, VPC_KEY, lake_objects::vpc()).await;
    s3.put(lake, DNS_KEY, lake_objects::dns()).await;
    s3.put(lake, CT_KEY, lake_objects::cloudtrail()).await;
    s3.put(lake, EKS_KEY, lake_objects::eks()).await;
    let mut corrupt = lake_objects::vpc();
    corrupt.truncate(corrupt.len() / 2);
    s3.put(lake, BAD_PARQUET_KEY, corrupt).await;
    s3.put(
        data,
        CSV_KEY,
        format!("{ALICE},198.51.100.3\n{ALICE},198.51.100.3\n{ALICE},203.0.113.77\nAIDASYNTH3,13.3.1.5\n").into_bytes(),
    )
    .await;
    s3.put(
        data,
        BAD_CSV_KEY,
        b"AIDAX,1.2.3.4\nno comma here\n".to_vec(),
    )
    .await;
    s3.put(data, FINDING_KEY, finding_record()).await;
    s3.put(data, TRAIL_KEY, trail()).await;
    s3.put(data, OCSF_JSON_KEY, ocsf_json()).await;
    let test_event = json!({"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-05T00:00:00Z","Bucket":data}).to_string();
    let batch = sqs(&[
        ("m-vpc", security_lake_notification(lake, VPC_KEY)),
        ("m-dns", security_lake_notification(lake, DNS_KEY)),
        ("m-ct", security_lake_notification(lake, CT_KEY)),
        ("m-eks", security_lake_notification(lake, EKS_KEY)),
        ("m-test", test_event),
        ("m-csv", s3_notification(data, CSV_KEY)),
        ("m-finding", sns(&s3_notification(data, FINDING_KEY))),
        ("m-trail", s3_notification(data, TRAIL_KEY)),
        ("m-ocsf-json", s3_notification(data, OCSF_JSON_KEY)),
        ("m-not-json", "{not json".into()),
        ("m-unknown", json!({"hello":"world"}).to_string()),
        (
            "m-corrupt-parquet",
            security_lake_notification(lake, BAD_PARQUET_KEY),
        ),
        ("m-bad-csv", s3_notification(data, BAD_CSV_KEY)),
        ("m-missing", s3_notification(data, "infer/tuples/gone.csv")),
        // Our own output, delivered by a mis-configured trigger: skipped, not a loop, not a failure.
        ("m-own", s3_notification(data, "scores/x.csv.jsonl")),
    ]);
    let mut bad: Vec<String> = [
        "m-not-json",
        "m-unknown",
        "m-corrupt-parquet",
        "m-bad-csv",
        "m-missing",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    bad.sort();
    (batch, bad)
}

fn by_pair<'a>(recs: &'a [Value], entity: &str, ip: &str) -> &'a Value {
    recs.iter()
        .find(|r| r["entity"] == entity && r["ip"] == ip)
        .unwrap_or_else(|| panic!("no record {entity},{ip} in {recs:?}"))
}

/// Runs the whole batch with `scorer`; returns every output object's bytes, by key.
async fn run_batch<S: Scorer>(
    w: &World,
    scorer: &S,
    sink: &impl AlertSink,
) -> Vec<(String, Vec<u8>)> {
    let (batch, bad) = populate(w).await;
    let resp = handle(&w.cfg, &w.store, scorer, sink, batch).await.unwrap();
    assert_eq!(failures(&resp), bad, "{resp}");
    let mut out = Vec::new();
    for k in w.s3.keys(&w.data).await {
        if k.starts_with("scores/") || k.starts_with("alerts/") {
            out.push((k.clone(), w.s3.get(&w.data, &k).await.unwrap()));
        }
    }
    out
}

fn get(outputs: &[(String, Vec<u8>)], key: &str) -> Vec<Value> {
    lines(
        &outputs
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| {
                panic!(
                    "no {key} in {:?}",
                    outputs.iter().map(|o| &o.0).collect::<Vec<_>>()
                )
            })
            .1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_batch_embedded_model_partial_failures_and_redelivery() {
    let w = world(&[]).await;
    let scorer = EmbeddedScorer::new(model());
    let sink = Recorder::default();
    let first = run_batch(&w, &scorer, &sink).await;
    let keys: Vec<&str> = first.iter().map(|(k, _)| k.as_str()).collect();
    // One scores file per good object; nothing for the failed ones.
    for k in [
        VPC_KEY,
        DNS_KEY,
        CT_KEY,
        EKS_KEY,
        CSV_KEY,
        FINDING_KEY,
        TRAIL_KEY,
        OCSF_JSON_KEY,
    ] {
        assert!(
            keys.contains(&format!("scores/{k}.jsonl").as_str()),
            "{k}: {keys:?}"
        );
    }
    assert!(!keys
        .iter()
        .any(|k| k.contains("corrupt") || k.contains("bad.csv") || k.contains("gone")));

    // Security Lake VPC Flow: the instance and its usual address, normal.
    let vpc = get(&first, &format!("scores/{VPC_KEY}.jsonl"));
    assert_eq!(vpc.len(), 1);
    let r = &vpc[0];
    assert_eq!(
        (r["entity"].as_str(), r["ip"].as_str()),
        (Some(VPC_INSTANCE), Some("1.2.3.4"))
    );
    assert_eq!(r["class_uid"], 4001);
    assert_eq!(r["kind"], "ocsf_parquet");
    assert_eq!(r["account"], "123456789012");
    assert_eq!(r["source"], format!("s3://{}/{VPC_KEY}", w.lake));
    assert_eq!(r["first_seen"], "2022-04-12T00:02:12Z");
    assert_eq!(r["alert"], false, "{r}");
    let dns = get(&first, &format!("scores/{DNS_KEY}.jsonl"));
    assert_eq!(dns[0]["entity"], DNS_INSTANCE);
    assert_eq!(dns[0]["class_uid"], 4003);
    assert_eq!(dns[0]["alert"], false, "{}", dns[0]);
    // Security Lake CloudTrail: the role without its session, from its usual /24.
    let ct = get(&first, &format!("scores/{CT_KEY}.jsonl"));
    assert_eq!(
        (ct[0]["entity"].as_str(), ct[0]["class_uid"].as_u64()),
        (Some(ROLE), Some(3001))
    );
    assert_eq!(ct[0]["alert"], false, "{}", ct[0]);
    // OCSF 1.1 (EKS audit): an entity the model never saw: scored, unusual.
    let eks = get(&first, &format!("scores/{EKS_KEY}.jsonl"));
    assert_eq!(eks[0]["class_uid"], 6003);

    // Tuple CSV: distinct pairs with counts, sorted; the usual address normal, the odd one alerted.
    let csv = get(&first, &format!("scores/{CSV_KEY}.jsonl"));
    assert_eq!(csv.len(), 3);
    assert_eq!(by_pair(&csv, ALICE, "198.51.100.3")["count"], 2);
    assert_eq!(by_pair(&csv, ALICE, "198.51.100.3")["alert"], false);
    assert_eq!(by_pair(&csv, "AIDASYNTH3", "13.3.1.5")["alert"], false);
    let odd = by_pair(&csv, ALICE, "203.0.113.77");
    assert_eq!(odd["alert"], true, "{odd}");
    assert!(odd["unusual_percentile"].as_f64().unwrap() >= 99.5);
    assert!(
        odd["dot_product"].as_f64().unwrap()
            < by_pair(&csv, ALICE, "198.51.100.3")["dot_product"]
                .as_f64()
                .unwrap()
    );

    // GuardDuty record: the finding's context on each pair; the exfiltration address alerts.
    let f = get(&first, &format!("scores/{FINDING_KEY}.jsonl"));
    let exfil = by_pair(&f, ROLE, "175.45.176.3");
    assert_eq!(exfil["finding_id"], "f-1");
    assert_eq!(exfil["severity"], 8.0);
    assert_eq!(exfil["first_seen"], "2026-01-05T09:58:00Z");
    assert_eq!(exfil["last_seen"], "2026-01-05T10:59:00Z");
    assert_eq!(exfil["alert"], true, "{exfil}");
    assert_eq!(by_pair(&f, ROLE, "71.192.137.9")["alert"], false);

    // CloudTrail: first/last event time across the records of a pair; AWS Internal yields nothing.
    let t = get(&first, &format!("scores/{TRAIL_KEY}.jsonl"));
    assert_eq!(t.len(), 2);
    let usual = by_pair(&t, ALICE, "198.51.100.7");
    assert_eq!(
        (usual["count"].as_u64(), usual["first_seen"].as_str()),
        (Some(2), Some("2026-01-05T00:00:00Z"))
    );
    assert_eq!(usual["last_seen"], "2026-01-05T00:01:00Z");
    assert_eq!(by_pair(&t, ALICE, "185.220.101.4")["alert"], true);

    // An OCSF JSON document from a custom source, both account shapes.
    let j = get(&first, &format!("scores/{OCSF_JSON_KEY}.jsonl"));
    assert_eq!(
        by_pair(&j, ALICE, "198.51.100.20")["account"],
        "111122223333"
    );
    assert_eq!(
        by_pair(&j, VPC_INSTANCE, "45.155.205.233")["account"],
        "123456789012"
    );
    assert_eq!(by_pair(&j, VPC_INSTANCE, "45.155.205.233")["alert"], true);

    // Alerts: files beside the scores and the same alerts through the sink, with stable ids.
    let sent = sink.0.lock().unwrap().clone();
    let mut files = 0;
    for (k, bytes) in &first {
        if let Some(src) = k.strip_prefix("alerts/") {
            files += 1;
            for a in lines(bytes) {
                assert_eq!(a["alert"], true);
                assert_eq!(a["threshold"]["min_unusual_percentile"], 99.5);
                assert!(a["source"]
                    .as_str()
                    .unwrap()
                    .ends_with(src.strip_suffix(".jsonl").unwrap()));
                assert!(sent.iter().any(|s| s.alert_id == a["alert_id"]), "{a}");
            }
        }
    }
    assert!(files >= 4, "{files}");
    let alerted_pairs: usize = first
        .iter()
        .filter(|(k, _)| k.starts_with("scores/"))
        .map(|(_, b)| lines(b).iter().filter(|r| r["alert"] == true).count())
        .sum();
    assert_eq!(sent.len(), alerted_pairs);

    // Redelivery of the whole batch: the same objects, byte for byte, and the same alert ids.
    let second = run_batch(&w, &scorer, &sink).await;
    assert_eq!(first, second);
    let again = sink.0.lock().unwrap().clone();
    assert_eq!(again.len(), 2 * sent.len());
    let mut ids1: Vec<_> = again[..sent.len()]
        .iter()
        .map(|a| a.alert_id.clone())
        .collect();
    let mut ids2: Vec<_> = again[sent.len()..]
        .iter()
        .map(|a| a.alert_id.clone())
        .collect();
    ids1.sort();
    ids2.sort();
    assert_eq!(ids1, ids2);
}

/// The same batch scored through `ipsight serve` as a SageMaker Runtime endpoint, with the real
/// aws-sdk-sagemakerruntime client: the same scores and the same alerts as the embedded model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_batch_through_the_sagemaker_runtime_endpoint() {
    let model = model();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ipsight_serve::serve_on(
        model.clone(),
        listener,
        std::future::pending(),
    ));
    let conf = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(
            aws_sdk_sagemakerruntime::config::SharedCredentialsProvider::new(
                aws_sdk_sagemakerruntime::config::Credentials::new(
                    "testing", "testing", None, None, "test",
                ),
            ),
        )
        .build();
    let opts = SageMakerOptions {
        // Small requests so that one object takes several InvokeEndpoint calls.
        max_pairs_per_request: 2,
        ..SageMakerOptions::default()
    };
    let remote = SageMakerScorer::new(&conf, "ipsight-test", opts)
        .with_calibration(model.calibration().clone());

    let w_remote = world(&[]).await;
    let via_endpoint = run_batch(&w_remote, &remote, &NoAlerts).await;
    assert!(remote.calls().load(std::sync::atomic::Ordering::Relaxed) >= 8);
    let w_local = world(&[]).await;
    let embedded = run_batch(&w_local, &EmbeddedScorer::new(model), &NoAlerts).await;

    assert_eq!(via_endpoint.len(), embedded.len());
    for ((k1, b1), (k2, b2)) in via_endpoint.iter().zip(&embedded) {
        assert_eq!(k1, k2);
        let (r1, r2) = (lines(b1), lines(b2));
        assert_eq!(r1.len(), r2.len(), "{k1}");
        for (a, b) in r1.iter().zip(&r2) {
            assert_eq!(
                (&a["entity"], &a["ip"], &a["alert"]),
                (&b["entity"], &b["ip"], &b["alert"]),
                "{k1}"
            );
            let (d1, d2) = (
                a["dot_product"].as_f64().unwrap(),
                b["dot_product"].as_f64().unwrap(),
            );
            assert!(
                (d1 - d2).abs() <= 1e-5 * d2.abs().max(1.0),
                "{k1}: {d1} vs {d2}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_objects_name_the_object() {
    let w = world(&[
        ("MAX_OBJECT_BYTES", "1000"),
        ("MAX_UNCOMPRESSED_BYTES", "100"),
    ])
    .await;
    let scorer = EmbeddedScorer::new(model());
    w.s3.put(&w.lake, VPC_KEY, lake_objects::vpc()).await;
    let big_csv = format!("{ALICE},198.51.100.3\n").repeat(20);
    w.s3.put(&w.data, CSV_KEY, gz(big_csv.as_bytes())).await;
    w.s3.put(&w.data, FINDING_KEY, b"{\"finding_id\": 7}".to_vec())
        .await;
    // Direct S3 events (no SQS): the invocation fails and says which object and why.
    for (bucket, key, why) in [
        (&w.lake, VPC_KEY, "MAX_OBJECT_BYTES=1000"),
        (&w.data, CSV_KEY, "cap of 100 bytes"),
        (&w.data, FINDING_KEY, "not a GuardDuty finding record"),
    ] {
        let ev: Value = serde_json::from_str(&s3_notification(bucket, key)).unwrap();
        let e = handle(&w.cfg, &w.store, &scorer, &NoAlerts, ev)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("s3://{bucket}/{key}")), "{e}");
        assert!(e.contains(why), "{e}");
    }
    // A small Parquet object declaring more uncompressed data than allowed.
    let w = world(&[("MAX_UNCOMPRESSED_BYTES", "100")]).await;
    w.s3.put(&w.lake, VPC_KEY, lake_objects::vpc()).await;
    let ev: Value = serde_json::from_str(&s3_notification(&w.lake, VPC_KEY)).unwrap();
    let e = handle(&w.cfg, &w.store, &scorer, &NoAlerts, ev)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("s3://{}/{VPC_KEY}", w.lake)) && e.contains("cap of 100 bytes"),
        "{e}"
    );
    // A Parquet object that is not OCSF: said so.
    let w = world(&[]).await;
    w.s3.put(&w.lake, VPC_KEY, lake_objects::raw_flow()).await;
    let ev: Value = serde_json::from_str(&s3_notification(&w.lake, VPC_KEY)).unwrap();
    let e = handle(&w.cfg, &w.store, &scorer, &NoAlerts, ev)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not OCSF"), "{e}");
    // An EventBridge event we do not handle is refused, not ignored.
    let gd = json!({"source":"aws.guardduty","detail-type":"GuardDuty Finding","detail":{}});
    assert!(handle(&w.cfg, &w.store, &scorer, &NoAlerts, gd)
        .await
        .is_err());
}

/// Alerts through the real aws-sdk-eventbridge client to a custom bus on moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_to_an_eventbridge_bus() {
    let w = world(&[]).await;
    let conf = w.s3.sdk_config();
    let eb = aws_sdk_eventbridge::Client::new(&conf);
    let bus = w.s3.unique_bucket("alerts-bus");
    eb.create_event_bus().name(&bus).send().await.unwrap();
    let sink = EventBridgeSink::new(eb, &bus);
    let scorer = EmbeddedScorer::new(model());
    // 12 unusual pairs: two PutEvents calls.
    let csv: String = (0..12)
        .map(|i| format!("{ALICE},203.0.113.{i}\n"))
        .collect();
    w.s3.put(&w.data, CSV_KEY, csv.into_bytes()).await;
    let resp = handle(
        &w.cfg,
        &w.store,
        &scorer,
        &sink,
        sqs(&[("m1", s3_notification(&w.data, CSV_KEY))]),
    )
    .await
    .unwrap();
    assert_eq!(failures(&resp), Vec::<String>::new(), "{resp}");
    let alerts = lines(
        &w.s3
            .get(&w.data, &format!("alerts/{CSV_KEY}.jsonl"))
            .await
            .unwrap(),
    );
    assert_eq!(alerts.len(), 12);
}

/// A bus that does not exist: the object (and so its message) fails, naming the bus, and is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_to_a_missing_bus_fail_the_message() {
    let w = world(&[]).await;
    let sink = EventBridgeSink::new(
        aws_sdk_eventbridge::Client::new(&w.s3.sdk_config()),
        "no-such-bus",
    );
    w.s3.put(
        &w.data,
        CSV_KEY,
        format!("{ALICE},203.0.113.1\n").into_bytes(),
    )
    .await;
    let scorer = EmbeddedScorer::new(model());
    let started = std::time::Instant::now();
    let resp = handle(
        &w.cfg,
        &w.store,
        &scorer,
        &sink,
        sqs(&[("m1", s3_notification(&w.data, CSV_KEY))]),
    )
    .await
    .unwrap();
    assert_eq!(failures(&resp), vec!["m1".to_string()], "{resp}");
    // Not retried in vain: a missing bus is not transient.
    assert!(started.elapsed() < std::time::Duration::from_millis(1200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_definition_applies_to_cloudtrail_and_is_checked_on_finding_records() {
    let w = world(&[("ENTITY", "principal+event_source")]).await;
    let scorer = EmbeddedScorer::new(model());
    w.s3.put(&w.data, TRAIL_KEY, trail()).await;
    // The extractor ran with the default definition: its record says principal.
    w.s3.put(&w.data, FINDING_KEY, finding_record()).await;
    let ev: Value = serde_json::from_str(&s3_notification(&w.data, TRAIL_KEY)).unwrap();
    handle(&w.cfg, &w.store, &scorer, &NoAlerts, ev)
        .await
        .unwrap();
    let scores = lines(
        &w.s3
            .get(&w.data, &format!("scores/{TRAIL_KEY}.jsonl"))
            .await
            .unwrap(),
    );
    let entities: std::collections::BTreeSet<_> = scores
        .iter()
        .map(|l| l["entity"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        entities.into_iter().collect::<Vec<_>>(),
        [format!("{ALICE}|s3.amazonaws.com")]
    );
    let ev: Value = serde_json::from_str(&s3_notification(&w.data, FINDING_KEY)).unwrap();
    let e = handle(&w.cfg, &w.store, &scorer, &NoAlerts, ev)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(FINDING_KEY)
            && e.contains("entities are principal")
            && e.contains("ENTITY=principal+event_source"),
        "{e}"
    );
    assert!(w
        .s3
        .get(&w.data, &format!("scores/{FINDING_KEY}.jsonl"))
        .await
        .is_none());
}

/// Security Lake's published samples through the handler, when the sample data is there: each
/// object scored under its instance or principal and class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_security_lake_samples_through_the_handler() {
    let Some(samples) = ipsight_testkit::real_data(
        "aws-security-lake-ocsf-validation/samples",
        "ipcheck real_security_lake_samples_through_the_handler",
    ) else {
        return;
    };
    let w = world(&[]).await;
    let scorer = EmbeddedScorer::new(model());
    let objects = [
        (
            VPC_KEY,
            "1.0.0-rc.2/VPC_FLOW/example1.gz.parquet",
            VPC_INSTANCE,
            4001,
        ),
        (
            DNS_KEY,
            "1.0.0-rc.2/ROUTE53/example3.json.gz.parquet",
            DNS_INSTANCE,
            4003,
        ),
        (
            CT_KEY,
            "1.0.0-rc.2/CLOUD_TRAIL/account_change/AttachRolePolicy.test.gz.parquet",
            ROLE,
            3001,
        ),
    ];
    for (key, rel, entity, class) in objects {
        w.s3.put(&w.lake, key, std::fs::read(samples.join(rel)).unwrap())
            .await;
        let ev: Value = serde_json::from_str(&s3_notification(&w.lake, key)).unwrap();
        handle(&w.cfg, &w.store, &scorer, &NoAlerts, ev)
            .await
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        let out =
            w.s3.get(&w.data, &format!("scores/{key}.jsonl"))
                .await
                .unwrap();
        let recs = lines(&out);
        assert_eq!(recs.len(), 1, "{rel}");
        assert_eq!(
            (recs[0]["entity"].as_str(), recs[0]["class_uid"].as_u64()),
            (Some(entity), Some(class)),
            "{rel}"
        );
        assert_eq!(recs[0]["alert"], false, "{rel}: {}", recs[0]);
    }
}

/// Issue 11: with the model's baseline sidecar beside it in S3, built from the configuration as the
/// Lambda's main does, every score record, alert and EventBridge alert detail carries the combined
/// percentile, the embedding's, the history level, the nearest known prefixes and the sentence;
/// alerting uses the combined percentile; a principal the baseline has never seen is
/// `history: new_principal`, counted, and alerts by NEW_PRINCIPALS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_score_and_alert_says_why_with_the_baseline_sidecar() {
    let (model, det) = ipsight_testkit::tiny_hybrid(7);
    let s3 = S3Server::start().await;
    let data = s3.unique_bucket("why");
    s3.create_bucket(&data).await;
    let mut m = Vec::new();
    model.write_to(&mut m).unwrap();
    s3.put(&data, "models/current/model.ipsm", m).await;
    let mut b = Vec::new();
    det.write_to(&mut b).unwrap();
    s3.put(&data, "models/current/model.ipsb", b).await;
    let key = "infer/tuples/why.csv";
    s3.put(
        &data,
        key,
        b"user3,10.3.0.2\nuser3,10.3.0.200\nuser3,198.51.100.9\nuser4,2001:db8:4::99\nAIDANEWPRINCIPAL,10.3.0.2\nAIDANEWPRINCIPAL,10.3.0.3\n"
            .to_vec(),
    )
    .await;
    let store = S3Store::from_conf(&s3.sdk_config());
    let event: Value = serde_json::from_str(&s3_notification(&data, key)).unwrap();

    for policy in ["alert", "ignore"] {
        let model_uri = format!("s3://{data}/models/current/model.ipsm");
        let cfg = Config::from_lookup(|k| match k {
            "OUTPUT_BUCKET" => Some(data.clone()),
            "ALERT_MIN_PERCENTILE" => Some("99.5".into()),
            "MODEL_URI" => Some(model_uri.clone()),
            "NEW_PRINCIPALS" => Some(policy.into()),
            _ => None,
        })
        .unwrap();
        let scorer = cfg.scorer.build(&s3.sdk_config()).await.unwrap();
        scorer.check_entity(cfg.entity).unwrap();
        let sink = Recorder::default();
        let resp = handle(&cfg, &store, &scorer, &sink, event.clone())
            .await
            .unwrap();
        assert_eq!(resp["new_principal_pairs"], 2, "{resp}");
        assert_eq!(resp["pairs"], 6, "{resp}");
        let recs = lines(&s3.get(&data, &format!("scores/{key}.jsonl")).await.unwrap());
        assert_eq!(recs.len(), 6);
        for r in &recs {
            for f in ["unusual_percentile", "embedding_percentile", "history"] {
                assert!(!r[f].is_null(), "{f} in {r}");
            }
            let why = r["explanation"].as_str().unwrap();
            assert!(!why.is_empty() && !why.contains("NaN"), "{r}");
            // The record is what the detector says about the pair.
            let ip: std::net::IpAddr = r["ip"].as_str().unwrap().parse().unwrap();
            let e = r["entity"].as_str().unwrap();
            let want = det.report(
                e,
                ip,
                model.score_ip(e, ip).unwrap(),
                policy.parse().unwrap(),
            );
            assert_eq!(
                r["unusual_percentile"],
                json!(want.unusual_percentile),
                "{r}"
            );
            assert_eq!(r["history"], json!(want.history), "{r}");
            assert_eq!(r["explanation"], json!(want.explanation), "{r}");
        }
        let seen = by_pair(&recs, "user3", "10.3.0.2");
        assert_eq!(seen["history"], "ip");
        assert!(seen.get("nearest").is_none(), "{seen}");
        let stranger = by_pair(&recs, "user3", "198.51.100.9");
        assert_eq!(stranger["history"], "none");
        assert!(
            stranger["explanation"]
                .as_str()
                .unwrap()
                .contains("never seen from this /16"),
            "{stranger}"
        );
        assert!(
            !stranger["nearest"].as_array().unwrap().is_empty(),
            "{stranger}"
        );
        assert_eq!(by_pair(&recs, "user3", "10.3.0.200")["history"], "/24");
        assert_eq!(by_pair(&recs, "user4", "2001:db8:4::99")["history"], "/64");
        let new = by_pair(&recs, "AIDANEWPRINCIPAL", "10.3.0.2");
        assert_eq!(new["history"], "new_principal");
        // Alerting follows the combined percentile for known principals, the policy for new ones.
        for r in &recs {
            let want = if r["history"] == "new_principal" {
                policy == "alert"
            } else {
                r["unusual_percentile"].as_f64().unwrap() >= 99.5
            };
            assert_eq!(r["alert"], want, "{r}");
        }
        let alerts = sink.0.lock().unwrap().clone();
        assert_eq!(
            alerts.len(),
            recs.iter().filter(|r| r["alert"] == true).count()
        );
        if policy == "alert" {
            let a = alerts
                .iter()
                .find(|a| a.record.entity == "AIDANEWPRINCIPAL")
                .expect("a new principal alerts by default");
            assert_eq!(a.record.unusual_percentile, Some(100.0));
            // The EventBridge entry's detail carries the why.
            let entry =
                EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&s3.sdk_config()), "bus")
                    .entry(a)
                    .unwrap();
            let detail: Value = serde_json::from_str(entry.detail().unwrap()).unwrap();
            assert_eq!(detail["history"], "new_principal", "{detail}");
            assert!(detail["explanation"]
                .as_str()
                .unwrap()
                .contains("new principal"));
            assert!(!detail["embedding_percentile"].is_null(), "{detail}");
            let file = lines(&s3.get(&data, &format!("alerts/{key}.jsonl")).await.unwrap());
            assert!(file.iter().any(|l| l["history"] == "new_principal"));
        } else {
            assert!(alerts.iter().all(|a| a.record.entity != "AIDANEWPRINCIPAL"));
        }
    }
}
