//! The scorer port: `<entity, ip>` pairs in, IP Insights scores out, same order.
//!
//! Adapters: the SageMaker endpoint (built-in IP Insights, or `ipsight serve`) and the embedded
//! model. Handlers and the CLI take `&impl Scorer` and never know which one they talk to.
use std::future::Future;
use std::net::Ipv4Addr;

/// One pair to score. The entity is already normalised (see `ipsight_formats::entity`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    pub entity: String,
    pub ip: Ipv4Addr,
}

/// A score: `dot_product` as IP Insights returns it (higher = more normal) and, when the scorer has a
/// calibration (the embedded model always does), the share of known-normal training activity that
/// scored *higher*, in percent: 99.5 means "less normal than 99.5% of known activity".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub dot_product: f32,
    pub unusual_percentile: Option<f64>,
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

pub trait Scorer: Send + Sync {
    /// Score `pairs`; the result has the same length and order.
    fn score(&self, pairs: &[Pair]) -> impl Future<Output = Result<Vec<Score>, ScoreError>> + Send;
}
