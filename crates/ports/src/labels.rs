//! Where analyst labels live, and reading them into a [`LabelSet`] (fuse and ipcheck alike).
//!
//! Two shapes, both append-only from the writer's side:
//! * a prefix (`LABELS_PREFIX`, or `LABELS_URI=s3://bucket/labels/`): one object per decision, as
//!   `ipsight label add --labels s3://bucket/labels/` writes them: no read-modify-write, so two
//!   analysts labelling at the same moment cannot lose a decision;
//! * a single JSON lines object (`LABELS_URI=s3://bucket/labels/labels.jsonl`), for teams that keep
//!   the file in git and upload it whole. A missing object is an empty set (no decision yet).
use ipsight_core::labels::{Label, LabelSet};
use ipsight_formats::labels::{read_labels, to_line, LabelError};
use tokio::io::AsyncReadExt;

use crate::list::ObjectLister;
use crate::store::{ObjectRef, ObjectStore, StoreError};

/// Labels are a few hundred bytes per decision; this bounds a runaway object, not real use.
const MAX_LABEL_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelSource {
    Object(ObjectRef),
    Prefix { bucket: String, prefix: String },
}

#[derive(Debug, thiserror::Error)]
pub enum LabelLoadError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{obj}: {msg}")]
    Read { obj: ObjectRef, msg: String },
    #[error(transparent)]
    Label(#[from] LabelError),
}

impl LabelSource {
    /// From `LABELS_URI` (`s3://bucket/key`, or `s3://bucket/prefix/` ending in `/`) or
    /// `LABELS_PREFIX` (a prefix in `data_bucket`); `LABELS_URI` wins. Neither: `None`.
    pub fn from_vars(
        uri: Option<&str>,
        prefix: Option<&str>,
        data_bucket: &str,
    ) -> Result<Option<Self>, LabelLoadError> {
        let uri = uri.map(str::trim).filter(|s| !s.is_empty());
        let prefix = prefix.map(str::trim).filter(|s| !s.is_empty());
        if let Some(u) = uri {
            let (bucket, key) = u
                .strip_prefix("s3://")
                .and_then(|r| r.split_once('/'))
                .filter(|(b, _)| !b.is_empty())
                .ok_or_else(|| {
                    LabelLoadError::Config(format!(
                        "LABELS_URI={u:?}: expected s3://bucket/key or s3://bucket/prefix/"
                    ))
                })?;
            return Ok(Some(if key.is_empty() || key.ends_with('/') {
                Self::Prefix {
                    bucket: bucket.into(),
                    prefix: key.into(),
                }
            } else {
                Self::Object(ObjectRef::new(bucket, key))
            }));
        }
        Ok(prefix.map(|p| Self::Prefix {
            bucket: data_bucket.into(),
            prefix: p.into(),
        }))
    }

    /// `s3://bucket/key` or `s3://bucket/prefix`, for logs and messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Object(o) => o.to_string(),
            Self::Prefix { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// The S3 key of one decision under `prefix`: dated, then a hash of the decision itself, so the same
/// decision written twice (a retry) lands on the same key, and two different ones never collide.
pub fn object_key(prefix: &str, label: &Label) -> String {
    let mut p = prefix.to_owned();
    if !p.is_empty() && !p.ends_with('/') {
        p.push('/');
    }
    let line = to_line(label);
    let mut h: u64 = 0xcbf29ce484222325;
    for b in line.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    let compact: String = label
        .when
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(15)
        .collect();
    let day = label.when.get(..10).unwrap_or("undated").replace('-', "/");
    format!("{p}{day}/{compact}-{h:016x}.jsonl")
}

async fn read_object(
    store: &impl ObjectStore,
    obj: &ObjectRef,
    missing_ok: bool,
) -> Result<Vec<Label>, LabelLoadError> {
    let body = match store.get(obj).await {
        Ok(b) => b,
        Err(StoreError::NotFound(_)) if missing_ok => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut buf = Vec::new();
    let mut r = body.reader.take(MAX_LABEL_BYTES + 1);
    r.read_to_end(&mut buf)
        .await
        .map_err(|e| LabelLoadError::Read {
            obj: obj.clone(),
            msg: e.to_string(),
        })?;
    if buf.len() as u64 > MAX_LABEL_BYTES {
        return Err(LabelLoadError::Read {
            obj: obj.clone(),
            msg: format!("larger than {MAX_LABEL_BYTES} bytes"),
        });
    }
    Ok(read_labels(buf.as_slice(), &obj.to_string())?)
}

/// Every decision the source holds. Objects under a prefix are read in key order (keys are dated,
/// so roughly chronological; [`LabelSet`] orders by `when` anyway). A malformed decision fails the
/// load: silently ignoring an analyst's decision would be worse than a retried invocation.
pub async fn load_labels(
    store: &(impl ObjectStore + ObjectLister),
    source: &LabelSource,
) -> Result<LabelSet, LabelLoadError> {
    let mut set = LabelSet::default();
    match source {
        LabelSource::Object(o) => {
            for l in read_object(store, o, true).await? {
                set.insert(l);
            }
        }
        LabelSource::Prefix { bucket, prefix } => {
            for k in store.list(bucket, prefix).await? {
                if !(k.ends_with(".jsonl") || k.ends_with(".json")) {
                    continue;
                }
                // Listed a moment ago; a concurrent delete is not an error.
                for l in read_object(store, &ObjectRef::new(bucket, &k), true).await? {
                    set.insert(l);
                }
            }
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipsight_core::labels::Verdict;

    #[test]
    fn sources() {
        assert_eq!(LabelSource::from_vars(None, None, "d").unwrap(), None);
        assert_eq!(
            LabelSource::from_vars(None, Some("labels/"), "d").unwrap(),
            Some(LabelSource::Prefix {
                bucket: "d".into(),
                prefix: "labels/".into()
            })
        );
        assert_eq!(
            LabelSource::from_vars(Some("s3://cfg/l/labels.jsonl"), Some("labels/"), "d").unwrap(),
            Some(LabelSource::Object(ObjectRef::new("cfg", "l/labels.jsonl")))
        );
        assert_eq!(
            LabelSource::from_vars(Some("s3://cfg/l/"), None, "d").unwrap(),
            Some(LabelSource::Prefix {
                bucket: "cfg".into(),
                prefix: "l/".into()
            })
        );
        assert!(LabelSource::from_vars(Some("cfg/l"), None, "d").is_err());
    }

    #[tokio::test]
    async fn loads_a_prefix_and_a_missing_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::dir::DirStore::new(dir.path());
        let mk = |ip: &str, v: Verdict, when: &str| Label {
            entity: "u".into(),
            ip: Some(ip.parse().unwrap()),
            cidr: None,
            verdict: v,
            who: "a".into(),
            when: when.into(),
            why: "w".into(),
            expires: None,
        };
        for l in [
            mk("10.0.0.1", Verdict::FalsePositive, "2026-01-01T00:00:00Z"),
            mk("10.0.0.1", Verdict::TruePositive, "2026-01-02T00:00:00Z"),
            mk("10.0.0.2", Verdict::FalsePositive, "2026-01-02T00:00:00Z"),
        ] {
            let obj = ObjectRef::new("data", object_key("labels/", &l));
            store
                .put_bytes(
                    &obj,
                    format!("{}\n", to_line(&l)).into(),
                    "application/x-ndjson",
                )
                .await
                .unwrap();
        }
        let src = LabelSource::from_vars(None, Some("labels/"), "data")
            .unwrap()
            .unwrap();
        let set = load_labels(&store, &src).await.unwrap();
        assert_eq!(set.decisions, 3);
        assert_eq!(
            set.lookup("u", "10.0.0.1".parse().unwrap(), 0)
                .map(|l| l.verdict),
            Some(Verdict::TruePositive)
        );
        let none = LabelSource::Object(ObjectRef::new("data", "nope/labels.jsonl"));
        assert!(load_labels(&store, &none).await.unwrap().is_empty());
    }

    #[test]
    fn keys_are_dated_and_stable() {
        let l = Label {
            entity: "u".into(),
            ip: Some("10.1.2.3".parse().unwrap()),
            cidr: None,
            verdict: Verdict::TruePositive,
            who: "alice".into(),
            when: "2026-01-03T04:05:06Z".into(),
            why: "test".into(),
            expires: None,
        };
        let k = object_key("labels", &l);
        assert!(k.starts_with("labels/2026/01/03/20260103T040506-"), "{k}");
        assert!(k.ends_with(".jsonl"));
        assert_eq!(k, object_key("labels/", &l));
        let mut other = l.clone();
        other.why = "different".into();
        assert_ne!(k, object_key("labels/", &other));
    }
}
