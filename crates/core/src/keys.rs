//! Key rules: which objects of a bucket are CloudTrail log files or GuardDuty exports, where each
//! function writes its outputs, and when an output would re-trigger its own input.

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
    if let Some(reason) = skipped_prefix(key) {
        return Err(reason);
    }
    if key.contains("_CloudTrail-Digest_") {
        return Err(SkipReason::Digest);
    }
    if key.contains("_CloudTrail-Insight_") {
        return Err(SkipReason::Insight);
    }
    let file = key.rsplit('/').next().unwrap_or(key);
    if key.contains("/CloudTrail/") && file.contains("_CloudTrail_") && file.ends_with(".json.gz") {
        Ok(())
    } else {
        Err(SkipReason::NotCloudTrail)
    }
}

/// Whether every object under `prefix` (a key or a key prefix) is skipped for the folder it is in:
/// `CloudTrail-Digest/` and `CloudTrail-Insight/`. The rule of [`cloudtrail_key`], usable on a
/// listing's common prefixes so that a backfill never lists those trees.
pub fn skipped_prefix(prefix: &str) -> Option<SkipReason> {
    let slashed = |folder: &str| {
        prefix.contains(&format!("/{folder}/")) || prefix.starts_with(&format!("{folder}/"))
    };
    if slashed("CloudTrail-Digest") {
        Some(SkipReason::Digest)
    } else if slashed("CloudTrail-Insight") {
        Some(SkipReason::Insight)
    } else {
        None
    }
}

/// The UTC day (`YYYY-MM-DD`) a CloudTrail log object was delivered for, from its file name
/// (`<acct>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<id>.json.gz`): the date that dates its pair file.
pub fn cloudtrail_key_day(key: &str) -> Option<String> {
    let file = key.rsplit('/').next()?;
    let stamp = file.split('_').nth(3)?;
    let b = stamp.as_bytes();
    if b.len() < 8 || !b[..8].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(format!("{}-{}-{}", &stamp[..4], &stamp[4..6], &stamp[6..8]))
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

/// Decide whether `key` (decoded) of `size` bytes is a GuardDuty export object:
/// `AWSLogs/<acct>/GuardDuty/<region>/YYYY/MM/DD/<uuid>.jsonl.gz`. `Err` carries the skip reason.
pub fn guardduty_export_key(key: &str, size: Option<u64>) -> Result<(), &'static str> {
    if key.ends_with('/') || size == Some(0) {
        return Err("folder_or_empty");
    }
    let file = key.rsplit('/').next().unwrap_or(key);
    if key.contains("/GuardDuty/") && (file.ends_with(".jsonl.gz") || file.ends_with(".jsonl")) {
        Ok(())
    } else {
        Err("not_guardduty_export")
    }
}

/// A key component that cannot escape its place in a key: characters outside `[A-Za-z0-9._-]`
/// are percent-encoded, and `.`/`..`/empty become `%2E…`/`_`.
pub fn key_component(s: &str) -> String {
    if s.is_empty() {
        return "_".into();
    }
    if s.bytes().all(|b| b == b'.') {
        return s.bytes().map(|_| "%2E").collect();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where the GuardDuty extractor writes a finding's record and tuples:
/// `<prefix>findings/<account>/<region>/<id>.json` and `<prefix>tuples/<account>/<region>/<id>.csv`:
/// one key per finding id, so a re-sent (updated) finding overwrites its own record.
pub fn finding_output_keys(
    prefix: &str,
    account: &str,
    region: &str,
    finding_id: &str,
) -> (String, String) {
    let mut p = prefix.to_owned();
    if !p.is_empty() && !p.ends_with('/') {
        p.push('/');
    }
    let tail = format!(
        "{}/{}/{}",
        key_component(account),
        key_component(region),
        key_component(finding_id)
    );
    (
        format!("{p}findings/{tail}.json"),
        format!("{p}tuples/{tail}.csv"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_of_a_cloudtrail_key() {
        assert_eq!(
            cloudtrail_key_day("AWSLogs/o-1/111122223333/CloudTrail/eu-west-1/2026/01/05/111122223333_CloudTrail_eu-west-1_20260104T2355Z_x.json.gz").as_deref(),
            Some("2026-01-04")
        );
        assert_eq!(
            cloudtrail_key_day("AWSLogs/x/CloudTrail/r/a_CloudTrail_r_notadate_x.json.gz"),
            None
        );
    }

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
            skipped_prefix("AWSLogs/o-1/111122223333/CloudTrail-Digest/"),
            Some(SkipReason::Digest)
        );
        assert_eq!(
            skipped_prefix("CloudTrail-Insight/us-east-1/"),
            Some(SkipReason::Insight)
        );
        assert_eq!(skipped_prefix("AWSLogs/111122223333/CloudTrail/"), None);
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

    #[test]
    fn guardduty_keys() {
        assert_eq!(
            finding_output_keys("infer/guardduty/", "111122223333", "eu-west-1", "f1"),
            (
                "infer/guardduty/findings/111122223333/eu-west-1/f1.json".to_owned(),
                "infer/guardduty/tuples/111122223333/eu-west-1/f1.csv".to_owned()
            )
        );
        assert_eq!(key_component("../x/y"), "..%2Fx%2Fy");
        assert_eq!(key_component(".."), "%2E%2E");
        assert_eq!(key_component(""), "_");
        assert_eq!(
            guardduty_export_key(
                "AWSLogs/1/GuardDuty/us-east-1/2026/01/05/abc.jsonl.gz",
                Some(9)
            ),
            Ok(())
        );
        assert_eq!(
            guardduty_export_key("AWSLogs/1/GuardDuty/", Some(0)),
            Err("folder_or_empty")
        );
        assert_eq!(
            guardduty_export_key("AWSLogs/1/CloudTrail/x.json.gz", None),
            Err("not_guardduty_export")
        );
    }
}
