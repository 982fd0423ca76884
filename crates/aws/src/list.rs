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
}

impl ObjectLister for S3Store {
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
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
                    keys.push(k.to_owned());
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}

impl ObjectLister for DirStore {
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
