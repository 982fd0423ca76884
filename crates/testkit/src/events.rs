//! Lambda events and bodies as AWS sends them, for handler tests (one copy for every function).
use std::io::Write;

use serde_json::{json, Value};

/// Gzip `data` (CloudTrail and GuardDuty objects are gzipped).
pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An S3 notification record as S3 sends it: the key form-URL-encoded (`/` left as is).
pub fn s3_record(bucket: &str, key: &str) -> Value {
    let encoded: String = key
        .split('/')
        .map(|seg| {
            seg.replace('%', "%25")
                .replace('+', "%2B")
                .replace('=', "%3D")
                .replace(' ', "+")
        })
        .collect::<Vec<_>>()
        .join("/");
    json!({"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventName":"ObjectCreated:Put",
           "s3":{"s3SchemaVersion":"1.0","bucket":{"name":bucket,"arn":format!("arn:aws:s3:::{bucket}")},
                 "object":{"key":encoded,"size":100}}})
}

/// A whole S3 notification for one object, as the text an SQS message body carries.
pub fn s3_notification(bucket: &str, key: &str) -> String {
    json!({"Records": [s3_record(bucket, key)]}).to_string()
}

/// An SQS batch event of `(message id, body)` pairs.
pub fn sqs<I: AsRef<str>>(messages: &[(I, String)]) -> Value {
    json!({"Records": messages.iter().map(|(id, body)| json!({"messageId": id.as_ref(), "receiptHandle": "rh",
        "body": body, "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:q", "awsRegion": "us-east-1"}))
        .collect::<Vec<_>>()})
}
