//! The scheduled-retrain Lambda: the library's retrain ([`ipsight_retrain::run`]) over S3, run by an
//! EventBridge schedule (and by hand with `cargo lambda invoke`). This crate holds only what is the
//! Lambda's own: its configuration from the environment and the SageMaker training-job adapter.
//! What a run does (window, compaction, hold-back, hybrid training, judging on the combined score,
//! promotion of model and sidecar) is in `ipsight-retrain`, which `ipsight retrain` runs too.
use std::path::Path;

use ipsight_aws::config::{ConfigError, Env};
use ipsight_model::Hyperparameters;
use ipsight_ports::{ObjectLister, ObjectRef, ObjectStore};
pub use ipsight_retrain::run::RunError;
use ipsight_retrain::run::{
    NoTrainingJobs, PairsSource, SageMakerTraining, TrainingJobRequest, TrainingJobs,
    DEFAULT_MAX_EMBEDDED_BYTES, DEFAULT_TRAINING_DAYS,
};
use ipsight_retrain::Settings;
use serde_json::Value;

pub const FUNCTION: &str = "scheduled-retrain";

/// Default `SAGEMAKER_CHANNEL_PREFIX`: where the window's pairs are expanded for a SageMaker job.
pub const DEFAULT_CHANNEL_PREFIX: &str = "sagemaker/train/";

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigFailure(#[from] pub ConfigError);

/// The Lambda's configuration: the library's settings, read from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
}

/// Whether `prefix` of `bucket` and the input `of` overlap (one lists the other's objects).
fn overlaps(bucket: &str, prefix: &str, of: &(String, String)) -> bool {
    bucket == of.0 && (prefix.starts_with(&of.1) || of.1.starts_with(prefix))
}

impl Config {
    pub fn from_env(region: Option<String>) -> Result<Self, ConfigFailure> {
        Self::from_vars(|k| std::env::var(k).ok(), region)
    }

    /// Every problem is reported at cold start, naming the variable.
    pub fn from_vars(
        get: impl Fn(&str) -> Option<String>,
        region: Option<String>,
    ) -> Result<Self, ConfigFailure> {
        let env = Env::new(get);
        let tuples = env.s3_prefix("TRAINING_URI")?;
        let pairs_uri = env.s3_prefix("PAIRS_URI")?;
        if tuples.is_none() && pairs_uri.is_none() {
            return Err(ConfigError::unusable(
                "TRAINING_URI",
                "not set, nor PAIRS_URI: set one (the preparer's tuple CSVs, e.g. \
                 s3://bucket/train/, or its pair files, e.g. s3://bucket/pairs/objects/)",
            )
            .into());
        }
        let model = env.required("MODEL_URI")?;
        let model = env
            .s3_object("MODEL_URI")
            .map_err(|_| {
                ConfigError::invalid(
                    "MODEL_URI",
                    &model,
                    "expected the model object, e.g. s3://bucket/models/current/model.ipsm",
                )
            })?
            .expect("MODEL_URI is set");
        let days: u32 = env.number("TRAINING_DAYS", DEFAULT_TRAINING_DAYS)?;
        if days < 2 {
            return Err(ConfigError::invalid(
                "TRAINING_DAYS",
                days.to_string(),
                "at least 2: the newest day is held back to judge the candidate",
            )
            .into());
        }
        let pairs = pairs_uri.map(|(bucket, objects_prefix)| PairsSource {
            daily_prefix: PairsSource::daily_beside(&objects_prefix),
            bucket,
            objects_prefix,
            days,
        });
        let mut inputs: Vec<(&str, (String, String))> = Vec::new();
        if let Some(t) = &tuples {
            inputs.push(("TRAINING_URI", t.clone()));
        }
        if let Some(p) = &pairs {
            inputs.push(("PAIRS_URI", (p.bucket.clone(), p.objects_prefix.clone())));
            inputs.push(("PAIRS_URI", (p.bucket.clone(), p.daily_prefix.clone())));
        }
        for (name, input) in &inputs {
            if model.bucket == input.0 && model.key.starts_with(&input.1) {
                return Err(ConfigError::invalid(
                    "MODEL_URI",
                    model.to_string(),
                    format!(
                        "is under {name} (s3://{}/{}): models would be read as training data; \
                         keep them under another prefix (e.g. models/)",
                        input.0, input.1
                    ),
                )
                .into());
            }
        }
        let holdout_fraction: f64 = env.number("HOLDOUT_FRACTION", 0.1)?;
        if !(holdout_fraction > 0.0 && holdout_fraction < 1.0) {
            return Err(ConfigError::invalid(
                "HOLDOUT_FRACTION",
                holdout_fraction.to_string(),
                "must be between 0 and 1 (exclusive)",
            )
            .into());
        }
        let auc_tolerance: f64 = env.number("AUC_TOLERANCE", 0.005)?;
        if !(0.0..1.0).contains(&auc_tolerance) {
            return Err(ConfigError::invalid(
                "AUC_TOLERANCE",
                auc_tolerance.to_string(),
                "must be in [0, 1)",
            )
            .into());
        }
        let (hyper, hyper_pairs) = hyperparameters(env.get("HYPERPARAMETERS").as_deref())?;
        let sagemaker = match env.get("SAGEMAKER_TRAINING_ROLE_ARN") {
            None => None,
            Some(role_arn) => {
                let sm = sagemaker_training(&env, role_arn, region, &model)?;
                for (name, input) in &inputs {
                    if overlaps(&input.0, &sm.channel_prefix, input) {
                        return Err(ConfigError::invalid(
                            "SAGEMAKER_CHANNEL_PREFIX",
                            sm.channel_prefix.clone(),
                            format!(
                                "overlaps {name}: the expanded channel would be read back as input"
                            ),
                        )
                        .into());
                    }
                }
                Some(sm)
            }
        };
        Ok(Self {
            settings: Settings {
                tuples,
                pairs,
                labels: env.labels(&model.bucket)?,
                model,
                holdout_fraction,
                max_embedded_bytes: env
                    .number("MAX_EMBEDDED_TRAINING_BYTES", DEFAULT_MAX_EMBEDDED_BYTES)?,
                hyper,
                hyper_pairs,
                false_positive_repeat: env.number("FALSE_POSITIVE_REPEAT", 20)?,
                auc_tolerance,
                alert_min_percentile: env.percent_opt("ALERT_MIN_PERCENTILE")?.unwrap_or(99.5),
                threads: env.number_opt::<usize>("TRAIN_THREADS")?.map(|n| n.max(1)),
                sagemaker,
                entity: env.entity()?,
                function: FUNCTION,
            },
        })
    }
}

/// The SageMaker training-job adapter of [`TrainingJobs`].
pub struct SageMakerJobs<'a>(pub &'a aws_sdk_sagemaker::Client);

impl TrainingJobs for SageMakerJobs<'_> {
    async fn start(&self, job: &TrainingJobRequest) -> Result<String, String> {
        let job = ipsight_sagemaker::TrainingJob {
            name: job.name.clone(),
            role_arn: job.role_arn.clone(),
            region: job.region.clone(),
            train: job.train.clone(),
            validation: None,
            output: job.output.clone(),
            instance_type: job.instance_type.clone(),
            instance_count: 1,
            volume_gb: 30,
            max_runtime_secs: 86_400,
            hyperparameters: job.hyperparameters.clone(),
        };
        ipsight_sagemaker::start_training_job(self.0, &job)
            .await
            .map_err(|e| e.to_string())
    }
}

/// One scheduled run: the library's retrain with this Lambda's configuration, over `store`, with
/// SageMaker jobs when a client is given.
pub async fn run<S: ObjectStore + ObjectLister>(
    cfg: &Config,
    store: &S,
    sagemaker: Option<&aws_sdk_sagemaker::Client>,
    now_ms: i64,
    work_dir: &Path,
) -> Result<Value, RunError> {
    match sagemaker {
        Some(c) => {
            ipsight_retrain::run(&cfg.settings, store, &SageMakerJobs(c), now_ms, work_dir).await
        }
        None => ipsight_retrain::run(&cfg.settings, store, &NoTrainingJobs, now_ms, work_dir).await,
    }
}

/// `SAGEMAKER_TRAINING_ROLE_ARN` set: where and how SageMaker trains (its output defaults to
/// `sagemaker/` beside the serving model).
fn sagemaker_training<G: Fn(&str) -> Option<String>>(
    env: &Env<G>,
    role_arn: String,
    region: Option<String>,
    model: &ObjectRef,
) -> Result<SageMakerTraining, ConfigError> {
    const NAME: &str = "SAGEMAKER_TRAINING_ROLE_ARN";
    let region = region
        .ok_or_else(|| ConfigError::unusable(NAME, "is set but no AWS region is configured"))?;
    if ipsight_sagemaker::ipinsights_image(&region).is_none() {
        return Err(ConfigError::unusable(
            NAME,
            format!("is set but the IP Insights algorithm is not offered in {region}"),
        ));
    }
    let models_dir = model.key.rsplit_once('/').map_or("", |(d, _)| d);
    let models_dir = models_dir.strip_suffix("/current").unwrap_or(models_dir);
    let output = match env.s3_prefix("SAGEMAKER_OUTPUT_URI")? {
        Some(_) => env.required("SAGEMAKER_OUTPUT_URI")?,
        None => format!(
            "s3://{}/{models_dir}{}sagemaker/",
            model.bucket,
            if models_dir.is_empty() { "" } else { "/" }
        ),
    };
    Ok(SageMakerTraining {
        role_arn,
        instance_type: env.or("SAGEMAKER_TRAINING_INSTANCE_TYPE", "ml.m5.xlarge"),
        output,
        region,
        channel_prefix: env.prefix("SAGEMAKER_CHANNEL_PREFIX", DEFAULT_CHANNEL_PREFIX),
    })
}

/// `HYPERPARAMETERS`: a JSON object with SageMaker's names and values (strings or numbers), the
/// same ones `ipsight sagemaker train --hp` and the SageMaker console take. `num_entity_vectors`
/// and `vector_dim` are required, as in SageMaker.
pub fn hyperparameters(
    json_text: Option<&str>,
) -> Result<(Hyperparameters, Vec<(String, String)>), ConfigError> {
    let err = |m: String| ConfigError::unusable("HYPERPARAMETERS", m);
    let text = json_text.ok_or_else(|| {
        err(r#"not set; e.g. {"num_entity_vectors": 20000, "vector_dim": 128}"#.into())
    })?;
    let obj: serde_json::Map<String, Value> =
        serde_json::from_str(text).map_err(|e| err(format!("not a JSON object: {e}")))?;
    let mut hp = Hyperparameters::new(0, 0);
    let mut pairs = Vec::new();
    for (k, v) in &obj {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => return Err(err(format!("{k}: {other} is not a string or number"))),
        };
        hp.set(k, &v).map_err(|e| err(e.to_string()))?;
        pairs.push((k.clone(), v));
    }
    for required in ["num_entity_vectors", "vector_dim"] {
        if !obj.contains_key(required) {
            return Err(err(format!(
                "{required} is required (as in SageMaker IP Insights)"
            )));
        }
    }
    hp.validate().map_err(|e| err(e.to_string()))?;
    Ok((hp, pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    use ipsight_testkit::vars;

    const HP: &str = r#"{"num_entity_vectors": "20000", "vector_dim": 128, "epochs": 5}"#;

    #[test]
    fn configuration() {
        let base = [
            ("TRAINING_URI", "s3://data/train/"),
            ("MODEL_URI", "s3://data/models/current/model.ipsm"),
            ("HYPERPARAMETERS", HP),
        ];
        let c = Config::from_vars(vars(&base), None).unwrap().settings;
        assert_eq!(c.tuples, Some(("data".into(), "train/".into())));
        assert!(c.pairs.is_none());
        assert_eq!(c.model, ObjectRef::new("data", "models/current/model.ipsm"));
        assert_eq!(
            (
                c.hyper.num_entity_vectors,
                c.hyper.vector_dim,
                c.hyper.epochs
            ),
            (20000, 128, 5)
        );
        assert_eq!(c.holdout_fraction, 0.1);
        assert_eq!(c.max_embedded_bytes, DEFAULT_MAX_EMBEDDED_BYTES);
        assert!(c.sagemaker.is_none() && c.labels.is_none() && c.threads.is_none());

        let with = |extra: &[(&'static str, &'static str)]| {
            let mut v = base.to_vec();
            v.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
            v.extend_from_slice(extra);
            Config::from_vars(vars(&v), Some("eu-west-1".into())).map(|c| c.settings)
        };
        let c = with(&[
            ("SAGEMAKER_TRAINING_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("LABELS_PREFIX", "labels/"),
        ])
        .unwrap();
        let sm = c.sagemaker.unwrap();
        assert_eq!(sm.output, "s3://data/models/sagemaker/");
        assert_eq!(sm.channel_prefix, DEFAULT_CHANNEL_PREFIX);
        assert_eq!(
            (sm.region.as_str(), sm.instance_type.as_str()),
            ("eu-west-1", "ml.m5.xlarge")
        );
        assert_eq!(c.labels.unwrap().describe(), "s3://data/labels/");
        // The window of pair files: its daily compactions beside it, TRAINING_DAYS long.
        let c = with(&[
            ("PAIRS_URI", "s3://data/pairs/objects/"),
            ("TRAINING_DAYS", "14"),
        ])
        .unwrap();
        let p = c.pairs.unwrap();
        assert_eq!(
            (
                p.bucket.as_str(),
                p.objects_prefix.as_str(),
                p.daily_prefix.as_str(),
                p.days
            ),
            ("data", "pairs/objects/", "pairs/daily/", 14)
        );
        assert_eq!(
            Config::from_vars(
                vars(&[base[1], base[2], ("PAIRS_URI", "s3://data/pairs/objects/")]),
                None
            )
            .unwrap()
            .settings
            .pairs
            .unwrap()
            .days,
            DEFAULT_TRAINING_DAYS
        );

        for (extra, needle) in [
            (vec![("TRAINING_URI", "data/train/")], "TRAINING_URI"),
            (vec![("PAIRS_URI", "pairs/")], "PAIRS_URI"),
            (vec![("TRAINING_DAYS", "1")], "TRAINING_DAYS"),
            (vec![("PAIRS_URI", "s3://data/models/")], "under PAIRS_URI"),
            (
                vec![
                    ("SAGEMAKER_TRAINING_ROLE_ARN", "arn:aws:iam::1:role/r"),
                    ("SAGEMAKER_CHANNEL_PREFIX", "train/sm/"),
                ],
                "SAGEMAKER_CHANNEL_PREFIX",
            ),
            (vec![("MODEL_URI", "s3://data/models/")], "MODEL_URI"),
            (
                vec![("MODEL_URI", "s3://data/train/model.ipsm")],
                "under TRAINING_URI",
            ),
            (vec![("HYPERPARAMETERS", "")], "HYPERPARAMETERS: not set"),
            (vec![("HYPERPARAMETERS", "[1]")], "not a JSON object"),
            (
                vec![("HYPERPARAMETERS", r#"{"vector_dim": 64}"#)],
                "num_entity_vectors is required",
            ),
            (
                vec![(
                    "HYPERPARAMETERS",
                    r#"{"num_entity_vectors": 10, "vector_dim": 64, "epoch": 1}"#,
                )],
                "epoch",
            ),
            (
                vec![(
                    "HYPERPARAMETERS",
                    r#"{"num_entity_vectors": 10, "vector_dim": 1}"#,
                )],
                "vector_dim",
            ),
            (vec![("HOLDOUT_FRACTION", "1")], "HOLDOUT_FRACTION"),
            (vec![("HOLDOUT_FRACTION", "a tenth")], "HOLDOUT_FRACTION"),
            (
                vec![("MAX_EMBEDDED_TRAINING_BYTES", "-1")],
                "MAX_EMBEDDED_TRAINING_BYTES",
            ),
            (vec![("AUC_TOLERANCE", "2")], "AUC_TOLERANCE"),
            (
                vec![("ALERT_MIN_PERCENTILE", "101")],
                "ALERT_MIN_PERCENTILE",
            ),
            (vec![("LABELS_URI", "labels/")], "LABELS_URI"),
        ] {
            let e = with(&extra).unwrap_err().to_string();
            assert!(e.contains(needle), "{extra:?}: {e}");
        }
        let e = Config::from_vars(
            vars(&[
                base[0],
                base[1],
                base[2],
                ("SAGEMAKER_TRAINING_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ]),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("no AWS region"), "{e}");
    }
}
