//! The baseline sidecar beside a scorer: per-principal history combined with the embedding's dot
//! product into one score with its "why" (`ipsight_model::combine::Detector`).
//!
//! The embedded model finds its sidecar beside the model file or object (`model.ipsm` →
//! `model.ipsb`); beside a SageMaker endpoint it comes from `BASELINE_URI`. Either way it is read
//! once at cold start (and again, with the model, when a promoted model is picked up).
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipsight_model::sidecar::sidecar_key;
use ipsight_model::{sidecar_path, Detector, NewPrincipals, SidecarError};

use crate::scorer::ScorerInitError;
use crate::scorer::{Pair, Score};
use crate::store::{ObjectBody, ObjectRef, ObjectStore, StoreError};

/// A loaded sidecar and the new-principal policy: dot products in, [`Score`]s with their why out.
#[derive(Debug, Clone)]
pub struct Baseline {
    detector: Arc<Detector>,
    policy: NewPrincipals,
    location: String,
}

impl Baseline {
    pub fn new(
        detector: Arc<Detector>,
        policy: NewPrincipals,
        location: impl Into<String>,
    ) -> Self {
        Self {
            detector,
            policy,
            location: location.into(),
        }
    }

    pub fn detector(&self) -> &Arc<Detector> {
        &self.detector
    }

    /// Where the sidecar was read from (for logs).
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn new_principals(&self) -> NewPrincipals {
        self.policy
    }

    pub fn with_new_principals(mut self, policy: NewPrincipals) -> Self {
        self.policy = policy;
        self
    }

    /// The entity definition the baseline was built on.
    pub fn entity_definition(&self) -> &str {
        self.detector.baseline.entity_definition()
    }

    /// One pair's score and why from the embedding's dot product.
    pub fn judge(&self, entity: &str, ip: IpAddr, dot: f32) -> Score {
        score_of(self.detector.report(entity, ip, dot, self.policy))
    }

    /// [`Self::judge`] for every pair (same order), through the one batch path the CLI uses too
    /// ([`Detector::report_all`]: history lookups prefetched in batches, large inputs on the rayon
    /// pool).
    /// The principal's known prefixes and first-seen day.
    pub fn profile(&self, entity: &str) -> Option<crate::scorer::PrincipalProfile> {
        let b = &self.detector().baseline;
        b.contains_entity(entity)
            .then(|| crate::scorer::PrincipalProfile {
                prefixes: b.entity_prefixes(entity),
                first_seen_day: b.entity_first_seen(entity).map(i64::from),
            })
    }

    pub fn judge_all(&self, pairs: &[Pair], dots: &[f32]) -> Vec<Score> {
        debug_assert_eq!(pairs.len(), dots.len());
        self.detector
            .report_all(pairs, dots, self.policy)
            .into_iter()
            .map(score_of)
            .collect()
    }
}

fn score_of(r: ipsight_model::PairReport) -> Score {
    Score {
        dot_product: r.dot_product,
        unusual_percentile: Some(r.unusual_percentile),
        embedding_percentile: Some(r.embedding_percentile),
        history: Some(r.history),
        explanation: r.explanation,
        nearest: r.nearest,
    }
}

fn sidecar_error(location: String, source: SidecarError) -> ScorerInitError {
    ScorerInitError::Baseline { location, source }
}

/// Reads a sidecar from a body on a blocking thread (a 1M-principal sidecar is tens of MB).
async fn read_body(body: ObjectBody, location: String) -> Result<Detector, ScorerInitError> {
    let loc = location.clone();
    tokio::task::spawn_blocking(move || {
        let mut r = std::io::BufReader::with_capacity(
            1 << 16,
            tokio_util::io::SyncIoBridge::new(body.reader),
        );
        Detector::read_from(&mut r)
    })
    .await
    .map_err(|e| ScorerInitError::Config(format!("baseline loader thread failed: {e}")))?
    .map_err(|e| sidecar_error(loc, e))
}

/// The sidecar object `obj`, required (`BASELINE_URI`): missing is a configuration error.
pub async fn load_object(
    store: &impl ObjectStore,
    obj: &ObjectRef,
) -> Result<Detector, ScorerInitError> {
    let body = store.get(obj).await?;
    read_body(body, obj.to_string()).await
}

/// The sidecar beside the model object `model` (same key, extension `.ipsb`), if there is one.
/// Missing — or unreadable for lack of `s3:ListBucket`, which S3 reports as access denied — means
/// the embedding alone, which every score then states; a corrupt one is an error.
pub async fn load_beside_object(
    store: &impl ObjectStore,
    model: &ObjectRef,
) -> Result<Option<(Detector, ObjectRef)>, ScorerInitError> {
    let obj = ObjectRef::new(&model.bucket, sidecar_key(&model.key));
    match store.get(&obj).await {
        Ok(body) => Ok(Some((read_body(body, obj.to_string()).await?, obj))),
        Err(StoreError::NotFound(_) | StoreError::AccessDenied(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The sidecar file `path`, required.
pub fn load_file(path: &Path) -> Result<Detector, ScorerInitError> {
    Detector::load(path).map_err(|e| sidecar_error(path.display().to_string(), e))
}

/// The sidecar file beside the model file `model`, if there is one.
pub fn load_beside_file(model: &Path) -> Result<Option<(Detector, String)>, ScorerInitError> {
    let path = sidecar_path(model);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some((load_file(&path)?, path.display().to_string())))
}

/// What [`fit_beside`] did, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct FitSummary {
    pub older_pairs: usize,
    pub held_back_pairs: usize,
    /// Held-back IPv6 pairs: in the history, not in the fit (SageMaker's IP Insights is IPv4-only).
    pub held_back_ipv6: usize,
    /// Pairs sent to the scorer (held back and negatives, distinct).
    pub scored: usize,
}

/// Builds a baseline sidecar for an external model — a SageMaker IP Insights endpoint — the way
/// `ipsight train` builds one for the embedded model: the newest `holdback_fraction` of `log` (in
/// time order) is held back; its pairs and their random and shuffled negatives are scored through
/// `scorer` (the endpoint, *without* a baseline) and judged against the history of the older part;
/// they fit the combiner and calibrate both percentiles. The history shipped covers the whole log.
///
/// The percentiles are honest when the endpoint's model was trained on the older part only (the
/// held-back pairs are then as new to it as tomorrow's); trained on everything, they flatter it.
pub async fn fit_beside(
    scorer: &impl crate::scorer::Scorer,
    log: &ipsight_model::PairLog,
    holdback_fraction: f64,
    entity_definition: &str,
    seed: u64,
) -> Result<(Detector, FitSummary), crate::scorer::ScoreError> {
    use ipsight_model::combine::{negatives, FitInfo};
    use ipsight_model::hybrid::fit_on_held_back;
    use ipsight_model::BaselineBuilder;
    use std::collections::{HashMap, HashSet};

    // The same split as `ipsight train` (time order, or per principal when time order would hold
    // back whole principals).
    let split = log.hold_back(holdback_fraction);
    let (older, held) = (&split.older[..], &split.held[..]);
    let mut builder = BaselineBuilder::new();
    for &i in older {
        log.add_to(&mut builder, i);
    }
    let older_baseline = builder.build(entity_definition);
    for &i in held {
        log.add_to(&mut builder, i);
    }
    let full = builder.build(entity_definition);
    let (held_v4, held_v6): (Vec<(String, IpAddr)>, Vec<_>) = held
        .iter()
        .map(|&i| (log.entity(i).to_owned(), log.ip(i).to_canonical()))
        .partition(|(_, ip)| ip.is_ipv4());
    // The negatives fit_on_held_back will draw (same pairs, same seed): scored first, since the
    // endpoint answers asynchronously and the fit asks synchronously.
    let (neg, _, _) = negatives(&held_v4, seed);
    let mut seen = HashSet::new();
    let to_score: Vec<Pair> = held_v4
        .iter()
        .chain(neg.iter().filter(|(_, ip)| ip.is_ipv4()))
        .filter(|p| seen.insert((*p).clone()))
        .map(|(e, ip)| Pair {
            entity: e.clone(),
            ip: *ip,
        })
        .collect();
    let mut dots: HashMap<(String, IpAddr), f32> = HashMap::with_capacity(to_score.len());
    for chunk in to_score.chunks(200_000) {
        let scores = scorer.score(chunk).await?;
        if scores.len() != chunk.len() {
            return Err(crate::scorer::ScoreError::Rejected(format!(
                "scorer returned {} scores for {} pairs",
                scores.len(),
                chunk.len()
            )));
        }
        for (p, s) in chunk.iter().zip(scores) {
            dots.insert((p.entity.clone(), p.ip), s.dot_product);
        }
    }
    let scored = dots.len();
    let det = fit_on_held_back(
        &older_baseline,
        full,
        &held_v4,
        |e, ip| {
            dots.get(&(e.to_owned(), ip))
                .copied()
                .filter(|d| d.is_finite())
        },
        FitInfo {
            older_pairs: older.len() as u64,
            model_fingerprint: None,
            held_back_by: split.by.as_str().to_owned(),
            input_days: log.days_spanned(),
            ..FitInfo::default()
        },
        seed,
    );
    Ok((
        det,
        FitSummary {
            older_pairs: older.len(),
            held_back_pairs: held.len(),
            held_back_ipv6: held_v6.len(),
            scored,
        },
    ))
}
