//! Listing objects under a prefix: what fusion and the label readers need beyond the [`ObjectStore`]
//! port (the extractors and scorers only ever read the object they are told about).
use std::future::Future;

use crate::{DirStore, ObjectRef, S3Store, StoreError};

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

fn s3_time_ms(t: Option<&aws_smithy_types::DateTime>) -> i64 {
    t.and_then(|t| t.to_millis().ok()).unwrap_or(0)
}

impl ObjectLister for S3Store {
    async fn list_info(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::Other {
                obj: ObjectRef::new(bucket, prefix),
                op: "ListObjectsV2",
                msg: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            })?;
            for o in page.contents() {
                if let Some(k) = o.key() {
                    out.push(ObjectInfo {
                        key: k.to_owned(),
                        size: o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                        last_modified_ms: s3_time_ms(o.last_modified()),
                        version_tag: o.e_tag().unwrap_or_default().to_owned(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn head(&self, obj: &ObjectRef) -> Result<ObjectInfo, StoreError> {
        let out = self
            .client()
            .head_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .send()
            .await
            .map_err(|e| crate::store::sdk_err(obj, "HeadObject", e))?;
        Ok(ObjectInfo {
            key: obj.key.clone(),
            size: out
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            last_modified_ms: s3_time_ms(out.last_modified()),
            version_tag: out.e_tag().unwrap_or_default().to_owned(),
        })
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let infos = self.list_info(bucket, prefix).await?;
        Ok(infos.into_iter().map(|i| i.key).collect())
    }
}

fn mtime(m: &std::fs::Metadata) -> std::time::Duration {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
}

/// A file's stand-in for an ETag: size and modification time in nanoseconds.
pub(crate) fn file_version_tag(m: &std::fs::Metadata) -> String {
    format!("{}-{}", m.len(), mtime(m).as_nanos())
}

fn file_info(key: String, m: &std::fs::Metadata) -> ObjectInfo {
    ObjectInfo {
        key,
        size: m.len(),
        last_modified_ms: i64::try_from(mtime(m).as_millis()).unwrap_or(i64::MAX),
        version_tag: file_version_tag(m),
    }
}

impl ObjectLister for DirStore {
    async fn list_info(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let keys = self.list(bucket, prefix).await?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let obj = ObjectRef::new(bucket, k);
            match self.head(&obj).await {
                Ok(i) => out.push(i),
                // Listed a moment ago; a concurrent delete is not an error.
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn head(&self, obj: &ObjectRef) -> Result<ObjectInfo, StoreError> {
        let path = self.path(obj)?;
        let m = tokio::fs::metadata(&path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StoreError::NotFound(obj.clone()),
                _ => StoreError::Other {
                    obj: obj.clone(),
                    op: "stat",
                    msg: e.to_string(),
                },
            })?;
        if !m.is_file() {
            return Err(StoreError::NotFound(obj.clone()));
        }
        Ok(file_info(obj.key.clone(), &m))
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let root = self.path(&ObjectRef::new(bucket, ""))?;
        // Walk only the deepest directory the prefix names, then filter by the full prefix.
        let dir_part = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let start = self.path(&ObjectRef::new(bucket, dir_part))?;
        let bucket = bucket.to_owned();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let err = |e: std::io::Error| StoreError::Other {
                obj: ObjectRef::new(&bucket, &prefix),
                op: "list",
                msg: e.to_string(),
            };
            let mut keys = Vec::new();
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(err(e)),
                };
                for e in entries {
                    let e = e.map_err(err)?;
                    let ft = e.file_type().map_err(err)?;
                    let path = e.path();
                    if ft.is_dir() {
                        stack.push(path);
                    } else if ft.is_file() {
                        // DirStore's in-flight temporary files are not objects.
                        if e.file_name().to_string_lossy().starts_with(".ipsight-tmp") {
                            continue;
                        }
                        let Ok(rel) = path.strip_prefix(&root) else {
                            continue;
                        };
                        let key = rel
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy())
                            .collect::<Vec<_>>()
                            .join("/");
                        if key.starts_with(&prefix) {
                            keys.push(key);
                        }
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
        .map_err(|e| StoreError::Other {
            obj: ObjectRef::new("", ""),
            op: "list",
            msg: e.to_string(),
        })?
    }
}
