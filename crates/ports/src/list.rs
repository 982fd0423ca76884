//! Listing objects under a prefix: what fusion and the label readers need beyond the [`ObjectStore`]
//! port (the extractors and scorers only ever read the object they are told about).
use std::future::Future;

use crate::store::{ObjectRef, StoreError};

pub trait ObjectLister: Send + Sync {
    /// Every key in `bucket` starting with `prefix`, sorted.
    fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Every object under `prefix` with its size and age, sorted by key: retraining picks its
    /// held-back set by age and bounds its memory by size before reading anything.
    fn list_info(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ObjectInfo>, StoreError>> + Send;

    /// Size, age and version tag of one object: how a long-lived container notices that the model
    /// it serves was replaced, without downloading it.
    fn head(&self, obj: &ObjectRef) -> impl Future<Output = Result<ObjectInfo, StoreError>> + Send;
}

/// What a listing or a HEAD says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// Milliseconds since the epoch (S3: `LastModified`; a directory: the file's mtime).
    pub last_modified_ms: i64,
    /// Changes whenever the object is rewritten (S3: the ETag; a directory: size + mtime in ns).
    pub version_tag: String,
}
