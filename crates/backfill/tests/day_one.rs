//! Day one, end to end as far as one machine goes: a trail with history → `backfill` writes the
//! manifest (S3 Control captured at the HTTP layer) → each manifest line is handed to the preparer's
//! own handler as an S3 Batch Operations task (schema 2.0, the documented fixture's shape; the key
//! as the manifest holds it, URL-encoded) → the pair files it wrote are read by the reader
//! `ipsight train` uses. What S3 itself does between the manifest and the invocations (reading the
//! manifest with BackfillRole, batching tasks, the completion report) is not emulated anywhere.
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::sync::{Arc, Mutex};

use aws_sdk_s3control::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::body::SdkBody;
use ipsight_aws::S3Store;
use ipsight_backfill::{backfill, Options, Window};
use ipsight_model::tuples::read_pair_log;
use ipsight_model::tuples::Malformed;
use ipsight_testkit::S3Server;
use serde_json::{json, Value};

const ACCT: &str = "111122223333";

/// Answers `CreateJob` with a job id; counts the calls.
#[derive(Debug, Clone, Default)]
struct CreateJobAnswer(Arc<Mutex<u32>>);

impl HttpConnector for CreateJobAnswer {
    fn call(&self, _req: HttpRequest) -> HttpConnectorFuture {
        *self.0.lock().unwrap() += 1;
        let xml = "<CreateJobResult><JobId>job-day-one</JobId></CreateJobResult>";
        HttpConnectorFuture::ready(Ok(HttpResponse::new(
            200u16.try_into().unwrap(),
            SdkBody::from(xml),
        )))
    }
}

impl HttpClient for CreateJobAnswer {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.clone().into_shared()
    }
}

fn gz(records: &[(&str, &str, &str)]) -> Vec<u8> {
    let recs: Vec<Value> = records
        .iter()
        .map(|(t, p, ip)| json!({"eventTime": t, "userIdentity": {"type": "IAMUser", "principalId": p}, "sourceIPAddress": ip}))
        .collect();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(json!({ "Records": recs }).to_string().as_bytes())
        .unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn a_backfilled_history_becomes_pair_files_the_trainer_reads() {
    let s3 = S3Server::start().await;
    let (tb, db) = (s3.unique_bucket("trail"), s3.unique_bucket("data"));
    s3.create_bucket(&tb).await;
    s3.create_bucket(&db).await;
    // A trail key prefix that needs URL-encoding, three days, and a day outside the window.
    let root = format!("org trail+1/AWSLogs/{ACCT}/CloudTrail/eu-west-1/");
    let key = |day: &str, n: u32| {
        format!(
            "{root}{}/{ACCT}_CloudTrail_eu-west-1_{}T{n:02}00Z_x{n}.json.gz",
            day.replace('-', "/"),
            day.replace('-', "")
        )
    };
    let objects = [
        (
            key("2026-03-01", 9),
            gz(&[("2026-03-01T09:00:00Z", "AIDAOLD", "203.0.113.9")]),
        ),
        (
            key("2026-03-02", 8),
            gz(&[
                ("2026-03-02T08:01:00Z", "AIDAALICE", "198.51.100.7"),
                ("2026-03-02T08:05:00Z", "AIDAALICE", "198.51.100.7"),
                ("2026-03-02T08:06:00Z", "AIDABOB", "192.0.2.44"),
            ]),
        ),
        (
            key("2026-03-03", 10),
            gz(&[("2026-03-03T10:00:00Z", "AIDAALICE", "198.51.100.7")]),
        ),
        (
            key("2026-03-04", 11),
            gz(&[
                ("2026-03-04T11:00:00Z", "AIDABOB", "192.0.2.44"),
                ("2026-03-04T11:30:00Z", "AIDABOB", "AWS Internal"),
            ]),
        ),
    ];
    for (k, b) in &objects {
        s3.put(&tb, k, b.clone()).await;
    }

    let rec = CreateJobAnswer::default();
    let control = aws_sdk_s3control::Client::from_conf(
        aws_sdk_s3control::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .http_client(rec.clone())
            .build(),
    );
    let opts = Options {
        bucket: tb.clone(),
        manifest: Some((db.clone(), "backfill/".into())),
        function_arn: Some(format!("arn:aws:lambda:eu-west-1:{ACCT}:function:prep")),
        role_arn: Some(format!("arn:aws:iam::{ACCT}:role/backfill")),
        account_id: Some(ACCT.into()),
        region: Some("eu-west-1".into()),
        ..Options::default()
    };
    let window = Window::parse("3d", Some("2026-03-04"), 0).unwrap();
    let out = backfill(&s3.client(), Some(&control), &opts, window)
        .await
        .unwrap();
    assert_eq!(out.summary.objects, 3);
    assert_eq!(out.job_id.as_deref(), Some("job-day-one"));
    assert_eq!(*rec.0.lock().unwrap(), 1);

    // S3 Batch Operations' part: one task per manifest line, bucket and key as written there.
    let manifest_key = out
        .manifest
        .unwrap()
        .strip_prefix(&format!("s3://{db}/"))
        .unwrap()
        .to_owned();
    let manifest = String::from_utf8(s3.get(&db, &manifest_key).await.unwrap()).unwrap();
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/prepare-cloudtrail/s3-batch-operations-2.0.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut invocation = fixture.clone();
    invocation["tasks"] = manifest
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let (bucket, key) = line.split_once(',').unwrap();
            let mut t = fixture["tasks"][0].clone();
            t["taskId"] = json!(format!("t{i}"));
            t["s3Bucket"] = json!(bucket);
            t["s3Key"] = json!(key);
            t
        })
        .collect();
    let cfg = prepare_cloudtrail::Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some(db.clone()),
        "INPUT_BUCKET" => Some(tb.clone()),
        "INPUT_PREFIX" => Some("org trail+1/AWSLogs/".into()),
        "OUTPUTS" => Some("tuples,pairs".into()),
        _ => None,
    })
    .unwrap();
    let store = S3Store::from_conf(&s3.sdk_config());
    let resp = prepare_cloudtrail::handle(&cfg, &store, invocation)
        .await
        .unwrap();
    let results = resp["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in results {
        assert_eq!(r["resultCode"], "Succeeded", "{resp}");
        assert!(
            r["resultString"].as_str().unwrap().starts_with("written:"),
            "{resp}"
        );
    }

    // The pair files, one per object under its day, read as `ipsight train --train` reads them.
    let pair_keys: Vec<String> = s3
        .keys(&db)
        .await
        .into_iter()
        .filter(|k| k.starts_with("pairs/objects/"))
        .collect();
    let days: Vec<&str> = pair_keys
        .iter()
        .map(|k| &k["pairs/objects/dt=".len().."pairs/objects/dt=".len() + 10])
        .collect();
    assert_eq!(days, ["2026-03-02", "2026-03-03", "2026-03-04"]);
    let mut events: BTreeMap<String, u64> = BTreeMap::new();
    for k in &pair_keys {
        let body = s3.get(&db, k).await.unwrap();
        assert!(body.starts_with(b"entity,ip,events,first_seen,last_seen\n"));
        let (_log, stats) = read_pair_log(BufReader::new(&body[..]), Malformed::Fail).unwrap();
        assert_eq!(stats.skipped, 0);
        for line in String::from_utf8(body).unwrap().lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            *events.entry(format!("{},{}", f[0], f[1])).or_default() +=
                f[2].parse::<u64>().unwrap();
        }
    }
    assert_eq!(
        events,
        BTreeMap::from([
            ("AIDAALICE,198.51.100.7".to_owned(), 3),
            ("AIDABOB,192.0.2.44".to_owned(), 2),
        ]),
        "the day before the window (AIDAOLD) is not prepared; AWS Internal makes no pair"
    );
}
