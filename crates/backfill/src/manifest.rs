//! The S3 Batch Operations CSV manifest (`S3BatchOperations_CSV_20180820`, fields `Bucket,Key`):
//! one `bucket,key` line per object, keys URL-encoded as the manifest format requires.
//!
//! Lines go to a temporary file as the listing runs: 90 days of an organisation trail is millions
//! of keys, which need not be held in memory.
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Write};

use ipsight_core::keys::{cloudtrail_key, cloudtrail_key_day};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::listing::Window;
use crate::{BackfillError, StableHash};

/// Everything but the unreserved characters and `/` is percent-encoded: `+` becomes `%2B` and a space
/// `%20`, so the key survives both plain percent-decoding and the form decoding (`+` is a space) that
/// S3 event keys need and the preparer applies to every key it is given.
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// A key as a manifest line holds it.
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY).to_string()
}

/// The objects chosen for a backfill, with the counts a user checks before paying for a job.
pub struct Selection {
    bucket: String,
    file: BufWriter<tempfile::NamedTempFile>,
    hash: StableHash,
    /// Objects in the manifest.
    pub objects: u64,
    /// Their total (compressed) size.
    pub bytes: u64,
    /// The days that have at least one object.
    pub days: BTreeSet<String>,
    /// Keys looked at and left out, by reason: the preparer's (`digest`, `insight`,
    /// `folder_or_empty`, `not_cloudtrail_log`), `no_date`, `outside_window`, and from an inventory
    /// `other_bucket`, `outside_prefix`, `delete_marker_or_old_version`.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Prefixes not listed at all, by reason (`digest`, `insight`: their whole tree is skipped;
    /// `other_service`: another service's logs beside CloudTrail under an account; `too_deep`: more
    /// than six folders below `--prefix` without reaching a `CloudTrail/<region>/` folder).
    pub skipped_prefixes: BTreeMap<&'static str, u64>,
    pub window: Window,
}

impl Selection {
    pub fn new(bucket: &str, window: Window) -> Result<Self, BackfillError> {
        Ok(Self {
            bucket: bucket.to_owned(),
            file: BufWriter::with_capacity(256 << 10, tempfile::NamedTempFile::new()?),
            hash: StableHash::default(),
            objects: 0,
            bytes: 0,
            days: BTreeSet::new(),
            skipped: BTreeMap::new(),
            skipped_prefixes: BTreeMap::new(),
            window,
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    pub fn skip_prefix(&mut self, reason: &'static str) {
        *self.skipped_prefixes.entry(reason).or_default() += 1;
    }

    /// Offer one listed object (its decoded key): kept if the preparer would process it and its
    /// day is in the window, otherwise counted under the reason. Returns whether it was kept.
    pub fn offer(&mut self, key: &str, size: Option<u64>) -> Result<bool, BackfillError> {
        if let Err(reason) = cloudtrail_key(key, size) {
            self.skip(reason.as_str());
            return Ok(false);
        }
        let Some(day) = cloudtrail_key_day(key) else {
            self.skip("no_date");
            return Ok(false);
        };
        if !self.window.contains(&day) {
            self.skip("outside_window");
            return Ok(false);
        }
        let line = format!("{},{}\n", self.bucket, encode_key(key));
        self.hash.update(line.as_bytes());
        self.file.write_all(line.as_bytes())?;
        self.objects += 1;
        self.bytes += size.unwrap_or(0);
        self.days.insert(day);
        Ok(true)
    }

    /// Digest of the manifest's bytes: names its folder and, with the job's settings, the job's
    /// idempotency token, so that a re-run over the same objects writes the same manifest and does
    /// not create a second job.
    pub fn digest(&self) -> String {
        self.hash.hex()
    }

    /// The finished manifest file (flushed).
    pub fn finish(mut self) -> Result<(Summary, tempfile::NamedTempFile), BackfillError> {
        self.file.flush()?;
        let summary = Summary {
            objects: self.objects,
            bytes: self.bytes,
            days_with_objects: self.days.len() as u64,
            first_day: self.window.first(),
            last_day: self.window.last(),
            window_days: self.window.len(),
            skipped: self.skipped.clone(),
            skipped_prefixes: self.skipped_prefixes.clone(),
            digest: self.hash.hex(),
        };
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        Ok((summary, file))
    }
}

/// The counts of a selection, as `ipsight backfill` prints them (JSON on stdout).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub objects: u64,
    pub bytes: u64,
    pub days_with_objects: u64,
    pub first_day: String,
    pub last_day: String,
    pub window_days: u64,
    pub skipped: BTreeMap<&'static str, u64>,
    pub skipped_prefixes: BTreeMap<&'static str, u64>,
    #[serde(skip)]
    pub digest: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipsight_formats::notify::decode_notification_key;

    #[test]
    fn keys_survive_the_preparers_decoding() {
        for key in [
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/05/111122223333_CloudTrail_us-east-1_20260105T0000Z_abc.json.gz",
            "my trail/AWSLogs/1/a+b=c%d,e\"f#?&é/x.json.gz",
        ] {
            let enc = encode_key(key);
            assert!(!enc.contains(' ') && !enc.contains('+') && !enc.contains(','));
            assert_eq!(decode_notification_key(&enc), key, "{enc}");
        }
        assert_eq!(encode_key("a b+c/d"), "a%20b%2Bc/d");
    }
}
