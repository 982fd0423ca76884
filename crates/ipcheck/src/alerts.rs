//! Where alerts go: an EventBridge bus (production) or nowhere but the alert files ([`NoAlerts`]).
use std::future::Future;
use std::time::Duration;

use crate::Alert;

/// The alert port. `publish` gets every alert of one object; an error fails that object (and so
/// its SQS message, which is redelivered).
pub trait AlertSink: Send + Sync {
    fn publish(&self, alerts: &[Alert]) -> impl Future<Output = Result<(), String>> + Send;
}

/// No bus configured: alerts are only written to `alerts/<source key>.jsonl`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAlerts;

impl AlertSink for NoAlerts {
    async fn publish(&self, _alerts: &[Alert]) -> Result<(), String> {
        Ok(())
    }
}

/// `source` of the events we put on the bus; rules match on it.
pub const EVENT_SOURCE: &str = "ipsight.ipcheck";
/// `detail-type` of the events.
pub const DETAIL_TYPE: &str = "IP Insights unusual activity";

/// PutEvents allows 10 entries per call.
const ENTRIES_PER_CALL: usize = 10;
const ATTEMPTS: u32 = 4;

/// Alerts as events on a custom EventBridge bus, one event per alert (`detail` = the [`Alert`]).
#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    pub fn from_conf(conf: &aws_config::SdkConfig, bus: impl Into<String>) -> Self {
        Self::new(aws_sdk_eventbridge::Client::new(conf), bus)
    }

    fn entry(
        &self,
        a: &Alert,
    ) -> Result<aws_sdk_eventbridge::types::PutEventsRequestEntry, String> {
        let detail = serde_json::to_string(a).map_err(|e| e.to_string())?;
        let mut b = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(DETAIL_TYPE)
            .detail(detail);
        if let Some(rest) = a.record.source.strip_prefix("s3://") {
            b = b.resources(format!("arn:aws:s3:::{rest}"));
        }
        Ok(b.build())
    }
}

impl AlertSink for EventBridgeSink {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), String> {
        for chunk in alerts.chunks(ENTRIES_PER_CALL) {
            let mut pending: Vec<_> = chunk
                .iter()
                .map(|a| self.entry(a))
                .collect::<Result<_, _>>()?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let out = self
                    .client
                    .put_events()
                    .set_entries(Some(pending.clone()))
                    .send()
                    .await;
                let out = match out {
                    Ok(o) => o,
                    Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                        tokio::time::sleep(backoff(attempt)).await;
                        continue;
                    }
                    Err(e) => {
                        return Err(format!("PutEvents to bus {}: {}", self.bus, describe(&e)))
                    }
                };
                if out.failed_entry_count() == 0 {
                    break;
                }
                // Entries come back in request order; keep only the failed ones for the retry.
                let results = out.entries();
                let mut failed = Vec::new();
                let mut first_error = None;
                for (e, r) in pending.iter().zip(results) {
                    if r.error_code().is_some() {
                        first_error.get_or_insert_with(|| {
                            format!(
                                "{}: {}",
                                r.error_code().unwrap_or(""),
                                r.error_message().unwrap_or("")
                            )
                        });
                        failed.push(e.clone());
                    }
                }
                if failed.is_empty() || attempt >= ATTEMPTS {
                    return Err(format!(
                        "PutEvents to bus {}: {} of {} entries failed ({})",
                        self.bus,
                        out.failed_entry_count(),
                        pending.len(),
                        first_error.unwrap_or_default()
                    ));
                }
                pending = failed;
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Ok(())
    }
}

type PutEventsError = aws_sdk_eventbridge::error::SdkError<
    aws_sdk_eventbridge::operation::put_events::PutEventsError,
    aws_sdk_eventbridge::config::http::HttpResponse,
>;

/// Throttling, 5xx and transport failures may pass on retry; a missing bus or a denied call will not.
fn retryable(e: &PutEventsError) -> bool {
    use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
    match e {
        SdkError::ServiceError(se) => {
            se.raw().status().is_server_error()
                || matches!(
                    se.err().code(),
                    Some("ThrottlingException" | "InternalException" | "ServiceUnavailable")
                )
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    }
}

fn describe(e: &PutEventsError) -> String {
    use aws_sdk_eventbridge::error::ProvideErrorMetadata;
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        _ => aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string(),
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64 << attempt.min(5))
}

/// Either sink, chosen by configuration.
#[derive(Debug, Clone)]
pub enum AnySink {
    None(NoAlerts),
    EventBridge(EventBridgeSink),
}

impl AlertSink for AnySink {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), String> {
        match self {
            Self::None(s) => s.publish(alerts).await,
            Self::EventBridge(s) => s.publish(alerts).await,
        }
    }
}
