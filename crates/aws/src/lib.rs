//! The AWS adapters behind ipsight's ports (`ipsight-ports`): S3 as an object store and lister
//! ([`S3Store`]), a SageMaker endpoint as a scorer ([`SageMakerScorer`], which also talks to
//! `ipsight serve`), the scorer a Lambda is configured with ([`ScorerSettings`], [`AnyScorer`]),
//! the triage inputs in S3, and **the configuration reader** ([`config::Env`]).

pub mod config;
pub mod events;
pub mod s3;
pub mod scorers;
pub mod triage;

pub use s3::S3Store;
pub use scorers::{
    scorer_from_env, scorer_from_vars, AnyScorer, ModelLocation, SageMakerOptions, SageMakerScorer,
    ScorerSettings, DEFAULT_MODEL_PATH,
};
