//! `ipsight backfill`: prepare the history already in a trail bucket on AWS's own engine. Lists the
//! trail (or reads an S3 Inventory report) for a window of days, writes an S3 Batch Operations
//! manifest and creates the job that invokes the preparer Lambda on every log object;
//! `--status JOB_ID` reports its progress. The work is `ipsight_backfill`'s.
use anyhow::{bail, Context};
use ipsight_aws::config::parse_s3_uri;
use ipsight_aws::S3Store;
use ipsight_backfill::{backfill, describe_job, Options, Window};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["bucket", "status"])))]
pub struct Args {
    /// The trail's bucket
    #[arg(long)]
    bucket: Option<String>,
    /// Only log objects under this key prefix (e.g. AWSLogs/o-abc123/111122223333/)
    #[arg(long, default_value = "")]
    prefix: String,
    /// Start of the window: the last N days (90d, ending with --until) or a date (YYYY-MM-DD)
    #[arg(long, default_value = "90d")]
    since: String,
    /// Last day of the window (YYYY-MM-DD, UTC; default today). Set it to the day the stack was
    /// deployed: later objects were prepared as they arrived
    #[arg(long)]
    until: Option<String>,
    /// Read this S3 Inventory report (s3://bucket/…/manifest.json, CSV format) instead of listing
    #[arg(long)]
    inventory: Option<String>,
    /// Where the job manifest and the completion report go (s3://bucket/prefix/), e.g.
    /// s3://<DataBucketName>/backfill/ (the stack's BackfillRole may read and write there)
    #[arg(long)]
    manifest_uri: Option<String>,
    /// The trail-bucket prefix the preparer is triggered on (the stack's CloudTrailPrefix): a
    /// manifest location it would see is refused. Default: the whole bucket
    #[arg(long, default_value = "")]
    trigger_prefix: String,
    /// The preparer's ARN (stack output PrepareCloudTrailFunctionArn)
    #[arg(long)]
    function_arn: Option<String>,
    /// The role Batch Operations assumes (stack output BackfillRoleArn)
    #[arg(long)]
    role_arn: Option<String>,
    /// The account the job belongs to (12 digits)
    #[arg(long)]
    account_id: Option<String>,
    /// The job's region (default: the AWS configuration's); the trail bucket and the function must
    /// be in it
    #[arg(long)]
    region: Option<String>,
    /// List and count only: write no manifest, create no job
    #[arg(long)]
    dry_run: bool,
    /// Report a job's progress instead (needs --account-id)
    #[arg(long, value_name = "JOB_ID", conflicts_with_all = ["bucket", "dry_run", "inventory", "manifest_uri"])]
    status: Option<String>,
}

fn s3_uri<'a>(flag: &str, v: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    parse_s3_uri(v).with_context(|| format!("{flag} {v:?}: expected s3://bucket/prefix"))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut loader = aws_config::from_env();
        if let Some(r) = &a.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let conf = loader.load().await;
        let region = a
            .region
            .clone()
            .or_else(|| conf.region().map(ToString::to_string));
        if let Some(job) = &a.status {
            let Some(account) = &a.account_id else {
                bail!("--status needs --account-id (the account the job belongs to)");
            };
            let control = aws_sdk_s3control::Client::new(&conf);
            let s = describe_job(&control, account, job).await?;
            eprintln!(
                "job {}: {} — {} of {} tasks succeeded, {} failed{}",
                s.job_id,
                s.status,
                s.tasks_succeeded,
                s.tasks_total,
                s.tasks_failed,
                s.report
                    .as_deref()
                    .map(|r| format!("; failed tasks are listed under {r}"))
                    .unwrap_or_default()
            );
            println!("{}", serde_json::to_string(&s)?);
            return Ok(());
        }
        let bucket = a.bucket.clone().expect("clap requires --bucket or --status");
        let window = Window::parse(
            &a.since,
            a.until.as_deref(),
            ipsight_core::time::now_secs().div_euclid(86_400),
        )?;
        let pair = |flag, v: &Option<String>| -> anyhow::Result<Option<(String, String)>> {
            v.as_deref()
                .map(|v| s3_uri(flag, v).map(|(b, k)| (b.to_owned(), k.to_owned())))
                .transpose()
        };
        let opts = Options {
            bucket,
            prefix: a.prefix.clone(),
            trigger_prefix: a.trigger_prefix.clone(),
            inventory: pair("--inventory", &a.inventory)?,
            manifest: pair("--manifest-uri", &a.manifest_uri)?,
            function_arn: a.function_arn.clone(),
            role_arn: a.role_arn.clone(),
            account_id: a.account_id.clone(),
            region,
            dry_run: a.dry_run,
        };
        let s3 = S3Store::from_conf(&conf);
        let control = (!a.dry_run).then(|| aws_sdk_s3control::Client::new(&conf));
        let out = backfill(s3.client(), control.as_ref(), &opts, window).await?;
        let s = &out.summary;
        eprintln!(
            "{} log objects ({} bytes) on {} of the {} days {}..{}{}",
            s.objects,
            s.bytes,
            s.days_with_objects,
            s.window_days,
            s.first_day,
            s.last_day,
            match (&out.job_id, &out.manifest) {
                (Some(j), Some(m)) => format!(
                    "; manifest {m}; job {j} created (follow it with `ipsight backfill --status {j} --account-id {}`)",
                    opts.account_id.as_deref().unwrap_or("")
                ),
                _ => " (dry run: nothing written)".to_owned(),
            }
        );
        println!("{}", serde_json::to_string(&out)?);
        Ok(())
    })
}
