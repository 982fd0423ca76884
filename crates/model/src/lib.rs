//! ipsight's IP Insights-compatible model: train, score, calibrate, evaluate, save/load.
//!
//! Same hyperparameters (names, ranges, defaults), training-data format and inference wire format as
//! the SageMaker built-in algorithm, so the two are interchangeable. Pure Rust: no AWS, no async.
//!
//! - entity → one of `num_entity_vectors` rows by a stable hash ([`hashing`]);
//! - IP → sum of learned embeddings of its /8, /16 (exact) and /24, /32 (hashed) prefixes, then
//!   `num_ip_encoder_layers` dense layers (ReLU between them) into `vector_dim`; an IPv6 address →
//!   its /32 (ISP or cloud), /48 (site), /56 (delegated home prefix) and /64 (subnet) prefixes,
//!   hashed into rows of the same four tables (the interface id rotates and is ignored), so one
//!   model scores both families (ipsight only: SageMaker's IP Insights is IPv4-only);
//! - score = entity · ip (SageMaker's `dot_product`; higher = more normal);
//! - trained with BCE on sigmoid(score) against random and shuffled negatives, Adam + weight decay,
//!   lazy Adam on embedding rows;
//! - calibrated: the training pairs' score quantiles are stored, so a score maps to a percentile;
//! - the hybrid detector ([`combine`], [`baseline`], [`hybrid`]): a per-entity history of addresses
//!   and prefixes, combined with the dot product into one score whose percentiles are calibrated on
//!   held-back recent pairs, stored in a sidecar file ([`sidecar`]) beside the model.
//!
//! ```no_run
//! use ipsight_model::{train, Hyperparameters, Model, TrainOptions, TrainingData};
//! let mut data = TrainingData::new();
//! data.push("AROAEXAMPLE", "203.0.113.7".parse::<std::net::IpAddr>().unwrap());
//! data.push("AROAEXAMPLE", "2001:db8:1:2::7".parse::<std::net::IpAddr>().unwrap());
//! let model = train(&Hyperparameters::new(1000, 32), &TrainOptions::default(), &data, None, &mut |_| {}).unwrap();
//! model.save("model.ipsight").unwrap();
//! let model = Model::load("model.ipsight").unwrap();
//! let s = model.score("AROAEXAMPLE", "203.0.113.7".parse().unwrap());
//! println!("{s} → less normal than {:.1}% of known activity", 100.0 - model.percentile(s));
//! ```
pub mod baseline;
pub mod calibration;
pub mod combine;
pub mod error;
pub mod eval;
mod gemm;
pub mod hashing;
pub mod hybrid;
pub mod hyper;
pub mod model;
pub mod sidecar;
pub mod train;
pub mod tuples;
pub mod wire;

pub use baseline::{Baseline, BaselineBuilder, Day, History};
pub use calibration::Calibration;
pub use combine::{Detector, NewPrincipals, PairReport, Verdict};
pub use error::ModelError;
pub use hashing::IpKey;
pub use hybrid::{train_hybrid, HybridOptions, PairLog};
pub use hyper::{Hyperparameters, IpEncoderLayout, TrainOptions, HYPERPARAMETER_NAMES};
pub use model::{Model, TrainingInfo, FORMAT_VERSION};
pub use sidecar::{sidecar_path, SidecarError};
pub use train::{random_negative, train, EpochSummary, Progress, TrainEvent, TrainingData};
pub use tuples::{read_pairs, read_training_data, Malformed, ReadStats, TupleError};
