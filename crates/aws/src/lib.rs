//! Adapters at the edge of ipsight: where objects come from and go to.
//!
//! The handlers take an [`ObjectStore`]; production passes [`S3Store`], the CLI and some tests pass
//! [`DirStore`]. Bodies are streams, never whole objects in memory.

pub mod config;
pub mod emf;
pub mod labels;
pub mod list;
pub mod reload;
pub mod scorer;
pub mod scorers;
pub mod store;

pub use labels::{load_labels, LabelLoadError, LabelSource};
pub use list::{ObjectInfo, ObjectLister};
pub use reload::ReloadingScorer;
pub use scorer::{Pair, Score, ScoreError, Scorer};
pub use scorers::{
    scorer_from_env, scorer_from_vars, AnyScorer, EmbeddedScorer, ModelLocation, SageMakerOptions,
    SageMakerScorer, ScorerInitError, DEFAULT_MODEL_PATH,
};
pub use store::{DirStore, ObjectBody, ObjectRef, ObjectStore, S3Store, StoreError};
