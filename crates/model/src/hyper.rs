//! Hyperparameters: SageMaker IP Insights' own names, ranges and defaults, so a job definition moves
//! between the built-in algorithm and ipsight unchanged. ipsight-only knobs live in [`TrainOptions`]
//! and [`IpEncoderLayout`], never mixed in with the SageMaker set.
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// The SageMaker IP Insights hyperparameters (names, ranges and defaults as documented by SageMaker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    /// Number of entity embedding vectors (hash buckets); 1–250,000,000, required.
    pub num_entity_vectors: u64,
    /// Size of entity and IP embedding vectors; 4–4096, required.
    pub vector_dim: u32,
    /// Report training metrics every this many batches; ≥ 1, default 1000.
    pub batch_metrics_publish_interval: u64,
    /// Passes over the training data; ≥ 1, default 10.
    pub epochs: u32,
    /// Adam learning rate; 1e-6–10, default 0.001.
    pub learning_rate: f64,
    /// Positive pairs per mini-batch; 1–500,000, default 10,000.
    pub mini_batch_size: u32,
    /// Dense layers in the IP encoder; 0–100, default 1.
    pub num_ip_encoder_layers: u32,
    /// Random negatives (entity + uniformly random IPv4) per positive; 0–500, default 1.
    pub random_negative_sampling_rate: u32,
    /// Shuffled negatives (re-paired within the mini-batch) per positive; 0–500, default 1.
    pub shuffled_negative_sampling_rate: u32,
    /// L2 weight decay added to Adam's gradients; 0–10, default 0.00001.
    pub weight_decay: f64,
}

/// Every SageMaker hyperparameter name, in the documentation's order.
pub const HYPERPARAMETER_NAMES: [&str; 10] = [
    "num_entity_vectors",
    "vector_dim",
    "batch_metrics_publish_interval",
    "epochs",
    "learning_rate",
    "mini_batch_size",
    "num_ip_encoder_layers",
    "random_negative_sampling_rate",
    "shuffled_negative_sampling_rate",
    "weight_decay",
];

impl Hyperparameters {
    /// The two required values; everything else takes SageMaker's default.
    pub fn new(num_entity_vectors: u64, vector_dim: u32) -> Self {
        Self {
            num_entity_vectors,
            vector_dim,
            batch_metrics_publish_interval: 1000,
            epochs: 10,
            learning_rate: 0.001,
            mini_batch_size: 10_000,
            num_ip_encoder_layers: 1,
            random_negative_sampling_rate: 1,
            shuffled_negative_sampling_rate: 1,
            weight_decay: 0.00001,
        }
    }

    /// The settings of the SageMaker IP Insights tutorial notebook (used by the benchmarks).
    pub fn sagemaker_tutorial() -> Self {
        Self {
            num_entity_vectors: 20_000,
            vector_dim: 128,
            random_negative_sampling_rate: 5,
            shuffled_negative_sampling_rate: 1,
            mini_batch_size: 1000,
            learning_rate: 0.01,
            ..Self::new(20_000, 128)
        }
    }

    /// What `ipsight train` chooses when given no hyperparameters: `num_entity_vectors` = 2 × the
    /// distinct entities (SageMaker's own advice, so hash collisions between principals are rare),
    /// and the SageMaker IP Insights tutorial's vector_dim 128, learning_rate 0.01,
    /// mini_batch_size 1000, random_negative_sampling_rate 5, shuffled_negative_sampling_rate 1 and
    /// 5 epochs. SageMaker's own defaults (learning_rate 0.001, mini_batch_size 10,000) learn a
    /// sparse world poorly: the issue measured AUC 0.82 against 0.97 with the tutorial's.
    pub fn ipsight_defaults(distinct_entities: usize) -> Self {
        let nev = (2 * distinct_entities as u64).clamp(2, 250_000_000);
        Self {
            epochs: 5,
            ..Self {
                num_entity_vectors: nev,
                ..Self::sagemaker_tutorial()
            }
        }
    }

    /// Rejects any value outside SageMaker's documented range, naming the parameter and the range.
    pub fn validate(&self) -> Result<(), ModelError> {
        fn check<T: PartialOrd + std::fmt::Display>(
            name: &'static str,
            v: T,
            lo: T,
            hi: Option<T>,
            range: &'static str,
        ) -> Result<(), ModelError> {
            // Written as "inside the range" so that NaN (which compares false) is rejected too.
            let inside = v >= lo && hi.is_none_or(|hi| v <= hi);
            if !inside {
                return Err(ModelError::Hyperparameter {
                    name,
                    value: v.to_string(),
                    range,
                });
            }
            Ok(())
        }
        let h = self;
        check(
            "num_entity_vectors",
            h.num_entity_vectors,
            1,
            Some(250_000_000),
            "1–250,000,000",
        )?;
        check("vector_dim", h.vector_dim, 4, Some(4096), "4–4096")?;
        check(
            "batch_metrics_publish_interval",
            h.batch_metrics_publish_interval,
            1,
            None,
            "≥ 1",
        )?;
        check("epochs", h.epochs, 1, None, "≥ 1")?;
        check(
            "learning_rate",
            h.learning_rate,
            1e-6,
            Some(10.0),
            "1e-6–10.0",
        )?;
        check(
            "mini_batch_size",
            h.mini_batch_size,
            1,
            Some(500_000),
            "1–500,000",
        )?;
        check(
            "num_ip_encoder_layers",
            h.num_ip_encoder_layers,
            0,
            Some(100),
            "0–100",
        )?;
        check(
            "random_negative_sampling_rate",
            h.random_negative_sampling_rate,
            0,
            Some(500),
            "0–500",
        )?;
        check(
            "shuffled_negative_sampling_rate",
            h.shuffled_negative_sampling_rate,
            0,
            Some(500),
            "0–500",
        )?;
        check("weight_decay", h.weight_decay, 0.0, Some(10.0), "0.0–10.0")?;
        let total = h.random_negative_sampling_rate + h.shuffled_negative_sampling_rate;
        if !(1..=500).contains(&total) {
            return Err(ModelError::Hyperparameter {
                name: "random_negative_sampling_rate + shuffled_negative_sampling_rate",
                value: total.to_string(),
                range: "1–500",
            });
        }
        Ok(())
    }

    /// Sets one hyperparameter from its SageMaker name (dashes accepted for underscores) and a string
    /// value, as SageMaker passes them. Range checks are left to [`Hyperparameters::validate`].
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ModelError> {
        let key = name.trim().replace('-', "_");
        let value = value.trim();
        fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ModelError> {
            v.parse().map_err(|_| ModelError::HyperparameterSyntax {
                name: name.to_string(),
                value: v.to_string(),
            })
        }
        match key.as_str() {
            "num_entity_vectors" => self.num_entity_vectors = num(&key, value)?,
            "vector_dim" => self.vector_dim = num(&key, value)?,
            "batch_metrics_publish_interval" => {
                self.batch_metrics_publish_interval = num(&key, value)?
            }
            "epochs" => self.epochs = num(&key, value)?,
            "learning_rate" => self.learning_rate = num(&key, value)?,
            "mini_batch_size" => self.mini_batch_size = num(&key, value)?,
            "num_ip_encoder_layers" => self.num_ip_encoder_layers = num(&key, value)?,
            "random_negative_sampling_rate" => {
                self.random_negative_sampling_rate = num(&key, value)?
            }
            "shuffled_negative_sampling_rate" => {
                self.shuffled_negative_sampling_rate = num(&key, value)?
            }
            "weight_decay" => self.weight_decay = num(&key, value)?,
            _ => return Err(ModelError::UnknownHyperparameter(name.to_string())),
        }
        Ok(())
    }
}

/// ipsight's own IP-encoder table sizes (not SageMaker hyperparameters). They are part of the model:
/// saved in the file and needed to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpEncoderLayout {
    /// Hash buckets for /24 prefixes (2^24 exist; most never appear in one account's logs).
    pub prefix24_buckets: u32,
    /// Hash buckets for whole addresses.
    pub address_buckets: u32,
    /// Hash buckets for each IPv6 prefix level (/32, /48, /56, /64). 0 = IPv4 only: what files of
    /// format 1, which predate IPv6, are read as.
    #[serde(default)]
    pub ipv6_buckets: u32,
}

impl Default for IpEncoderLayout {
    /// 2^15 buckets each: with vector_dim 128 the model file is about 77 MB (dominated by the exact
    /// 65,536-row /16 table), which a Lambda reads in well under a second at cold start. IPv6 adds
    /// 2^13 rows to each of the four tables (17 MB at vector_dim 128): one organisation's IPv6
    /// callers come from far fewer prefixes than that.
    fn default() -> Self {
        Self {
            prefix24_buckets: 1 << 15,
            address_buckets: 1 << 15,
            ipv6_buckets: 1 << 13,
        }
    }
}

/// ipsight-specific training knobs: none of these exist in SageMaker.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Seeds initialisation, shuffling and negative sampling; with `threads = Some(1)` a run is
    /// bit-for-bit reproducible.
    pub seed: u64,
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
    /// IP-encoder table sizes.
    pub layout: IpEncoderLayout,
    /// At most this many training pairs are scored to build the calibration quantiles.
    pub calibration_sample: usize,
    /// The entity definition to record in the model (`None`: the default, `principal`).
    pub entity: Option<String>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            seed: 0x1b5_16e7,
            threads: None,
            layout: IpEncoderLayout::default(),
            calibration_sample: 2_000_000,
            entity: None,
        }
    }
}

impl IpEncoderLayout {
    /// What the row functions need.
    pub fn rows(&self) -> crate::hashing::RowLayout {
        crate::hashing::RowLayout {
            prefix24_buckets: self.prefix24_buckets,
            address_buckets: self.address_buckets,
            ipv6_buckets: self.ipv6_buckets,
        }
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        if self.ipv6_buckets > 1 << 24 {
            return Err(ModelError::Hyperparameter {
                name: "ipv6_buckets",
                value: self.ipv6_buckets.to_string(),
                range: "0–16,777,216",
            });
        }
        for (name, v) in [
            ("prefix24_buckets", self.prefix24_buckets),
            ("address_buckets", self.address_buckets),
        ] {
            if !(1..=1 << 24).contains(&v) {
                return Err(ModelError::Hyperparameter {
                    name,
                    value: v.to_string(),
                    range: "1–16,777,216",
                });
            }
        }
        Ok(())
    }
}
