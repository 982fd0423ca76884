//! The retrain for explicit local files (`ipsight retrain --train … --holdout … --current … --out …`):
//! the same judging ([`crate::judge`]) and the same promotion ([`crate::run::promote`]) as the
//! scheduled retrain, with the local file system as the object store: a path `/a/b/c` is the object
//! `c` of bucket `a` under key `b/c` in a [`DirStore`] rooted at `/`.
use std::io::BufRead;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use ipsight_core::labels::LabelSet;
use ipsight_formats::pairs::{is_pair_header, read_pair_file, training_weight};
use ipsight_model::tuples::for_each_tuple;
use ipsight_model::{sidecar_path, Detector, Malformed, Model, ModelError, TrainEvent};
use ipsight_ports::{DirStore, ObjectRef, StoreError};

use crate::judge::{retrain, JudgeError, RetrainOptions, RetrainReport, Serving, TrainingInput};
use crate::previous_key;
use crate::run::{promote, write_candidate, RunError};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{path}: {msg}")]
    Input { path: String, msg: String },
    #[error("serving model {path}: {source}")]
    Serving {
        path: String,
        #[source]
        source: ModelError,
    },
    #[error(transparent)]
    Judge(#[from] JudgeError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Inputs of [`retrain_files`].
pub struct RetrainFiles<'a> {
    /// Tuple CSV or pair file.
    pub train: &'a Path,
    /// Held-back recent pairs (tuple CSV or pair file), not in `train`.
    pub holdout: &'a Path,
    pub labels: &'a LabelSet,
    /// The serving model (may not exist yet); its sidecar beside it (`.ipsb`).
    pub current: &'a Path,
    /// Where the candidate goes; its sidecar and `<out>.metrics.json` beside it, always written.
    pub out: &'a Path,
}

fn input_err(path: &Path) -> impl Fn(String) -> FilesError + '_ {
    move |msg| FilesError::Input {
        path: path.display().to_string(),
        msg,
    }
}

fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>, FilesError> {
    std::fs::File::open(path)
        .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
        .map_err(|e| input_err(path)(e.to_string()))
}

/// Whether the file starts with the pair-file header.
fn is_pair_file(path: &Path) -> Result<bool, FilesError> {
    let mut r = open(path)?;
    let buf = r.fill_buf().map_err(|e| input_err(path)(e.to_string()))?;
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(is_pair_header(line))
}

/// Reads a tuple CSV (malformed lines skipped and counted) or a pair file into `f(entity, ip,
/// events, first, last, weight)`; returns the skipped lines.
fn read_input(
    path: &Path,
    mut f: impl FnMut(&str, IpAddr, Option<(u64, Option<u32>, Option<u32>, u32)>),
) -> Result<u64, FilesError> {
    let err = input_err(path);
    if is_pair_file(path)? {
        let day = |d: Option<i64>| d.and_then(|d| u32::try_from(d).ok());
        read_pair_file(open(path)?, |e, ip, h| {
            let w = training_weight(h);
            f(
                e,
                ip,
                Some((h.events, day(h.first_day()), day(h.last_day()), w)),
            )
        })
        .map_err(|e| err(e.to_string()))?;
        Ok(0)
    } else {
        let st = for_each_tuple(open(path)?, Malformed::Skip, |e, ip| f(e, ip, None))
            .map_err(|e| err(e.to_string()))?;
        Ok(st.skipped)
    }
}

/// A local path as an object of the [`DirStore`] rooted at `/` (its directory is created).
fn local_object(path: &Path) -> Result<ObjectRef, FilesError> {
    let err = input_err(path);
    let name = path
        .file_name()
        .ok_or_else(|| err("not a file name".into()))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let dir = dir.canonicalize().map_err(|e| err(e.to_string()))?;
    let mut parts = dir.components().filter_map(|c| match c {
        Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
        _ => None,
    });
    let bucket = parts
        .next()
        .ok_or_else(|| err("a file directly under / is not supported".into()))?;
    let mut key: Vec<String> = parts.collect();
    key.push(name.to_string_lossy().into_owned());
    Ok(ObjectRef::new(bucket, key.join("/")))
}

fn local_path(obj: &ObjectRef) -> PathBuf {
    Path::new("/").join(&obj.bucket).join(&obj.key)
}

/// Read, retrain, write the candidate, its sidecar and `<out>.metrics.json`, promote model and
/// sidecar if not worse. A refusal is a normal outcome: `Ok` with `promote: false`, the serving
/// model untouched, the candidate and its metrics kept as evidence.
pub async fn retrain_files(
    f: &RetrainFiles<'_>,
    opts: &RetrainOptions,
    on_event: &mut (dyn FnMut(TrainEvent) + Send),
) -> Result<RetrainReport, FilesError> {
    let mut input = TrainingInput::new(f.labels, opts, is_pair_file(f.train)?);
    read_input(f.train, |e, ip, pair| match pair {
        None => input.push_tuple(e, ip),
        Some((events, first, last, w)) => input.push_pair(e, ip, events, first, last, w),
    })?;
    let mut holdout = Vec::new();
    read_input(f.holdout, |e, ip, _| holdout.push((e.to_owned(), ip)))?;

    let current = if f.current.exists() {
        let serving = |source| FilesError::Serving {
            path: f.current.display().to_string(),
            source,
        };
        let model = Model::load(f.current).map_err(serving)?;
        let side = sidecar_path(f.current);
        // No or a mismatched sidecar: the serving model is judged as it is served, on its
        // embedding alone (the report says so).
        let detector = side
            .exists()
            .then(|| Detector::load(&side).ok())
            .flatten()
            .filter(|d| {
                d.check_compatible(model.entity_definition(), Some(model.fingerprint()))
                    .is_ok()
            });
        Some((model, detector))
    } else {
        None
    };
    let serving = current.as_ref().map(|(m, d)| Serving {
        model: m,
        detector: d.as_ref(),
    });
    let (cand, mut report) = retrain(input, holdout, f.labels, serving, opts, on_event)?;

    let store = DirStore::new("/");
    let (cand_obj, serving_obj) = (local_object(f.out)?, local_object(f.current)?);
    report.candidate_path = Some(f.out.display().to_string());
    report.candidate_sidecar = Some(sidecar_path(f.out).display().to_string());
    if report.promote {
        report.promoted_to = Some(f.current.display().to_string());
        if current.is_some() {
            let prev = ObjectRef::new(&serving_obj.bucket, previous_key(&serving_obj.key));
            report.previous_kept_at = Some(local_path(&prev).display().to_string());
        }
    }
    let mut body = serde_json::to_vec_pretty(&report).expect("report serialises");
    body.push(b'\n');
    let work = local_path(&cand_obj);
    let work_dir = work.parent().unwrap_or(Path::new("/"));
    write_candidate(
        &store,
        &cand,
        &cand_obj,
        Bytes::from(body.clone()),
        work_dir,
    )
    .await?;
    if report.promote {
        promote(&store, &cand_obj, &serving_obj, Bytes::from(body)).await?;
    }
    Ok(report)
}

/// `<model path>.metrics.json`.
pub fn metrics_path(model: &Path) -> PathBuf {
    let mut s = model.as_os_str().to_owned();
    s.push(".metrics.json");
    PathBuf::from(s)
}
