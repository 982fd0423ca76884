//! Day-one backfill on AWS's own engine: choose the CloudTrail log objects of a window of days in a
//! trail bucket (by listing it, or from an S3 Inventory report), write them as an S3 Batch
//! Operations CSV manifest, and create the job that invokes the preparer Lambda on every one of
//! them. The preparer answers Batch Operations invocations itself (`ipsight_formats::batchops`), so
//! the history already in the bucket becomes pair and tuple files exactly as new objects do.
//!
//! Which keys are log objects and which day they belong to are the preparer's own rules
//! (`ipsight_formats::keys`): a key the preparer would skip is never put in a manifest, and a key is
//! in the window by the same day that dates its pair file.
pub mod inventory;
pub mod job;
pub mod listing;
pub mod manifest;

pub use job::{describe_job, job_request, submit_job, JobRequest, JobStatus};
pub use listing::{list_trail, Window};
pub use manifest::{encode_key, Selection, Summary};

use ipsight_aws::config::refuse_retrigger;

/// What `ipsight backfill` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The trail bucket and the prefix to backfill under.
    pub bucket: String,
    pub prefix: String,
    /// The prefix of the trail bucket the preparer is triggered on (the stack's `CloudTrailPrefix`;
    /// empty = the whole bucket): the manifest and report must not be written where it listens.
    pub trigger_prefix: String,
    /// `s3://bucket/manifest.json` of an S3 Inventory report to read instead of listing.
    pub inventory: Option<(String, String)>,
    /// Where the manifest and the completion report go (`s3://bucket/prefix`).
    pub manifest: Option<(String, String)>,
    pub function_arn: Option<String>,
    pub role_arn: Option<String>,
    pub account_id: Option<String>,
    /// The job's region, when known (checked against the function's).
    pub region: Option<String>,
    /// List and count only: write nothing, create nothing.
    pub dry_run: bool,
}

/// What was done.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub summary: Summary,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
}

fn need<'a>(flag: &'static str, v: &'a Option<String>) -> Result<&'a str, BackfillError> {
    v.as_deref().ok_or_else(|| {
        BackfillError::invalid(flag, "", "is required to create the job (or use --dry-run)")
    })
}

/// `folder/` of a prefix (empty stays empty).
fn folder(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

/// Choose the objects, write the manifest and create the job (or, with `dry_run`, only count).
/// Every flag is checked before anything is listed or written.
pub async fn backfill(
    s3: &aws_sdk_s3::Client,
    control: Option<&aws_sdk_s3control::Client>,
    opts: &Options,
    window: Window,
) -> Result<Outcome, BackfillError> {
    if let Some((mb, mp)) = &opts.manifest {
        refuse_retrigger(Some(&opts.bucket), &opts.trigger_prefix, mb, mp)?;
    }
    if !opts.dry_run {
        let (mb, mp) = opts.manifest.as_ref().ok_or_else(|| {
            BackfillError::invalid(
                "--manifest-uri",
                "",
                "is required to create the job (or use --dry-run)",
            )
        })?;
        // Validate the job's flags now, not after a long listing (the ETag is not known yet).
        job_request(
            need("--account-id", &opts.account_id)?,
            need("--function-arn", &opts.function_arn)?,
            need("--role-arn", &opts.role_arn)?,
            opts.region.as_deref(),
            (mb, mp),
            "",
            (mb, mp),
            "",
        )?;
        if control.is_none() {
            return Err(BackfillError::Control {
                op: "CreateJob",
                msg: "no S3 Control client".into(),
            });
        }
    }
    let mut sel = Selection::new(&opts.bucket, window)?;
    match &opts.inventory {
        Some((ib, ik)) => inventory::read_inventory(s3, ib, ik, &opts.prefix, &mut sel).await?,
        None => list_trail(s3, &opts.prefix, &mut sel).await?,
    }
    let (summary, file) = sel.finish()?;
    if summary.objects == 0 {
        return Err(BackfillError::invalid(
            "--bucket",
            format!("s3://{}/{}", opts.bucket, opts.prefix),
            format!(
                "no CloudTrail log objects from {} to {} (skipped keys: {:?}, skipped folders: {:?}); \
                 check --prefix and --since",
                summary.first_day, summary.last_day, summary.skipped, summary.skipped_prefixes
            ),
        ));
    }
    let mut out = Outcome {
        summary,
        dry_run: opts.dry_run,
        manifest: None,
        report: None,
        job_id: None,
        client_request_token: None,
    };
    if opts.dry_run {
        return Ok(out);
    }
    let (Some((mb, mp)), Some(control)) = (&opts.manifest, control) else {
        unreachable!("checked above");
    };
    // Named by its content: a re-run over the same objects overwrites the same manifest.
    let dir = format!("{}ipsight-backfill-{}/", folder(mp), out.summary.digest);
    let manifest_key = format!("{dir}manifest.csv");
    let report_prefix = format!("{dir}report");
    let body = aws_sdk_s3::primitives::ByteStream::from_path(file.path())
        .await
        .map_err(|e| BackfillError::s3("writing manifest", mb, &manifest_key, e))?;
    let put = s3
        .put_object()
        .bucket(mb)
        .key(&manifest_key)
        .content_type("text/csv")
        .body(body)
        .send()
        .await
        .map_err(|e| BackfillError::s3("writing manifest", mb, &manifest_key, e))?;
    let etag = put.e_tag().unwrap_or_default().trim_matches('"').to_owned();
    let req = job_request(
        need("--account-id", &opts.account_id)?,
        need("--function-arn", &opts.function_arn)?,
        need("--role-arn", &opts.role_arn)?,
        opts.region.as_deref(),
        (mb, &manifest_key),
        &etag,
        (mb, &report_prefix),
        &format!(
            "ipsight backfill s3://{}/{} {}..{}",
            opts.bucket, opts.prefix, out.summary.first_day, out.summary.last_day
        ),
    )?;
    let job_id = submit_job(control, &req).await?;
    out.manifest = Some(format!("s3://{mb}/{manifest_key}"));
    out.report = Some(format!("s3://{mb}/{report_prefix}"));
    out.job_id = Some(job_id);
    out.client_request_token = Some(req.client_request_token);
    Ok(out)
}

/// Everything that can go wrong, each naming the object or setting and the reason.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("{flag} {value:?}: {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("{what} s3://{bucket}/{key}: {msg}")]
    S3 {
        what: &'static str,
        bucket: String,
        key: String,
        msg: String,
    },
    #[error("S3 Control {op}: {msg}")]
    Control { op: &'static str, msg: String },
    #[error("inventory {object}: {reason}")]
    Inventory { object: String, reason: String },
    #[error("manifest file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Config(#[from] ipsight_aws::config::ConfigError),
}

impl BackfillError {
    pub(crate) fn invalid(
        flag: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            flag,
            value: value.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn s3(
        what: &'static str,
        bucket: &str,
        key: &str,
        e: impl std::error::Error + 'static,
    ) -> Self {
        Self::S3 {
            what,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            msg: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
        }
    }
}

/// A stable 128-bit FNV-1a digest as 32 hex digits: the job's idempotency token and the manifest's
/// folder name must be the same on every run and every build (std's hasher promises neither).
#[derive(Clone)]
pub struct StableHash(u64, u64);

impl Default for StableHash {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325, 0x6c62_272e_07bb_0142)
    }
}

impl StableHash {
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            self.1 = (self.1 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3 ^ 0x1_0000);
        }
    }

    /// Fields joined unambiguously (each followed by a NUL).
    pub fn field(&mut self, s: &str) -> &mut Self {
        self.update(s.as_bytes());
        self.update(&[0]);
        self
    }

    pub fn hex(&self) -> String {
        format!("{:016x}{:016x}", self.0, self.1)
    }
}
