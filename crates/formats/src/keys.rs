//! Which objects of a CloudTrail bucket are log files, and where their outputs go.

/// Why an object is not processed. Skips are logged and counted, never errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `CloudTrail-Digest/`: integrity digests have no `Records` (naive parsers crash on them).
    Digest,
    /// `CloudTrail-Insight/`: Insights events are not principal activity.
    Insight,
    /// A zero-byte object or a key ending in `/` (console "folders").
    Folder,
    /// Not a CloudTrail log object name at all (e.g. the bucket's other data).
    NotCloudTrail,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Digest => "digest",
            SkipReason::Insight => "insight",
            SkipReason::Folder => "folder_or_empty",
            SkipReason::NotCloudTrail => "not_cloudtrail_log",
        }
    }
}

/// Decide whether `key` (already URL-decoded) of `size` bytes is a CloudTrail log object:
/// `AWSLogs/[o-orgid/]<acct>/CloudTrail/<region>/YYYY/MM/DD/<acct>_CloudTrail_<region>_<ts>_<id>.json.gz`.
pub fn cloudtrail_key(key: &str, size: Option<u64>) -> Result<(), SkipReason> {
    if key.ends_with('/') || size == Some(0) {
        return Err(SkipReason::Folder);
    }
    if key.contains("/CloudTrail-Digest/") || key.contains("_CloudTrail-Digest_") {
        return Err(SkipReason::Digest);
    }
    if key.contains("/CloudTrail-Insight/") || key.contains("_CloudTrail-Insight_") {
        return Err(SkipReason::Insight);
    }
    let file = key.rsplit('/').next().unwrap_or(key);
    if key.contains("/CloudTrail/") && file.contains("_CloudTrail_") && file.ends_with(".json.gz") {
        Ok(())
    } else {
        Err(SkipReason::NotCloudTrail)
    }
}

/// Deterministic output key for an input key: `<prefix><key without .json.gz/.json/.gz>.csv`.
/// Deterministic so that a retried or redelivered event overwrites instead of duplicating.
pub fn output_key(prefix: &str, input_key: &str, extension: &str) -> String {
    let stem = input_key
        .strip_suffix(".json.gz")
        .or_else(|| input_key.strip_suffix(".jsonl.gz"))
        .or_else(|| input_key.strip_suffix(".json"))
        .or_else(|| input_key.strip_suffix(".gz"))
        .unwrap_or(input_key);
    let mut out = String::with_capacity(prefix.len() + stem.len() + extension.len() + 1);
    out.push_str(prefix);
    if !prefix.is_empty() && !prefix.ends_with('/') {
        out.push('/');
    }
    out.push_str(stem.trim_start_matches('/'));
    out.push_str(extension);
    out
}

/// True when objects written under `(out_bucket, out_prefix)` could be seen by a trigger on
/// `(in_bucket, in_prefix)`: same bucket and one prefix contains the other. An empty prefix covers
/// the whole bucket.
pub fn would_retrigger(
    in_bucket: &str,
    in_prefix: &str,
    out_bucket: &str,
    out_prefix: &str,
) -> bool {
    in_bucket == out_bucket
        && (in_prefix.starts_with(out_prefix) || out_prefix.starts_with(in_prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/05/111122223333_CloudTrail_us-east-1_20260105T0000Z_abcdEFGH12345678.json.gz";

    #[test]
    fn filters() {
        assert_eq!(cloudtrail_key(LOG, Some(10)), Ok(()));
        assert_eq!(cloudtrail_key(LOG, None), Ok(()));
        let org = "AWSLogs/o-abc123defg/111122223333/CloudTrail/eu-west-1/2026/01/05/111122223333_CloudTrail_eu-west-1_20260105T0000Z_x.json.gz";
        assert_eq!(cloudtrail_key(org, Some(1)), Ok(()));
        assert_eq!(cloudtrail_key(LOG, Some(0)), Err(SkipReason::Folder));
        assert_eq!(
            cloudtrail_key("AWSLogs/111122223333/CloudTrail/", Some(0)),
            Err(SkipReason::Folder)
        );
        let digest = "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/01/05/111122223333_CloudTrail-Digest_us-east-1_t_20260105T0000Z.json.gz";
        assert_eq!(cloudtrail_key(digest, Some(5)), Err(SkipReason::Digest));
        let insight = "AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2026/01/05/111122223333_CloudTrail-Insight_us-east-1_x.json.gz";
        assert_eq!(cloudtrail_key(insight, Some(5)), Err(SkipReason::Insight));
        assert_eq!(
            cloudtrail_key(
                "AWSLogs/111122223333/CloudTrail/us-east-1/notes.txt",
                Some(5)
            ),
            Err(SkipReason::NotCloudTrail)
        );
    }

    #[test]
    fn outputs() {
        assert_eq!(
            output_key(
                "train/cloudtrail/",
                "AWSLogs/1/CloudTrail/r/2026/01/05/f.json.gz",
                ".csv"
            ),
            "train/cloudtrail/AWSLogs/1/CloudTrail/r/2026/01/05/f.csv"
        );
        assert_eq!(output_key("train", "a b/c.json", ".csv"), "train/a b/c.csv");
        assert!(would_retrigger("b", "", "b", "train/"));
        assert!(would_retrigger("b", "AWSLogs/", "b", ""));
        assert!(!would_retrigger("b", "AWSLogs/", "b", "train/"));
        assert!(!would_retrigger("a", "", "b", ""));
    }
}
