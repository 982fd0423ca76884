//! Deterministic synthetic data for ipsight: a behaviour model of an AWS organisation and writers
//! that turn it into a CloudTrail bucket, benchmark-sized objects and GuardDuty findings.
//!
//! Same [`SynthConfig`] (seed included) → byte-identical output, forever: the generator uses its
//! own PRNG ([`rng::Prng`]) and no clock, hash map order or thread scheduling. See [`world`] for
//! the world model, [`cloudtrail`] for the bucket layout.
#![warn(missing_docs)]

pub mod bench;
pub mod catalog;
pub mod cloudtrail;
pub mod geo;
pub mod guardduty;
pub mod rng;
pub mod time;
pub mod world;

pub use bench::{benchmark_config, write_benchmark_trail, write_large_object};
pub use cloudtrail::{write_cloudtrail, CloudTrailOptions, SkipCounts, Summary};
pub use guardduty::{
    eventbridge_event, generate_findings, write_eventbridge_events, write_findings_json,
    write_guardduty_export, FindingsOptions, LabeledFinding,
};
pub use world::{
    Account, Actor, ActorKind, Identity, IdentityKind, SkipReason, SynthConfig, World,
};

/// Errors of the writers (the model itself cannot fail).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result of the writers.
pub type Result<T, E = Error> = std::result::Result<T, E>;
