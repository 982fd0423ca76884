//! What every [`ObjectStore`] adapter must do, as one check the adapters' tests share (the directory
//! store here, S3 in `ipsight-aws`). Test support: compiled for tests and the `test-support` feature.
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use crate::store::{ObjectRef, ObjectStore, PutCondition, StoreError};

/// Put, read back, overwrite from a file, and a missing key, in `bucket` (which must exist).
pub async fn round_trip(store: &impl ObjectStore, bucket: &str) {
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

/// Conditional writes: of two writers of a missing key exactly the first wins and the second
/// leaves it untouched; a write conditioned on a version read wins once, and a second writer
/// holding the same (now stale) version loses.
pub async fn conditional_writes(store: &impl ObjectStore, bucket: &str) {
    let obj = ObjectRef::new(bucket, "state/conditional.json");
    let first = store
        .put_bytes_if(
            &obj,
            Bytes::from_static(b"first"),
            "application/json",
            PutCondition::Absent,
        )
        .await
        .unwrap();
    let second = store
        .put_bytes_if(
            &obj,
            Bytes::from_static(b"second"),
            "application/json",
            PutCondition::Absent,
        )
        .await
        .unwrap();
    assert_eq!((first, second), (true, false));
    let mut body = store.get(&obj).await.unwrap();
    let tag = body.version_tag.clone().expect("a version tag");
    let mut s = String::new();
    body.reader.read_to_string(&mut s).await.unwrap();
    assert_eq!(s, "first");
    // Some stores tag versions by modification time: let the clock move.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let won = store
        .put_bytes_if(
            &obj,
            Bytes::from_static(b"third"),
            "application/json",
            PutCondition::Matches(&tag),
        )
        .await
        .unwrap();
    let lost = store
        .put_bytes_if(
            &obj,
            Bytes::from_static(b"fourth"),
            "application/json",
            PutCondition::Matches(&tag),
        )
        .await
        .unwrap();
    assert_eq!((won, lost), (true, false));
    let mut s = String::new();
    store
        .get(&obj)
        .await
        .unwrap()
        .reader
        .read_to_string(&mut s)
        .await
        .unwrap();
    assert_eq!(s, "third");
}
