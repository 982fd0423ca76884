//! The one Lambda shell every ipsight function runs in.
//!
//! A function says what it does with ONE object ([`PerObject::process`]); the shell turns that into
//! every way objects reach a Lambda (modelled on the runtime's advanced SQS partial-batch example):
//!
//! * direct S3 notifications, SNS envelopes and EventBridge "Object Created": every object is
//!   attempted; if any failed the invocation fails (Lambda retries; outputs of the objects that
//!   succeeded are deterministic and are rewritten identically);
//! * SQS batches (bodies are strings: S3 notifications, SNS-in-SQS, Security Lake's EventBridge
//!   events): each message stands alone, up to [`PerObject::concurrency`] at once, and the response
//!   lists exactly the failed ones in `batchItemFailures` (enable `ReportBatchItemFailures`);
//! * `s3:TestEvent`: ignored;
//! * other EventBridge events (a GuardDuty finding): [`PerObject::event`], when the function takes them.
//!
//! Every skip and failure is logged here, once, in one vocabulary: `input_skipped` (`input`,
//! `reason`) and `input_failed` (`input`, `error`), where `input` is `s3://bucket/key`,
//! `event <id>` or `message <id>`.
//!
//! * S3 Batch Operations `LambdaInvoke` (schema 1.0 and 2.0): one result per task (see
//!   [`batch_operations`]).
//!
//! A new invocation kind is one more arm in [`handle`]; the functions do not change.
use std::future::Future;

use futures::future::BoxFuture;
use futures::StreamExt;
use ipsight_formats::batchops::{self, ResultCode};
use ipsight_formats::notify::{parse_body, parse_notification, Notification, S3Object};
use serde_json::{json, Map, Value};

/// What happened to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// Processed; `T` is the function's own result (outputs written, counts).
    Done(T),
    /// Not for us (a digest, a folder, our own output…): logged and counted, not an error.
    Skipped(&'static str),
}

/// An input (object or event) that failed, and why. Nothing was written for it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{input}: {reason}")]
pub struct InputError {
    /// `s3://bucket/key`, `event <id>` or `message <id>`.
    pub input: String,
    pub reason: String,
    /// A retry may succeed (throttling, timeouts, 5xx after the SDK's own retries): S3 Batch
    /// Operations then redrives the task (`TemporaryFailure`) instead of failing it for good.
    pub temporary: bool,
}

impl InputError {
    /// A failure of the input itself (retrying cannot help).
    pub fn new(input: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            input: input.into(),
            reason: reason.into(),
            temporary: false,
        }
    }

    /// A failure of the service around the input (retrying may help).
    pub fn temporary(input: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            temporary: true,
            ..Self::new(input, reason)
        }
    }
}

/// A Lambda function in ipsight: what it does with one object, and how its results add up.
pub trait PerObject: Sync {
    /// The function's name in every log line.
    const FUNCTION: &'static str;
    /// One object's result.
    type Done: Send;
    /// The results of one invocation added up (reported beside `written`, `skipped`, `failed`).
    type Totals: Default + Send;

    /// Process one object end to end; nothing is written unless the whole object succeeded.
    fn process(
        &self,
        obj: &S3Object,
    ) -> impl Future<Output = Result<Outcome<Self::Done>, InputError>> + Send;

    /// Add one object's result to the totals; the outputs it wrote go to `written`.
    fn tally(totals: &mut Self::Totals, written: &mut Vec<String>, done: Self::Done);

    /// The totals' fields of the invocation's summary.
    fn report(totals: Self::Totals, summary: &mut Map<String, Value>);

    /// SQS messages handled at once.
    fn concurrency(&self) -> usize {
        1
    }

    /// An EventBridge event other than "Object Created" (whole, as received), named `input` in
    /// logs. `None`: the function does not take it (the invocation, or message, fails).
    fn event(
        &self,
        _notification: &Notification,
        _event: Value,
        _input: String,
    ) -> Option<BoxFuture<'_, Result<Value, InputError>>> {
        None
    }
}

/// Handle one Lambda event (see the module documentation for each shape).
pub async fn handle<F: PerObject>(f: &F, event: Value) -> anyhow::Result<Value> {
    if batchops::is_batch_invocation(&event) {
        return batch_operations(f, &event).await;
    }
    let n = parse_notification(&event)?;
    match n {
        Notification::TestEvent => Ok(json!({"ignored": "s3:TestEvent"})),
        Notification::Objects(objects) => {
            let (summary, errors) = process_all(f, &objects).await;
            if errors.is_empty() {
                Ok(summary)
            } else {
                anyhow::bail!(
                    "{} of {} objects failed: {}",
                    errors.len(),
                    objects.len(),
                    errors.join("; ")
                )
            }
        }
        Notification::Sqs(messages) => {
            let results: Vec<bool> = futures::stream::iter(
                messages
                    .iter()
                    .map(|m| sqs_message(f, &m.message_id, &m.body)),
            )
            .buffered(f.concurrency().max(1))
            .collect()
            .await;
            let failures: Vec<Value> = messages
                .iter()
                .zip(results)
                .filter(|(_, ok)| !ok)
                .map(|(m, _)| json!({"itemIdentifier": m.message_id}))
                .collect();
            Ok(json!({"batchItemFailures": failures}))
        }
        Notification::EventBridge { .. } => {
            let id = event.get("id").and_then(Value::as_str).unwrap_or("?");
            let input = format!("event {id}");
            let Some(work) = f.event(&n, event.clone(), input) else {
                anyhow::bail!("unsupported event for {}: {}", F::FUNCTION, n.describe());
            };
            work.await.map_err(|e| {
                log_failed::<F>(&e.input, &e.reason);
                e.into()
            })
        }
    }
}

/// An S3 Batch Operations invocation (schema 1.0 or 2.0): every task is processed and answered
/// with its own result — `Succeeded` (objects the function skips, such as digests, succeed with the
/// reason), `TemporaryFailure` with the reason for [`InputError::temporary`] failures (S3 redrives
/// them), `PermanentFailure` with the reason for bad objects. The invocation itself fails only when
/// it cannot be read.
async fn batch_operations<F: PerObject>(f: &F, event: &Value) -> anyhow::Result<Value> {
    let inv = batchops::parse_batch_invocation(event)
        .map_err(|e| anyhow::anyhow!("S3 Batch Operations invocation: {e}"))?;
    let mut results = Vec::with_capacity(inv.tasks.len());
    for t in &inv.tasks {
        let o = &t.object;
        let input = format!("s3://{}/{}", o.bucket, o.key);
        results.push(match f.process(o).await {
            Ok(Outcome::Done(done)) => {
                let mut totals = F::Totals::default();
                let mut written = Vec::new();
                F::tally(&mut totals, &mut written, done);
                (
                    ResultCode::Succeeded,
                    format!("written: {}", written.join(" ")),
                )
            }
            Ok(Outcome::Skipped(reason)) => {
                log_skipped::<F>(&input, reason);
                (ResultCode::Succeeded, format!("skipped: {reason}"))
            }
            Err(e) => {
                log_failed::<F>(&e.input, &e.reason);
                let code = if e.temporary {
                    ResultCode::TemporaryFailure
                } else {
                    ResultCode::PermanentFailure
                };
                (code, e.to_string())
            }
        });
    }
    Ok(batchops::batch_response(&inv, &results))
}

/// One SQS message: `true` when it succeeded (or had nothing to do).
async fn sqs_message<F: PerObject>(f: &F, id: &str, body: &str) -> bool {
    let input = format!("message {id}");
    let n = match parse_body(body) {
        Ok(n) => n,
        Err(e) => {
            log_failed::<F>(&input, &e.to_string());
            return false;
        }
    };
    match n {
        Notification::TestEvent => true,
        Notification::Objects(objects) => process_all(f, &objects).await.1.is_empty(),
        Notification::EventBridge { .. } => {
            // EventBridge → SQS: the body is the event.
            let event: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            match f.event(&n, event, input.clone()) {
                Some(work) => match work.await {
                    Ok(_) => true,
                    Err(e) => {
                        log_failed::<F>(&e.input, &e.reason);
                        false
                    }
                },
                None => unsupported::<F>(&input, &n),
            }
        }
        Notification::Sqs(_) => unsupported::<F>(&input, &n),
    }
}

fn unsupported<F: PerObject>(input: &str, n: &Notification) -> bool {
    log_failed::<F>(input, &format!("unsupported message: {}", n.describe()));
    false
}

/// Every object of one notification, in order; the summary and the failures' messages.
async fn process_all<F: PerObject>(f: &F, objects: &[S3Object]) -> (Value, Vec<String>) {
    let mut totals = F::Totals::default();
    let mut written = Vec::new();
    let mut skipped = Vec::new();
    let mut failed = Vec::new();
    for o in objects {
        match f.process(o).await {
            Ok(Outcome::Done(done)) => F::tally(&mut totals, &mut written, done),
            Ok(Outcome::Skipped(reason)) => {
                log_skipped::<F>(&format!("s3://{}/{}", o.bucket, o.key), reason);
                skipped.push(json!({"key": o.key, "reason": reason}));
            }
            Err(e) => {
                log_failed::<F>(&e.input, &e.reason);
                failed.push(e.to_string());
            }
        }
    }
    let mut summary = Map::new();
    summary.insert("written".into(), json!(written));
    summary.insert("skipped".into(), json!(skipped));
    summary.insert("failed".into(), json!(failed));
    F::report(totals, &mut summary);
    (Value::Object(summary), failed)
}

fn log_skipped<F: PerObject>(input: &str, reason: &str) {
    println!(
        "{}",
        json!({"event": "input_skipped", "function": F::FUNCTION, "input": input, "reason": reason})
    );
}

fn log_failed<F: PerObject>(input: &str, error: &str) {
    eprintln!(
        "{}",
        json!({"event": "input_failed", "function": F::FUNCTION, "input": input, "error": error})
    );
}

/// Serve events with `handler` until the runtime stops: the whole of a function's `main` after it
/// has read its configuration and built its clients (once, at cold start).
pub async fn run<H, Fut>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Value) -> Fut,
    Fut: Future<Output = anyhow::Result<Value>>,
{
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |ev: lambda_runtime::LambdaEvent<Value>| async move {
            // Boxed: the handlers' futures are deep, and the runtime's future around them would
            // otherwise exceed the compiler's layout depth limit in `main`.
            Box::pin(handler(ev.payload))
                .await
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Fails objects whose key contains `bad`, skips `skip`, and records the most objects it saw at
    /// once (to check the concurrency bound).
    #[derive(Default)]
    struct Probe {
        running: AtomicUsize,
        most: AtomicUsize,
        limit: usize,
    }

    impl PerObject for Probe {
        const FUNCTION: &'static str = "probe";
        type Done = String;
        type Totals = u64;

        async fn process(&self, obj: &S3Object) -> Result<Outcome<String>, InputError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            if obj.key.contains("bad") {
                return Err(InputError::new(
                    format!("s3://{}/{}", obj.bucket, obj.key),
                    "no",
                ));
            }
            if obj.key.contains("skip") {
                return Ok(Outcome::Skipped("not_ours"));
            }
            Ok(Outcome::Done(format!("out/{}", obj.key)))
        }

        fn tally(totals: &mut u64, written: &mut Vec<String>, done: String) {
            *totals += 1;
            written.push(done);
        }

        fn report(totals: u64, summary: &mut Map<String, Value>) {
            summary.insert("count".into(), json!(totals));
        }

        fn concurrency(&self) -> usize {
            self.limit
        }
    }

    fn s3(keys: &[&str]) -> Value {
        json!({"Records": keys.iter().map(|k| json!({"eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": k}}}))
            .collect::<Vec<_>>()})
    }

    fn sqs(bodies: &[String]) -> Value {
        json!({"Records": bodies.iter().enumerate().map(|(i, b)| json!({"eventSource": "aws:sqs",
            "messageId": format!("m{i}"), "body": b})).collect::<Vec<_>>()})
    }

    #[tokio::test]
    async fn direct_objects_all_attempted_and_a_failure_fails_the_invocation() {
        let p = Probe::default();
        let out = handle(&p, s3(&["a", "skip/x"])).await.unwrap();
        assert_eq!(out["written"], json!(["out/a"]));
        assert_eq!(
            out["skipped"],
            json!([{"key": "skip/x", "reason": "not_ours"}])
        );
        assert_eq!(out["count"], 1);
        let e = handle(&p, s3(&["a", "bad", "c"])).await.unwrap_err();
        assert_eq!(e.to_string(), "1 of 3 objects failed: s3://b/bad: no");
    }

    #[tokio::test]
    async fn sqs_lists_exactly_the_failed_messages_with_bounded_concurrency() {
        let p = Probe {
            limit: 2,
            ..Probe::default()
        };
        let test_event = json!({"Event": "s3:TestEvent"}).to_string();
        let sns = json!({"Type": "Notification", "Message": s3(&["via-sns"]).to_string()});
        let lake = json!({"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "lake"}, "object": {"key": "x.parquet"}}});
        let bodies = vec![
            s3(&["a"]).to_string(),
            s3(&["bad"]).to_string(),
            "not json".to_string(),
            test_event,
            sns.to_string(),
            // Security Lake: the body is a JSON string holding the event.
            serde_json::to_string(&lake.to_string()).unwrap(),
            json!({"source": "aws.guardduty", "detail-type": "GuardDuty Finding"}).to_string(),
            s3(&["b"]).to_string(),
        ];
        let out = handle(&p, sqs(&bodies)).await.unwrap();
        assert_eq!(
            out,
            json!({"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"},
                {"itemIdentifier": "m6"}]})
        );
        assert_eq!(p.most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn events_the_function_does_not_take_are_refused() {
        let ev = json!({"id": "e1", "source": "aws.guardduty", "detail-type": "GuardDuty Finding"});
        let e = handle(&Probe::default(), ev).await.unwrap_err();
        assert!(e.to_string().contains("unsupported event for probe"), "{e}");
        let out = handle(&Probe::default(), json!({"Event": "s3:TestEvent"}))
            .await
            .unwrap();
        assert_eq!(out, json!({"ignored": "s3:TestEvent"}));
    }
}
