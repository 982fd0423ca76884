//! An embedded model that follows its object: a scheduled retrain promotes a new model by
//! rewriting `MODEL_URI` (and its baseline sidecar beside it), and warm Lambda containers pick
//! them up without a redeploy.
//!
//! At most once per `every`, the next scoring call asks the store for the model object's version
//! tag (S3: a HEAD, no download). Only when it changed are the new model and the sidecar beside it
//! streamed in, and swapped together (one pointer exchange), so a batch is always scored by one
//! model and its own baseline. A failed check or a bad new object (truncated upload, wrong format,
//! a sidecar fitted to another model because the promotion is half done) keeps the pair already in
//! memory serving and is logged: an alerting path must not go dark because a retrain wrote
//! something unreadable. The next check tries again, so a promotion that writes the model before
//! its sidecar converges once both are in place.
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::json;

use ipsight_model::NewPrincipals;

use crate::embedded::EmbeddedScorer;
use crate::list::ObjectLister;
use crate::scorer::ScorerInitError;
use crate::scorer::{Pair, Score, ScoreError, Scorer};
use crate::store::{ObjectRef, ObjectStore};

/// Default for `MODEL_CHECK_SECONDS`.
pub const DEFAULT_CHECK_SECONDS: u64 = 300;

struct Current {
    scorer: EmbeddedScorer,
    version_tag: String,
}

pub struct ReloadingScorer<S> {
    store: S,
    obj: ObjectRef,
    every: Duration,
    new_principals: NewPrincipals,
    current: RwLock<Arc<Current>>,
    /// When the object was last checked; also serialises checks so that concurrent calls do not
    /// all download the same new model.
    checked: Mutex<Instant>,
}

impl<S> std::fmt::Debug for ReloadingScorer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingScorer")
            .field("obj", &self.obj)
            .field("every", &self.every)
            .field("version_tag", &self.version_tag())
            .finish()
    }
}

impl<S> ReloadingScorer<S> {
    /// The model serving now.
    pub fn scorer(&self) -> EmbeddedScorer {
        self.current.read().expect("not poisoned").scorer.clone()
    }

    /// The version tag (ETag) of the model serving now.
    pub fn version_tag(&self) -> String {
        self.current
            .read()
            .expect("not poisoned")
            .version_tag
            .clone()
    }

    pub fn check_every(&self) -> Duration {
        self.every
    }

    pub fn location(&self) -> &ObjectRef {
        &self.obj
    }
}

impl<S: ObjectStore + ObjectLister> ReloadingScorer<S> {
    /// Loads the model now (cold start: a missing or bad model is a configuration error). One GET:
    /// the version tag comes with the body, so it is exactly the version loaded.
    pub async fn load(store: S, obj: ObjectRef, every: Duration) -> Result<Self, ScorerInitError> {
        Self::load_with(store, obj, every, NewPrincipals::default()).await
    }

    /// [`Self::load`] with the new-principal policy of the baseline beside the model.
    pub async fn load_with(
        store: S,
        obj: ObjectRef,
        every: Duration,
        new_principals: NewPrincipals,
    ) -> Result<Self, ScorerInitError> {
        let body = store.get(&obj).await?;
        let version_tag = body.version_tag.clone().unwrap_or_default();
        let scorer = EmbeddedScorer::from_body(body, &obj)
            .await?
            .with_sidecar_beside(&store, &obj, new_principals)
            .await?;
        Ok(Self {
            store,
            obj,
            every,
            new_principals,
            current: RwLock::new(Arc::new(Current {
                scorer,
                version_tag,
            })),
            checked: Mutex::new(Instant::now()),
        })
    }

    /// Is a check due? Claims it (so one caller checks, the others score with what is loaded).
    fn claim_check(&self) -> bool {
        let mut last = self.checked.lock().expect("not poisoned");
        if last.elapsed() < self.every {
            return false;
        }
        *last = Instant::now();
        true
    }

    /// Checks the object now and swaps the model in if it changed. `Ok(true)`: a new model serves.
    pub async fn refresh(&self) -> Result<bool, ScorerInitError> {
        let info = self.store.head(&self.obj).await?;
        if info.version_tag == self.version_tag() {
            return Ok(false);
        }
        // The tag stored is the GET's, not the HEAD's: the object may change between the two.
        let body = self.store.get(&self.obj).await?;
        let new_tag = body.version_tag.clone().unwrap_or(info.version_tag);
        // The sidecar of the new model: one fitted to another model (promotion half done) fails
        // here and the serving pair stays.
        let scorer = EmbeddedScorer::from_body(body, &self.obj)
            .await?
            .with_sidecar_beside(&self.store, &self.obj, self.new_principals)
            .await?;
        // A model of another entity definition would make every pair a stranger: keep serving
        // the current one until the function is redeployed with the new ENTITY.
        let (new_def, old_def) = (
            scorer.model().entity_definition().to_owned(),
            self.scorer().model().entity_definition().to_owned(),
        );
        if new_def != old_def {
            return Err(ScorerInitError::Config(format!(
                "{}: the new model's entity definition is {new_def:?}, the serving one's \
                 {old_def:?}; not swapped (redeploy with ENTITY={new_def})",
                self.obj
            )));
        }
        let previous = self.version_tag();
        let had_baseline = self.scorer().baseline().is_some();
        let baseline = scorer.baseline().map(|b| b.location().to_owned());
        *self.current.write().expect("not poisoned") = Arc::new(Current {
            scorer,
            version_tag: new_tag.clone(),
        });
        println!(
            "{}",
            json!({"event": "model_reloaded", "model": self.obj.to_string(),
                   "previous_version": previous, "version": new_tag, "baseline": baseline,
                   "baseline_dropped": had_baseline && baseline.is_none()})
        );
        Ok(true)
    }
}

impl<S: ObjectStore + ObjectLister> Scorer for ReloadingScorer<S> {
    fn profile(&self, entity: &str) -> Option<crate::scorer::PrincipalProfile> {
        self.scorer().profile(entity)
    }

    async fn score(&self, pairs: &[Pair]) -> Result<Vec<Score>, ScoreError> {
        if self.claim_check() {
            if let Err(e) = self.refresh().await {
                println!(
                    "{}",
                    json!({"event": "model_reload_failed", "model": self.obj.to_string(),
                           "serving_version": self.version_tag(), "error": e.to_string()})
                );
            }
        }
        // One model for the whole batch, even if another call swaps meanwhile.
        let scorer = self.scorer();
        scorer.score(pairs).await
    }
}
