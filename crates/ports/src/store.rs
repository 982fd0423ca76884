use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

/// `bucket` + `key` (decoded, as S3 stores it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

impl ObjectRef {
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// An object's body as a stream, plus its size when the store knows it.
pub struct ObjectBody {
    pub reader: Pin<Box<dyn AsyncRead + Send>>,
    pub size: Option<u64>,
    /// The version of the object this body is (S3: its ETag), as [`crate::list::ObjectInfo::version_tag`].
    pub version_tag: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}: no such object")]
    NotFound(ObjectRef),
    #[error("{0}: access denied (S3 also answers so for a missing object when the caller may not list its bucket)")]
    AccessDenied(ObjectRef),
    #[error("{obj}: {op} failed: {msg}")]
    Other {
        obj: ObjectRef,
        op: &'static str,
        msg: String,
    },
}

/// The object-store port.
pub trait ObjectStore: Send + Sync {
    fn get(&self, obj: &ObjectRef) -> impl Future<Output = Result<ObjectBody, StoreError>> + Send;
    /// Upload a finished local file; the object appears whole or not at all.
    fn put_file(
        &self,
        obj: &ObjectRef,
        path: &Path,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn put_bytes(
        &self,
        obj: &ObjectRef,
        body: Bytes,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Server-side copy; `to` appears whole or not at all.
    fn copy(
        &self,
        from: &ObjectRef,
        to: &ObjectRef,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Write only if `cond` holds when the object is written (S3 conditional writes): exactly
    /// one of several concurrent writers wins. `Ok(false)`: the condition did not hold (another
    /// writer was first), nothing written.
    fn put_bytes_if(
        &self,
        obj: &ObjectRef,
        body: Bytes,
        content_type: &str,
        cond: PutCondition<'_>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The condition of [`ObjectStore::put_bytes_if`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutCondition<'a> {
    /// No object has the key (`If-None-Match: *`).
    Absent,
    /// The object is still the version read (`If-Match: <ETag>`, [`ObjectBody::version_tag`]).
    Matches(&'a str),
}

/// Read a whole small object, refusing one larger than `limit`.
pub async fn read_small(
    store: &impl ObjectStore,
    obj: &ObjectRef,
    limit: u64,
) -> Result<Vec<u8>, StoreError> {
    Ok(read_small_tagged(store, obj, limit).await?.0)
}

/// [`read_small`] and the version read ([`ObjectBody::version_tag`]), for a later write that must
/// not overwrite someone else's ([`PutCondition::Matches`]).
pub async fn read_small_tagged(
    store: &impl ObjectStore,
    obj: &ObjectRef,
    limit: u64,
) -> Result<(Vec<u8>, Option<String>), StoreError> {
    let mut body = store.get(obj).await?;
    let mut buf = Vec::new();
    (&mut body.reader)
        .take(limit + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| StoreError::Other {
            obj: obj.clone(),
            op: "GetObject",
            msg: e.to_string(),
        })?;
    if buf.len() as u64 > limit {
        return Err(StoreError::Other {
            obj: obj.clone(),
            op: "GetObject",
            msg: format!("larger than {limit} bytes"),
        });
    }
    Ok((buf, body.version_tag))
}
