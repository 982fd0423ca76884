//! Lambda configuration from the environment: the checks every function makes at cold start.
use std::str::FromStr;

use ipsight_formats::keys::would_retrigger;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name}={value:?} is not a valid number")]
    NotANumber { name: &'static str, value: String },
    #[error("{name}={value:?}: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "output s3://{out_bucket}/{out_prefix} overlaps the trigger s3://{in_bucket}/{in_prefix}: every \
         object written would trigger this function again (an infinite loop). Use another bucket or \
         non-overlapping prefixes."
    )]
    Retrigger {
        in_bucket: String,
        in_prefix: String,
        out_bucket: String,
        out_prefix: String,
    },
}

/// A variable that must be set and non-empty.
pub fn required(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    get(name)
        .filter(|s| !s.is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// A number, or `default` when unset.
pub fn number<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ConfigError::NotANumber { name, value: v }),
    }
}

/// `ENTITY`: what the tuples' entities are (default `principal`). The preparer, the extractor, ipcheck
/// and the retrain must agree, and agree with the model (which records it).
pub fn entity_kind(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<ipsight_formats::EntityKind, ConfigError> {
    match get("ENTITY")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    {
        None => Ok(ipsight_formats::EntityKind::default()),
        Some(v) => v.parse().map_err(|reason| ConfigError::Invalid {
            name: "ENTITY",
            value: v,
            reason,
        }),
    }
}

/// Refuse an output location a trigger on `(in_bucket, in_prefix)` would see: writing there would
/// invoke the function again for its own output, forever.
pub fn refuse_retrigger(
    in_bucket: Option<&str>,
    in_prefix: &str,
    out_bucket: &str,
    out_prefix: &str,
) -> Result<(), ConfigError> {
    match in_bucket {
        Some(inb) if would_retrigger(inb, in_prefix, out_bucket, out_prefix) => {
            Err(ConfigError::Retrigger {
                in_bucket: inb.to_owned(),
                in_prefix: in_prefix.to_owned(),
                out_bucket: out_bucket.to_owned(),
                out_prefix: out_prefix.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        let env = |k: &str| match k {
            "A" => Some("12".to_owned()),
            "B" => Some("twelve".to_owned()),
            "E" => Some(String::new()),
            _ => None,
        };
        assert_eq!(number(&env, "A", 1u64).unwrap(), 12);
        assert_eq!(number(&env, "Z", 7u64).unwrap(), 7);
        assert!(matches!(
            number(&env, "B", 1u64),
            Err(ConfigError::NotANumber { name: "B", .. })
        ));
        assert!(matches!(
            required(&env, "E"),
            Err(ConfigError::Missing("E"))
        ));
        assert_eq!(required(&env, "A").unwrap(), "12");
        let e = refuse_retrigger(Some("b"), "", "b", "out/").unwrap_err();
        assert!(e.to_string().contains("infinite loop"));
        assert!(refuse_retrigger(Some("b"), "AWSLogs/", "b", "out/").is_ok());
        assert!(refuse_retrigger(None, "", "b", "").is_ok());
    }
}
