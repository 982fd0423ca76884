//! The backfill against moto_server S3 with the real SDK client (listing, pagination, key rules,
//! window edges, the manifest written), and S3 Control requests as the real SDK client serialises
//! them, captured at the HTTP layer and checked with botocore's `s3control` service model (moto has
//! no Batch Operations jobs, so nothing answers them for real: see the README).
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_sdk_s3control::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::body::SdkBody;
use ipsight_backfill::{backfill, describe_job, encode_key, BackfillError, Options, Window};
use ipsight_core::time::day_number;
use ipsight_testkit::S3Server;

const ACCT: &str = "111122223333";
const FUNCTION: &str =
    "arn:aws:lambda:us-east-1:111122223333:function:ipsight-PrepareCloudTrailFunction-abc";
const ROLE: &str = "arn:aws:iam::111122223333:role/ipsight-BackfillRole-xyz";

fn log_key(
    root: &str,
    acct: &str,
    region: &str,
    folder_day: &str,
    stamp: &str,
    id: &str,
) -> String {
    format!(
        "{root}{acct}/CloudTrail/{region}/{}/{acct}_CloudTrail_{region}_{stamp}_{id}.json.gz",
        folder_day.replace('-', "/")
    )
}

/// The trail: what must be in the manifest, and what must not.
struct Trail {
    bucket: String,
    expected: BTreeSet<String>,
    expected_bytes: u64,
}

/// Window 2026-03-02..2026-03-31 (`--since 30d --until 2026-03-31`).
async fn trail(s3: &S3Server) -> Trail {
    let bucket = s3.unique_bucket("trail");
    s3.create_bucket(&bucket).await;
    let mut puts: Vec<(String, Vec<u8>)> = Vec::new();
    let mut expected = BTreeSet::new();
    let mut expected_bytes = 0;
    let mut keep = |k: String, body: Vec<u8>, puts: &mut Vec<(String, Vec<u8>)>| {
        expected_bytes += body.len() as u64;
        expected.insert(k.clone());
        puts.push((k, body));
    };
    let std = "AWSLogs/";
    // Window edges, by the day in the file name.
    keep(
        log_key(
            std,
            ACCT,
            "us-east-1",
            "2026-03-02",
            "20260302T0005Z",
            "first",
        ),
        b"a".to_vec(),
        &mut puts,
    );
    keep(
        log_key(
            std,
            ACCT,
            "eu-west-1",
            "2026-03-31",
            "20260331T2355Z",
            "last",
        ),
        b"bb".to_vec(),
        &mut puts,
    );
    puts.push((
        log_key(
            std,
            ACCT,
            "us-east-1",
            "2026-03-01",
            "20260301T2355Z",
            "daybefore",
        ),
        b"x".to_vec(),
    ));
    puts.push((
        log_key(
            std,
            ACCT,
            "eu-west-1",
            "2026-04-01",
            "20260401T0005Z",
            "dayafter",
        ),
        b"x".to_vec(),
    ));
    // The folder's date and the file name's stamp across midnight: the file name decides (it dates
    // the pair file the preparer writes).
    keep(
        log_key(
            std,
            ACCT,
            "eu-west-1",
            "2026-04-01",
            "20260331T2359Z",
            "straddle-in",
        ),
        b"ccc".to_vec(),
        &mut puts,
    );
    puts.push((
        log_key(
            std,
            ACCT,
            "us-east-1",
            "2026-03-02",
            "20260301T2359Z",
            "straddle-out",
        ),
        b"x".to_vec(),
    ));
    // More than one page of a listing (1,000 keys) on one day of one region.
    for i in 0..1_050 {
        keep(
            log_key(
                std,
                ACCT,
                "us-east-1",
                "2026-03-15",
                "20260315T1200Z",
                &format!("bulk{i:05}"),
            ),
            vec![b'z'; 10],
            &mut puts,
        );
    }
    // Long before the window: never listed at all.
    puts.push((
        log_key(
            std,
            ACCT,
            "us-east-1",
            "2025-06-01",
            "20250601T1200Z",
            "old",
        ),
        b"x".to_vec(),
    ));
    // An organisation trail, with the org id level.
    keep(
        log_key(
            "AWSLogs/o-abc123defg/",
            "444455556666",
            "ap-south-1",
            "2026-03-10",
            "20260310T0800Z",
            "org",
        ),
        b"dddd".to_vec(),
        &mut puts,
    );
    // A trail prefix whose keys need URL-encoding in the manifest.
    keep(
        log_key(
            "my trail+logs/é/AWSLogs/",
            ACCT,
            "us-east-1",
            "2026-03-20",
            "20260320T0800Z",
            "enc",
        ),
        b"eeeee".to_vec(),
        &mut puts,
    );
    // Digests, Insights, another service's logs, a console folder object, a stray file.
    puts.push((format!("AWSLogs/{ACCT}/CloudTrail-Digest/us-east-1/2026/03/10/{ACCT}_CloudTrail-Digest_us-east-1_t_us-east-1_20260310T0800Z.json.gz"), b"x".to_vec()));
    puts.push((format!("AWSLogs/{ACCT}/CloudTrail-Insight/us-east-1/2026/03/10/{ACCT}_CloudTrail-Insight_us-east-1_20260310T0800Z_i.json.gz"), b"x".to_vec()));
    puts.push((
        format!("AWSLogs/{ACCT}/GuardDuty/us-east-1/2026/03/10/f.jsonl.gz"),
        b"x".to_vec(),
    ));
    puts.push((
        format!("AWSLogs/{ACCT}/CloudTrail/us-east-1/2026/03/11/"),
        Vec::new(),
    ));
    puts.push((
        format!("AWSLogs/{ACCT}/CloudTrail/us-east-1/2026/03/11/notes.txt"),
        b"x".to_vec(),
    ));
    puts.push(("README.txt".to_owned(), b"x".to_vec()));
    for chunk in puts.chunks(64) {
        futures::future::join_all(chunk.iter().map(|(k, b)| s3.put(&bucket, k, b.clone()))).await;
    }
    Trail {
        bucket,
        expected,
        expected_bytes,
    }
}

fn window() -> Window {
    Window::parse("30d", Some("2026-03-31"), day_number("2026-12-06").unwrap()).unwrap()
}

/// A request as the SDK sent it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// The HTTP layer of the S3 Control client: records every request and answers with the documented
/// response shapes (a `CreateJob` answer's job id follows the idempotency token, as S3 Control's
/// does: the same token is the same job).
#[derive(Debug, Clone, Default)]
struct S3ControlRecorder(Arc<Mutex<Vec<Recorded>>>);

impl HttpConnector for S3ControlRecorder {
    fn call(&self, req: HttpRequest) -> HttpConnectorFuture {
        let body = String::from_utf8(req.body().bytes().unwrap_or_default().to_vec()).unwrap();
        let rec = Recorded {
            method: req.method().to_owned(),
            uri: req.uri().to_owned(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            body,
        };
        let xml = if rec.method == "POST" {
            let token = rec
                .body
                .split("<ClientRequestToken>")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap();
            let id = format!("job-{}", &token[token.len() - 12..]);
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><CreateJobResult xmlns=\"http://awss3control.amazonaws.com/doc/2018-08-20/\"><JobId>{id}</JobId></CreateJobResult>")
        } else {
            let id = rec.uri.rsplit('/').next().unwrap().to_owned();
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><DescribeJobResult xmlns=\"http://awss3control.amazonaws.com/doc/2018-08-20/\"><Job><JobId>{id}</JobId><Status>Active</Status><Priority>10</Priority><ProgressSummary><TotalNumberOfTasks>1056</TotalNumberOfTasks><NumberOfTasksSucceeded>1000</NumberOfTasksSucceeded><NumberOfTasksFailed>2</NumberOfTasksFailed><Timers><ElapsedTimeInActiveSeconds>42</ElapsedTimeInActiveSeconds></Timers></ProgressSummary><Report><Bucket>arn:aws:s3:::data</Bucket><Format>Report_CSV_20180820</Format><Enabled>true</Enabled><Prefix>backfill/report</Prefix><ReportScope>FailedTasksOnly</ReportScope></Report></Job></DescribeJobResult>")
        };
        self.0.lock().unwrap().push(rec);
        let resp = HttpResponse::new(200u16.try_into().unwrap(), SdkBody::from(xml));
        HttpConnectorFuture::ready(Ok(resp))
    }
}

impl HttpClient for S3ControlRecorder {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.clone().into_shared()
    }
}

fn control(rec: &S3ControlRecorder) -> aws_sdk_s3control::Client {
    let conf = aws_sdk_s3control::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .http_client(rec.clone())
        .build();
    aws_sdk_s3control::Client::from_conf(conf)
}

fn opts(bucket: &str, manifest_bucket: &str) -> Options {
    Options {
        bucket: bucket.to_owned(),
        manifest: Some((manifest_bucket.to_owned(), "backfill/".to_owned())),
        function_arn: Some(FUNCTION.to_owned()),
        role_arn: Some(ROLE.to_owned()),
        account_id: Some(ACCT.to_owned()),
        region: Some("us-east-1".to_owned()),
        ..Options::default()
    }
}

/// botocore parses the body the Rust SDK sent with the operation's input shape, validates the
/// parameters, serialises them again and must get the same XML elements back (an element botocore
/// does not know would be dropped by the parse and show up here).
fn botocore_checks(op: &str, rec: &Recorded) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("req.json");
    let req = serde_json::json!({"op": op, "method": rec.method, "uri": rec.uri,
        "headers": rec.headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(), "body": rec.body});
    std::fs::write(&file, req.to_string()).unwrap();
    let script = r#"
import json, sys, urllib.parse, xml.etree.ElementTree as ET
import botocore.session
from botocore.parsers import RestXMLParser
from botocore.serialize import RestXMLSerializer
from botocore.validate import validate_parameters
req = json.load(open(sys.argv[1]))
model = botocore.session.get_session().get_service_model("s3control")
op = model.operation_model(req["op"])
path = urllib.parse.urlsplit(req["uri"]).path
assert req["method"] == op.http["method"], (req["method"], op.http)
headers = {k.lower(): v for k, v in req["headers"].items()}
shape = op.input_shape
if req["body"]:
    params = RestXMLParser().parse({"body": req["body"].encode(), "headers": headers, "status_code": 200}, shape)
else:
    params = {"AccountId": headers["x-amz-account-id"]}
    params["JobId"] = path.rsplit("/", 1)[1]
params.pop("ResponseMetadata", None)
assert params.get("AccountId") == headers.get("x-amz-account-id"), params
validate_parameters(params, shape)
def enums(v, s, path):  # botocore's validator does not check enum values
    if s.type_name == "structure":
        for k, x in v.items(): enums(x, s.members[k], path + "." + k)
    elif s.type_name == "list":
        for x in v: enums(x, s.member, path)
    elif s.type_name == "string" and s.enum:
        assert v in s.enum, (path, v, s.enum)
enums(params, shape, req["op"])
again = RestXMLSerializer().serialize_to_request(params, op)
assert again["url_path"].split("?")[0] == path, (again["url_path"], path)
def canon(e):
    return (e.tag.split("}")[-1], (e.text or "").strip(), sorted(canon(c) for c in e))
if req["body"]:
    sent, ours = ET.fromstring(req["body"]), ET.fromstring(again["body"])
    assert canon(sent) == canon(ours), (canon(sent), canon(ours))
print(json.dumps(params, default=str))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, file.to_str().unwrap()])
        .output()
        .expect("python3 with botocore");
    assert!(
        out.status.success(),
        "botocore refuses the {op} request: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        rec.body
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn backfill_writes_the_manifest_and_creates_one_job() {
    let s3 = S3Server::start().await;
    let t = trail(&s3).await;
    let data = s3.unique_bucket("data");
    s3.create_bucket(&data).await;
    let client = s3.client();
    let rec = S3ControlRecorder::default();
    let ctl = control(&rec);

    let out = backfill(&client, Some(&ctl), &opts(&t.bucket, &data), window())
        .await
        .unwrap();
    let s = &out.summary;
    assert_eq!(s.objects, t.expected.len() as u64);
    assert_eq!(s.bytes, t.expected_bytes);
    assert_eq!(
        (s.first_day.as_str(), s.last_day.as_str(), s.window_days),
        ("2026-03-02", "2026-03-31", 30)
    );
    assert_eq!(s.days_with_objects, 5, "{s:?}");
    // Counted, never silent: what was looked at and left out.
    assert_eq!(s.skipped.get("outside_window"), Some(&3), "{s:?}");
    assert_eq!(s.skipped.get("folder_or_empty"), Some(&1), "{s:?}");
    assert_eq!(s.skipped.get("not_cloudtrail_log"), Some(&2), "{s:?}");
    assert_eq!(s.skipped_prefixes.get("digest"), Some(&1), "{s:?}");
    assert_eq!(s.skipped_prefixes.get("insight"), Some(&1), "{s:?}");
    assert_eq!(s.skipped_prefixes.get("other_service"), Some(&1), "{s:?}");

    // The manifest: exactly the expected keys, one `bucket,key` line each, keys URL-encoded.
    let uri = out.manifest.clone().unwrap();
    let key = uri.strip_prefix(&format!("s3://{data}/")).unwrap();
    assert!(
        key.starts_with("backfill/ipsight-backfill-") && key.ends_with("/manifest.csv"),
        "{key}"
    );
    let body = String::from_utf8(s3.get(&data, key).await.unwrap()).unwrap();
    let lines: BTreeSet<String> = body.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), body.lines().count(), "no duplicate lines");
    let want: BTreeSet<String> = t
        .expected
        .iter()
        .map(|k| format!("{},{}", t.bucket, encode_key(k)))
        .collect();
    assert_eq!(lines, want);
    assert!(
        body.contains(&format!("{},my%20trail%2Blogs/%C3%A9/AWSLogs/", t.bucket)),
        "{body:.300}"
    );
    assert!(!body.contains("Digest") && !body.contains("Insight") && !body.contains("dayafter"));
    // Nothing else was written: the manifest only (the report is S3's to write).
    assert_eq!(s3.keys(&data).await, vec![key.to_owned()]);

    // The CreateJob request, as sent, against botocore's model.
    let reqs = rec.0.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1);
    assert!(
        reqs[0]
            .uri
            .contains("111122223333.s3-control.us-east-1.amazonaws.com/v20180820/jobs"),
        "{}",
        reqs[0].uri
    );
    let p = botocore_checks("CreateJob", &reqs[0]);
    assert_eq!(p["AccountId"], ACCT);
    assert_eq!(p["ConfirmationRequired"], false);
    assert_eq!(p["Operation"]["LambdaInvoke"]["FunctionArn"], FUNCTION);
    assert_eq!(
        p["Operation"]["LambdaInvoke"]["InvocationSchemaVersion"],
        "2.0"
    );
    assert_eq!(p["Report"]["ReportScope"], "FailedTasksOnly");
    assert_eq!(p["Report"]["Enabled"], true);
    assert_eq!(p["Report"]["Bucket"], format!("arn:aws:s3:::{data}"));
    assert_eq!(
        p["Manifest"]["Spec"]["Format"],
        "S3BatchOperations_CSV_20180820"
    );
    assert_eq!(
        p["Manifest"]["Spec"]["Fields"],
        serde_json::json!(["Bucket", "Key"])
    );
    assert_eq!(
        p["Manifest"]["Location"]["ObjectArn"],
        format!("arn:aws:s3:::{data}/{key}")
    );
    let head = client
        .head_object()
        .bucket(&data)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        p["Manifest"]["Location"]["ETag"],
        head.e_tag().unwrap().trim_matches('"')
    );
    assert_eq!(p["RoleArn"], ROLE);
    assert_eq!(
        p["ClientRequestToken"],
        out.client_request_token.clone().unwrap()
    );

    // A re-run over the same trail: the same manifest object and the same token (S3 Control answers
    // a repeated token with the job it already created).
    let again = backfill(&client, Some(&ctl), &opts(&t.bucket, &data), window())
        .await
        .unwrap();
    assert_eq!(again.manifest, out.manifest);
    assert_eq!(again.client_request_token, out.client_request_token);
    assert_eq!(again.job_id, out.job_id);
    let reqs = rec.0.lock().unwrap().clone();
    assert_eq!(reqs[1].body, reqs[0].body);

    // A different window is a different job.
    let w = Window::parse("12d", Some("2026-03-31"), 0).unwrap();
    let other = backfill(&client, Some(&ctl), &opts(&t.bucket, &data), w)
        .await
        .unwrap();
    assert_ne!(other.client_request_token, out.client_request_token);
    assert_eq!(other.summary.objects, 3, "{:?}", other.summary);

    // Progress.
    let st = describe_job(&ctl, ACCT, out.job_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (
            st.status.as_str(),
            st.tasks_total,
            st.tasks_succeeded,
            st.tasks_failed
        ),
        ("Active", 1056, 1000, 2)
    );
    assert_eq!(st.report.as_deref(), Some("s3://data/backfill/report"));
    let reqs = rec.0.lock().unwrap().clone();
    let d = reqs.last().unwrap();
    assert_eq!(d.method, "GET");
    botocore_checks("DescribeJob", d);
}

#[tokio::test]
async fn a_manifest_location_the_preparer_would_read_is_refused_before_anything_is_done() {
    let s3 = S3Server::start().await;
    let bucket = s3.unique_bucket("trail");
    s3.create_bucket(&bucket).await;
    let k = log_key(
        "AWSLogs/",
        ACCT,
        "us-east-1",
        "2026-03-10",
        "20260310T0000Z",
        "a",
    );
    s3.put(&bucket, &k, b"x".to_vec()).await;
    let rec = S3ControlRecorder::default();
    let ctl = control(&rec);
    for (trigger, manifest_prefix) in [
        ("", "backfill/"),
        ("AWSLogs/", "AWSLogs/backfill/"),
        ("AWSLogs/", ""),
    ] {
        let mut o = opts(&bucket, &bucket);
        o.trigger_prefix = trigger.to_owned();
        o.manifest = Some((bucket.clone(), manifest_prefix.to_owned()));
        let e = backfill(&s3.client(), Some(&ctl), &o, window())
            .await
            .unwrap_err();
        assert!(matches!(e, BackfillError::Config(_)), "{e}");
        assert!(e.to_string().contains("infinite loop"), "{e}");
    }
    assert_eq!(s3.keys(&bucket).await, vec![k.clone()]);
    assert!(rec.0.lock().unwrap().is_empty());
    // Outside the preparer's trigger prefix, the trail bucket is fine.
    let mut o = opts(&bucket, &bucket);
    o.trigger_prefix = "AWSLogs/".into();
    o.manifest = Some((bucket.clone(), "backfill/".into()));
    let out = backfill(&s3.client(), Some(&ctl), &o, window())
        .await
        .unwrap();
    assert_eq!(out.summary.objects, 1);

    // Missing or wrong job settings are named before anything is listed or written.
    let mut o = opts(&bucket, "elsewhere");
    o.function_arn = Some("arn:aws:lambda:eu-west-1:111122223333:function:f".into());
    let e = backfill(&s3.client(), Some(&ctl), &o, window())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--function-arn") && e.contains("eu-west-1"),
        "{e}"
    );
    let mut o = opts(&bucket, "elsewhere");
    o.role_arn = None;
    let e = backfill(&s3.client(), Some(&ctl), &o, window())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--role-arn"), "{e}");
    let mut o = opts(&bucket, "elsewhere");
    o.account_id = Some("12345".into());
    let e = backfill(&s3.client(), Some(&ctl), &o, window())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--account-id"), "{e}");
    // An empty window is an error naming the place and the counts, not an empty job.
    let o = opts(&bucket, "elsewhere");
    let w = Window::parse("2d", Some("2026-01-05"), 0).unwrap();
    let e = backfill(&s3.client(), Some(&ctl), &o, w)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no CloudTrail log objects from 2026-01-04 to 2026-01-05"),
        "{e}"
    );
}

/// An S3 Inventory report (CSV, gzipped, keys URL-encoded) instead of a listing: the same rules.
#[tokio::test]
async fn an_inventory_report_is_read_with_the_same_rules() {
    let s3 = S3Server::start().await;
    let t = trail(&s3).await;
    let inv = s3.unique_bucket("inventory");
    s3.create_bucket(&inv).await;
    let mut keys = s3.keys(&t.bucket).await;
    // Another bucket's row and an old version are counted, not kept.
    keys.push("AWSLogs/other".into());
    let mut csv = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let enc: String = url_form_encode(k);
        let (bucket, latest) = match k.as_str() {
            "AWSLogs/other" => ("someone-else", "true"),
            _ => (t.bucket.as_str(), "true"),
        };
        let size = if k.ends_with('/') {
            0
        } else {
            s3.get(&t.bucket, k).await.map_or(0, |b| b.len())
        };
        writeln!(
            csv,
            "\"{bucket}\",\"{enc}\",\"v{i}\",\"{latest}\",\"false\",\"{size}\""
        )
        .unwrap();
    }
    let first_key = &keys[0];
    writeln!(
        csv,
        "\"{}\",\"{}\",\"old\",\"false\",\"false\",\"5\"",
        t.bucket,
        url_form_encode(first_key)
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&csv).unwrap();
    let data_key = format!("{}/inv/data/part-1.csv.gz", t.bucket);
    s3.put(&inv, &data_key, gz.finish().unwrap()).await;
    let manifest = serde_json::json!({
        "sourceBucket": t.bucket, "destinationBucket": format!("arn:aws:s3:::{inv}"), "version": "2016-11-30",
        "creationTimestamp": "1743465600000", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size",
        "files": [{"key": data_key, "size": 1, "MD5checksum": "x"}]
    });
    s3.put(&inv, "inv/manifest.json", manifest.to_string().into_bytes())
        .await;
    let data = s3.unique_bucket("data");
    s3.create_bucket(&data).await;
    let rec = S3ControlRecorder::default();
    let mut o = opts(&t.bucket, &data);
    o.inventory = Some((inv.clone(), "inv/manifest.json".into()));
    let out = backfill(&s3.client(), Some(&control(&rec)), &o, window())
        .await
        .unwrap();
    assert_eq!(out.summary.objects, t.expected.len() as u64);
    assert_eq!(out.summary.bytes, t.expected_bytes);
    assert_eq!(out.summary.skipped.get("other_bucket"), Some(&1));
    assert_eq!(
        out.summary.skipped.get("delete_marker_or_old_version"),
        Some(&1)
    );
    // Listing skips digest trees without listing them; an inventory has their keys: same rule.
    assert_eq!(
        out.summary.skipped.get("digest"),
        Some(&1),
        "{:?}",
        out.summary
    );
    let key = out
        .manifest
        .unwrap()
        .rsplit_once(&format!("s3://{data}/"))
        .unwrap()
        .1
        .to_owned();
    let body = String::from_utf8(s3.get(&data, &key).await.unwrap()).unwrap();
    let want: BTreeSet<String> = t
        .expected
        .iter()
        .map(|k| format!("{},{}", t.bucket, encode_key(k)))
        .collect();
    assert_eq!(
        body.lines().map(str::to_owned).collect::<BTreeSet<_>>(),
        want
    );

    // An inventory of another bucket, or in another format, is refused by name.
    let mut o2 = opts("not-the-source", &data);
    o2.inventory = o.inventory.clone();
    let e = backfill(&s3.client(), Some(&control(&rec)), &o2, window())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("inv/manifest.json") && e.contains("not of --bucket"),
        "{e}"
    );
    let mut m = manifest.clone();
    m["fileFormat"] = "Parquet".into();
    s3.put(&inv, "inv/parquet.json", m.to_string().into_bytes())
        .await;
    o.inventory = Some((inv.clone(), "inv/parquet.json".into()));
    let e = backfill(&s3.client(), Some(&control(&rec)), &o, window())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("only CSV"), "{e}");
}

/// S3 Inventory's CSV key encoding: form encoding (a space is `+`).
fn url_form_encode(k: &str) -> String {
    let mut out = String::new();
    for b in k.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
