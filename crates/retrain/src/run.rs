//! The retrain over any object store: the one orchestration the scheduled-retrain Lambda runs over
//! S3 and `ipsight retrain --data DIR` runs over a directory ([`ipsight_ports::DirStore`]).
//!
//! 1. Plan from listings: the rolling window's pair files by day (preferred), else the tuple CSVs
//!    ([`crate::plan`]); the newest days / objects are held back.
//! 2. Data above `max_embedded_bytes`: a SageMaker training job through the [`TrainingJobs`] port
//!    (the window's pairs expanded to SageMaker's `entity,ip` channel under a dated prefix, IPv4
//!    only); without one configured, a clear error.
//! 3. Otherwise read (compacting each complete day's per-object pair files into one daily file on
//!    the way), train the hybrid detector with the analysts' false positives, judge it against the
//!    serving detector on the combined score ([`crate::judge`]).
//! 4. Keep the candidate, its sidecar and its metrics whatever the decision; promote model and
//!    sidecar together if not worse ([`promote`]). A refused candidate is a normal outcome
//!    (`action: not_promoted`), not an error.
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;

use bytes::Bytes;
use ipsight_core::labels::LabelSet;
use ipsight_formats::pairs::{read_pair_file, training_weight, PairAggregate};
use ipsight_formats::tuples::{ChannelCounts, SageMakerChannel};
use ipsight_model::sidecar::sidecar_key;
use ipsight_model::tuples::for_each_tuple;
use ipsight_model::{Detector, Hyperparameters, Malformed, Model, TrainEvent};
use ipsight_ports::{
    load_labels, LabelLoadError, LabelSource, ObjectBody, ObjectLister, ObjectRef, ObjectStore,
    StoreError,
};
use serde_json::{json, Value};

use crate::judge::{retrain, Candidate, JudgeError, RetrainOptions, Serving, TrainingInput};
use crate::plan::{daily_key, plan, plan_days, DayPlan, PairDay, Plan, PlanError};
use crate::{candidate_key, metrics_key, previous_key};

/// Held-back pairs beyond this add evaluation time, not confidence in the comparison.
pub const MAX_HOLDOUT_PAIRS: usize = 1_000_000;

/// Default of `max_embedded_bytes` (`MAX_EMBEDDED_TRAINING_BYTES`): input the embedded trainer
/// takes within a Lambda's 15 minutes (README benchmark table).
pub const DEFAULT_MAX_EMBEDDED_BYTES: u64 = 256 << 20;

/// Default `TRAINING_DAYS`: the template's `TrainingDays`.
pub const DEFAULT_TRAINING_DAYS: u32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Labels(#[from] LabelLoadError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Judge(#[from] JudgeError),
    #[error("starting the SageMaker training job: {0}")]
    SageMaker(String),
    #[error("{0}")]
    Local(String),
}

/// Where and how SageMaker trains when the data is too large for the embedded trainer.
#[derive(Debug, Clone, PartialEq)]
pub struct SageMakerTraining {
    pub role_arn: String,
    pub instance_type: String,
    /// `s3://…/` prefix the job writes `model.tar.gz` under.
    pub output: String,
    pub region: String,
    /// Key prefix (in the pairs' bucket) the window's pairs are expanded to, one dated prefix per
    /// run day: `<channel_prefix>dt=YYYY-MM-DD/`.
    pub channel_prefix: String,
}

/// A SageMaker training job to start (plain data: the adapter holds the SDK).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingJobRequest {
    pub name: String,
    pub role_arn: String,
    pub region: String,
    /// `s3://…/` prefix of `entity,ip` CSV objects.
    pub train: String,
    pub output: String,
    pub instance_type: String,
    pub hyperparameters: Vec<(String, String)>,
}

/// The port that starts SageMaker training jobs (the Lambda's adapter wraps the SDK client).
pub trait TrainingJobs: Send + Sync {
    /// Starts the job; returns its ARN.
    fn start(
        &self,
        job: &TrainingJobRequest,
    ) -> impl Future<Output = Result<String, String>> + Send;
}

/// No SageMaker client (the CLI, tests): starting a job fails saying so.
pub struct NoTrainingJobs;

impl TrainingJobs for NoTrainingJobs {
    async fn start(&self, _job: &TrainingJobRequest) -> Result<String, String> {
        Err("no SageMaker client in this build or configuration".into())
    }
}

/// The rolling window of pair files.
#[derive(Debug, Clone, PartialEq)]
pub struct PairsSource {
    pub bucket: String,
    /// The preparer's per-object pair files: `<objects_prefix>dt=YYYY-MM-DD/<key>.csv`.
    pub objects_prefix: String,
    /// One compacted file per complete day: `<daily_prefix>dt=YYYY-MM-DD.csv`.
    pub daily_prefix: String,
    /// `TRAINING_DAYS`: days read, ending today (UTC).
    pub days: u32,
}

impl PairsSource {
    /// The daily prefix beside an objects prefix: `pairs/objects/` → `pairs/daily/`; another prefix
    /// `p/` → `p-daily/` (beside it, never under it: a listing of one must not return the other).
    pub fn daily_beside(objects_prefix: &str) -> String {
        match objects_prefix.strip_suffix("objects/") {
            Some(parent) => format!("{parent}daily/"),
            None => format!("{}-daily/", objects_prefix.trim_end_matches('/')),
        }
    }
}

/// Everything a run needs besides the store: built by the Lambda from its environment and by the
/// CLI from its flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tuple CSVs (`TRAINING_URI`): bucket and prefix. Used when the window has no pair files.
    pub tuples: Option<(String, String)>,
    /// Pair files by day (`PAIRS_URI`, `TRAINING_DAYS`): preferred when the window has any.
    pub pairs: Option<PairsSource>,
    /// The serving model; its sidecar is `sidecar_key(model.key)`.
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
    /// `ENTITY`: what the entities are, recorded in the candidate and checked on the serving model.
    pub entity: ipsight_formats::EntityKind,
    /// The name the run's log lines carry (`scheduled-retrain`, `ipsight retrain`).
    pub function: &'static str,
}

/// `20261122T215051Z`: sorts by time, no characters that need escaping in a key or a job name.
pub fn stamp(now_ms: i64) -> String {
    ipsight_core::time::rfc3339(now_ms.div_euclid(1000))
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// Whether an object exists, asked with a listing: without `s3:ListBucket` on a key, S3 answers a
/// GET or HEAD of a missing object with 403, not 404, and the function's policy grants listing only
/// on the prefixes it reads.
pub async fn exists(store: &impl ObjectLister, obj: &ObjectRef) -> Result<bool, StoreError> {
    Ok(store
        .list(&obj.bucket, &obj.key)
        .await?
        .iter()
        .any(|k| k == &obj.key))
}

/// The object's body if it exists (see [`exists`]).
async fn get_if_listed<S: ObjectStore + ObjectLister>(
    store: &S,
    obj: &ObjectRef,
) -> Result<Option<ObjectBody>, StoreError> {
    if !exists(store, obj).await? {
        return Ok(None);
    }
    match store.get(obj).await {
        // Deleted between the listing and the GET: as if never there.
        Err(StoreError::NotFound(_)) => Ok(None),
        other => other.map(Some),
    }
}

/// Run `f` over the object's body as a blocking reader (nothing is held whole). `None` when the
/// object was deleted since the listing (a lifecycle rule expiring old input is not an error).
async fn read_object<T: Send + 'static>(
    store: &impl ObjectStore,
    obj: &ObjectRef,
    f: impl FnOnce(&mut dyn std::io::BufRead) -> T + Send + 'static,
) -> Result<Option<T>, RunError> {
    let body = match store.get(obj).await {
        Ok(b) => b,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    tokio::task::spawn_blocking(move || {
        let mut r = std::io::BufReader::with_capacity(
            1 << 16,
            tokio_util::io::SyncIoBridge::new(body.reader),
        );
        f(&mut r)
    })
    .await
    .map(Some)
    .map_err(|e| RunError::Local(format!("reader thread: {e}")))
}

/// What reading the input found, for the run's report.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReadCounts {
    pub objects_read: usize,
    /// Listed, then deleted before they were read (lifecycle expiry).
    pub vanished_objects: usize,
    /// Malformed tuple lines skipped.
    pub skipped_lines: u64,
    /// Pair files that failed to parse: skipped whole (a damaged machine-written file), each named
    /// with its reason.
    pub damaged_objects: Vec<String>,
    /// Days whose per-object pair files were merged into their daily file by this run.
    pub compacted_days: Vec<String>,
}

/// One day's pairs: its current daily compaction, else its per-object files merged (and, when the
/// day is over and `compact`, written as the day's compaction: sorted, so the same input gives the
/// same bytes and a rerun overwrites it with itself).
pub async fn read_day<S: ObjectStore>(
    store: &S,
    src: &PairsSource,
    day: &PairDay,
    compact: bool,
    counts: &mut ReadCounts,
) -> Result<PairAggregate, RunError> {
    if day.compaction_is_current() {
        let obj = ObjectRef::new(&src.bucket, &day.daily.as_ref().expect("current").key);
        if let Some(agg) = read_pairs_object(store, &obj, counts).await? {
            return Ok(agg);
        }
    }
    let mut agg = PairAggregate::new();
    let damaged_before = counts.damaged_objects.len();
    for o in &day.objects {
        let obj = ObjectRef::new(&src.bucket, &o.key);
        if let Some(a) = read_pairs_object(store, &obj, counts).await? {
            agg.merge(&a);
        }
    }
    // A day with a damaged file is not compacted: the damage stays visible (reported by every run)
    // until the file is replaced, and a later compaction then includes it.
    if compact && !agg.is_empty() && counts.damaged_objects.len() == damaged_before {
        let mut body = Vec::new();
        agg.write(&mut body)
            .map_err(|e| RunError::Local(format!("compacting {}: {e}", day.date())))?;
        let key = daily_key(&src.daily_prefix, day.day);
        store
            .put_bytes(&ObjectRef::new(&src.bucket, key), body.into(), "text/csv")
            .await?;
        counts.compacted_days.push(day.date());
    }
    Ok(agg)
}

async fn read_pairs_object<S: ObjectStore>(
    store: &S,
    obj: &ObjectRef,
    counts: &mut ReadCounts,
) -> Result<Option<PairAggregate>, RunError> {
    let read = read_object(store, obj, |r| {
        let mut agg = PairAggregate::new();
        read_pair_file(r, |e, ip, h| agg.add(e, ip, h)).map(|_| agg)
    })
    .await?;
    match read {
        None => {
            counts.vanished_objects += 1;
            Ok(None)
        }
        Some(Ok(agg)) => {
            counts.objects_read += 1;
            Ok(Some(agg))
        }
        Some(Err(e)) => {
            counts.damaged_objects.push(format!("{obj}: {e}"));
            Ok(None)
        }
    }
}

/// The pair lines of an aggregate as training observations, in file order (deterministic).
fn push_day(input: &mut TrainingInput, day: i64, agg: &PairAggregate) {
    let d = |x: Option<i64>| x.or(Some(day)).and_then(|x| u32::try_from(x).ok());
    for (e, ip, h) in agg.sorted() {
        input.push_pair(
            e,
            ip,
            h.events,
            d(h.first_day()),
            d(h.last_day()),
            training_weight(h),
        );
    }
}

enum Source {
    Pairs(PairsSource, DayPlan),
    Tuples(String, String, Plan),
}

impl Source {
    fn total_bytes(&self) -> u64 {
        match self {
            Source::Pairs(_, p) => p.total_bytes,
            Source::Tuples(_, _, p) => p.total_bytes,
        }
    }
    fn describe(&self) -> Value {
        match self {
            Source::Pairs(s, p) => json!({
                "kind": "pairs",
                "uri": format!("s3://{}/{}", s.bucket, s.objects_prefix),
                "window": [day_text(p.window.0), day_text(p.window.1)],
                "training_days": p.train.iter().map(PairDay::date).collect::<Vec<_>>(),
                "holdout_days": p.holdout.iter().map(PairDay::date).collect::<Vec<_>>(),
                "bytes": p.total_bytes,
                "outside_window_objects": p.outside_window,
                "ignored_objects": p.ignored,
            }),
            Source::Tuples(b, prefix, p) => json!({
                "kind": "tuples",
                "uri": format!("s3://{b}/{prefix}"),
                "training_objects": p.train.len(),
                "holdout_objects": p.holdout.len(),
                "bytes": p.total_bytes,
                "ignored_objects": p.ignored,
            }),
        }
    }
}

fn day_text(day: i64) -> String {
    ipsight_core::time::date(day * 86_400)
}

/// Lists and plans: the window's pair files if it has any, else the tuple CSVs.
async fn choose_source<S: ObjectLister>(
    s: &Settings,
    store: &S,
    today: i64,
) -> Result<Source, RunError> {
    if let Some(src) = &s.pairs {
        let objects = store.list_info(&src.bucket, &src.objects_prefix).await?;
        let daily = store.list_info(&src.bucket, &src.daily_prefix).await?;
        let planned = plan_days(
            &src.objects_prefix,
            objects,
            &src.daily_prefix,
            daily,
            today,
            src.days,
            s.holdout_fraction,
        );
        match planned {
            Ok(Some(p)) => return Ok(Source::Pairs(src.clone(), p)),
            // No pair files yet (OUTPUTS without pairs, or a new stack): the tuples, if any.
            Ok(None) if s.tuples.is_some() => {}
            Ok(None) => {
                return Err(RunError::Input(format!(
                    "s3://{}/{}: no pair files in the last {} days",
                    src.bucket, src.objects_prefix, src.days
                )))
            }
            Err(e) if s.tuples.is_none() => return Err(e.into()),
            Err(_) => {}
        }
    }
    let Some((bucket, prefix)) = &s.tuples else {
        return Err(RunError::Input("no training input configured".into()));
    };
    let objects = store.list_info(bucket, prefix).await?;
    Ok(Source::Tuples(
        bucket.clone(),
        prefix.clone(),
        plan(objects, s.holdout_fraction)?,
    ))
}

/// Writes the window's pairs as SageMaker's `entity,ip` channel: one object per day under
/// `<channel_prefix>dt=<run day>/`, each pair line repeated `training_weight` times (the embedded
/// trainer's weighting), IPv4 only (SageMaker's IP Insights takes no IPv6: those lines are counted
/// and left out). Returns the channel URI and the counts.
async fn expand_to_channel<S: ObjectStore>(
    store: &S,
    src: &PairsSource,
    plan: &DayPlan,
    channel_prefix: &str,
    today: i64,
    work_dir: &Path,
    counts: &mut ReadCounts,
) -> Result<(String, Value), RunError> {
    let dated = format!("{channel_prefix}dt={}/", day_text(today));
    let (mut lines, mut pair_lines, mut ipv6) = (0u64, 0u64, 0u64);
    let mut objects = Vec::new();
    for day in plan.train.iter().chain(plan.holdout.iter()) {
        // Never compacts here: the job may run on a window that still grows today.
        let agg = read_day(store, src, day, false, counts).await?;
        let tmp = tempfile::Builder::new()
            .prefix("ipsight-channel")
            .tempfile_in(work_dir)
            .map_err(|e| RunError::Local(format!("{}: {e}", work_dir.display())))?;
        let mut w = std::io::BufWriter::new(
            tmp.reopen()
                .map_err(|e| RunError::Local(format!("{}: {e}", tmp.path().display())))?,
        );
        let werr = |e: std::io::Error| RunError::Local(format!("writing the channel: {e}"));
        let mut ch = SageMakerChannel::new(&mut w);
        for (e, ip, h) in agg.sorted() {
            pair_lines += 1;
            // An IPv6 pair is left out (and counted) once; an IPv4 one written once per weight.
            if ch.push(e, ip).map_err(werr)? {
                for _ in 1..training_weight(h) {
                    ch.push(e, ip).map_err(werr)?;
                }
            }
        }
        let c = ch.counts();
        lines += c.tuples;
        ipv6 += c.ipv6_left_out;
        std::io::Write::flush(&mut w).map_err(werr)?;
        drop(w);
        let obj = ObjectRef::new(&src.bucket, format!("{dated}part-{}.csv", day.date()));
        store.put_file(&obj, tmp.path(), "text/csv").await?;
        objects.push(obj.key);
    }
    let uri = format!("s3://{}/{dated}", src.bucket);
    Ok((
        uri.clone(),
        json!({"uri": uri, "objects": objects, "pair_lines": pair_lines, "lines": lines,
               "ipv6_pairs_left_out": ipv6}),
    ))
}

/// Copies the planned tuple CSVs (training and held-back objects) into SageMaker's `entity,ip`
/// channel: one object per non-empty input object under `<channel_prefix>dt=<run day>/`, through
/// [`SageMakerChannel`] — IPv4 only, IPv6 tuples counted and left out (the preparer's `IPV6=keep`
/// writes them beside the IPv4 ones, and IP Insights cannot read them) — with malformed lines
/// skipped and counted as the embedded training does. Returns the channel URI and the counts; an
/// input without a single IPv4 tuple is refused (a SageMaker job on an empty channel only fails later).
async fn copy_tuples_to_channel<'a, S: ObjectStore>(
    store: &S,
    bucket: &str,
    inputs: impl Iterator<Item = &'a ipsight_ports::ObjectInfo>,
    channel_prefix: &str,
    today: i64,
    work_dir: &Path,
    counts: &mut ReadCounts,
) -> Result<(String, Value), RunError> {
    let dated = format!("{channel_prefix}dt={}/", day_text(today));
    let mut total = ChannelCounts::default();
    let mut objects = Vec::new();
    let skipped_before = counts.skipped_lines;
    for (n, o) in inputs.enumerate() {
        let obj = ObjectRef::new(bucket, &o.key);
        let tmp = tempfile::Builder::new()
            .prefix("ipsight-channel")
            .tempfile_in(work_dir)
            .map_err(|e| RunError::Local(format!("{}: {e}", work_dir.display())))?;
        let file = tmp
            .reopen()
            .map_err(|e| RunError::Local(format!("{}: {e}", tmp.path().display())))?;
        let read = read_object(store, &obj, move |r| {
            let mut ch = SageMakerChannel::new(std::io::BufWriter::new(file));
            let mut failed = None;
            let st = for_each_tuple(r, Malformed::Skip, |e, ip| {
                if failed.is_none() {
                    if let Err(e) = ch.push(e, ip) {
                        failed = Some(e);
                    }
                }
            });
            let (mut w, c) = ch.finish();
            let flushed = std::io::Write::flush(&mut w);
            (st, failed.map_or(flushed, Err), c)
        })
        .await?;
        let Some((st, written, c)) = read else {
            counts.vanished_objects += 1;
            continue;
        };
        let st = st.map_err(|e| RunError::Input(format!("{obj}: {e}")))?;
        written.map_err(|e| RunError::Local(format!("writing the channel: {e}")))?;
        counts.objects_read += 1;
        counts.skipped_lines += st.skipped;
        total.tuples += c.tuples;
        total.ipv6_left_out += c.ipv6_left_out;
        if c.tuples == 0 {
            continue;
        }
        let out = ObjectRef::new(bucket, format!("{dated}part-{n:05}.csv"));
        store.put_file(&out, tmp.path(), "text/csv").await?;
        objects.push(out.key);
    }
    if total.tuples == 0 {
        return Err(RunError::Input(format!(
            "s3://{bucket}/{dated}: no IPv4 tuple for SageMaker's channel in the training input \
             ({} IPv6 tuples left out: IP Insights is IPv4-only; train with the embedded model)",
            total.ipv6_left_out
        )));
    }
    let uri = format!("s3://{bucket}/{dated}");
    Ok((
        uri.clone(),
        json!({"uri": uri, "objects": objects, "tuples": total.tuples,
               "ipv6_left_out": total.ipv6_left_out,
               "skipped_lines": counts.skipped_lines - skipped_before}),
    ))
}

/// Every non-empty tuple CSV under `s3://bucket/prefix` copied into SageMaker's IPv4 channel under
/// `<channel_prefix>dt=<day of now_ms>/`, as the scheduled retrain copies its tuple input (IPv6
/// counted as `ipv6_left_out`, malformed lines as `skipped_lines`): what `ipsight sagemaker train`
/// hands to the built-in algorithm. Returns the channel URI and the counts.
pub async fn copy_prefix_to_channel<S: ObjectStore + ObjectLister>(
    store: &S,
    bucket: &str,
    prefix: &str,
    channel_prefix: &str,
    now_ms: i64,
    work_dir: &Path,
) -> Result<(String, Value), RunError> {
    let inputs: Vec<_> = store
        .list_info(bucket, prefix)
        .await?
        .into_iter()
        .filter(|o| o.key.ends_with(".csv") && o.size > 0)
        .collect();
    let mut counts = ReadCounts::default();
    copy_tuples_to_channel(
        store,
        bucket,
        inputs.iter(),
        channel_prefix,
        now_ms.div_euclid(86_400_000),
        work_dir,
        &mut counts,
    )
    .await
}

/// Serving model and sidecar as found: missing (first run), usable, or present but not usable
/// (reported, and replaced by a promotion).
struct ServingFound {
    model: Option<Model>,
    detector: Option<Detector>,
    exists: bool,
    problems: Vec<String>,
}

async fn load_serving<S: ObjectStore + ObjectLister>(
    s: &Settings,
    store: &S,
) -> Result<ServingFound, RunError> {
    let mut found = ServingFound {
        model: None,
        detector: None,
        exists: false,
        problems: Vec::new(),
    };
    let Some(body) = get_if_listed(store, &s.model).await? else {
        return Ok(found);
    };
    found.exists = true;
    let loaded = tokio::task::spawn_blocking(move || {
        let mut r = std::io::BufReader::with_capacity(
            1 << 16,
            tokio_util::io::SyncIoBridge::new(body.reader),
        );
        Model::read_from(&mut r)
    })
    .await
    .map_err(|e| RunError::Local(format!("model loader thread: {e}")))?;
    let model = match loaded {
        // Judging on the same pairs is meaningless across entity definitions; the serving model no
        // longer matches what ipcheck is configured for anyway.
        Ok(m) if m.entity_definition() != s.entity.as_str() => {
            found.problems.push(format!(
                "the serving model was not compared: it was trained on entity {:?} and ENTITY is \
                 now {}",
                m.entity_definition(),
                s.entity
            ));
            return Ok(found);
        }
        Ok(m) => m,
        // An unreadable model already stops every cold start: replacing it helps.
        Err(e) => {
            found
                .problems
                .push(format!("the serving model was not compared: {e}"));
            return Ok(found);
        }
    };
    let side = ObjectRef::new(&s.model.bucket, sidecar_key(&s.model.key));
    match get_if_listed(store, &side).await? {
        None => found.problems.push(format!(
            "the serving model has no baseline sidecar ({side}): it is judged on its embedding \
             alone, as it is served"
        )),
        Some(body) => {
            let (def, fp) = (s.entity.as_str().to_owned(), model.fingerprint());
            let loaded = tokio::task::spawn_blocking(move || {
                let mut r = std::io::BufReader::with_capacity(
                    1 << 16,
                    tokio_util::io::SyncIoBridge::new(body.reader),
                );
                Detector::read_from(&mut r).and_then(|d| {
                    d.check_compatible(&def, Some(fp))?;
                    Ok(d)
                })
            })
            .await
            .map_err(|e| RunError::Local(format!("sidecar loader thread: {e}")))?;
            match loaded {
                Ok(d) => found.detector = Some(d),
                Err(e) => found.problems.push(format!(
                    "the serving sidecar {side} is not usable ({e}): the serving model is judged \
                     on its embedding alone"
                )),
            }
        }
    }
    found.model = Some(model);
    Ok(found)
}

/// The retrain. Returns the run's report (also written as the candidate's metrics object).
pub async fn run<S: ObjectStore + ObjectLister, J: TrainingJobs>(
    s: &Settings,
    store: &S,
    jobs: &J,
    now_ms: i64,
    work_dir: &Path,
) -> Result<Value, RunError> {
    let stamp = stamp(now_ms);
    let today = now_ms.div_euclid(86_400_000);
    let source = choose_source(s, store, today).await?;
    let mut counts = ReadCounts::default();

    if source.total_bytes() > s.max_embedded_bytes {
        let Some(sm) = &s.sagemaker else {
            return Err(RunError::Input(format!(
                "{}: {} bytes of training input exceed MAX_EMBEDDED_TRAINING_BYTES={} (what the \
                 Lambda trains within its 15 minutes); set SAGEMAKER_TRAINING_ROLE_ARN to train \
                 with SageMaker instead, lower TRAINING_DAYS, or train on a machine with \
                 `ipsight retrain`",
                source.describe()["uri"].as_str().unwrap_or_default(),
                source.total_bytes(),
                s.max_embedded_bytes
            )));
        };
        let (train, channel) = match &source {
            Source::Tuples(b, _, plan) => {
                copy_tuples_to_channel(
                    store,
                    b,
                    plan.train.iter().chain(plan.holdout.iter()),
                    &sm.channel_prefix,
                    today,
                    work_dir,
                    &mut counts,
                )
                .await?
            }
            Source::Pairs(src, plan) => {
                let (uri, c) = expand_to_channel(
                    store,
                    src,
                    plan,
                    &sm.channel_prefix,
                    today,
                    work_dir,
                    &mut counts,
                )
                .await?;
                (uri, c)
            }
        };
        let name = format!("ipsight-retrain-{}", stamp.to_ascii_lowercase());
        let job = TrainingJobRequest {
            name: name.clone(),
            role_arn: sm.role_arn.clone(),
            region: sm.region.clone(),
            train: train.clone(),
            output: sm.output.clone(),
            instance_type: sm.instance_type.clone(),
            hyperparameters: s.hyper_pairs.clone(),
        };
        let arn = jobs.start(&job).await.map_err(RunError::SageMaker)?;
        let out = json!({
            "function": s.function,
            "action": "sagemaker_training_started",
            "reason": format!("{} bytes of training input > MAX_EMBEDDED_TRAINING_BYTES={}",
                              source.total_bytes(), s.max_embedded_bytes),
            "source": source.describe(),
            "training_job": name,
            "training_job_arn": arn,
            "train": train,
            "channel": channel,
            "read": counts,
            "output": sm.output,
            "next": format!("ipsight sagemaker status --name {name}; then ipsight sagemaker deploy \
                             with its model artefact (SageMaker models are served by an endpoint \
                             with the baseline sidecar beside it, not promoted to MODEL_URI)"),
        });
        println!("{out}");
        return Ok(out);
    }

    let labels = match &s.labels {
        Some(src) => load_labels(store, src).await?,
        None => LabelSet::default(),
    };
    let mut opts = RetrainOptions::new(s.hyper.clone(), now_ms.div_euclid(1000));
    opts.false_positive_repeat = s.false_positive_repeat;
    opts.auc_tolerance = s.auc_tolerance;
    opts.alert_min_percentile = s.alert_min_percentile;
    opts.train.threads = s.threads;
    opts.train.entity = Some(s.entity.as_str().to_owned());

    let mut holdout: Vec<(String, IpAddr)> = Vec::new();
    let input = match &source {
        Source::Pairs(src, plan) => {
            let mut input = TrainingInput::new(&labels, &opts, true);
            for day in &plan.train {
                let agg = read_day(store, src, day, day.day < today, &mut counts).await?;
                push_day(&mut input, day.day, &agg);
            }
            for day in &plan.holdout {
                if holdout.len() >= MAX_HOLDOUT_PAIRS {
                    break;
                }
                let agg = read_day(store, src, day, day.day < today, &mut counts).await?;
                holdout.extend(
                    agg.sorted()
                        .into_iter()
                        .map(|(e, ip, _)| (e.to_owned(), ip)),
                );
            }
            input
        }
        Source::Tuples(bucket, _, plan) => {
            let mut input = TrainingInput::new(&labels, &opts, false);
            for o in &plan.train {
                let obj = ObjectRef::new(bucket, &o.key);
                let read = read_object(store, &obj, move |r| {
                    let mut pairs = Vec::new();
                    for_each_tuple(r, Malformed::Skip, |e, ip| pairs.push((e.to_owned(), ip)))
                        .map(|st| (pairs, st.skipped))
                })
                .await?;
                tuples_read(&obj, read, &mut counts, |(e, ip)| input.push_tuple(&e, ip))?;
            }
            for o in &plan.holdout {
                if holdout.len() >= MAX_HOLDOUT_PAIRS {
                    break;
                }
                let obj = ObjectRef::new(bucket, &o.key);
                let read = read_object(store, &obj, move |r| {
                    let mut pairs = Vec::new();
                    for_each_tuple(r, Malformed::Skip, |e, ip| pairs.push((e.to_owned(), ip)))
                        .map(|st| (pairs, st.skipped))
                })
                .await?;
                tuples_read(&obj, read, &mut counts, |p| holdout.push(p))?;
            }
            input
        }
    };
    holdout.truncate(MAX_HOLDOUT_PAIRS);
    if input.is_empty() {
        return Err(RunError::Input(format!(
            "{}: no well-formed training input",
            source.describe()["uri"].as_str().unwrap_or_default()
        )));
    }

    let serving = load_serving(s, store).await?;
    let function = s.function;
    let (cand, mut report, serving_exists, problems) = tokio::task::spawn_blocking(move || {
        let current = serving.model.as_ref().map(|m| Serving {
            model: m,
            detector: serving.detector.as_ref(),
        });
        retrain(input, holdout, &labels, current, &opts, &mut |ev| {
            if let TrainEvent::Epoch(e) = ev {
                println!(
                    "{}",
                    json!({"event": "epoch", "function": function, "epoch": e.epoch,
                           "mean_loss": e.mean_loss, "seconds": e.seconds,
                           "pairs_per_sec": e.pairs_per_sec})
                );
            }
        })
        .map(|(c, rep)| (c, rep, serving.exists, serving.problems))
    })
    .await
    .map_err(|e| RunError::Local(format!("trainer thread: {e}")))??;
    if !problems.is_empty() {
        report.decision = format!("{}; {}", problems.join("; "), report.decision);
    }

    let cand_obj = ObjectRef::new(&s.model.bucket, candidate_key(&s.model.key, &stamp));
    let previous = ObjectRef::new(&s.model.bucket, previous_key(&s.model.key));
    report.candidate_path = Some(cand_obj.to_string());
    report.candidate_sidecar = Some(format!(
        "s3://{}/{}",
        cand_obj.bucket,
        sidecar_key(&cand_obj.key)
    ));
    if report.promote {
        report.promoted_to = Some(s.model.to_string());
        if serving_exists {
            report.previous_kept_at = Some(previous.to_string());
        }
    }
    let out = json!({
        "function": s.function,
        "action": if report.promote { "promoted" } else { "not_promoted" },
        "decision": report.decision,
        "source": source.describe(),
        "read": counts,
        "labels": s.labels.as_ref().map(LabelSource::describe),
        "hyperparameters": s.hyper,
        "report": report,
    });
    let mut body = serde_json::to_vec_pretty(&out).expect("serialises");
    body.push(b'\n');
    write_candidate(store, &cand, &cand_obj, Bytes::from(body.clone()), work_dir).await?;
    if report.promote {
        promote(store, &cand_obj, &s.model, Bytes::from(body)).await?;
    }
    ipsight_ports::emf::log(
        s.function,
        serde_json::Map::from_iter([
            ("event".to_owned(), json!("retrain")),
            ("decision".to_owned(), json!(report.decision)),
            ("candidate".to_owned(), json!(cand_obj.to_string())),
            ("candidate_auc".to_owned(), json!(report.candidate.auc)),
            (
                "serving_auc".to_owned(),
                json!(report.current.as_ref().map(|c| c.auc)),
            ),
        ]),
        &[
            ("ModelPromoted", u64::from(report.promote)),
            ("ModelRefused", u64::from(!report.promote)),
            ("TrainingPairs", report.training_pairs as u64),
        ],
    );
    Ok(out)
}

/// One tuple object read: its pairs and skipped lines, or `None` when it vanished.
type TupleRead<E> = Option<Result<(Vec<(String, IpAddr)>, u64), E>>;

/// Tuple lines of one object, or its absence counted.
fn tuples_read<E: std::fmt::Display>(
    obj: &ObjectRef,
    read: TupleRead<E>,
    counts: &mut ReadCounts,
    mut f: impl FnMut((String, IpAddr)),
) -> Result<(), RunError> {
    match read {
        None => counts.vanished_objects += 1,
        Some(Err(e)) => return Err(RunError::Input(format!("{obj}: {e}"))),
        Some(Ok((pairs, skipped))) => {
            counts.objects_read += 1;
            counts.skipped_lines += skipped;
            pairs.into_iter().for_each(&mut f);
        }
    }
    Ok(())
}

/// Writes the candidate model, its sidecar and its metrics (kept whatever the decision).
pub async fn write_candidate<S: ObjectStore>(
    store: &S,
    cand: &Candidate,
    obj: &ObjectRef,
    metrics: Bytes,
    work_dir: &Path,
) -> Result<(), RunError> {
    let tmp = |what: &str| {
        tempfile::Builder::new()
            .prefix(&format!("ipsight-candidate-{what}"))
            .tempfile_in(work_dir)
            .map_err(|e| RunError::Local(format!("{}: {e}", work_dir.display())))
    };
    let (m, d) = (tmp("model")?, tmp("sidecar")?);
    cand.model
        .save(m.path())
        .map_err(|e| RunError::Local(format!("writing the candidate: {e}")))?;
    cand.detector
        .save(d.path())
        .map_err(|e| RunError::Local(format!("writing the candidate's sidecar: {e}")))?;
    let side = ObjectRef::new(&obj.bucket, sidecar_key(&obj.key));
    store
        .put_file(&side, d.path(), "application/octet-stream")
        .await?;
    store
        .put_file(obj, m.path(), "application/octet-stream")
        .await?;
    store
        .put_bytes(
            &ObjectRef::new(&obj.bucket, metrics_key(&obj.key)),
            metrics,
            "application/json",
        )
        .await?;
    Ok(())
}

/// The one promotion: serving ← candidate, previous ← serving, each with its sidecar and metrics.
///
/// Order: the rollback copies first (if one fails, nothing served changed); then the metrics, the
/// sidecar and last the model, because a warm scorer reloads when the model object changes, and
/// then finds the sidecar that belongs to it. Returns the previous model's location, if there was
/// a serving model.
pub async fn promote<S: ObjectStore + ObjectLister>(
    store: &S,
    candidate: &ObjectRef,
    serving: &ObjectRef,
    metrics: Bytes,
) -> Result<Option<ObjectRef>, StoreError> {
    let at = |key: String| ObjectRef::new(&serving.bucket, key);
    let previous = at(previous_key(&serving.key));
    let kept = if exists(store, serving).await? {
        store.copy(serving, &previous).await?;
        for (from, to) in [
            (sidecar_key(&serving.key), sidecar_key(&previous.key)),
            (metrics_key(&serving.key), metrics_key(&previous.key)),
        ] {
            if exists(store, &at(from.clone())).await? {
                store.copy(&at(from), &at(to)).await?;
            }
        }
        Some(previous)
    } else {
        None
    };
    store
        .put_bytes(&at(metrics_key(&serving.key)), metrics, "application/json")
        .await?;
    store
        .copy(
            &ObjectRef::new(&candidate.bucket, sidecar_key(&candidate.key)),
            &at(sidecar_key(&serving.key)),
        )
        .await?;
    store.copy(candidate, serving).await?;
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_sort_and_fit_keys_and_job_names() {
        assert_eq!(stamp(1_768_953_600_000), "20260121T000000Z");
        assert_eq!(stamp(1_768_953_601_999), "20260121T000001Z");
        assert!(stamp(0) < stamp(1_768_953_600_000));
    }

    #[test]
    fn daily_prefix_beside_objects() {
        assert_eq!(PairsSource::daily_beside("pairs/objects/"), "pairs/daily/");
        assert_eq!(PairsSource::daily_beside("objects/"), "daily/");
        assert_eq!(PairsSource::daily_beside("p/"), "p-daily/");
    }
}
