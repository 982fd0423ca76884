//! `ipsight backfill` through the real binary against moto_server S3 (the SDK's own configuration
//! from the environment, as a user runs it). Creating the job needs S3 Control, which moto does not
//! emulate: the job request is tested in crates/backfill/tests/backfill.rs.
use std::process::{Command, Output};

use ipsight_testkit::S3Server;

fn ipsight(s3: &S3Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipsight"))
        .arg("backfill")
        .args(args)
        .env("AWS_ENDPOINT_URL", &s3.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("running ipsight")
}

fn ok(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "ipsight backfill failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const ACCT: &str = "111122223333";

fn key(day: &str, id: &str) -> String {
    format!(
        "AWSLogs/{ACCT}/CloudTrail/us-east-1/{}/{ACCT}_CloudTrail_us-east-1_{}T1200Z_{id}.json.gz",
        day.replace('-', "/"),
        day.replace('-', "")
    )
}

#[tokio::test]
async fn dry_run_counts_and_writes_nothing_and_bad_flags_are_named() {
    let s3 = S3Server::start().await;
    let bucket = s3.unique_bucket("trail");
    s3.create_bucket(&bucket).await;
    for (k, n) in [
        (key("2026-03-09", "before"), 3),
        (key("2026-03-10", "a"), 100),
        (key("2026-03-10", "b"), 20),
        (key("2026-03-12", "c"), 7),
        (key("2026-03-13", "after"), 3),
    ] {
        s3.put(&bucket, &k, vec![b'x'; n]).await;
    }
    let digest = format!("AWSLogs/{ACCT}/CloudTrail-Digest/us-east-1/2026/03/10/{ACCT}_CloudTrail-Digest_us-east-1_t_us-east-1_20260310T1200Z.json.gz");
    s3.put(&bucket, &digest, b"{}".to_vec()).await;
    let before = s3.keys(&bucket).await;

    let v = ok(&ipsight(
        &s3,
        &[
            "--bucket",
            &bucket,
            "--since",
            "3d",
            "--until",
            "2026-03-12",
            "--dry-run",
        ],
    ));
    assert_eq!(v["objects"], 3, "{v}");
    assert_eq!(v["bytes"], 127);
    assert_eq!(v["days_with_objects"], 2);
    assert_eq!(v["window_days"], 3);
    assert_eq!(v["first_day"], "2026-03-10");
    assert_eq!(v["last_day"], "2026-03-12");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["skipped"]["outside_window"], 2);
    assert_eq!(v["skipped_prefixes"]["digest"], 1);
    assert!(v.get("job_id").is_none() && v.get("manifest").is_none());
    // --prefix narrows; a date for --since works too.
    let v = ok(&ipsight(
        &s3,
        &[
            "--bucket",
            &bucket,
            "--prefix",
            &format!("AWSLogs/{ACCT}/CloudTrail/us-east-1/2026/03/12/"),
            "--since",
            "2026-03-01",
            "--until",
            "2026-03-31",
            "--dry-run",
        ],
    ));
    assert_eq!(v["objects"], 1, "{v}");
    assert_eq!(s3.keys(&bucket).await, before);

    // The manifest where the preparer listens (the whole trail bucket unless told otherwise).
    let e = err(&ipsight(
        &s3,
        &[
            "--bucket",
            &bucket,
            "--since",
            "3d",
            "--until",
            "2026-03-12",
            "--manifest-uri",
            &format!("s3://{bucket}/backfill/"),
            "--function-arn",
            "arn:aws:lambda:us-east-1:111122223333:function:prep",
            "--role-arn",
            "arn:aws:iam::111122223333:role/r",
            "--account-id",
            ACCT,
        ],
    ));
    assert!(e.contains("infinite loop") && e.contains(&bucket), "{e}");
    assert_eq!(s3.keys(&bucket).await, before, "nothing written");

    // Job settings are checked before anything is listed or written.
    let e = err(&ipsight(
        &s3,
        &[
            "--bucket",
            &bucket,
            "--manifest-uri",
            "s3://data/backfill/",
            "--account-id",
            ACCT,
        ],
    ));
    assert!(
        e.contains("--function-arn") && e.contains("--dry-run"),
        "{e}"
    );
    let e = err(&ipsight(
        &s3,
        &["--bucket", &bucket, "--since", "0d", "--dry-run"],
    ));
    assert!(e.contains("--since \"0d\""), "{e}");
    let e = err(&ipsight(
        &s3,
        &[
            "--bucket",
            &bucket,
            "--manifest-uri",
            "data/backfill",
            "--dry-run",
        ],
    ));
    assert!(
        e.contains("--manifest-uri \"data/backfill\": expected s3://bucket/prefix"),
        "{e}"
    );
    let e = err(&ipsight(&s3, &["--status", "job-1"]));
    assert!(e.contains("--account-id"), "{e}");
    // An empty window says where it looked.
    let e = err(&ipsight(
        &s3,
        &[
            "--bucket",
            &bucket,
            "--since",
            "2d",
            "--until",
            "2025-01-02",
            "--dry-run",
        ],
    ));
    assert!(
        e.contains("no CloudTrail log objects from 2025-01-01 to 2025-01-02"),
        "{e}"
    );
}
