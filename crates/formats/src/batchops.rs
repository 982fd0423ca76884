//! Amazon S3 Batch Operations `LambdaInvoke` invocations and their responses (invocation schema 1.0
//! and 2.0), as documented in the S3 user guide ("Invoke AWS Lambda function").
//!
//! ```text
//! 1.0: {"invocationSchemaVersion":"1.0","invocationId":"…","job":{"id":"…"},
//!       "tasks":[{"taskId":"…","s3Key":"…","s3VersionId":"1","s3BucketArn":"arn:aws:s3:::bucket"}]}
//! 2.0: {"invocationSchemaVersion":"2.0","invocationId":"…","job":{"id":"…","userArguments":{…}},
//!       "tasks":[{"taskId":"…","s3Key":"…","s3VersionId":null,"s3Bucket":"bucket"}]}
//! response: {"invocationSchemaVersion":<same>,"treatMissingKeysAs":"PermanentFailure",
//!            "invocationId":<same>,"results":[{"taskId":…,"resultCode":…,"resultString":…}]}
//! ```
//!
//! Keys arrive URL-encoded (the manifest's encoding) and are decoded like notification keys. Every
//! task gets exactly one result: `Succeeded`, `TemporaryFailure` (S3 redrives the task: throttling,
//! timeouts, 5xx) or `PermanentFailure` (a bad object: retrying cannot help).
use serde_json::{json, Value};

use crate::notify::{decode_notification_key, S3Object};

/// One invocation (S3 sends one task per invocation today, but the schema allows several).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchInvocation {
    /// `1.0` or `2.0`, echoed in the response.
    pub schema: String,
    pub invocation_id: String,
    pub job_id: String,
    pub tasks: Vec<BatchTask>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BatchTask {
    pub task_id: String,
    /// Bucket and decoded key; the size is not sent.
    pub object: S3Object,
    pub version_id: Option<String>,
}

/// A task's result code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Succeeded,
    /// S3 redrives the task before the job completes.
    TemporaryFailure,
    /// The task is marked failed in the completion report.
    PermanentFailure,
}

impl ResultCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultCode::Succeeded => "Succeeded",
            ResultCode::TemporaryFailure => "TemporaryFailure",
            ResultCode::PermanentFailure => "PermanentFailure",
        }
    }
}

/// Whether `v` is a Batch Operations invocation (it has `invocationSchemaVersion` and `tasks`).
pub fn is_batch_invocation(v: &Value) -> bool {
    v.get("invocationSchemaVersion").is_some() && v.get("tasks").is_some()
}

fn text<'a>(v: &'a Value, field: &str, what: &str) -> Result<&'a str, String> {
    v.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what} has no `{field}` string"))
}

/// Parse an invocation. Unknown schema versions are refused (their fields may mean other things).
pub fn parse_batch_invocation(v: &Value) -> Result<BatchInvocation, String> {
    let schema = text(v, "invocationSchemaVersion", "invocation")?;
    if schema != "1.0" && schema != "2.0" {
        return Err(format!(
            "invocation schema {schema:?} is not supported (1.0 and 2.0 are)"
        ));
    }
    let invocation_id = text(v, "invocationId", "invocation")?.to_owned();
    let job_id = v
        .get("job")
        .and_then(|j| j.get("id"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let tasks = v
        .get("tasks")
        .and_then(Value::as_array)
        .ok_or("invocation has no `tasks` array")?;
    let tasks = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let what = format!("task {i}");
            let bucket = if schema == "1.0" {
                let arn = text(t, "s3BucketArn", &what)?;
                // arn:aws:s3:::bucket (the documentation also shows region/account-qualified ARNs;
                // the bucket is the last `:`-separated part either way).
                arn.rsplit(':').next().unwrap_or_default().to_owned()
            } else {
                text(t, "s3Bucket", &what)?.to_owned()
            };
            if bucket.is_empty() {
                return Err(format!("{what} names no bucket"));
            }
            Ok(BatchTask {
                task_id: text(t, "taskId", &what)?.to_owned(),
                object: S3Object {
                    bucket,
                    key: decode_notification_key(text(t, "s3Key", &what)?),
                    size: None,
                },
                version_id: t
                    .get("s3VersionId")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(BatchInvocation {
        schema: schema.to_owned(),
        invocation_id,
        job_id,
        tasks,
    })
}

/// The response to `inv`: one result per task, in order (`results[i]` is task `i`'s).
pub fn batch_response(inv: &BatchInvocation, results: &[(ResultCode, String)]) -> Value {
    debug_assert_eq!(inv.tasks.len(), results.len());
    json!({
        "invocationSchemaVersion": inv.schema,
        // A key listed in the manifest but gone from the bucket is a bad input, not a retry.
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": inv.invocation_id,
        "results": inv.tasks.iter().zip(results).map(|(t, (code, s))| json!({
            "taskId": t.task_id,
            "resultCode": code.as_str(),
            "resultString": s,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let p = format!(
            "{}/../../events/prepare-cloudtrail/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
            .unwrap()
    }

    #[test]
    fn schema_1_and_2_name_the_same_object() {
        for (name, version) in [
            ("s3-batch-operations-1.0.json", None),
            ("s3-batch-operations-2.0.json", Some("null")),
        ] {
            let v = fixture(name);
            assert!(is_batch_invocation(&v));
            let inv = parse_batch_invocation(&v).unwrap();
            assert_eq!(inv.tasks.len(), 1, "{name}");
            let t = &inv.tasks[0];
            assert_eq!(t.object.bucket, "example-cloudtrail-bucket", "{name}");
            assert_eq!(
                t.object.key,
                "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/05/111122223333_CloudTrail_us-east-1_20260105T0000Z_a b=1.json.gz",
                "{name}"
            );
            assert_eq!(t.version_id.is_none(), version.is_some(), "{name}");
            let r = batch_response(&inv, &[(ResultCode::TemporaryFailure, "throttled".into())]);
            assert_eq!(r["invocationSchemaVersion"], inv.schema);
            assert_eq!(r["invocationId"], inv.invocation_id);
            assert_eq!(r["treatMissingKeysAs"], "PermanentFailure");
            assert_eq!(
                r["results"],
                json!([{"taskId": t.task_id, "resultCode": "TemporaryFailure", "resultString": "throttled"}])
            );
        }
    }

    #[test]
    fn malformed_invocations_say_what_is_missing() {
        let e = parse_batch_invocation(&json!({"invocationSchemaVersion": "3.0", "tasks": []}))
            .unwrap_err();
        assert!(e.contains("\"3.0\" is not supported"), "{e}");
        let e = parse_batch_invocation(&json!({"invocationSchemaVersion": "2.0",
            "invocationId": "i", "tasks": [{"taskId": "t", "s3Key": "k"}]}))
        .unwrap_err();
        assert_eq!(e, "task 0 has no `s3Bucket` string");
        assert!(!is_batch_invocation(&json!({"Records": []})));
    }
}
