//! ipsight's IP Insights-compatible model: train, score, calibrate, evaluate, save/load.
//!
//! Same hyperparameters (names, ranges, defaults), training-data format and inference wire format as
//! the SageMaker built-in algorithm, so the two are interchangeable. Pure Rust: no AWS, no async.
//!
//! - entity → one of `num_entity_vectors` rows by a stable hash ([`hashing`]);
//! - IP → sum of learned embeddings of its /8, /16 (exact) and /24, /32 (hashed) prefixes, then
//!   `num_ip_encoder_layers` dense layers (ReLU between them) into `vector_dim`;
//! - score = entity · ip (SageMaker's `dot_product`; higher = more normal);
//! - trained with BCE on sigmoid(score) against random and shuffled negatives, Adam + weight decay,
//!   lazy Adam on embedding rows;
//! - calibrated: the training pairs' score quantiles are stored, so a score maps to a percentile.
//!
//! ```no_run
//! use ipsight_model::{train, Hyperparameters, Model, TrainOptions, TrainingData};
//! let mut data = TrainingData::new();
//! data.push("AROAEXAMPLE", "203.0.113.7".parse().unwrap());
//! let model = train(&Hyperparameters::new(1000, 32), &TrainOptions::default(), &data, None, &mut |_| {}).unwrap();
//! model.save("model.ipsight").unwrap();
//! let model = Model::load("model.ipsight").unwrap();
//! let s = model.score("AROAEXAMPLE", "203.0.113.7".parse().unwrap());
//! println!("{s} → less normal than {:.1}% of known activity", 100.0 - model.percentile(s));
//! ```
pub mod calibration;
pub mod error;
pub mod eval;
mod gemm;
pub mod hashing;
pub mod hyper;
pub mod model;
pub mod train;
pub mod tuples;
pub mod wire;

pub use calibration::Calibration;
pub use error::ModelError;
pub use hyper::{Hyperparameters, IpEncoderLayout, TrainOptions, HYPERPARAMETER_NAMES};
pub use model::{Model, TrainingInfo, FORMAT_VERSION};
pub use train::{train, EpochSummary, Progress, TrainEvent, TrainingData};
pub use tuples::{read_pairs, read_training_data, Malformed, ReadStats, TupleError};
