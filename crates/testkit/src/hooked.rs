//! A store that does something between a read and the next write: how tests make a race certain
//! (two invocations that both read before either writes, a second run writing meanwhile) instead
//! of likely. Everything else goes to the real store underneath.
use std::path::Path;

use bytes::Bytes;
use ipsight_ports::{
    ObjectBody, ObjectInfo, ObjectLister, ObjectRef, ObjectStore, PutCondition, StoreError,
};

/// What runs after each GET, once the real store answered (and before the caller sees it).
pub trait AfterGet: Send + Sync {
    fn after_get(&self, obj: &ObjectRef) -> impl std::future::Future<Output = ()> + Send;
}

/// `inner`, with `hook` after every GET.
pub struct HookedStore<'a, S, H> {
    pub inner: &'a S,
    pub hook: H,
}

impl<S: ObjectStore, H: AfterGet> ObjectStore for HookedStore<'_, S, H> {
    async fn get(&self, obj: &ObjectRef) -> Result<ObjectBody, StoreError> {
        let got = self.inner.get(obj).await;
        self.hook.after_get(obj).await;
        got
    }
    async fn put_file(
        &self,
        obj: &ObjectRef,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.inner.put_file(obj, path, content_type).await
    }
    async fn put_bytes(
        &self,
        obj: &ObjectRef,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.inner.put_bytes(obj, body, content_type).await
    }
    async fn copy(&self, from: &ObjectRef, to: &ObjectRef) -> Result<(), StoreError> {
        self.inner.copy(from, to).await
    }
    async fn put_bytes_if(
        &self,
        obj: &ObjectRef,
        body: Bytes,
        content_type: &str,
        cond: PutCondition<'_>,
    ) -> Result<bool, StoreError> {
        self.inner.put_bytes_if(obj, body, content_type, cond).await
    }
}

impl<S: ObjectLister, H: AfterGet> ObjectLister for HookedStore<'_, S, H> {
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(bucket, prefix).await
    }
    async fn list_info(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list_info(bucket, prefix).await
    }
    async fn head(&self, obj: &ObjectRef) -> Result<ObjectInfo, StoreError> {
        self.inner.head(obj).await
    }
}
