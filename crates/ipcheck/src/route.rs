//! Which reader an object goes to, decided from its key alone.
use ipsight_core::keys::cloudtrail_key;
use serde::Serialize;

use crate::Config;

/// What an object holds, decided from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    OcsfParquet,
    OcsfJson,
    GuardDutyRecord,
    CloudTrail,
    TupleCsv,
}

/// Route an object by its (decoded) key; `Err` is a skip reason (logged and counted, not an error).
pub fn classify_key(cfg: &Config, key: &str, size: Option<u64>) -> Result<Kind, &'static str> {
    if key.ends_with('/') || size == Some(0) {
        return Err("folder_or_empty");
    }
    let lower = key.to_ascii_lowercase();
    if lower.ends_with(".parquet") {
        return Ok(Kind::OcsfParquet);
    }
    if key.contains("/GuardDuty/") {
        // Raw GuardDuty exports are extract-guardduty's input; we score its records.
        return Err("guardduty_export");
    }
    if lower.ends_with(".jsonl") || lower.ends_with(".jsonl.gz") {
        return Ok(Kind::OcsfJson);
    }
    let json = lower.ends_with(".json") || lower.ends_with(".json.gz");
    if json
        && cfg
            .ocsf_json_prefix
            .as_deref()
            .is_some_and(|p| key.starts_with(p))
    {
        return Ok(Kind::OcsfJson);
    }
    if lower.ends_with(".json") && (key.starts_with("findings/") || key.contains("/findings/")) {
        return Ok(Kind::GuardDutyRecord);
    }
    if json {
        return match cloudtrail_key(key, size) {
            Ok(()) => Ok(Kind::CloudTrail),
            Err(reason) => Err(reason.as_str()),
        };
    }
    if lower.ends_with(".csv") {
        if key.contains("guardduty/tuples/") {
            return Err("finding_tuples_scored_with_their_record");
        }
        return Ok(Kind::TupleCsv);
    }
    Err("unsupported_object")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::derived_key;
    use crate::Config;

    use ipsight_testkit::vars as env;

    #[test]
    fn routing() {
        let c = Config::from_lookup(env(&[
            ("OUTPUT_BUCKET", "d"),
            ("OCSF_JSON_PREFIX", "ext/custom/"),
        ]))
        .unwrap();
        let k = |key: &str| classify_key(&c, key, Some(10));
        assert_eq!(
            k("aws/VPC_FLOW/1.0/region=us-east-1/accountId=1/eventHour=2023010100/x.gz.parquet"),
            Ok(Kind::OcsfParquet)
        );
        assert_eq!(k("ext/custom/a/b.json.gz"), Ok(Kind::OcsfJson));
        assert_eq!(k("anything/events.jsonl.gz"), Ok(Kind::OcsfJson));
        assert_eq!(
            k("infer/guardduty/findings/1/us-east-1/abc.json"),
            Ok(Kind::GuardDutyRecord)
        );
        assert_eq!(
            k("infer/guardduty/tuples/1/us-east-1/abc.csv"),
            Err("finding_tuples_scored_with_their_record")
        );
        assert_eq!(k("train/cloudtrail/x.csv"), Ok(Kind::TupleCsv));
        assert_eq!(
            k("AWSLogs/1/CloudTrail/us-east-1/2026/01/05/1_CloudTrail_us-east-1_t_x.json.gz"),
            Ok(Kind::CloudTrail)
        );
        assert_eq!(
            k("AWSLogs/1/CloudTrail-Digest/us-east-1/2026/01/05/1_CloudTrail-Digest_x.json.gz"),
            Err("digest")
        );
        assert_eq!(
            k("AWSLogs/1/GuardDuty/us-east-1/2026/01/05/x.jsonl.gz"),
            Err("guardduty_export")
        );
        assert_eq!(k("notes.txt"), Err("unsupported_object"));
        assert_eq!(classify_key(&c, "a.csv", Some(0)), Err("folder_or_empty"));
        assert_eq!(
            derived_key("scores/", "aws/x y/a.gz.parquet"),
            "scores/aws/x y/a.gz.parquet.jsonl"
        );
    }
}
