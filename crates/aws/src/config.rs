//! The one configuration reader every function uses at cold start (and the CLI where it reads the
//! same variables).
//!
//! Rules, the same for every variable of every function: values are trimmed and an empty value is
//! the same as an unset one, except for key prefixes, where empty means the whole bucket; every error names the variable, its value and what was expected; a
//! configuration whose output would re-trigger the function is refused.
use std::str::FromStr;

use ipsight_core::keys::would_retrigger;

use ipsight_ports::{LabelLoadError, LabelSource, ObjectRef};

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
    /// A value that cannot be used, where echoing it would not help (a JSON document, a missing
    /// companion setting).
    #[error("{name}: {reason}")]
    Unusable { name: &'static str, reason: String },
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
    #[error(
        "{output_name} prefix {output:?} overlaps the {what} prefix {input:?}: the output would be read \
         back as input (or trigger the functions listening there)"
    )]
    Overlap {
        output_name: &'static str,
        output: String,
        what: &'static str,
        input: String,
    },
    #[error(transparent)]
    Labels(#[from] LabelLoadError),
    #[error(transparent)]
    Mapping(#[from] ipsight_formats::ocsf::MappingError),
}

impl ConfigError {
    /// `name: reason`.
    pub fn unusable(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Unusable {
            name,
            reason: reason.into(),
        }
    }

    /// `name=value: reason`.
    pub fn invalid(
        name: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            name,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// Environment variables, read through a lookup function (the process environment in production,
/// a table in tests).
pub struct Env<G> {
    get: G,
}

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Env {
            get: |k| std::env::var(k).ok(),
        }
    }
}

impl<G: Fn(&str) -> Option<String>> Env<G> {
    pub fn new(get: G) -> Self {
        Env { get }
    }

    /// The trimmed value; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.get)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A variable that must be set.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    /// The value, or `default` when unset.
    pub fn or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// A key prefix: unset gives `default`, but a prefix set to empty is kept (the whole bucket).
    pub fn prefix(&self, name: &str, default: &str) -> String {
        (self.get)(name).map_or_else(|| default.to_owned(), |v| v.trim().to_owned())
    }

    /// A number, if set.
    pub fn number_opt<T: FromStr>(&self, name: &'static str) -> Result<Option<T>, ConfigError> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| ConfigError::NotANumber { name, value: v })
            })
            .transpose()
    }

    /// A number, or `default` when unset.
    pub fn number<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError> {
        Ok(self.number_opt(name)?.unwrap_or(default))
    }

    /// A percentage (0 to 100), if set.
    pub fn percent_opt(&self, name: &'static str) -> Result<Option<f64>, ConfigError> {
        match self.number_opt::<f64>(name)? {
            Some(p) if !(0.0..=100.0).contains(&p) => Err(ConfigError::invalid(
                name,
                p.to_string(),
                "a percentage, 0 to 100",
            )),
            p => Ok(p),
        }
    }

    /// `s3://bucket/key` of one object, if set.
    pub fn s3_object(&self, name: &'static str) -> Result<Option<ObjectRef>, ConfigError> {
        self.get(name)
            .map(|v| match parse_s3_uri(&v) {
                Some((b, k)) if !k.is_empty() && !k.ends_with('/') => Ok(ObjectRef::new(b, k)),
                _ => Err(ConfigError::invalid(name, v, "expected s3://bucket/key")),
            })
            .transpose()
    }

    /// `s3://bucket` or `s3://bucket/prefix`, as `(bucket, prefix)`, if set.
    pub fn s3_prefix(&self, name: &'static str) -> Result<Option<(String, String)>, ConfigError> {
        self.get(name)
            .map(|v| {
                parse_s3_uri(&v)
                    .map(|(b, k)| (b.to_owned(), k.to_owned()))
                    .ok_or_else(|| ConfigError::invalid(name, v, "expected s3://bucket/prefix"))
            })
            .transpose()
    }

    /// `ENTITY`: what the tuples' entities are (default `principal`). The preparer, the extractor,
    /// ipcheck, fuse and the retrain must agree, and agree with the model (which records it).
    pub fn entity(&self) -> Result<ipsight_formats::EntityKind, ConfigError> {
        match self.get("ENTITY") {
            None => Ok(ipsight_formats::EntityKind::default()),
            Some(v) => v
                .parse()
                .map_err(|reason: String| ConfigError::invalid("ENTITY", v, reason)),
        }
    }

    /// `NEW_PRINCIPALS` (`alert`, the default, or `ignore`): whether a principal absent from the
    /// baseline alerts. The same setting as `ipsight score --new-principals`.
    pub fn new_principals(&self) -> Result<ipsight_model::NewPrincipals, ConfigError> {
        match self.get("NEW_PRINCIPALS") {
            None => Ok(ipsight_model::NewPrincipals::default()),
            Some(v) => v
                .parse()
                .map_err(|reason: String| ConfigError::invalid("NEW_PRINCIPALS", v, reason)),
        }
    }

    /// `IPV6`: what becomes of records from IPv6 addresses, as `prepare cloudtrail|ocsf` with and
    /// without `--ipv6`: `keep` (default: tuples and pair-file lines in canonical RFC 5952 text, for
    /// ipsight's own model and baseline — no principal hides by calling over IPv6) or `set_aside`
    /// (counted, no tuple). SageMaker's channel is filtered where the retrain writes it (window
    /// expansion or tuple copy, `ipsight_formats::tuples::SageMakerChannel`), so keeping is safe
    /// with SageMaker training too.
    pub fn ipv6_tuples(&self) -> Result<ipsight_formats::Ipv6Tuples, ConfigError> {
        match self
            .get("IPV6")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("set_aside") => Ok(ipsight_formats::Ipv6Tuples::SetAside),
            None | Some("keep") => Ok(ipsight_formats::Ipv6Tuples::Keep),
            Some(_) => Err(ConfigError::invalid(
                "IPV6",
                self.get("IPV6").unwrap_or_default(),
                "`keep` (IPv6 tuples beside IPv4, as --ipv6) or `set_aside` (counted, no tuple)",
            )),
        }
    }

    /// `LABELS_URI` (`s3://bucket/key` or `s3://bucket/prefix/`) or `LABELS_PREFIX` (a prefix of
    /// `data_bucket`): where analyst labels are read.
    pub fn labels(&self, data_bucket: &str) -> Result<Option<LabelSource>, ConfigError> {
        Ok(LabelSource::from_vars(
            self.get("LABELS_URI").as_deref(),
            self.get("LABELS_PREFIX").as_deref(),
            data_bucket,
        )?)
    }

    /// The lookup itself, for readers that take one (the OCSF mapping, the scorer settings).
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |k| self.get(k)
    }
}

/// `s3://bucket[/key]` → `(bucket, key)`; the key may be empty.
pub fn parse_s3_uri(v: &str) -> Option<(&str, &str)> {
    let rest = v.strip_prefix("s3://")?;
    let (b, k) = rest.split_once('/').unwrap_or((rest, ""));
    (!b.is_empty()).then_some((b, k))
}

/// The trigger of a function writing to one bucket: `INPUT_BUCKET` / `INPUT_PREFIX`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trigger {
    pub bucket: Option<String>,
    pub prefix: String,
}

impl Trigger {
    pub fn from_env<G: Fn(&str) -> Option<String>>(env: &Env<G>) -> Self {
        Trigger {
            bucket: env.get("INPUT_BUCKET"),
            prefix: env.prefix("INPUT_PREFIX", ""),
        }
    }

    /// Refuse an output location this trigger would see: writing there would invoke the function
    /// again for its own output, forever.
    pub fn refuse(&self, out_bucket: &str, out_prefix: &str) -> Result<(), ConfigError> {
        refuse_retrigger(self.bucket.as_deref(), &self.prefix, out_bucket, out_prefix)
    }
}

/// Refuse an output location a trigger on `(in_bucket, in_prefix)` would see.
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
        let env = Env::new(|k: &str| match k {
            "A" => Some(" 12 ".to_owned()),
            "B" => Some("twelve".to_owned()),
            "E" => Some("  ".to_owned()),
            "P" => Some("120".to_owned()),
            "O" => Some("s3://b/k/x.txt".to_owned()),
            "D" => Some("s3://b/dir/".to_owned()),
            _ => None,
        });
        assert_eq!(env.number("A", 1u64).unwrap(), 12);
        assert_eq!(env.number("Z", 7u64).unwrap(), 7);
        assert!(matches!(
            env.number("B", 1u64),
            Err(ConfigError::NotANumber { name: "B", .. })
        ));
        assert!(matches!(env.required("E"), Err(ConfigError::Missing("E"))));
        assert_eq!(env.required("A").unwrap(), "12");
        assert_eq!(env.or("E", "dflt"), "dflt");
        assert_eq!(env.prefix("E", "dflt/"), "");
        assert_eq!(env.prefix("Z", "dflt/"), "dflt/");
        let e = env.percent_opt("P").unwrap_err();
        assert_eq!(e.to_string(), "P=\"120\": a percentage, 0 to 100");
        assert_eq!(
            env.s3_object("O").unwrap(),
            Some(ObjectRef::new("b", "k/x.txt"))
        );
        assert!(env
            .s3_object("D")
            .unwrap_err()
            .to_string()
            .contains("s3://bucket/key"));
        assert_eq!(
            env.s3_prefix("D").unwrap(),
            Some(("b".to_owned(), "dir/".to_owned()))
        );
        assert_eq!(parse_s3_uri("s3://b"), Some(("b", "")));
        assert_eq!(parse_s3_uri("s3:///k"), None);
        let e = refuse_retrigger(Some("b"), "", "b", "out/").unwrap_err();
        assert!(e.to_string().contains("infinite loop"));
        assert!(refuse_retrigger(Some("b"), "AWSLogs/", "b", "out/").is_ok());
        assert!(refuse_retrigger(None, "", "b", "").is_ok());
    }

    #[test]
    fn ipv6_setting() {
        use ipsight_formats::Ipv6Tuples;
        let with = |v: Option<&'static str>| {
            Env::new(move |k: &str| (k == "IPV6").then_some(v).flatten().map(str::to_owned))
        };
        assert_eq!(with(None).ipv6_tuples().unwrap(), Ipv6Tuples::Keep);
        assert_eq!(
            with(Some(" keep ")).ipv6_tuples().unwrap(),
            Ipv6Tuples::Keep
        );
        assert_eq!(with(Some("KEEP")).ipv6_tuples().unwrap(), Ipv6Tuples::Keep);
        assert_eq!(
            with(Some("set_aside")).ipv6_tuples().unwrap(),
            Ipv6Tuples::SetAside
        );
        let e = with(Some("yes")).ipv6_tuples().unwrap_err().to_string();
        assert!(e.starts_with("IPV6=\"yes\": `keep`"), "{e}");
    }
}
