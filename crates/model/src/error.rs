use thiserror::Error;

/// Errors of training, validation and the model file.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("hyperparameter {name} = {value} is out of range (allowed: {range})")]
    Hyperparameter {
        name: &'static str,
        value: String,
        range: &'static str,
    },
    #[error("hyperparameter {name}: {value:?} is not a valid number")]
    HyperparameterSyntax { name: String, value: String },
    #[error("unknown hyperparameter {0:?} (IP Insights has: num_entity_vectors, vector_dim, batch_metrics_publish_interval, epochs, learning_rate, mini_batch_size, num_ip_encoder_layers, random_negative_sampling_rate, shuffled_negative_sampling_rate, weight_decay)")]
    UnknownHyperparameter(String),
    #[error("not enough memory for the model's tables and optimiser state ({bytes} bytes for one table): lower num_entity_vectors, vector_dim or the bucket counts")]
    OutOfMemory { bytes: u64 },
    #[error("no training pairs")]
    NoTrainingData,
    #[error("could not build the thread pool: {0}")]
    ThreadPool(String),
    #[error("not an ipsight model file (bad magic bytes)")]
    BadMagic,
    #[error(
        "model file format version {found} is not supported (this build reads versions 1 to {supported})"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("model file is truncated (ended while reading {0})")]
    Truncated(&'static str),
    #[error("model file is corrupt: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("model file is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot score the IPv6 address {ip}: {why}")]
    Ipv4Only { ip: std::net::Ipv6Addr, why: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
