//! The scorer port: `<entity, ip>` pairs in, scores with their "why" out, same order.
//!
//! Adapters: the SageMaker endpoint (built-in IP Insights, or `ipsight serve`) and the embedded
//! model, each optionally with the baseline sidecar (the hybrid detector: per-principal history
//! combined with the embedding's dot product). Handlers and the CLI take `&impl Scorer` and never
//! know which one they talk to.
use std::future::Future;
use std::net::IpAddr;

use ipsight_model::{ModelError, SidecarError};

use crate::store::StoreError;

pub use ipsight_model::baseline::Nearest;
pub use ipsight_model::History;

/// One pair to score. The entity is already normalised (see `ipsight_formats::entity`). IPv6
/// addresses are scored by ipsight's own model: the SageMaker adapter hands them to the embedded
/// model configured beside the endpoint (SageMaker's IP Insights is IPv4-only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    pub entity: String,
    pub ip: IpAddr,
}

impl ipsight_model::baseline::PairKey for Pair {
    fn entity(&self) -> &str {
        &self.entity
    }
    fn ip(&self) -> IpAddr {
        self.ip
    }
}

/// A score and why: the fields of `ipsight score --output ipsight`.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The embedding's score as IP Insights returns it (higher = more normal).
    pub dot_product: f32,
    /// 0–100, higher = less normal. With a baseline: the *combined* score's position among held-back
    /// recent normal activity (a new principal: 100 or 0 by `NEW_PRINCIPALS`). Without one: the
    /// embedding's position among the training pairs, when the scorer has a calibration (the
    /// embedded model always does), else None.
    pub unusual_percentile: Option<f64>,
    /// The embedding's own unusualness on the same scale (with a baseline: the same held-back pairs).
    pub embedding_percentile: Option<f64>,
    /// Where the address sits in the principal's history; None when no baseline is loaded.
    pub history: Option<History>,
    /// One sentence: the history level, nearest known prefixes, both percentiles — or, without a
    /// baseline, that the embedding alone speaks.
    pub explanation: String,
    /// Up to 3 prefixes the principal used nearest to this address (empty when it used the address
    /// itself, or without a baseline).
    pub nearest: Vec<Nearest>,
}

impl Score {
    /// A score from the embedding alone (no baseline sidecar): says so in its explanation.
    pub fn embedding_only(dot_product: f32, unusual_percentile: Option<f64>, why: &str) -> Self {
        let explanation = match unusual_percentile {
            Some(p) => format!(
                "{why}: the embedding alone; less normal than {p:.1}% of the training activity."
            ),
            None => {
                format!("{why}: the embedding alone (dot_product {dot_product:.3}, uncalibrated).")
            }
        };
        Self {
            dot_product,
            unusual_percentile,
            embedding_percentile: unusual_percentile,
            history: None,
            explanation,
            nearest: Vec::new(),
        }
    }

    /// Whether the baseline has never seen this principal.
    pub fn is_new_principal(&self) -> bool {
        self.history == Some(History::NewPrincipal)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The scorer refused the request (bad input, model error): retrying will not help.
    #[error("scoring rejected: {0}")]
    Rejected(String),
    /// Throttling, timeouts, 5xx after retries: a redelivery may succeed.
    #[error("scoring unavailable: {0}")]
    Unavailable(String),
}

/// What the baseline knows of one principal beyond a pair's score: for "first time from this AS /
/// country" (network history) and the tuning file's learning period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalProfile {
    /// Every prefix it used (IPv4 /24, IPv6 /64), as the network's first address.
    pub prefixes: Vec<IpAddr>,
    /// Its first-seen day (days since 1970-01-01), the earliest over its prefixes.
    pub first_seen_day: Option<i64>,
}

pub trait Scorer: Send + Sync {
    /// Score `pairs`; the result has the same length and order.
    fn score(&self, pairs: &[Pair]) -> impl Future<Output = Result<Vec<Score>, ScoreError>> + Send;

    /// The principal as the baseline knows it; `None` without a baseline or for a principal it
    /// never saw.
    fn profile(&self, _entity: &str) -> Option<PrincipalProfile> {
        None
    }
}

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
    #[error("loading baseline sidecar {location}: {source}")]
    Baseline {
        location: String,
        #[source]
        source: SidecarError,
    },
    #[error("scorer configuration: {0}")]
    Config(String),
}
