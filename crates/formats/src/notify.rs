//! Lambda trigger shapes, parsed tolerantly.
//!
//! One function understands every way an object reaches us: S3 event notifications (`Records[].s3`),
//! EventBridge "Object Created" events (how Amazon Security Lake subscribers are notified), SNS
//! envelopes around either, SQS batches whose `body` is always a *string* holding one of the above,
//! and `s3:TestEvent`. We use our own `serde_json::Value` walks instead of strict structs because real
//! senders differ (moto omits `userIdentity`; SNS capitalises fields; sizes are sometimes strings).
use serde_json::Value;

/// An object named by a notification; `key` is already decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
    pub size: Option<u64>,
}

/// One SQS message of a batch: its id (for `batchItemFailures`) and its raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsMessage {
    pub message_id: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// Objects created (from S3 notifications, EventBridge, or SNS around them).
    Objects(Vec<S3Object>),
    /// `s3:TestEvent`, sent once when a notification configuration is created: nothing to do.
    TestEvent,
    /// An SQS batch: each message is handled, and fails, on its own.
    Sqs(Vec<SqsMessage>),
    /// Any other EventBridge event (GuardDuty findings, schedules): the caller decides.
    EventBridge {
        source: String,
        detail_type: String,
        detail: Value,
    },
}

impl Notification {
    /// A short name of what arrived, for "unsupported event" errors and logs.
    pub fn describe(&self) -> String {
        match self {
            Notification::EventBridge {
                source,
                detail_type,
                ..
            } => format!("EventBridge {source} / {detail_type}"),
            Notification::Sqs(_) => "SQS batch".into(),
            Notification::Objects(_) => "objects".into(),
            Notification::TestEvent => "test event".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("message body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("unrecognised event shape (top-level fields: {0})")]
    UnknownShape(String),
    #[error("malformed {what}: {why}")]
    Malformed { what: &'static str, why: String },
}

/// Parse a Lambda event (or an SQS body / SNS message, already parsed as JSON).
pub fn parse_notification(v: &Value) -> Result<Notification, NotificationError> {
    parse_inner(v, 0)
}

/// Parse an SQS message body or SNS `Message`, which is JSON text.
pub fn parse_body(body: &str) -> Result<Notification, NotificationError> {
    let v: Value = serde_json::from_str(body).map_err(NotificationError::NotJson)?;
    // A body that is itself a JSON string (double-encoded) is unwrapped once.
    if let Value::String(inner) = &v {
        let v2: Value = serde_json::from_str(inner).map_err(NotificationError::NotJson)?;
        return parse_inner(&v2, 1);
    }
    parse_inner(&v, 1)
}

fn parse_inner(v: &Value, depth: u32) -> Result<Notification, NotificationError> {
    if depth > 4 {
        return Err(NotificationError::Malformed {
            what: "notification",
            why: "envelopes nested more than 4 deep".into(),
        });
    }
    let Some(obj) = v.as_object() else {
        return Err(NotificationError::UnknownShape(format!(
            "not an object but {}",
            type_name(v)
        )));
    };
    if obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notification::TestEvent);
    }
    if let Some(records) = obj.get("Records").and_then(Value::as_array) {
        return parse_records(records, depth);
    }
    // SNS envelope as delivered to SQS (raw message delivery off).
    if obj.get("Type").and_then(Value::as_str) == Some("Notification") {
        let msg =
            obj.get("Message")
                .and_then(Value::as_str)
                .ok_or(NotificationError::Malformed {
                    what: "SNS envelope",
                    why: "no Message string".into(),
                })?;
        return parse_body_depth(msg, depth + 1);
    }
    if let (Some(source), Some(dt)) = (
        obj.get("source").and_then(Value::as_str),
        obj.get("detail-type").and_then(Value::as_str),
    ) {
        let detail = obj.get("detail").cloned().unwrap_or(Value::Null);
        if source == "aws.s3" && dt == "Object Created" {
            return eventbridge_object(&detail).map(|o| Notification::Objects(vec![o]));
        }
        return Ok(Notification::EventBridge {
            source: source.to_owned(),
            detail_type: dt.to_owned(),
            detail,
        });
    }
    let keys: Vec<&str> = obj.keys().map(String::as_str).take(8).collect();
    Err(NotificationError::UnknownShape(keys.join(", ")))
}

fn parse_body_depth(body: &str, depth: u32) -> Result<Notification, NotificationError> {
    let v: Value = serde_json::from_str(body).map_err(NotificationError::NotJson)?;
    parse_inner(&v, depth)
}

fn parse_records(records: &[Value], depth: u32) -> Result<Notification, NotificationError> {
    let first_source = records
        .first()
        .and_then(|r| r.get("eventSource").or_else(|| r.get("EventSource")))
        .and_then(Value::as_str)
        .unwrap_or("");
    if first_source == "aws:sqs" {
        if depth > 0 {
            return Err(NotificationError::Malformed {
                what: "SQS batch",
                why: "an SQS batch inside a message".into(),
            });
        }
        let mut msgs = Vec::with_capacity(records.len());
        for r in records {
            let id =
                r.get("messageId")
                    .and_then(Value::as_str)
                    .ok_or(NotificationError::Malformed {
                        what: "SQS record",
                        why: "no messageId".into(),
                    })?;
            // `body` is always a string on the wire; tolerate hand-written events with an object.
            let body = match r.get("body") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            msgs.push(SqsMessage {
                message_id: id.to_owned(),
                body,
            });
        }
        return Ok(Notification::Sqs(msgs));
    }
    if first_source == "aws:sns" {
        // Lambda subscribed to SNS directly: one message per record, usually one record.
        let mut objects = Vec::new();
        let mut test_only = true;
        for r in records {
            let msg = r.pointer("/Sns/Message").and_then(Value::as_str).ok_or(
                NotificationError::Malformed {
                    what: "SNS record",
                    why: "no Sns.Message".into(),
                },
            )?;
            match parse_body_depth(msg, depth + 1)? {
                Notification::Objects(o) => {
                    test_only = false;
                    objects.extend(o)
                }
                Notification::TestEvent => {}
                other => return Ok(other),
            }
        }
        return Ok(if test_only && objects.is_empty() {
            Notification::TestEvent
        } else {
            Notification::Objects(objects)
        });
    }
    let mut objects = Vec::with_capacity(records.len());
    for r in records {
        let Some(s3) = r.get("s3") else {
            return Err(NotificationError::Malformed {
                what: "S3 notification record",
                why: "no s3 field".into(),
            });
        };
        // Only creations carry data; removals and restores are ignored, not errors.
        let name = r
            .get("eventName")
            .and_then(Value::as_str)
            .unwrap_or("ObjectCreated:Put");
        if !name.starts_with("ObjectCreated") && !name.starts_with("s3:ObjectCreated") {
            continue;
        }
        let bucket = s3.pointer("/bucket/name").and_then(Value::as_str).ok_or(
            NotificationError::Malformed {
                what: "S3 notification record",
                why: "no s3.bucket.name".into(),
            },
        )?;
        let raw_key = s3.pointer("/object/key").and_then(Value::as_str).ok_or(
            NotificationError::Malformed {
                what: "S3 notification record",
                why: "no s3.object.key".into(),
            },
        )?;
        objects.push(S3Object {
            bucket: bucket.to_owned(),
            key: decode_notification_key(raw_key),
            size: s3.pointer("/object/size").and_then(as_u64),
        });
    }
    Ok(Notification::Objects(objects))
}

fn eventbridge_object(detail: &Value) -> Result<S3Object, NotificationError> {
    let bucket = detail.pointer("/bucket/name").and_then(Value::as_str);
    let key = detail.pointer("/object/key").and_then(Value::as_str);
    match (bucket, key) {
        // EventBridge carries the key as stored (no form encoding), unlike S3 notifications.
        (Some(b), Some(k)) => Ok(S3Object {
            bucket: b.to_owned(),
            key: k.to_owned(),
            size: detail.pointer("/object/size").and_then(as_u64),
        }),
        _ => Err(NotificationError::Malformed {
            what: "EventBridge Object Created event",
            why: "no detail.bucket.name or detail.object.key".into(),
        }),
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decode an S3 notification key: form-URL-encoded (`+` is a space, then percent escapes), which is
/// what S3 sends (`a+b%3D1` is the key `a b=1`). Invalid UTF-8 after decoding is kept lossily rather
/// than dropped, so the GetObject error names something recognisable.
pub fn decode_notification_key(raw: &str) -> String {
    let plus_decoded = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_decoded)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_json(p: &std::path::Path) -> Value {
        let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap()
    }

    /// A third-party event fixture, or `None` (said on stderr) without the sample data.
    fn fixture(name: &str) -> Option<Value> {
        let what = format!("formats notify tests on aws-event-fixtures/{name}");
        let p = ipsight_testkit::real_data(&format!("aws-event-fixtures/{name}"), &what)?;
        Some(read_json(&p))
    }

    /// One of the project's own events (`events/`), written in the shapes AWS sends.
    fn ours(rel: &str) -> Value {
        read_json(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../events")
                .join(rel),
        )
    }

    #[test]
    fn own_events_in_the_real_shapes() {
        // S3 notification with userIdentity, requestParameters, responseElements, a form-encoded key.
        let Notification::Objects(o) =
            parse_notification(&ours("prepare-cloudtrail/s3-put.json")).unwrap()
        else {
            panic!("s3-put.json")
        };
        assert_eq!(o.len(), 1);
        assert!(
            o[0].key.contains("AWSLogs/111122223333/CloudTrail/"),
            "{:?}",
            o[0]
        );
        assert!(o[0].size.is_some());
        // EventBridge "Object Created": the key arrives unencoded (a space stays a space).
        let n = parse_notification(&ours("prepare-cloudtrail/eventbridge-object-created.json"))
            .unwrap();
        let Notification::Objects(o) = n else {
            panic!("{n:?}")
        };
        assert_eq!(o[0].bucket, "ipsight-local-trail");
        assert!(o[0].key.starts_with("audit logs/AWSLogs/"), "{:?}", o[0]);
        assert_eq!(o[0].size, Some(41873));
        // SQS batch: an s3:TestEvent body, then S3 notification bodies.
        let Notification::Sqs(msgs) =
            parse_notification(&ours("prepare-cloudtrail/sqs-s3.json")).unwrap()
        else {
            panic!("sqs-s3.json")
        };
        assert_eq!(parse_body(&msgs[0].body).unwrap(), Notification::TestEvent);
        assert!(msgs[1..].iter().all(
            |m| matches!(parse_body(&m.body).unwrap(), Notification::Objects(o) if !o.is_empty())
        ));
        // Security Lake subscriber queue: the SQS body is an EventBridge event.
        let Notification::Sqs(msgs) =
            parse_notification(&ours("ipcheck/sqs-security-lake.json")).unwrap()
        else {
            panic!("sqs-security-lake.json")
        };
        let Notification::Objects(o) = parse_body(&msgs[0].body).unwrap() else {
            panic!()
        };
        assert!(
            o[0].key.ends_with(".gz.parquet") && o[0].size == Some(15091),
            "{o:?}"
        );
        // SNS envelope around a non-S3 message: recognised as an envelope, its content is unknown.
        let sns = json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:111122223333:t",
            "Subject": "hello", "Message": "{\"hello\":1}", "Timestamp": "2026-01-06T13:00:21.000Z"});
        assert!(matches!(
            parse_body(&sns.to_string()),
            Err(NotificationError::UnknownShape(_))
        ));
        // An S3 Object Lambda event (what a mis-wired trigger delivers) is refused by name.
        let object_lambda = json!({"xAmzRequestId": "r", "getObjectContext": {"inputS3Url": "https://example/x",
            "outputRoute": "io-1", "outputToken": "t"}, "configuration": {"accessPointArn": "arn:aws:s3-object-lambda:us-east-1:111122223333:accesspoint/a",
            "supportingAccessPointArn": "arn:aws:s3:us-east-1:111122223333:accesspoint/s", "payload": ""},
            "userRequest": {"url": "https://a/x", "headers": {}}, "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE"},
            "protocolVersion": "1.00"});
        let e = parse_notification(&object_lambda).unwrap_err();
        assert!(e.to_string().contains("getObjectContext"), "{e}");
    }

    #[test]
    fn keys_are_form_decoded() {
        assert_eq!(
            decode_notification_key("dir%2Fobj+1.json.gz"),
            "dir/obj 1.json.gz"
        );
        assert_eq!(decode_notification_key("a%3Db%2Bc"), "a=b+c");
        assert_eq!(
            decode_notification_key("plain/key.json.gz"),
            "plain/key.json.gz"
        );
    }

    #[test]
    fn real_s3_fixtures() {
        for f in [
            "aws-lambda-go__s3-event.json",
            "lambda-rust-runtime__example-s3-event.json",
            "powertools-python__s3Event.json",
        ] {
            let Some(v) = fixture(f) else { return };
            match parse_notification(&v).unwrap() {
                Notification::Objects(o) => assert!(!o.is_empty(), "{f}"),
                other => panic!("{f}: {other:?}"),
            }
        }
    }

    #[test]
    fn s3_object_lambda_event_is_not_a_notification() {
        let Some(v) = fixture("powertools-python__s3ObjectEventIAMUser.json") else {
            return;
        };
        let e = parse_notification(&v).unwrap_err();
        assert!(e.to_string().contains("getObjectContext"), "{e}");
    }

    #[test]
    fn real_eventbridge_fixture() {
        let Some(v) =
            fixture("powertools-python__s3EventBridgeNotificationObjectCreatedEvent.json")
        else {
            return;
        };
        let n = parse_notification(&v).unwrap();
        assert_eq!(
            n,
            Notification::Objects(vec![S3Object {
                bucket: "example-bucket".into(),
                key: "IMG_m7fzo3.jpg".into(),
                size: Some(184662)
            }])
        );
    }

    #[test]
    fn real_sqs_fixtures_have_string_bodies() {
        for f in [
            "powertools-python__s3SqsEvent.json",
            "powertools-python__sqsEvent.json",
            "aws-lambda-go__sqs-event.json",
            "powertools-python__snsSqsEvent.json",
        ] {
            let Some(v) = fixture(f) else { return };
            let Notification::Sqs(msgs) = parse_notification(&v).unwrap() else {
                panic!("{f}")
            };
            assert!(!msgs.is_empty());
        }
        let Notification::Sqs(msgs) =
            parse_notification(&fixture("powertools-python__s3SqsEvent.json").unwrap()).unwrap()
        else {
            panic!()
        };
        assert!(
            matches!(parse_body(&msgs[0].body).unwrap(), Notification::Objects(o) if !o.is_empty())
        );
        // SNS envelope around a non-S3 message: recognised as an envelope, its content is unknown.
        let Notification::Sqs(msgs) =
            parse_notification(&fixture("powertools-python__snsSqsEvent.json").unwrap()).unwrap()
        else {
            panic!()
        };
        assert!(matches!(
            parse_body(&msgs[0].body),
            Err(NotificationError::UnknownShape(_))
        ));
    }

    #[test]
    fn test_event_and_errors() {
        let t = json!({"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00Z","Bucket":"b"});
        assert_eq!(parse_body(&t.to_string()).unwrap(), Notification::TestEvent);
        assert!(matches!(
            parse_body("not json"),
            Err(NotificationError::NotJson(_))
        ));
        assert!(matches!(
            parse_body("[1,2]"),
            Err(NotificationError::UnknownShape(_))
        ));
        let bad = json!({"Records":[{"eventSource":"aws:s3","s3":{"bucket":{}}}]});
        assert!(matches!(
            parse_notification(&bad),
            Err(NotificationError::Malformed { .. })
        ));
        // Removals are ignored.
        let rm = json!({"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]});
        assert_eq!(
            parse_notification(&rm).unwrap(),
            Notification::Objects(vec![])
        );
    }

    #[test]
    fn moto_style_and_sns_wrapped() {
        // moto: no userIdentity/requestParameters, `/` percent-encoded, size present.
        let moto = json!({"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"trail"},"object":{"key":"AWSLogs%2F1%2Fx+y.json.gz","size":12}}}]});
        let sns = json!({"Type":"Notification","MessageId":"m","Message": moto.to_string()});
        let sqs =
            json!({"Records":[{"messageId":"1","eventSource":"aws:sqs","body": sns.to_string()}]});
        let Notification::Sqs(msgs) = parse_notification(&sqs).unwrap() else {
            panic!()
        };
        assert_eq!(
            parse_body(&msgs[0].body).unwrap(),
            Notification::Objects(vec![S3Object {
                bucket: "trail".into(),
                key: "AWSLogs/1/x y.json.gz".into(),
                size: Some(12)
            }])
        );
        // Security Lake: SQS body is a JSON string holding an EventBridge event.
        let ev = json!({"version":"0","source":"aws.s3","detail-type":"Object Created","detail":{"bucket":{"name":"aws-security-data-lake-x"},"object":{"key":"ext/region=us-east-1/a.gz.parquet","size":"10"}}});
        let Notification::Objects(o) =
            parse_body(&Value::String(ev.to_string()).to_string()).unwrap()
        else {
            panic!()
        };
        assert_eq!(o[0].key, "ext/region=us-east-1/a.gz.parquet");
        assert_eq!(o[0].size, Some(10));
    }

    #[test]
    fn guardduty_eventbridge_passes_through() {
        let ev =
            json!({"source":"aws.guardduty","detail-type":"GuardDuty Finding","detail":{"id":"x"}});
        assert!(
            matches!(parse_notification(&ev).unwrap(), Notification::EventBridge { detail_type, .. } if detail_type == "GuardDuty Finding")
        );
    }
}
