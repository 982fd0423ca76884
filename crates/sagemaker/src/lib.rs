//! Training at scale with the SageMaker built-in IP Insights algorithm.
//!
//! The preparer writes SageMaker's `text/csv` training channel (`entity,ip`), so the same files train
//! `ipsight train` on one machine or a SageMaker training job on many. Hyperparameters are validated
//! with the embedded model's own table (same names, ranges and defaults as SageMaker) before a job is
//! started, so a typo fails in a second instead of after instance start-up.
use std::collections::HashMap;

use aws_sdk_sagemaker::types::{
    AlgorithmSpecification, Channel, ContainerDefinition, DataSource, OutputDataConfig,
    ProductionVariant, ResourceConfig, S3DataDistribution, S3DataSource, S3DataType,
    StoppingCondition, TrainingInputMode, TrainingInstanceType,
};
use aws_sdk_sagemaker::Client;
use ipsight_model::{Hyperparameters, HYPERPARAMETER_NAMES};

/// The ECR registry account hosting the built-in `ipinsights:1` image in each region (from the
/// SageMaker Python SDK's image URI table).
const REGISTRIES: &[(&str, &str)] = &[
    ("af-south-1", "455444449433"),
    ("ap-east-1", "286214385809"),
    ("ap-northeast-1", "351501993468"),
    ("ap-northeast-2", "835164637446"),
    ("ap-northeast-3", "364406365360"),
    ("ap-south-1", "991648021394"),
    ("ap-southeast-1", "475088953585"),
    ("ap-southeast-2", "712309505854"),
    ("ca-central-1", "469771592824"),
    ("cn-north-1", "390948362332"),
    ("cn-northwest-1", "387376663083"),
    ("eu-central-1", "664544806723"),
    ("eu-north-1", "669576153137"),
    ("eu-south-1", "257386234256"),
    ("eu-west-1", "438346466558"),
    ("eu-west-2", "644912444149"),
    ("eu-west-3", "749696950732"),
    ("me-south-1", "249704162688"),
    ("sa-east-1", "855470959533"),
    ("us-east-1", "382416733822"),
    ("us-east-2", "404615174143"),
    ("us-gov-west-1", "226302683700"),
    ("us-west-1", "632365934929"),
    ("us-west-2", "174872318107"),
];

/// The built-in IP Insights image for `region`, or `None` where SageMaker does not offer it.
pub fn ipinsights_image(region: &str) -> Option<String> {
    let (_, acct) = REGISTRIES.iter().find(|(r, _)| *r == region)?;
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Some(format!("{acct}.dkr.ecr.{region}.{domain}/ipinsights:1"))
}

/// Regions with the built-in image (for the SAM template's mapping and error messages).
pub fn supported_regions() -> impl Iterator<Item = &'static str> {
    REGISTRIES.iter().map(|(r, _)| *r)
}

#[derive(Debug, thiserror::Error)]
pub enum SageMakerError {
    #[error("the built-in IP Insights algorithm is not available in region {0:?}")]
    UnsupportedRegion(String),
    #[error(transparent)]
    Hyperparameter(#[from] ipsight_model::ModelError),
    #[error("{what} must be an s3:// URI, got {got:?}")]
    NotS3 { what: &'static str, got: String },
    #[error("unknown instance type {0:?}")]
    InstanceType(String),
    #[error("{op} failed: {msg}")]
    Api { op: &'static str, msg: String },
    #[error("training job {name} ended {status}: {reason}")]
    JobFailed {
        name: String,
        status: String,
        reason: String,
    },
}

fn api<E: std::error::Error + 'static>(
    op: &'static str,
) -> impl FnOnce(aws_sdk_sagemaker::error::SdkError<E>) -> SageMakerError {
    move |e| SageMakerError::Api {
        op,
        msg: aws_sdk_sagemaker::error::DisplayErrorContext(&e).to_string(),
    }
}

/// A training job on the preparer's output.
#[derive(Debug, Clone)]
pub struct TrainingJob {
    pub name: String,
    pub role_arn: String,
    pub region: String,
    /// `s3://…/train/` — a prefix of tuple CSVs (every object under it is read).
    pub train: String,
    pub validation: Option<String>,
    /// `s3://…/models/` — SageMaker writes `<name>/output/model.tar.gz` under it.
    pub output: String,
    pub instance_type: String,
    pub instance_count: i32,
    pub volume_gb: i32,
    pub max_runtime_secs: i32,
    /// SageMaker hyperparameter name → value (validated before the job starts).
    pub hyperparameters: Vec<(String, String)>,
}

fn require_s3(what: &'static str, uri: &str) -> Result<(), SageMakerError> {
    if uri.starts_with("s3://") && uri.len() > 5 {
        Ok(())
    } else {
        Err(SageMakerError::NotS3 {
            what,
            got: uri.to_owned(),
        })
    }
}

/// Validate hyperparameters with the embedded model's table and render them as SageMaker wants
/// (every value a string; only the names the user set plus the two required ones).
pub fn hyperparameter_map(
    pairs: &[(String, String)],
) -> Result<HashMap<String, String>, SageMakerError> {
    let mut hp = Hyperparameters::new(0, 0);
    for (k, v) in pairs {
        hp.set(&k.replace('-', "_"), v)?;
    }
    hp.validate()?;
    let all = serde_json::to_value(&hp).expect("hyperparameters serialise");
    let mut out = HashMap::new();
    for name in HYPERPARAMETER_NAMES {
        let explicitly_set = pairs.iter().any(|(k, _)| k.replace('-', "_") == name);
        if explicitly_set || name == "num_entity_vectors" || name == "vector_dim" {
            let v = &all[name];
            out.insert(
                name.to_owned(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            );
        }
    }
    Ok(out)
}

fn channel(name: &str, uri: &str) -> Channel {
    Channel::builder()
        .channel_name(name)
        .content_type("text/csv")
        .data_source(
            DataSource::builder()
                .s3_data_source(
                    S3DataSource::builder()
                        .s3_data_type(S3DataType::S3Prefix)
                        .s3_uri(uri)
                        .s3_data_distribution_type(S3DataDistribution::FullyReplicated)
                        .build(),
                )
                .build(),
        )
        .build()
}

/// Start the job; returns its ARN.
pub async fn start_training_job(
    client: &Client,
    job: &TrainingJob,
) -> Result<String, SageMakerError> {
    let image = ipinsights_image(&job.region)
        .ok_or_else(|| SageMakerError::UnsupportedRegion(job.region.clone()))?;
    require_s3("--train", &job.train)?;
    require_s3("--output", &job.output)?;
    if let Some(v) = &job.validation {
        require_s3("--validation", v)?;
    }
    let hps = hyperparameter_map(&job.hyperparameters)?;
    if !TrainingInstanceType::values().contains(&job.instance_type.as_str()) {
        return Err(SageMakerError::InstanceType(job.instance_type.clone()));
    }
    let instance = TrainingInstanceType::from(job.instance_type.as_str());
    let mut req = client
        .create_training_job()
        .training_job_name(&job.name)
        .role_arn(&job.role_arn)
        .algorithm_specification(
            AlgorithmSpecification::builder()
                .training_image(image)
                .training_input_mode(TrainingInputMode::File)
                .build(),
        )
        .set_hyper_parameters(Some(hps))
        .input_data_config(channel("train", &job.train))
        .output_data_config(
            OutputDataConfig::builder()
                .s3_output_path(&job.output)
                .build(),
        )
        .resource_config(
            ResourceConfig::builder()
                .instance_type(instance)
                .instance_count(job.instance_count)
                .volume_size_in_gb(job.volume_gb)
                .build(),
        )
        .stopping_condition(
            StoppingCondition::builder()
                .max_runtime_in_seconds(job.max_runtime_secs)
                .build(),
        );
    if let Some(v) = &job.validation {
        req = req.input_data_config(channel("validation", v));
    }
    let out = req.send().await.map_err(api("CreateTrainingJob"))?;
    Ok(out.training_job_arn().unwrap_or_default().to_owned())
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    pub status: String,
    pub secondary_status: Option<String>,
    pub failure_reason: Option<String>,
    /// `s3://…/model.tar.gz` once the job completed.
    pub model_artifacts: Option<String>,
    /// Final metrics, e.g. `validation:discriminator_auc`.
    pub metrics: Vec<(String, f32)>,
}

pub async fn training_job_status(client: &Client, name: &str) -> Result<JobStatus, SageMakerError> {
    let d = client
        .describe_training_job()
        .training_job_name(name)
        .send()
        .await
        .map_err(api("DescribeTrainingJob"))?;
    Ok(JobStatus {
        status: d
            .training_job_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        secondary_status: d.secondary_status().map(|s| s.as_str().to_owned()),
        failure_reason: d.failure_reason().map(str::to_owned),
        model_artifacts: d
            .model_artifacts()
            .and_then(|m| m.s3_model_artifacts())
            .map(str::to_owned),
        metrics: d
            .final_metric_data_list()
            .iter()
            .filter_map(|m| Some((m.metric_name()?.to_owned(), m.value()?)))
            .collect(),
    })
}

/// Poll until the job leaves InProgress/Stopping; an unsuccessful end is an error with SageMaker's reason.
pub async fn wait_training_job(
    client: &Client,
    name: &str,
    poll: std::time::Duration,
) -> Result<JobStatus, SageMakerError> {
    loop {
        let s = training_job_status(client, name).await?;
        match s.status.as_str() {
            "InProgress" | "Stopping" => tokio::time::sleep(poll).await,
            "Completed" => return Ok(s),
            other => {
                return Err(SageMakerError::JobFailed {
                    name: name.to_owned(),
                    status: other.to_owned(),
                    reason: s.failure_reason.unwrap_or_else(|| "no reason given".into()),
                })
            }
        }
    }
}

/// An endpoint serving a trained artefact.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub endpoint: String,
    pub region: String,
    pub role_arn: String,
    /// `s3://…/model.tar.gz` from a training job.
    pub model_data: String,
    pub instance_type: String,
    pub instance_count: i32,
    /// A suffix that makes model and endpoint-config names unique per deployment (e.g. the job name).
    pub version: String,
}

/// What `deploy` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployAction {
    Created,
    Updated,
}

/// Create the model and endpoint configuration, then create the endpoint or, if it exists, switch it
/// to the new configuration (SageMaker keeps serving the old one until the new one is ready).
pub async fn deploy(client: &Client, d: &Deployment) -> Result<DeployAction, SageMakerError> {
    let image = ipinsights_image(&d.region)
        .ok_or_else(|| SageMakerError::UnsupportedRegion(d.region.clone()))?;
    require_s3("--model-data", &d.model_data)?;
    let model_name = format!("{}-{}", d.endpoint, d.version);
    let config_name = model_name.clone();
    client
        .create_model()
        .model_name(&model_name)
        .execution_role_arn(&d.role_arn)
        .primary_container(
            ContainerDefinition::builder()
                .image(image)
                .model_data_url(&d.model_data)
                .build(),
        )
        .send()
        .await
        .map_err(api("CreateModel"))?;
    client
        .create_endpoint_config()
        .endpoint_config_name(&config_name)
        .production_variants(
            ProductionVariant::builder()
                .variant_name("AllTraffic")
                .model_name(&model_name)
                .initial_instance_count(d.instance_count)
                .instance_type(d.instance_type.as_str().into())
                .build(),
        )
        .send()
        .await
        .map_err(api("CreateEndpointConfig"))?;
    let exists = client
        .describe_endpoint()
        .endpoint_name(&d.endpoint)
        .send()
        .await
        .is_ok();
    if exists {
        client
            .update_endpoint()
            .endpoint_name(&d.endpoint)
            .endpoint_config_name(&config_name)
            .send()
            .await
            .map_err(api("UpdateEndpoint"))?;
        Ok(DeployAction::Updated)
    } else {
        client
            .create_endpoint()
            .endpoint_name(&d.endpoint)
            .endpoint_config_name(&config_name)
            .send()
            .await
            .map_err(api("CreateEndpoint"))?;
        Ok(DeployAction::Created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images() {
        assert_eq!(
            ipinsights_image("us-east-1").unwrap(),
            "382416733822.dkr.ecr.us-east-1.amazonaws.com/ipinsights:1"
        );
        assert!(ipinsights_image("cn-north-1")
            .unwrap()
            .ends_with("amazonaws.com.cn/ipinsights:1"));
        assert!(ipinsights_image("mars-1").is_none());
    }

    #[test]
    fn hyperparameters_validated_and_rendered() {
        let hp = |v: &[(&str, &str)]| {
            hyperparameter_map(
                &v.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        let m = hp(&[
            ("num_entity_vectors", "20000"),
            ("vector-dim", "128"),
            ("epochs", "5"),
        ])
        .unwrap();
        assert_eq!(m["num_entity_vectors"], "20000");
        assert_eq!(m["vector_dim"], "128");
        assert_eq!(m["epochs"], "5");
        assert!(
            !m.contains_key("learning_rate"),
            "unset values are left to SageMaker's defaults"
        );
        let e = hp(&[("num_entity_vectors", "20000"), ("vector_dim", "2")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("vector_dim"), "{e}");
        assert!(
            hp(&[("vector_dim", "128")]).is_err(),
            "num_entity_vectors is required"
        );
    }
}
