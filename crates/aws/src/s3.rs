//! S3 behind the store and listing ports, through the AWS SDK.
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use ipsight_ports::{
    ObjectBody, ObjectInfo, ObjectLister, ObjectRef, ObjectStore, PutCondition, StoreError,
};

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

fn sdk_err<E>(obj: &ObjectRef, op: &'static str, e: aws_sdk_s3::error::SdkError<E>) -> StoreError
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

    async fn put_bytes_if(
        &self,
        obj: &ObjectRef,
        body: Bytes,
        content_type: &str,
        cond: PutCondition<'_>,
    ) -> Result<bool, StoreError> {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        let mut req = self
            .client
            .put_object()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .content_type(content_type)
            .body(ByteStream::from(body));
        req = match cond {
            PutCondition::Absent => req.if_none_match("*"),
            PutCondition::Matches(tag) => req.if_match(tag),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            // 412: the condition failed. 409: another conditional write to the key was in
            // flight (S3 asks to retry); either way another writer got there first or is about to.
            Err(e)
                if matches!(
                    e.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) || e
                    .raw_response()
                    .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_err(obj, "PutObject", e)),
        }
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
            .map_err(|e| sdk_err(obj, "HeadObject", e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn s3_store_against_a_real_s3_server() {
        let s3 = ipsight_testkit::S3Server::start().await;
        s3.create_bucket("store-test").await;
        ipsight_ports::conformance::round_trip(&S3Store::new(s3.client()), "store-test").await;
        // moto honours If-None-Match and If-Match on PutObject (412 PreconditionFailed).
        let cond = s3.unique_bucket("store-cond");
        s3.create_bucket(&cond).await;
        ipsight_ports::conformance::conditional_writes(&S3Store::new(s3.client()), &cond).await;
    }
}
