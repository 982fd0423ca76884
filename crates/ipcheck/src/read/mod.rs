//! One reader per object kind, each turning an object's bytes into [`Collected`] pairs.
//!
//! Parsing is CPU-bound and synchronous, so every reader runs on a blocking thread over a bridged
//! stream; Parquet alone is downloaded first (its footer is at the end).
use std::io::BufReader;

use ipsight_ports::{ObjectRef, ObjectStore};

use crate::pairs::{Collected, TooManyPairs};
use crate::{Config, Kind};

mod cloudtrail;
mod finding;
mod ocsf_json;
mod parquet;
mod tuples;

/// What every reader gets besides the bytes.
#[derive(Clone)]
pub(crate) struct ReadContext {
    pub(crate) mapping: ipsight_formats::ocsf::OcsfMapping,
    /// `MAX_UNCOMPRESSED_BYTES`.
    pub(crate) cap: u64,
    /// `MAX_DISTINCT_PAIRS`.
    pub(crate) max: usize,
    pub(crate) entity: ipsight_formats::EntityKind,
}

impl ReadContext {
    pub(crate) fn too_many(&self, _: TooManyPairs) -> String {
        format!(
            "more than MAX_DISTINCT_PAIRS={} distinct pairs in one object",
            self.max
        )
    }
}

/// Read an object's pairs according to its kind.
pub(crate) async fn collect(
    cfg: &Config,
    store: &impl ObjectStore,
    input: &ObjectRef,
    kind: Kind,
) -> Result<Collected, String> {
    let body = store.get(input).await.map_err(|e| e.to_string())?;
    let ctx = ReadContext {
        mapping: cfg.mapping.clone(),
        cap: cfg.limits.max_uncompressed_bytes,
        max: cfg.limits.max_distinct_pairs,
        entity: cfg.entity,
    };
    if kind == Kind::OcsfParquet {
        return parquet::read(body.reader, cfg.limits.max_object_bytes, ctx).await;
    }
    let reader = tokio_util::io::SyncIoBridge::new(body.reader);
    blocking(move || {
        let input = BufReader::with_capacity(256 << 10, reader);
        match kind {
            Kind::OcsfParquet => unreachable!("handled above"),
            Kind::OcsfJson => ocsf_json::read(input, &ctx),
            Kind::CloudTrail => cloudtrail::read(input, &ctx),
            Kind::GuardDutyRecord => finding::read(input, &ctx),
            Kind::TupleCsv => tuples::read(input, &ctx),
        }
    })
    .await
}

/// Parsing is CPU-bound and synchronous: keep it off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("parser task failed: {e}"))?
}
