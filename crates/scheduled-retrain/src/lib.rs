//! The scheduled retrain: a Lambda run by an EventBridge schedule (and by hand with
//! `cargo lambda invoke`).
//!
//! 1. Lists the tuple CSVs under `TRAINING_URI` (the preparers' output) with their sizes and ages.
//! 2. Data above `MAX_EMBEDDED_TRAINING_BYTES` does not fit a Lambda's 15 minutes: with
//!    `SAGEMAKER_TRAINING_ROLE_ARN` set, a SageMaker IP Insights training job is started on the same
//!    prefix instead; without it, the run fails saying so.
//! 3. Otherwise the newest objects (at least `HOLDOUT_FRACTION` of the bytes) are held back; the rest,
//!    plus every false positive the analysts labelled (repeated), trains a candidate with the embedded
//!    trainer; the candidate and the serving model (`MODEL_URI`) are judged on the same held-back
//!    pairs ([`ipsight_retrain::retrain`]).
//! 4. The candidate and its metrics are always kept (`…/candidates/<stamp>-model.ipsm` and
//!    `.metrics.json`). If it is not worse, the serving model is copied to `…/previous/` (rollback)
//!    and the candidate is copied over `MODEL_URI`; ipcheck and fuse pick it up within
//!    `MODEL_CHECK_SECONDS` without a redeploy.
use std::net::Ipv4Addr;
use std::path::Path;

use bytes::Bytes;
use ipsight_aws::{
    load_labels, LabelLoadError, LabelSource, ObjectInfo, ObjectLister, ObjectRef, ObjectStore,
    StoreError,
};
use ipsight_formats::labels::LabelSet;
use ipsight_model::tuples::for_each_tuple;
use ipsight_model::{Hyperparameters, Malformed, Model, ModelError, TrainEvent, TrainingData};
use ipsight_retrain::{
    candidate_path, metrics_path, previous_path, retrain, RetrainError, RetrainOptions,
};
use serde_json::{json, Value};

pub const FUNCTION: &str = "scheduled-retrain";

/// Default `MAX_EMBEDDED_TRAINING_BYTES`: tuple CSV the Lambda trains itself. See the README's
/// benchmark table for the measured training rate this is derived from.
pub const DEFAULT_MAX_EMBEDDED_BYTES: u64 = 256 << 20;
/// Held-back pairs beyond this add evaluation time, not confidence in the comparison.
pub const MAX_HOLDOUT_PAIRS: usize = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Labels(#[from] LabelLoadError),
    #[error("{0}")]
    Input(String),
    #[error("{obj}: {msg}")]
    Read { obj: ObjectRef, msg: String },
    #[error("serving model {obj}: {source}")]
    Model {
        obj: ObjectRef,
        #[source]
        source: ModelError,
    },
    #[error(transparent)]
    Retrain(#[from] RetrainError),
    #[error("starting the SageMaker training job: {0}")]
    SageMaker(String),
    #[error("{0}")]
    Local(String),
}

/// Where and how SageMaker trains when the data is too large for the Lambda.
#[derive(Debug, Clone, PartialEq)]
pub struct SageMakerTraining {
    pub role_arn: String,
    pub instance_type: String,
    /// `s3://…/` prefix the job writes `model.tar.gz` under.
    pub output: String,
    pub region: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub training_bucket: String,
    pub training_prefix: String,
    /// The serving model.
    pub model: ObjectRef,
    pub labels: Option<LabelSource>,
    pub holdout_fraction: f64,
    pub max_embedded_bytes: u64,
    pub hyper: Hyperparameters,
    /// The hyperparameters as configured (SageMaker names), for a SageMaker job.
    pub hyper_pairs: Vec<(String, String)>,
    pub false_positive_repeat: usize,
    pub auc_tolerance: f64,
    /// ipcheck's `ALERT_MIN_PERCENTILE`: the labelled pairs' recommendation is reported against it.
    pub alert_min_percentile: f64,
    pub threads: Option<usize>,
    pub sagemaker: Option<SageMakerTraining>,
    /// `ENTITY`: what the tuples' entities are, recorded in the candidate.
    pub entity: ipsight_formats::EntityKind,
}

fn s3_uri(name: &str, v: &str) -> Result<(String, String), RunError> {
    v.strip_prefix("s3://")
        .and_then(|r| r.split_once('/').or(Some((r, ""))))
        .filter(|(b, _)| !b.is_empty())
        .map(|(b, k)| (b.to_owned(), k.to_owned()))
        .ok_or_else(|| RunError::Config(format!("{name}={v:?}: expected s3://bucket/key")))
}

impl Config {
    pub fn from_env(region: Option<String>) -> Result<Self, RunError> {
        Self::from_vars(|k| std::env::var(k).ok(), region)
    }

    /// Every problem is reported at cold start, naming the variable.
    pub fn from_vars(
        get: impl Fn(&str) -> Option<String>,
        region: Option<String>,
    ) -> Result<Self, RunError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let cfg_err = |e: ipsight_aws::config::ConfigError| RunError::Config(e.to_string());
        let training = ipsight_aws::config::required(&get, "TRAINING_URI").map_err(cfg_err)?;
        let (training_bucket, training_prefix) = s3_uri("TRAINING_URI", &training)?;
        let model_uri = ipsight_aws::config::required(&get, "MODEL_URI").map_err(cfg_err)?;
        let (mb, mk) = s3_uri("MODEL_URI", &model_uri)?;
        if mk.is_empty() || mk.ends_with('/') {
            return Err(RunError::Config(format!(
                "MODEL_URI={model_uri:?}: expected the model object, e.g. s3://bucket/models/current/model.ipsm"
            )));
        }
        if mb == training_bucket && mk.starts_with(&training_prefix) {
            return Err(RunError::Config(format!(
                "MODEL_URI={model_uri:?} is under TRAINING_URI={training:?}: models would be listed as \
                 training data; keep them under another prefix (e.g. models/)"
            )));
        }
        let labels = LabelSource::from_vars(
            get("LABELS_URI").as_deref(),
            get("LABELS_PREFIX").as_deref(),
            &mb,
        )?;
        let holdout_fraction: f64 =
            ipsight_aws::config::number(&get, "HOLDOUT_FRACTION", 0.1).map_err(cfg_err)?;
        if !(holdout_fraction > 0.0 && holdout_fraction < 1.0) {
            return Err(RunError::Config(format!(
                "HOLDOUT_FRACTION={holdout_fraction}: must be between 0 and 1 (exclusive)"
            )));
        }
        let max_embedded_bytes = ipsight_aws::config::number(
            &get,
            "MAX_EMBEDDED_TRAINING_BYTES",
            DEFAULT_MAX_EMBEDDED_BYTES,
        )
        .map_err(cfg_err)?;
        let (hyper, hyper_pairs) = hyperparameters(get("HYPERPARAMETERS").as_deref())?;
        let false_positive_repeat =
            ipsight_aws::config::number(&get, "FALSE_POSITIVE_REPEAT", 20usize).map_err(cfg_err)?;
        let auc_tolerance =
            ipsight_aws::config::number(&get, "AUC_TOLERANCE", 0.005f64).map_err(cfg_err)?;
        if !(0.0..1.0).contains(&auc_tolerance) {
            return Err(RunError::Config(format!(
                "AUC_TOLERANCE={auc_tolerance}: must be in [0, 1)"
            )));
        }
        let alert_min_percentile =
            ipsight_aws::config::number(&get, "ALERT_MIN_PERCENTILE", 99.5f64).map_err(cfg_err)?;
        if !(0.0..=100.0).contains(&alert_min_percentile) {
            return Err(RunError::Config(format!(
                "ALERT_MIN_PERCENTILE={alert_min_percentile}: must be between 0 and 100"
            )));
        }
        let threads = match get("TRAIN_THREADS") {
            None => None,
            Some(_) => Some(
                ipsight_aws::config::number(&get, "TRAIN_THREADS", 1usize)
                    .map_err(cfg_err)?
                    .max(1),
            ),
        };
        let sagemaker = match get("SAGEMAKER_TRAINING_ROLE_ARN") {
            None => None,
            Some(role_arn) => {
                let region = region.ok_or_else(|| {
                    RunError::Config(
                        "SAGEMAKER_TRAINING_ROLE_ARN is set but no AWS region is configured".into(),
                    )
                })?;
                if ipsight_sagemaker::ipinsights_image(&region).is_none() {
                    return Err(RunError::Config(format!(
                        "SAGEMAKER_TRAINING_ROLE_ARN is set but the IP Insights algorithm is not \
                         offered in {region}"
                    )));
                }
                let models_dir = mk.rsplit_once('/').map_or("", |(d, _)| d);
                let models_dir = models_dir.strip_suffix("/current").unwrap_or(models_dir);
                let output = get("SAGEMAKER_OUTPUT_URI").unwrap_or_else(|| {
                    format!(
                        "s3://{mb}/{models_dir}{}sagemaker/",
                        if models_dir.is_empty() { "" } else { "/" }
                    )
                });
                s3_uri("SAGEMAKER_OUTPUT_URI", &output)?;
                Some(SageMakerTraining {
                    role_arn,
                    instance_type: get("SAGEMAKER_TRAINING_INSTANCE_TYPE")
                        .unwrap_or_else(|| "ml.m5.xlarge".into()),
                    output,
                    region,
                })
            }
        };
        Ok(Self {
            training_bucket,
            training_prefix,
            model: ObjectRef::new(mb, mk),
            labels,
            holdout_fraction,
            max_embedded_bytes,
            hyper,
            hyper_pairs,
            false_positive_repeat,
            auc_tolerance,
            alert_min_percentile,
            threads,
            sagemaker,
            entity: ipsight_aws::config::entity_kind(&get).map_err(cfg_err)?,
        })
    }
}

/// `HYPERPARAMETERS`: a JSON object with SageMaker's names and values (strings or numbers), the
/// same ones `ipsight sagemaker train --hp` and the SageMaker console take. `num_entity_vectors`
/// and `vector_dim` are required, as in SageMaker.
pub fn hyperparameters(
    json_text: Option<&str>,
) -> Result<(Hyperparameters, Vec<(String, String)>), RunError> {
    let err = |m: String| RunError::Config(format!("HYPERPARAMETERS: {m}"));
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

/// Which objects train and which are held back.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Oldest first.
    pub train: Vec<ObjectInfo>,
    /// Newest first.
    pub holdout: Vec<ObjectInfo>,
    pub total_bytes: u64,
    /// Objects under the prefix that are not tuple CSVs (folders, temporaries, other files).
    pub ignored: usize,
}

/// The newest objects, until they hold at least `fraction` of the bytes, are held back; at least
/// one object is left to train on. Ties in age are broken by key, so a run is reproducible.
pub fn plan(objects: Vec<ObjectInfo>, fraction: f64) -> Result<Plan, RunError> {
    let total = objects.len();
    let mut csv: Vec<ObjectInfo> = objects
        .into_iter()
        .filter(|o| o.key.ends_with(".csv") && o.size > 0)
        .collect();
    let ignored = total - csv.len();
    if csv.len() < 2 {
        return Err(RunError::Input(format!(
            "{} non-empty tuple CSV object(s) found: retraining needs at least two, because the \
             newest are held back to judge the candidate against the serving model",
            csv.len()
        )));
    }
    csv.sort_by(|a, b| {
        (a.last_modified_ms, &a.key)
            .cmp(&(b.last_modified_ms, &b.key))
            .reverse()
    });
    let total_bytes: u64 = csv.iter().map(|o| o.size).sum();
    let want = (total_bytes as f64 * fraction).ceil() as u64;
    let mut held = 0u64;
    let mut n = 0;
    while n < csv.len() - 1 && held < want {
        held += csv[n].size;
        n += 1;
    }
    let mut train = csv.split_off(n);
    train.reverse();
    Ok(Plan {
        train,
        holdout: csv,
        total_bytes,
        ignored,
    })
}

/// Stream one object's tuple CSV through `f` on a blocking thread (nothing is held whole).
async fn read_tuples<T: Send + 'static>(
    body: ipsight_aws::ObjectBody,
    obj: &ObjectRef,
    mut acc: T,
    f: fn(&mut T, &str, Ipv4Addr),
) -> Result<(T, u64), RunError> {
    let o = obj.clone();
    tokio::task::spawn_blocking(move || {
        let r = std::io::BufReader::with_capacity(
            1 << 16,
            tokio_util::io::SyncIoBridge::new(body.reader),
        );
        let stats =
            for_each_tuple(r, Malformed::Skip, |e, ip| f(&mut acc, e, ip)).map_err(|e| {
                RunError::Read {
                    obj: o,
                    msg: e.to_string(),
                }
            })?;
        Ok((acc, stats.skipped))
    })
    .await
    .map_err(|e| RunError::Local(format!("reader thread: {e}")))?
}

/// The object's body; `None` when it was deleted since the listing (a lifecycle rule expiring old
/// tuples is not an error).
async fn get_listed(
    store: &impl ObjectStore,
    obj: &ObjectRef,
) -> Result<Option<ipsight_aws::ObjectBody>, RunError> {
    match store.get(obj).await {
        Ok(b) => Ok(Some(b)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether an object exists, asked with a listing: without `s3:ListBucket` on a key, S3 answers a
/// GET or HEAD of a missing object with 403, not 404, and the function's policy grants listing only
/// on the prefixes it reads.
async fn exists(store: &impl ObjectLister, obj: &ObjectRef) -> Result<bool, StoreError> {
    Ok(store
        .list(&obj.bucket, &obj.key)
        .await?
        .iter()
        .any(|k| k == &obj.key))
}

/// The object's body if it exists (see [`exists`]); a GET error of a listed object is returned.
async fn get_if_listed<S: ObjectStore + ObjectLister>(
    store: &S,
    obj: &ObjectRef,
) -> Result<Option<Result<ipsight_aws::ObjectBody, StoreError>>, StoreError> {
    if !exists(store, obj).await? {
        return Ok(None);
    }
    Ok(Some(match store.get(obj).await {
        // Deleted between the listing and the GET: as if never there.
        Err(StoreError::NotFound(_)) => return Ok(None),
        other => other,
    }))
}

/// `20261122T215051Z`: sorts by time, no characters that need escaping in a key or a job name.
pub fn stamp(now_ms: i64) -> String {
    let t = ipsight_formats::ocsf::format_time_ms(now_ms.div_euclid(1000) * 1000);
    t.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

fn key_of(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// One run. `now_ms` fixes which labels are in force and names the candidate; `work_dir` holds the
/// candidate file while it is uploaded (Lambda: `/tmp`).
pub async fn run<S: ObjectStore + ObjectLister>(
    cfg: &Config,
    store: &S,
    sagemaker: Option<&aws_sdk_sagemaker::Client>,
    now_ms: i64,
    work_dir: &Path,
) -> Result<Value, RunError> {
    let listed = store
        .list_info(&cfg.training_bucket, &cfg.training_prefix)
        .await?;
    let training_uri = format!("s3://{}/{}", cfg.training_bucket, cfg.training_prefix);
    let plan = plan(listed, cfg.holdout_fraction)
        .map_err(|e| RunError::Input(format!("{training_uri}: {e}")))?;
    let stamp = stamp(now_ms);

    if plan.total_bytes > cfg.max_embedded_bytes {
        let Some(sm) = &cfg.sagemaker else {
            return Err(RunError::Input(format!(
                "{training_uri}: {} bytes of tuples exceed MAX_EMBEDDED_TRAINING_BYTES={} (what the \
                 Lambda trains within its 15 minutes); set SAGEMAKER_TRAINING_ROLE_ARN to train with \
                 SageMaker instead, or train on a machine with `ipsight retrain`",
                plan.total_bytes, cfg.max_embedded_bytes
            )));
        };
        let client = sagemaker.ok_or_else(|| {
            RunError::Config("SageMaker training configured but no SageMaker client".into())
        })?;
        let name = format!("ipsight-retrain-{}", stamp.to_ascii_lowercase());
        let job = ipsight_sagemaker::TrainingJob {
            name: name.clone(),
            role_arn: sm.role_arn.clone(),
            region: sm.region.clone(),
            train: training_uri.clone(),
            validation: None,
            output: sm.output.clone(),
            instance_type: sm.instance_type.clone(),
            instance_count: 1,
            volume_gb: 30,
            max_runtime_secs: 86_400,
            hyperparameters: cfg.hyper_pairs.clone(),
        };
        let arn = ipsight_sagemaker::start_training_job(client, &job)
            .await
            .map_err(|e| RunError::SageMaker(e.to_string()))?;
        let out = json!({
            "function": FUNCTION,
            "action": "sagemaker_training_started",
            "reason": format!("{} bytes of tuples > MAX_EMBEDDED_TRAINING_BYTES={}",
                              plan.total_bytes, cfg.max_embedded_bytes),
            "training_job": name,
            "training_job_arn": arn,
            "train": training_uri,
            "output": sm.output,
            "next": format!("ipsight sagemaker status --name {name}; then ipsight sagemaker deploy \
                             with its model artefact (SageMaker models are served by an endpoint, \
                             not promoted to MODEL_URI)"),
        });
        println!("{out}");
        return Ok(out);
    }

    // Training data, oldest first (the order does not matter to the trainer; it makes runs
    // reproducible).
    let mut data = TrainingData::new();
    let mut skipped_lines = 0u64;
    let mut vanished = 0usize;
    for o in &plan.train {
        let obj = ObjectRef::new(&cfg.training_bucket, &o.key);
        let Some(body) = get_listed(store, &obj).await? else {
            vanished += 1;
            continue;
        };
        let (d, s) = read_tuples(body, &obj, data, |d, e, ip| d.push(e, ip)).await?;
        data = d;
        skipped_lines += s;
    }
    let mut holdout: Vec<(String, Ipv4Addr)> = Vec::new();
    for o in &plan.holdout {
        if holdout.len() >= MAX_HOLDOUT_PAIRS {
            break;
        }
        let obj = ObjectRef::new(&cfg.training_bucket, &o.key);
        let Some(body) = get_listed(store, &obj).await? else {
            vanished += 1;
            continue;
        };
        let (h, s) =
            read_tuples(body, &obj, holdout, |v, e, ip| v.push((e.to_owned(), ip))).await?;
        holdout = h;
        skipped_lines += s;
    }
    holdout.truncate(MAX_HOLDOUT_PAIRS);
    if data.is_empty() {
        return Err(RunError::Input(format!(
            "{training_uri}: no well-formed tuples in the {} training object(s)",
            plan.train.len()
        )));
    }

    let labels = match &cfg.labels {
        Some(src) => load_labels(store, src).await?,
        None => LabelSet::default(),
    };

    // The serving model: missing is a first run; unreadable is reported and replaced (an
    // unreadable model already stops every cold start, so keeping it helps nobody).
    let (current, current_problem, current_exists) = match get_if_listed(store, &cfg.model).await? {
        None => (None, None, false),
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(body)) => {
            let loaded = tokio::task::spawn_blocking(move || {
                let mut r = std::io::BufReader::with_capacity(
                    1 << 16,
                    tokio_util::io::SyncIoBridge::new(body.reader),
                );
                Model::read_from(&mut r)
            })
            .await
            .map_err(|e| RunError::Local(format!("model loader thread: {e}")))?;
            match loaded {
                // Judging on the same pairs is meaningless across entity definitions; the
                // serving model no longer matches what ipcheck is configured for anyway.
                Ok(m) if m.entity_definition() != cfg.entity.as_str() => (
                    None,
                    Some(format!(
                        "it was trained on entity {:?} and ENTITY is now {}",
                        m.entity_definition(),
                        cfg.entity
                    )),
                    true,
                ),
                Ok(m) => (Some(m), None, true),
                Err(e) => (None, Some(e.to_string()), true),
            }
        }
    };

    let mut opts = RetrainOptions::new(cfg.hyper.clone(), now_ms.div_euclid(1000));
    opts.false_positive_repeat = cfg.false_positive_repeat;
    opts.auc_tolerance = cfg.auc_tolerance;
    opts.alert_min_percentile = cfg.alert_min_percentile;
    opts.train.threads = cfg.threads;
    opts.train.entity = Some(cfg.entity.as_str().to_owned());
    let (model, mut report) = tokio::task::spawn_blocking(move || {
        retrain(data, holdout, &labels, current.as_ref(), &opts, &mut |ev| {
            if let TrainEvent::Epoch(e) = ev {
                println!(
                    "{}",
                    json!({"event": "epoch", "function": FUNCTION, "epoch": e.epoch,
                               "mean_loss": e.mean_loss, "seconds": e.seconds,
                               "pairs_per_sec": e.pairs_per_sec})
                );
            }
        })
    })
    .await
    .map_err(|e| RunError::Local(format!("trainer thread: {e}")))??;
    if let Some(p) = &current_problem {
        report.decision = format!(
            "the serving model was not compared ({p}); {}",
            report.decision
        );
    }

    // The candidate and its metrics are kept whatever the decision.
    let serving_key = Path::new(&cfg.model.key);
    let cand = ObjectRef::new(
        &cfg.model.bucket,
        key_of(&candidate_path(serving_key, &stamp)),
    );
    let tmp = tempfile::Builder::new()
        .prefix("ipsight-candidate")
        .tempfile_in(work_dir)
        .map_err(|e| RunError::Local(format!("{}: {e}", work_dir.display())))?;
    let tmp_path = tmp.path().to_owned();
    tokio::task::spawn_blocking(move || model.save(&tmp_path))
        .await
        .map_err(|e| RunError::Local(format!("model writer thread: {e}")))?
        .map_err(|e| RunError::Local(format!("writing the candidate: {e}")))?;
    store
        .put_file(&cand, tmp.path(), "application/octet-stream")
        .await?;
    drop(tmp);
    report.candidate_path = Some(cand.to_string());
    let previous = ObjectRef::new(&cfg.model.bucket, key_of(&previous_path(serving_key)));
    if report.promote {
        report.promoted_to = Some(cfg.model.to_string());
        if current_exists {
            report.previous_kept_at = Some(previous.to_string());
        }
    }
    let out = json!({
        "function": FUNCTION,
        "action": if report.promote { "promoted" } else { "not_promoted" },
        "decision": report.decision,
        "train": training_uri,
        "training_objects": plan.train.len(),
        "holdout_objects": plan.holdout.len(),
        "training_bytes": plan.total_bytes,
        "ignored_objects": plan.ignored,
        "vanished_objects": vanished,
        "skipped_lines": skipped_lines,
        "labels": cfg.labels.as_ref().map(LabelSource::describe),
        "hyperparameters": cfg.hyper,
        "report": report,
    });
    let mut body = serde_json::to_vec_pretty(&out).expect("serialises");
    body.push(b'\n');
    let body = Bytes::from(body);
    let cand_metrics = ObjectRef::new(
        &cfg.model.bucket,
        key_of(&metrics_path(Path::new(&cand.key))),
    );
    store
        .put_bytes(&cand_metrics, body.clone(), "application/json")
        .await?;

    if report.promote {
        // Rollback copy first: if it fails, the serving model is untouched.
        if current_exists {
            store.copy(&cfg.model, &previous).await?;
            let serving_metrics =
                ObjectRef::new(&cfg.model.bucket, key_of(&metrics_path(serving_key)));
            let previous_metrics = ObjectRef::new(
                &cfg.model.bucket,
                key_of(&metrics_path(Path::new(&previous.key))),
            );
            if exists(store, &serving_metrics).await? {
                store.copy(&serving_metrics, &previous_metrics).await?;
            }
        }
        // Metrics before the model: a reader that sees the new model finds its metrics.
        store
            .put_bytes(
                &ObjectRef::new(&cfg.model.bucket, key_of(&metrics_path(serving_key))),
                body,
                "application/json",
            )
            .await?;
        store.copy(&cand, &cfg.model).await?;
    }
    println!(
        "{}",
        ipsight_aws::emf::emf_line(
            "ipsight",
            FUNCTION,
            serde_json::Map::from_iter([
                ("event".to_owned(), json!("retrain")),
                ("decision".to_owned(), json!(report.decision)),
                ("candidate".to_owned(), json!(cand.to_string())),
                ("candidate_auc".to_owned(), json!(report.candidate.auc)),
                (
                    "serving_auc".to_owned(),
                    json!(report.current.as_ref().map(|c| c.auc))
                ),
            ]),
            &[
                ("ModelPromoted", u64::from(report.promote)),
                ("ModelRefused", u64::from(!report.promote)),
                ("TrainingPairs", report.training_pairs as u64),
            ],
        )
    );
    Ok(out)
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
        let c = Config::from_vars(vars(&base), None).unwrap();
        assert_eq!(
            (c.training_bucket.as_str(), c.training_prefix.as_str()),
            ("data", "train/")
        );
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
            Config::from_vars(vars(&v), Some("eu-west-1".into()))
        };
        let c = with(&[
            ("SAGEMAKER_TRAINING_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("LABELS_PREFIX", "labels/"),
        ])
        .unwrap();
        let sm = c.sagemaker.unwrap();
        assert_eq!(sm.output, "s3://data/models/sagemaker/");
        assert_eq!(
            (sm.region.as_str(), sm.instance_type.as_str()),
            ("eu-west-1", "ml.m5.xlarge")
        );
        assert_eq!(c.labels.unwrap().describe(), "s3://data/labels/");

        for (extra, needle) in [
            (vec![("TRAINING_URI", "data/train/")], "TRAINING_URI"),
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

    fn info(key: &str, size: u64, at: i64) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size,
            last_modified_ms: at,
            version_tag: String::new(),
        }
    }

    #[test]
    fn the_newest_objects_are_held_back() {
        let objs = vec![
            info("train/d3.csv", 100, 3),
            info("train/d1.csv", 100, 1),
            info("train/d2.csv", 100, 2),
            info("train/d4.csv", 50, 4),
            info("train/", 0, 0),
            info("train/notes.txt", 10, 9),
            info("train/empty.csv", 0, 9),
        ];
        let p = plan(objs.clone(), 0.2).unwrap();
        let keys = |v: &[ObjectInfo]| v.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
        // 20% of 350 = 70 bytes: d4 (50) is not enough, d3 is added.
        assert_eq!(keys(&p.holdout), ["train/d4.csv", "train/d3.csv"]);
        assert_eq!(keys(&p.train), ["train/d1.csv", "train/d2.csv"]);
        assert_eq!((p.total_bytes, p.ignored), (350, 3));
        // Never everything: one object always trains.
        let p = plan(objs.clone(), 0.99).unwrap();
        assert_eq!(keys(&p.train), ["train/d1.csv"]);
        // Same age: key order decides.
        let p = plan(vec![info("b.csv", 10, 1), info("a.csv", 10, 1)], 0.1).unwrap();
        assert_eq!(
            (keys(&p.train), keys(&p.holdout)),
            (vec!["a.csv".into()], vec!["b.csv".into()])
        );
        let e = plan(vec![info("a.csv", 10, 1), info("b.txt", 10, 1)], 0.1).unwrap_err();
        assert!(e.to_string().contains("at least two"), "{e}");
    }

    #[test]
    fn stamps_sort_and_fit_keys_and_job_names() {
        assert_eq!(stamp(1_768_953_600_000), "20260121T000000Z");
        assert_eq!(stamp(1_768_953_601_999), "20260121T000001Z");
        assert!(stamp(0) < stamp(1_768_953_600_000));
    }
}
