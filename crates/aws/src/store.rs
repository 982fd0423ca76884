use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use tokio::io::AsyncRead;

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
    /// The version of the object this body is (S3: its ETag), as [`crate::ObjectInfo::version_tag`].
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
}

/// S3 through the AWS SDK. Endpoint overrides (`AWS_ENDPOINT_URL_S3`) come from the SDK config.
#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }

    /// Build from a loaded SDK config. Path-style addressing when an endpoint override is set, since
    /// local S3 servers (moto, s3s) do not serve virtual-hosted buckets.
    pub fn from_conf(conf: &aws_config::SdkConfig) -> Self {
        let mut b = aws_sdk_s3::config::Builder::from(conf);
        if conf.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() {
            b = b.force_path_style(true);
        }
        Self::new(aws_sdk_s3::Client::from_conf(b.build()))
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }
}

pub(crate) fn sdk_err<E>(
    obj: &ObjectRef,
    op: &'static str,
    e: aws_sdk_s3::error::SdkError<E>,
) -> StoreError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let code = e.code().map(str::to_owned);
    match code.as_deref() {
        Some("NoSuchKey") | Some("NotFound") => StoreError::NotFound(obj.clone()),
        Some("AccessDenied") => StoreError::AccessDenied(obj.clone()),
        _ => {
            let msg = match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_owned(),
                _ => aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            };
            StoreError::Other {
                obj: obj.clone(),
                op,
                msg,
            }
        }
    }
}

impl ObjectStore for S3Store {
    async fn get(&self, obj: &ObjectRef) -> Result<ObjectBody, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .send()
            .await
            .map_err(|e| sdk_err(obj, "GetObject", e))?;
        let size = out.content_length().and_then(|n| u64::try_from(n).ok());
        let version_tag = out.e_tag().map(str::to_owned);
        Ok(ObjectBody {
            reader: Box::pin(out.body.into_async_read()),
            size,
            version_tag,
        })
    }

    async fn put_file(
        &self,
        obj: &ObjectRef,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StoreError> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| StoreError::Other {
                obj: obj.clone(),
                op: "PutObject",
                msg: format!("reading {}: {e}", path.display()),
            })?;
        self.client
            .put_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| sdk_err(obj, "PutObject", e))?;
        Ok(())
    }

    async fn put_bytes(
        &self,
        obj: &ObjectRef,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_err(obj, "PutObject", e))?;
        Ok(())
    }

    async fn copy(&self, from: &ObjectRef, to: &ObjectRef) -> Result<(), StoreError> {
        // CopySource is `bucket/key` with the key URL-encoded (it travels in a header).
        let source = format!(
            "{}/{}",
            from.bucket,
            percent_encoding::utf8_percent_encode(&from.key, COPY_SOURCE)
        );
        self.client
            .copy_object()
            .bucket(&to.bucket)
            .key(&to.key)
            .copy_source(source)
            .send()
            .await
            .map_err(|e| sdk_err(from, "CopyObject", e))?;
        Ok(())
    }
}

/// Everything but unreserved characters and `/` is escaped in a CopySource key.
const COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

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
            version_tag: meta.as_ref().map(crate::list::file_version_tag),
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn round_trip(store: &impl ObjectStore, bucket: &str) {
        let obj = ObjectRef::new(bucket, "dir/a b+c=d.csv");
        store
            .put_bytes(&obj, Bytes::from_static(b"x,1.2.3.4\n"), "text/csv")
            .await
            .unwrap();
        let mut body = store.get(&obj).await.unwrap();
        let mut s = String::new();
        body.reader.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "x,1.2.3.4\n");
        assert_eq!(body.size, Some(10));
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), b"y,5.6.7.8\n").unwrap();
        store.put_file(&obj, tmp.path(), "text/csv").await.unwrap();
        let mut s = String::new();
        store
            .get(&obj)
            .await
            .unwrap()
            .reader
            .read_to_string(&mut s)
            .await
            .unwrap();
        assert_eq!(s, "y,5.6.7.8\n");
        let missing = ObjectRef::new(bucket, "nope");
        assert!(matches!(
            store.get(&missing).await,
            Err(StoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn dir_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        round_trip(&store, "bkt").await;
        assert!(store
            .path(&ObjectRef::new("bkt", "../../etc/passwd"))
            .is_err());
    }

    #[tokio::test]
    async fn s3_store_against_a_real_s3_server() {
        let s3 = ipsight_testkit::S3Server::start().await;
        s3.create_bucket("store-test").await;
        round_trip(&S3Store::new(s3.client()), "store-test").await;
    }
}
