//! `PutEvents` to an EventBridge bus, the one way ipcheck's alerts and fuse's new top rows are
//! sent: requests within the service's limits (≤ 10 entries, ≤ 256 KB), failed entries retried
//! with backoff, and an error that names the bus and the first refusal.
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;

/// PutEvents takes at most 10 entries a call.
pub const MAX_ENTRIES_PER_REQUEST: usize = 10;
/// ... and at most 256 KB a call, which is also the most one entry may be.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
const ATTEMPTS: u32 = 4;

/// An entry's size as EventBridge counts it: `Source`, `DetailType`, `Detail` and each of
/// `Resources` in UTF-8 bytes, plus 14 bytes for a `Time`.
pub fn entry_size(e: &PutEventsRequestEntry) -> usize {
    e.source().map_or(0, str::len)
        + e.detail_type().map_or(0, str::len)
        + e.detail().map_or(0, str::len)
        + e.resources().iter().map(String::len).sum::<usize>()
        + if e.time().is_some() { 14 } else { 0 }
}

/// Items in requests of at most [`MAX_ENTRIES_PER_REQUEST`] and [`MAX_REQUEST_BYTES`], in order.
/// An item alone over the byte limit gets a request of its own (the service refuses it, and says
/// so per entry); callers that can check sizes first do ([`entry_size`]).
pub fn requests<T>(items: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for it in items {
        let n = size(&it);
        let full = out
            .last()
            .is_none_or(|r| r.len() >= MAX_ENTRIES_PER_REQUEST || bytes + n > MAX_REQUEST_BYTES);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += n;
        out.last_mut().expect("pushed above").push(it);
    }
    out
}

/// Send `entries` (each naming its bus) in order. Throttling, 5xx and transport failures are
/// retried, as are the entries the service failed one by one; a missing bus or a denied call is
/// not. Returns the number of entries sent.
pub async fn put_events(
    client: &aws_sdk_eventbridge::Client,
    bus: &str,
    entries: Vec<PutEventsRequestEntry>,
) -> Result<usize, String> {
    let mut sent = 0;
    for request in requests(entries, entry_size) {
        let mut pending = request;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let out = client
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
                Err(e) => return Err(format!("PutEvents to bus {bus}: {}", describe(&e))),
            };
            if out.failed_entry_count() == 0 {
                sent += pending.len();
                break;
            }
            // Entries come back in request order; keep only the failed ones for the retry.
            let mut failed = Vec::new();
            let mut first_error = None;
            for (e, r) in pending.iter().zip(out.entries()) {
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
                    "PutEvents to bus {bus}: {} of {} entries failed ({})",
                    out.failed_entry_count(),
                    pending.len(),
                    first_error.unwrap_or_default()
                ));
            }
            sent += pending.len() - failed.len();
            pending = failed;
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
    Ok(sent)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_stay_within_count_and_bytes() {
        let r = requests((0..23).collect::<Vec<usize>>(), |_| 100);
        assert_eq!(r.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 3]);
        // 100 KB entries: two fit in 256 KB, the third starts a new request.
        let r = requests(vec![1, 2, 3, 4, 5], |_| 100 * 1024);
        assert_eq!(r, vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert!(requests(Vec::<u8>::new(), |_| 1).is_empty());
        let e = PutEventsRequestEntry::builder()
            .source("ipsight.fuse")
            .detail_type("x")
            .detail("{}")
            .resources("arn:aws:s3:::b/k")
            .build();
        assert_eq!(entry_size(&e), 12 + 1 + 2 + 16);
    }
}
