//! The edges of ipsight as ports, with the adapters that need no cloud: where objects come from
//! and go to ([`ObjectStore`], [`ObjectLister`]; [`DirStore`] over a local directory) and what
//! scores a pair ([`Scorer`]; [`EmbeddedScorer`], the model in this process, with its [`Baseline`]
//! sidecar, and [`ReloadingScorer`], which follows a promoted model in any store). Label loading
//! and EMF log lines sit here too: they are store-generic and every function uses them.
//!
//! The AWS adapters (S3, the SageMaker endpoint) and the configuration reader are `ipsight-aws`;
//! a crate that only needs a port (the retrain library, the CLI's local commands) does not link the
//! AWS SDK through this one. Bodies are streams, never whole objects in memory.

pub mod baseline;
#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
pub mod dir;
pub mod embedded;
pub mod emf;
pub mod labels;
pub mod list;
pub mod reload;
pub mod scorer;
pub mod store;

pub use baseline::Baseline;
pub use dir::DirStore;
pub use embedded::{new_principals_name, unusual_percentile, EmbeddedScorer};
pub use labels::{load_labels, object_key, LabelLoadError, LabelSource};
pub use list::{ObjectInfo, ObjectLister};
pub use reload::ReloadingScorer;
pub use scorer::{
    History, Nearest, Pair, PrincipalProfile, Score, ScoreError, Scorer, ScorerInitError,
};
pub use store::{
    read_small, read_small_tagged, ObjectBody, ObjectRef, ObjectStore, PutCondition, StoreError,
};
