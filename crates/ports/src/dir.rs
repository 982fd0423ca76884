//! A local directory as an object store and lister: the CLI's store, and the tests' where S3 is
//! not the point.
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::list::{ObjectInfo, ObjectLister};
use crate::store::{ObjectBody, ObjectRef, ObjectStore, PutCondition, StoreError};

/// A local directory as an object store: `<root>/<bucket>/<key>`. Writes go to a temporary file in
/// the same directory and are renamed into place, so readers never see half an object.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn path(&self, obj: &ObjectRef) -> Result<PathBuf, StoreError> {
        // Keys are attacker-influenced: refuse anything that would escape the root.
        let bad = |why: &str| StoreError::Other {
            obj: obj.clone(),
            op: "path",
            msg: why.to_owned(),
        };
        if obj.bucket.is_empty() || obj.bucket.contains(['/', '\\']) || obj.bucket.starts_with('.')
        {
            return Err(bad("invalid bucket name"));
        }
        let mut p = self.root.join(&obj.bucket);
        for part in obj.key.split('/') {
            if part == ".." || part.contains('\0') {
                return Err(bad("key escapes the store root"));
            }
            if !part.is_empty() && part != "." {
                p.push(part);
            }
        }
        Ok(p)
    }

    async fn put_with(
        &self,
        obj: &ObjectRef,
        write: impl AsyncFnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<(), StoreError> {
        let dest = self.path(obj)?;
        let io = |e: std::io::Error| StoreError::Other {
            obj: obj.clone(),
            op: "put",
            msg: e.to_string(),
        };
        let dir = dest
            .parent()
            .ok_or_else(|| io(std::io::Error::other("no parent")))?;
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
        let tmp = tempfile::Builder::new()
            .prefix(".ipsight-tmp")
            .tempfile_in(dir)
            .map_err(io)?;
        write(tmp.path()).await.map_err(io)?;
        tmp.persist(&dest).map_err(|e| io(e.error))?;
        Ok(())
    }
}

impl ObjectStore for DirStore {
    async fn get(&self, obj: &ObjectRef) -> Result<ObjectBody, StoreError> {
        let path = self.path(obj)?;
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StoreError::NotFound(obj.clone()),
                _ => StoreError::Other {
                    obj: obj.clone(),
                    op: "open",
                    msg: e.to_string(),
                },
            })?;
        let meta = f.metadata().await.ok();
        Ok(ObjectBody {
            reader: Box::pin(f),
            size: meta.as_ref().map(|m| m.len()),
            version_tag: meta.as_ref().map(file_version_tag),
        })
    }

    async fn put_file(
        &self,
        obj: &ObjectRef,
        path: &Path,
        _content_type: &str,
    ) -> Result<(), StoreError> {
        let src = path.to_owned();
        self.put_with(obj, async move |tmp: &Path| {
            tokio::fs::copy(&src, tmp).await.map(|_| ())
        })
        .await
    }

    async fn put_bytes(
        &self,
        obj: &ObjectRef,
        body: Bytes,
        _content_type: &str,
    ) -> Result<(), StoreError> {
        self.put_with(obj, async move |tmp: &Path| {
            tokio::fs::write(tmp, &body).await
        })
        .await
    }

    /// `Absent` is atomic (the finished temporary file is hard-linked to the key, which fails if
    /// the key exists). `Matches` compares the version and renames: atomic within one process
    /// only (the CLI's case), not between processes sharing the directory.
    async fn put_bytes_if(
        &self,
        obj: &ObjectRef,
        body: Bytes,
        _content_type: &str,
        cond: PutCondition<'_>,
    ) -> Result<bool, StoreError> {
        let dest = self.path(obj)?;
        let io = |e: std::io::Error| StoreError::Other {
            obj: obj.clone(),
            op: "put",
            msg: e.to_string(),
        };
        match cond {
            PutCondition::Matches(tag) => {
                let current = tokio::fs::metadata(&dest).await.ok();
                if current.as_ref().map(file_version_tag).as_deref() != Some(tag) {
                    return Ok(false);
                }
                self.put_bytes(obj, body, "").await?;
                Ok(true)
            }
            PutCondition::Absent => {
                let dir = dest
                    .parent()
                    .ok_or_else(|| io(std::io::Error::other("no parent")))?;
                tokio::fs::create_dir_all(dir).await.map_err(io)?;
                let tmp = tempfile::Builder::new()
                    .prefix(".ipsight-tmp")
                    .tempfile_in(dir)
                    .map_err(io)?;
                tokio::fs::write(tmp.path(), &body).await.map_err(io)?;
                match tokio::fs::hard_link(tmp.path(), &dest).await {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(io(e)),
                }
            }
        }
    }

    async fn copy(&self, from: &ObjectRef, to: &ObjectRef) -> Result<(), StoreError> {
        let src = self.path(from)?;
        if !tokio::fs::try_exists(&src).await.unwrap_or(false) {
            return Err(StoreError::NotFound(from.clone()));
        }
        self.put_with(to, async move |tmp: &Path| {
            tokio::fs::copy(&src, tmp).await.map(|_| ())
        })
        .await
    }
}

fn mtime(m: &std::fs::Metadata) -> std::time::Duration {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
}

/// A file's stand-in for an ETag: size and modification time in nanoseconds.
fn file_version_tag(m: &std::fs::Metadata) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dir_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        crate::conformance::round_trip(&store, "bkt").await;
        crate::conformance::conditional_writes(&store, "bkt").await;
        assert!(store
            .path(&ObjectRef::new("bkt", "../../etc/passwd"))
            .is_err());
    }
}
