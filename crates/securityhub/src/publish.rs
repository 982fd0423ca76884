//! Sending the request bodies with the SDK's `BatchImportFindings`.
//!
//! Throttling (`TooManyRequestsException`, `LimitExceededException`, HTTP 429) is retried by the
//! SDK's standard retry strategy with exponential backoff and jitter; the client the caller
//! builds decides the attempts ([`client`] uses 8). Findings the service refuses one by one
//! (`FailedFindings`) are counted by error code and named in the log, never retried blindly:
//! the same body would be refused again.
use std::collections::BTreeMap;

use aws_sdk_securityhub::types as sh;
use serde::Serialize;

use crate::asff::Finding;

/// A client for the imports: standard retries, 8 attempts (BatchImportFindings allows 10
/// requests a second with bursts of 30; a report publishes a handful of batches).
pub fn client(sdk: &aws_config::SdkConfig) -> aws_sdk_securityhub::Client {
    let conf = aws_sdk_securityhub::config::Builder::from(sdk)
        .retry_config(
            aws_sdk_securityhub::config::retry::RetryConfig::standard().with_max_attempts(8),
        )
        .build();
    aws_sdk_securityhub::Client::from_conf(conf)
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct PublishOutcome {
    pub requests: usize,
    pub imported: usize,
    pub failed: usize,
    /// `ErrorCode` → count, for the findings the service refused.
    pub failed_by_code: BTreeMap<String, usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("BatchImportFindings (request {request} of {requests}, {findings} findings): {source}")]
pub struct PublishError {
    pub request: usize,
    pub requests: usize,
    pub findings: usize,
    #[source]
    pub source: aws_sdk_securityhub::Error,
}

fn sdk_finding(f: &Finding) -> sh::AwsSecurityFinding {
    let mut b = sh::AwsSecurityFinding::builder()
        .schema_version(f.schema_version)
        .id(&f.id)
        .product_arn(&f.product_arn)
        .generator_id(&f.generator_id)
        .aws_account_id(&f.aws_account_id)
        .set_types(Some(f.types.clone()))
        .set_first_observed_at(f.first_observed_at.clone())
        .set_last_observed_at(f.last_observed_at.clone())
        .created_at(&f.created_at)
        .updated_at(&f.updated_at)
        .severity(
            sh::Severity::builder()
                .label(sh::SeverityLabel::from(f.severity.label))
                .original(&f.severity.original)
                .build(),
        )
        .title(&f.title)
        .description(&f.description)
        .product_name(f.product_name)
        .company_name(f.company_name)
        .network(
            sh::Network::builder()
                .direction(sh::NetworkDirection::from(f.network.direction))
                .set_source_ipv4(f.network.source_ip_v4.clone())
                .set_source_ipv6(f.network.source_ip_v6.clone())
                .set_source_domain(f.network.source_domain.clone())
                .build(),
        )
        .set_product_fields(Some(f.product_fields.clone().into_iter().collect()));
    for r in &f.resources {
        b = b.resources(
            sh::Resource::builder()
                .r#type(r.kind)
                .id(&r.id)
                .partition(sh::Partition::from(r.partition.as_str()))
                .region(&r.region)
                .details(
                    sh::ResourceDetails::builder()
                        .set_other(Some(r.details.other.clone().into_iter().collect()))
                        .build(),
                )
                .build(),
        );
    }
    b.build()
}

/// Send the batches in order. A request that still fails after the client's retries stops the
/// run with an error naming it (the fuse Lambda is retried as a whole, and the ids make the
/// re-sent findings updates, not duplicates).
pub async fn publish(
    client: &aws_sdk_securityhub::Client,
    batches: &[Vec<Finding>],
) -> Result<PublishOutcome, PublishError> {
    let mut out = PublishOutcome::default();
    for (i, batch) in batches.iter().enumerate() {
        let resp = client
            .batch_import_findings()
            .set_findings(Some(batch.iter().map(sdk_finding).collect()))
            .send()
            .await
            .map_err(|e| PublishError {
                request: i + 1,
                requests: batches.len(),
                findings: batch.len(),
                source: e.into(),
            })?;
        out.requests += 1;
        out.imported += resp.success_count().unwrap_or(0).max(0) as usize;
        for f in resp.failed_findings() {
            out.failed += 1;
            let code = f.error_code().unwrap_or("unknown").to_owned();
            eprintln!(
                "{}",
                serde_json::json!({"event": "securityhub_failed_finding", "id": f.id(),
                                   "error_code": code, "error_message": f.error_message()})
            );
            *out.failed_by_code.entry(code).or_default() += 1;
        }
    }
    Ok(out)
}
