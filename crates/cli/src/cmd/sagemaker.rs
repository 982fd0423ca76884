//! `ipsight sagemaker train|status|deploy`: the built-in IP Insights algorithm on the preparer's S3
//! output, for data that outgrows one machine. Credentials, region and endpoint overrides come from
//! the usual AWS environment (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL_SAGEMAKER`, …).
use anyhow::Context;
use ipsight_sagemaker::{
    deploy, start_training_job, training_job_status, wait_training_job, Deployment, TrainingJob,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Start a SageMaker training job with the built-in IP Insights algorithm
    Train {
        /// Job name (unique in the account and region)
        #[arg(long)]
        name: String,
        /// IAM role SageMaker assumes (reads the data, writes the model)
        #[arg(long)]
        role: String,
        /// s3:// prefix of training tuple CSVs (e.g. the preparer's train/cloudtrail/). Copied first
        /// into the IPv4-only channel under --channel-prefix (IPv6 tuples, which the built-in
        /// algorithm cannot read, counted and left out), as the scheduled retrain does
        #[arg(long)]
        train: String,
        /// Where the copies go, in --train's bucket: <prefix>dt=<today>/ (validation: <prefix>validation/dt=<today>/)
        #[arg(long, default_value = "sagemaker/train/")]
        channel_prefix: String,
        /// Hand --train and --validation to SageMaker as they are (they hold IPv4 tuples only)
        #[arg(long)]
        as_is: bool,
        /// s3:// prefix of validation tuple CSVs (SageMaker reports validation:discriminator_auc)
        #[arg(long)]
        validation: Option<String>,
        /// s3:// prefix for the model artefact
        #[arg(long)]
        output: String,
        #[arg(long, default_value = "ml.m5.xlarge")]
        instance_type: String,
        #[arg(long, default_value_t = 1)]
        instance_count: i32,
        #[arg(long, default_value_t = 30)]
        volume_gb: i32,
        #[arg(long, default_value_t = 86_400)]
        max_runtime_secs: i32,
        /// SageMaker hyperparameters as name=value (validated locally first), e.g.
        /// --hp num_entity_vectors=20000 --hp vector_dim=128 --hp epochs=10
        #[arg(long = "hp", value_parser = parse_kv)]
        hyperparameters: Vec<(String, String)>,
        /// Wait until the job ends and print its status and final metrics
        #[arg(long)]
        wait: bool,
    },
    /// Print a training job's status, metrics and model artefact
    Status {
        #[arg(long)]
        name: String,
    },
    /// Create or update an endpoint serving a trained model artefact
    Deploy {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        role: String,
        /// s3://…/model.tar.gz (a training job's output)
        #[arg(long)]
        model_data: String,
        /// Suffix for the new model and endpoint-config names (e.g. the training job name)
        #[arg(long)]
        version: String,
        #[arg(long, default_value = "ml.m5.large")]
        instance_type: String,
        #[arg(long, default_value_t = 1)]
        instance_count: i32,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("expected name=value, got {s:?}"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let conf = aws_config::load_from_env().await;
            let region = conf
                .region()
                .map(|r| r.to_string())
                .context("no AWS region configured (set AWS_REGION)")?;
            let client = aws_sdk_sagemaker::Client::new(&conf);
            match args.cmd {
                Cmd::Train {
                    name,
                    role,
                    train,
                    channel_prefix,
                    as_is,
                    validation,
                    output,
                    instance_type,
                    instance_count,
                    volume_gb,
                    max_runtime_secs,
                    hyperparameters,
                    wait,
                } => {
                    let (train, validation) = if as_is {
                        (train, validation)
                    } else {
                        let store = ipsight_aws::S3Store::from_conf(&conf);
                        let train = ipv4_channel(&store, &train, &channel_prefix).await?;
                        let validation = match validation {
                            Some(v) => Some(
                                ipv4_channel(&store, &v, &format!("{channel_prefix}validation/"))
                                    .await?,
                            ),
                            None => None,
                        };
                        (train, validation)
                    };
                    let job = TrainingJob {
                        name: name.clone(),
                        role_arn: role,
                        region,
                        train,
                        validation,
                        output,
                        instance_type,
                        instance_count,
                        volume_gb,
                        max_runtime_secs,
                        hyperparameters,
                    };
                    let arn = start_training_job(&client, &job).await?;
                    println!("started {arn}");
                    if wait {
                        let s =
                            wait_training_job(&client, &name, std::time::Duration::from_secs(30))
                                .await?;
                        println!("{s:#?}");
                    }
                }
                Cmd::Status { name } => {
                    println!("{:#?}", training_job_status(&client, &name).await?)
                }
                Cmd::Deploy {
                    endpoint,
                    role,
                    model_data,
                    version,
                    instance_type,
                    instance_count,
                } => {
                    let d = Deployment {
                        endpoint,
                        region,
                        role_arn: role,
                        model_data,
                        instance_type,
                        instance_count,
                        version,
                    };
                    println!("{:?} endpoint {}", deploy(&client, &d).await?, d.endpoint);
                }
            }
            Ok(())
        })
}

/// Copies the tuple CSVs under an `s3://` prefix into the IPv4-only channel beside it
/// ([`ipsight_retrain::run::copy_prefix_to_channel`]), prints the counts, returns the channel URI.
async fn ipv4_channel(
    store: &ipsight_aws::S3Store,
    uri: &str,
    channel_prefix: &str,
) -> anyhow::Result<String> {
    let (bucket, prefix) = ipsight_aws::config::parse_s3_uri(uri)
        .with_context(|| format!("{uri:?}: expected s3://bucket/prefix/"))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let (channel, counts) = ipsight_retrain::run::copy_prefix_to_channel(
        store,
        bucket,
        prefix,
        channel_prefix,
        now_ms,
        &std::env::temp_dir(),
    )
    .await
    .with_context(|| format!("copying {uri} into SageMaker's IPv4 channel"))?;
    eprintln!("{counts}");
    Ok(channel)
}
