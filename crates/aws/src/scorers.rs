//! Scorer adapters: the embedded model ([`EmbeddedScorer`]), a SageMaker IP Insights endpoint
//! ([`SageMakerScorer`], which also talks to `ipsight serve`), and [`scorer_from_env`] which picks
//! one for a Lambda at cold start ([`AnyScorer`]).
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipsight_model::{Calibration, Model, ModelError};

use crate::scorer::{Pair, Score, ScoreError, Scorer};
use crate::store::{ObjectRef, ObjectStore, StoreError};

/// Why a scorer could not be built (cold-start configuration errors: fail fast).
#[derive(Debug, thiserror::Error)]
pub enum ScorerInitError {
    #[error("loading model {location}: {source}")]
    Model {
        location: String,
        #[source]
        source: ModelError,
    },
    #[error("loading model: {0}")]
    Store(#[from] StoreError),
    #[error("loading calibration {location}: {message}")]
    Calibration { location: String, message: String },
    #[error("scorer configuration: {0}")]
    Config(String),
}

/// Below this many pairs the embedded model scores inline: a few thousand look-ups take well under a
/// millisecond, less than handing the work to another thread would cost.
const INLINE_PAIRS: usize = 4096;

/// The embedded IP Insights-compatible model, loaded once per container.
#[derive(Debug, Clone)]
pub struct EmbeddedScorer {
    model: Arc<Model>,
}

impl EmbeddedScorer {
    pub fn new(model: Arc<Model>) -> Self {
        Self { model }
    }

    /// Loads a model file from a local path (e.g. one bundled in the Lambda package or a layer).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ScorerInitError> {
        let path = path.as_ref();
        let model = Model::load(path).map_err(|source| ScorerInitError::Model {
            location: path.display().to_string(),
            source,
        })?;
        Ok(Self::new(Arc::new(model)))
    }

    /// Loads a model file from an object store at cold start. The body is streamed straight into the
    /// model's tables on a blocking thread, so a 100 MB model is never held twice in memory.
    pub async fn from_store(
        store: &impl ObjectStore,
        obj: &ObjectRef,
    ) -> Result<Self, ScorerInitError> {
        let body = store.get(obj).await?;
        let location = obj.to_string();
        let model = tokio::task::spawn_blocking(move || {
            let mut r = std::io::BufReader::with_capacity(
                1 << 16,
                tokio_util::io::SyncIoBridge::new(body.reader),
            );
            Model::read_from(&mut r)
        })
        .await
        .map_err(|e| ScorerInitError::Config(format!("model loader thread failed: {e}")))?
        .map_err(|source| ScorerInitError::Model { location, source })?;
        Ok(Self::new(Arc::new(model)))
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Scores synchronously (CPU-bound; uses the rayon pool for large batches).
    pub fn score_blocking(&self, pairs: &[Pair]) -> Vec<Score> {
        let refs: Vec<(&str, Ipv4Addr)> = pairs.iter().map(|p| (p.entity.as_str(), p.ip)).collect();
        let cal = self.model.calibration();
        self.model
            .score_pairs(&refs)
            .into_iter()
            .map(|s| Score {
                dot_product: s,
                unusual_percentile: unusual_percentile(cal, s),
            })
            .collect()
    }
}

/// The share of known-normal activity (in percent) that scored higher than `score`: the
/// [`Score::unusual_percentile`] convention. None without a calibration.
pub fn unusual_percentile(cal: &Calibration, score: f32) -> Option<f64> {
    let p = cal.percentile(score);
    (!p.is_nan()).then(|| 100.0 - p)
}

impl Scorer for EmbeddedScorer {
    async fn score(&self, pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
        if pairs.len() < INLINE_PAIRS {
            return Ok(self.score_blocking(pairs));
        }
        // Large batches are CPU-bound for milliseconds to seconds: keep the async workers free.
        // `block_in_place` rather than `spawn_blocking` because the pairs are borrowed (no copy of
        // the batch); on a current-thread runtime (unit tests) there is no other worker to free, so
        // the work runs inline there.
        use tokio::runtime::{Handle, RuntimeFlavor};
        let multi_thread = Handle::try_current()
            .map(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
            .unwrap_or(false);
        if multi_thread {
            Ok(tokio::task::block_in_place(|| self.score_blocking(pairs)))
        } else {
            Ok(self.score_blocking(pairs))
        }
    }
}

/// Default location of a model bundled with a Lambda (package or layer) when `MODEL_URI` is unset.
pub const DEFAULT_MODEL_PATH: &str = "/opt/ipsight/model.ipsm";

/// Where a model file lives: `s3://bucket/key` or a local path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelLocation {
    S3(ObjectRef),
    Local(PathBuf),
}

impl ModelLocation {
    pub fn parse(s: &str) -> Result<Self, ScorerInitError> {
        if let Some(rest) = s.strip_prefix("s3://") {
            match rest.split_once('/') {
                Some((b, k)) if !b.is_empty() && !k.is_empty() => {
                    Ok(Self::S3(ObjectRef::new(b, k)))
                }
                _ => Err(ScorerInitError::Config(format!(
                    "{s:?} is not an s3://bucket/key URI"
                ))),
            }
        } else if s.is_empty() {
            Err(ScorerInitError::Config("empty model location".into()))
        } else {
            Ok(Self::Local(PathBuf::from(s)))
        }
    }
}
