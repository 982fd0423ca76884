//! The S3 Batch Operations job: `CreateJob` (LambdaInvoke on the preparer, invocation schema 2.0,
//! a completion report of failed tasks only, no confirmation step) and `DescribeJob` for progress.
use aws_sdk_s3control::types::{
    JobManifest, JobManifestFieldName, JobManifestFormat, JobManifestLocation, JobManifestSpec,
    JobOperation, JobReport, JobReportFormat, JobReportScope, LambdaInvokeOperation,
};

use crate::{BackfillError, StableHash};

/// Everything `CreateJob` is sent, decided before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobRequest {
    pub account_id: String,
    pub function_arn: String,
    pub role_arn: String,
    /// `arn:<partition>:s3:::bucket/key` of the manifest.
    pub manifest_arn: String,
    pub manifest_etag: String,
    /// `arn:<partition>:s3:::bucket` of the completion report, and its prefix.
    pub report_bucket_arn: String,
    pub report_prefix: String,
    pub description: String,
    pub priority: i32,
    /// Deterministic: the same manifest and settings give the same token, so a re-run is answered
    /// with the job already created instead of a second one.
    pub client_request_token: String,
}

/// The parts of an ARN: `arn:partition:service:region:account:resource`.
fn arn_parts<'a>(flag: &'static str, arn: &'a str) -> Result<[&'a str; 6], BackfillError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts[..] {
        ["arn", p, s, r, a, res] if !p.is_empty() && !res.is_empty() => {
            Ok(["arn", p, s, r, a, res])
        }
        _ => Err(BackfillError::invalid(
            flag,
            arn,
            "not an ARN (arn:partition:service:region:account:resource)",
        )),
    }
}

/// Check the flags and build the request. `region` is the job's region, when known: Batch
/// Operations invokes a function of its own region only.
#[allow(clippy::too_many_arguments)]
pub fn job_request(
    account_id: &str,
    function_arn: &str,
    role_arn: &str,
    region: Option<&str>,
    manifest: (&str, &str),
    manifest_etag: &str,
    report: (&str, &str),
    description: &str,
) -> Result<JobRequest, BackfillError> {
    if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BackfillError::invalid(
            "--account-id",
            account_id,
            "expected the 12-digit AWS account id",
        ));
    }
    let f = arn_parts("--function-arn", function_arn)?;
    if f[2] != "lambda" || !f[5].starts_with("function:") {
        return Err(BackfillError::invalid(
            "--function-arn",
            function_arn,
            "expected a Lambda function ARN (the stack's PrepareCloudTrailFunctionArn output)",
        ));
    }
    if let Some(r) = region {
        if f[3] != r {
            return Err(BackfillError::invalid(
                "--function-arn",
                function_arn,
                format!("is in {}, but the job is created in {r}: Batch Operations invokes functions of its own region", f[3]),
            ));
        }
    }
    let r = arn_parts("--role-arn", role_arn)?;
    if r[2] != "iam" || !r[5].starts_with("role/") {
        return Err(BackfillError::invalid(
            "--role-arn",
            role_arn,
            "expected an IAM role ARN (the stack's BackfillRoleArn output)",
        ));
    }
    let partition = f[1];
    let manifest_arn = format!("arn:{partition}:s3:::{}/{}", manifest.0, manifest.1);
    let report_bucket_arn = format!("arn:{partition}:s3:::{}", report.0);
    let mut h = StableHash::default();
    h.field(account_id)
        .field(function_arn)
        .field(role_arn)
        .field(&manifest_arn)
        .field(manifest_etag)
        .field(&report_bucket_arn)
        .field(report.1);
    Ok(JobRequest {
        account_id: account_id.to_owned(),
        function_arn: function_arn.to_owned(),
        role_arn: role_arn.to_owned(),
        manifest_arn,
        manifest_etag: manifest_etag.to_owned(),
        report_bucket_arn,
        report_prefix: report.1.trim_end_matches('/').to_owned(),
        description: description.chars().take(256).collect(),
        priority: 10,
        client_request_token: format!("ipsight-backfill-{}", h.hex()),
    })
}

fn control_err(
    op: &'static str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> BackfillError {
    BackfillError::Control {
        op,
        msg: aws_sdk_s3control::error::DisplayErrorContext(&e).to_string(),
    }
}

/// Create the job; returns its id.
pub async fn submit_job(
    client: &aws_sdk_s3control::Client,
    req: &JobRequest,
) -> Result<String, BackfillError> {
    let build = |e: aws_sdk_s3control::error::BuildError| control_err("CreateJob", e);
    let out = client
        .create_job()
        .account_id(&req.account_id)
        .confirmation_required(false)
        .operation(
            JobOperation::builder()
                .lambda_invoke(
                    LambdaInvokeOperation::builder()
                        .function_arn(&req.function_arn)
                        .invocation_schema_version("2.0")
                        .build(),
                )
                .build(),
        )
        .report(
            JobReport::builder()
                .bucket(&req.report_bucket_arn)
                .format(JobReportFormat::ReportCsv20180820)
                .enabled(true)
                .prefix(&req.report_prefix)
                .report_scope(JobReportScope::FailedTasksOnly)
                .build(),
        )
        .client_request_token(&req.client_request_token)
        .manifest(
            JobManifest::builder()
                .spec(
                    JobManifestSpec::builder()
                        .format(JobManifestFormat::S3BatchOperationsCsv20180820)
                        .fields(JobManifestFieldName::Bucket)
                        .fields(JobManifestFieldName::Key)
                        .build()
                        .map_err(build)?,
                )
                .location(
                    JobManifestLocation::builder()
                        .object_arn(&req.manifest_arn)
                        .e_tag(&req.manifest_etag)
                        .build()
                        .map_err(build)?,
                )
                .build(),
        )
        .description(&req.description)
        .priority(req.priority)
        .role_arn(&req.role_arn)
        .send()
        .await
        .map_err(|e| control_err("CreateJob", e))?;
    out.job_id()
        .map(str::to_owned)
        .ok_or_else(|| BackfillError::Control {
            op: "CreateJob",
            msg: "the response has no JobId".into(),
        })
}

/// A job's progress, as `ipsight backfill --status` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobStatus {
    pub job_id: String,
    pub status: String,
    pub tasks_total: i64,
    pub tasks_succeeded: i64,
    pub tasks_failed: i64,
    pub elapsed_seconds: Option<i64>,
    /// Why the job failed or was suspended, when S3 says.
    pub reasons: Vec<String>,
    /// Where the completion report goes (`s3://bucket/prefix`).
    pub report: Option<String>,
}

pub async fn describe_job(
    client: &aws_sdk_s3control::Client,
    account_id: &str,
    job_id: &str,
) -> Result<JobStatus, BackfillError> {
    let out = client
        .describe_job()
        .account_id(account_id)
        .job_id(job_id)
        .send()
        .await
        .map_err(|e| control_err("DescribeJob", e))?;
    let job = out.job().ok_or_else(|| BackfillError::Control {
        op: "DescribeJob",
        msg: format!("no job in the response for {job_id}"),
    })?;
    let p = job.progress_summary();
    let mut reasons: Vec<String> = job
        .failure_reasons()
        .iter()
        .map(|f| {
            format!(
                "{}: {}",
                f.failure_code().unwrap_or("-"),
                f.failure_reason().unwrap_or("-")
            )
        })
        .collect();
    if let Some(r) = job.status_update_reason() {
        reasons.push(r.to_owned());
    }
    Ok(JobStatus {
        job_id: job.job_id().unwrap_or(job_id).to_owned(),
        status: job
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        tasks_total: p.and_then(|p| p.total_number_of_tasks()).unwrap_or(0),
        tasks_succeeded: p.and_then(|p| p.number_of_tasks_succeeded()).unwrap_or(0),
        tasks_failed: p.and_then(|p| p.number_of_tasks_failed()).unwrap_or(0),
        elapsed_seconds: p
            .and_then(|p| p.timers())
            .and_then(|t| t.elapsed_time_in_active_seconds()),
        reasons,
        report: job.report().and_then(|r| {
            r.bucket().map(|b| {
                format!(
                    "s3://{}/{}",
                    b.rsplit(':').next().unwrap_or(b),
                    r.prefix().unwrap_or("")
                )
            })
        }),
    })
}
