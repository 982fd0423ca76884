//! The embedded IP Insights-compatible model as a [`Scorer`]: loaded from a file or from any
//! [`ObjectStore`], with the baseline sidecar beside it when there is one.
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipsight_model::{Calibration, Model, NewPrincipals};

use crate::baseline::Baseline;
use crate::scorer::{Pair, Score, ScoreError, Scorer, ScorerInitError};
use crate::store::{ObjectBody, ObjectRef, ObjectStore};

/// Below this many pairs the embedded model scores inline: a few thousand look-ups take well under a
/// millisecond, less than handing the work to another thread would cost.
const INLINE_PAIRS: usize = 4096;

/// What every score of a scorer without a baseline says about it.
const NO_SIDECAR: &str = "no baseline sidecar beside the model";

/// The embedded IP Insights-compatible model, loaded once per container, with its baseline sidecar
/// when one was written beside it (`ipsight train`, the scheduled retrain).
#[derive(Debug, Clone)]
pub struct EmbeddedScorer {
    model: Arc<Model>,
    baseline: Option<Baseline>,
}

impl EmbeddedScorer {
    /// The model alone: scores say the embedding alone speaks (see [`Self::with_baseline`]).
    pub fn new(model: Arc<Model>) -> Self {
        Self {
            model,
            baseline: None,
        }
    }

    /// Combines the model's dot products with this baseline, refusing a sidecar built on another
    /// entity definition or fitted to another model (every principal would be judged against the
    /// wrong history).
    pub fn with_baseline(mut self, baseline: Baseline) -> Result<Self, ScorerInitError> {
        baseline
            .detector()
            .check_compatible(
                self.model.entity_definition(),
                Some(self.model.fingerprint()),
            )
            .map_err(|source| ScorerInitError::Baseline {
                location: baseline.location().to_owned(),
                source,
            })?;
        self.baseline = Some(baseline);
        Ok(self)
    }

    /// Loads a model file from a local path (e.g. one bundled in the Lambda package or a layer) and
    /// the sidecar beside it, if any.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ScorerInitError> {
        Self::load_with(path, NewPrincipals::default())
    }

    /// [`Self::load`] with the new-principal policy.
    pub fn load_with(
        path: impl AsRef<Path>,
        policy: NewPrincipals,
    ) -> Result<Self, ScorerInitError> {
        let path = path.as_ref();
        let model = Model::load(path).map_err(|source| ScorerInitError::Model {
            location: path.display().to_string(),
            source,
        })?;
        let scorer = Self::new(Arc::new(model));
        match crate::baseline::load_beside_file(path)? {
            Some((det, loc)) => scorer.with_baseline(Baseline::new(Arc::new(det), policy, loc)),
            None => Ok(scorer),
        }
    }

    /// Loads a model file from an object store at cold start, and the sidecar beside it if any. The
    /// body is streamed straight into the model's tables on a blocking thread, so a 100 MB model is
    /// never held twice in memory.
    pub async fn from_store(
        store: &impl ObjectStore,
        obj: &ObjectRef,
    ) -> Result<Self, ScorerInitError> {
        Self::from_store_with(store, obj, NewPrincipals::default()).await
    }

    /// [`Self::from_store`] with the new-principal policy.
    pub async fn from_store_with(
        store: &impl ObjectStore,
        obj: &ObjectRef,
        policy: NewPrincipals,
    ) -> Result<Self, ScorerInitError> {
        let scorer = Self::from_body(store.get(obj).await?, obj).await?;
        scorer.with_sidecar_beside(store, obj, policy).await
    }

    /// Adds the sidecar beside the model object `obj`, if there is one.
    pub async fn with_sidecar_beside(
        self,
        store: &impl ObjectStore,
        obj: &ObjectRef,
        policy: NewPrincipals,
    ) -> Result<Self, ScorerInitError> {
        match crate::baseline::load_beside_object(store, obj).await? {
            Some((det, at)) => {
                self.with_baseline(Baseline::new(Arc::new(det), policy, at.to_string()))
            }
            None => Ok(self),
        }
    }

    /// Loads a model from a body already fetched (its version tag read by the caller); no sidecar.
    pub async fn from_body(body: ObjectBody, obj: &ObjectRef) -> Result<Self, ScorerInitError> {
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

    /// The baseline combined with the model's scores, if one was loaded.
    pub fn baseline(&self) -> Option<&Baseline> {
        self.baseline.as_ref()
    }

    /// Scores synchronously (CPU-bound; uses the rayon pool for large batches). IPv6 pairs on an
    /// IPv4-only model (format 1) reject the batch with the model's reason.
    pub fn score_blocking(&self, pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
        let refs: Vec<(&str, IpAddr)> = pairs.iter().map(|p| (p.entity.as_str(), p.ip)).collect();
        let dots = self
            .model
            .score_ip_pairs(&refs)
            .map_err(|e| ScoreError::Rejected(e.to_string()))?;
        if let Some(b) = &self.baseline {
            return Ok(b.judge_all(pairs, &dots));
        }
        let cal = self.model.calibration();
        Ok(dots
            .into_iter()
            .map(|s| Score::embedding_only(s, unusual_percentile(cal, s), NO_SIDECAR))
            .collect())
    }

    /// One line for logs: the model and whether a baseline is combined with it.
    pub fn describe(&self) -> String {
        match &self.baseline {
            Some(b) => format!(
                "embedded model with baseline {} ({} principals; new principals: {})",
                b.location(),
                b.detector().baseline.entities(),
                new_principals_name(b.new_principals())
            ),
            None => format!("embedded model ({NO_SIDECAR}: the embedding alone)"),
        }
    }
}

/// `alert` / `ignore`, as `NEW_PRINCIPALS` is spelt.
pub fn new_principals_name(p: NewPrincipals) -> &'static str {
    match p {
        NewPrincipals::Alert => "alert",
        NewPrincipals::Ignore => "ignore",
    }
}

/// The share of known-normal activity (in percent) that scored higher than `score`: the
/// [`Score::unusual_percentile`] convention. None without a calibration.
pub fn unusual_percentile(cal: &Calibration, score: f32) -> Option<f64> {
    let p = cal.percentile(score);
    (!p.is_nan()).then_some(100.0 - p)
}

impl Scorer for EmbeddedScorer {
    fn profile(&self, entity: &str) -> Option<crate::scorer::PrincipalProfile> {
        self.baseline.as_ref()?.profile(entity)
    }

    async fn score(&self, pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
        if pairs.len() < INLINE_PAIRS {
            return self.score_blocking(pairs);
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
            tokio::task::block_in_place(|| self.score_blocking(pairs))
        } else {
            self.score_blocking(pairs)
        }
    }
}
