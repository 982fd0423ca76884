//! The tuning file: one TOML document (a local file, `--tuning FILE`, or an S3 object,
//! `TUNING_URI`) that ipcheck, fuse and the CLI all honour the same way.
//!
//! ```toml
//! version = 1
//! # One line silences a known egress: what it matches, an expiry and a reason.
//! allow = [
//!   { cidr = "203.0.113.0/24", expires = "2027-06-30", reason = "Paris office egress" },
//!   { asn = 64500, principal = "AROAEXAMPLECI", expires = "2027-01-31", reason = "CI runners" },
//!   { country = "FR", principal = ["AIDAALICE"], expires = "never", reason = "Alice works from France" },
//! ]
//! [aws_callers]
//! invoked_by = true          # CloudTrail events an AWS service made for the principal
//! service_addresses = true   # addresses AWS publishes for its own services (ip-ranges.json)
//! [learning]
//! days = 14                  # no alerts for a principal in its first 14 days
//! [alerts]
//! dedup_hours = 24           # the same pair alerts at most once per 24 hours
//! ```
//!
//! This module is the schema: [`parse`] reads and validates the file into
//! `ipsight_core::tuning::Tuning`, whose `check` applies it. A suppressed row or score line is still
//! written, with the rule that suppressed it; nothing is silently dropped. Trusted/threat lists and
//! analyst labels are separate inputs and keep working beside the tuning file.
use std::net::IpAddr;

use ipsight_core::tuning::{AllowRule, AwsCallers, Net, Suppressed, Tuning, CUSTOMER_SERVICES};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    /// Not TOML, or a key the schema does not know (the message carries line and column).
    #[error("tuning file {file}: {why}")]
    Syntax { file: String, why: String },
    /// A well-formed entry that cannot be used.
    #[error("tuning file {file}: {entry} (line {line}): {why}")]
    Entry {
        file: String,
        entry: String,
        line: usize,
        why: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Option<i64>,
    #[serde(default)]
    allow: Vec<toml::Spanned<RawAllow>>,
    aws_callers: Option<RawAws>,
    learning: Option<RawLearning>,
    alerts: Option<RawAlerts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    cidr: Option<String>,
    asn: Option<toml::Value>,
    country: Option<String>,
    principal: Option<OneOrMany>,
    expires: Option<toml::Value>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAws {
    #[serde(default)]
    invoked_by: bool,
    #[serde(default)]
    service_addresses: bool,
    customer_services: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLearning {
    days: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    dedup_hours: f64,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parse and validate. Every error names the file, the entry (`allow[2]`, `learning.days`) with
/// its line, and the reason.
pub fn parse(name: &str, text: &str) -> Result<Tuning, TuningError> {
    let syntax = |why: String| TuningError::Syntax {
        file: name.to_owned(),
        why,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| syntax(e.to_string().trim().into()))?;
    let entry = |entry: String, line: usize, why: String| TuningError::Entry {
        file: name.to_owned(),
        entry,
        line,
        why,
    };
    let key_line = |key: &str| {
        text.lines()
            .position(|l| {
                let l = l.trim_start();
                l.starts_with(key) || l.starts_with(&format!("[{key}"))
            })
            .map_or(1, |i| i + 1)
    };
    if let Some(v) = raw.version {
        if v != 1 {
            return Err(entry(
                "version".into(),
                key_line("version"),
                format!("version {v} is not supported (this ipsight reads version 1)"),
            ));
        }
    }
    let mut allow = Vec::with_capacity(raw.allow.len());
    for (index, spanned) in raw.allow.into_iter().enumerate() {
        let line = line_of(text, spanned.span().start);
        let r = spanned.into_inner();
        let bad = |why: String| entry(format!("allow[{index}]"), line, why);
        let cidr = r
            .cidr
            .as_deref()
            .map(Net::parse)
            .transpose()
            .map_err(|e| bad(format!("cidr {:?}: {e}", r.cidr.as_deref().unwrap_or(""))))?;
        let asn = match &r.asn {
            None => None,
            Some(toml::Value::Integer(n)) => Some(
                u32::try_from(*n).map_err(|_| bad(format!("asn {n} is not 0 to 4294967295")))?,
            ),
            // IPinfo Lite writes `AS64500`; accept that spelling too.
            Some(toml::Value::String(s)) => Some(
                s.trim()
                    .trim_start_matches(['A', 'a'])
                    .trim_start_matches(['S', 's'])
                    .parse::<u32>()
                    .map_err(|_| {
                        bad(format!(
                            "asn {s:?} is not a number like 64500 or \"AS64500\""
                        ))
                    })?,
            ),
            Some(v) => return Err(bad(format!("asn {v} is not a number like 64500"))),
        };
        let country = match r.country {
            None => None,
            Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
                Some(c.to_ascii_uppercase())
            }
            Some(c) => {
                return Err(bad(format!(
                    "country {c:?} is not an ISO 3166-1 alpha-2 code like \"FR\""
                )))
            }
        };
        let principals = match r.principal {
            None => Vec::new(),
            Some(OneOrMany::One(p)) => vec![p],
            Some(OneOrMany::Many(v)) => v,
        };
        if principals.iter().any(|p| p.trim().is_empty()) {
            return Err(bad("an empty principal".into()));
        }
        let principals: Vec<String> = principals
            .iter()
            .map(|p| crate::normalise_entity(None, Some(p.trim()), None).unwrap_or_default())
            .collect();
        if cidr.is_none() && asn.is_none() && country.is_none() {
            return Err(bad(
                "names no network: give at least one of cidr, asn, country (a principal alone \
                 would silence everything it does)"
                    .into(),
            ));
        }
        let (expires, expires_text) = match &r.expires {
            None => {
                return Err(bad(
                    "no expires: give a date (\"2027-06-30\") or \"never\"".into()
                ))
            }
            Some(toml::Value::String(s)) if s.trim().eq_ignore_ascii_case("never") => {
                (None, "never".to_owned())
            }
            Some(toml::Value::String(s)) if s.trim().len() == 10 => {
                let d = ipsight_core::time::day_number(s.trim())
                    .ok_or_else(|| bad(format!("expires {s:?} is not a YYYY-MM-DD date")))?;
                (Some(d), s.trim().to_owned())
            }
            Some(toml::Value::Datetime(d)) if d.date.is_some() && d.time.is_none() => {
                let t = d.to_string();
                let day = ipsight_core::time::day_number(&t)
                    .ok_or_else(|| bad(format!("expires {t} is not a date")))?;
                (Some(day), t)
            }
            Some(v) => {
                return Err(bad(format!(
                    "expires {v} is not a YYYY-MM-DD date or \"never\""
                )))
            }
        };
        let reason = r.reason.map(|s| s.trim().to_owned()).unwrap_or_default();
        if reason.is_empty() {
            return Err(bad(
                "no reason: say why this network is expected (it is shown on every row it \
                 suppresses)"
                    .into(),
            ));
        }
        allow.push(AllowRule {
            index,
            line,
            cidr,
            asn,
            country,
            principals,
            expires,
            expires_text,
            reason,
        });
    }
    let aws_callers = match raw.aws_callers {
        None => AwsCallers::default(),
        Some(a) => AwsCallers {
            invoked_by: a.invoked_by,
            service_addresses: a.service_addresses,
            customer_services: a
                .customer_services
                .unwrap_or_else(|| CUSTOMER_SERVICES.iter().map(|s| s.to_string()).collect())
                .into_iter()
                .map(|s| s.trim().to_ascii_uppercase())
                .collect(),
        },
    };
    let learning_days = match raw.learning {
        None => None,
        Some(l) if (1..=3650).contains(&l.days) => Some(l.days as u32),
        Some(l) => {
            return Err(entry(
                "learning.days".into(),
                key_line("days"),
                format!("{} is not 1 to 3650 days", l.days),
            ))
        }
    };
    let dedup_window_secs = match raw.alerts {
        None => None,
        Some(a) if a.dedup_hours > 0.0 && a.dedup_hours <= 24.0 * 366.0 => {
            Some((a.dedup_hours * 3600.0).round() as i64)
        }
        Some(a) => {
            return Err(entry(
                "alerts.dedup_hours".into(),
                key_line("dedup_hours"),
                format!(
                    "{} is not more than 0 and at most 8784 hours",
                    a.dedup_hours
                ),
            ))
        }
    };
    Ok(Tuning {
        name: name.to_owned(),
        allow,
        aws_callers,
        learning_days,
        dedup_window_secs,
    })
}

/// The dedup state of one pair (`<ALERT_STATE_PREFIX><key>.json` in ipcheck's bucket): when it
/// last raised an alert and from which object. A redelivery of that same object is not a
/// duplicate (its alerts are published again with the same ids), so retries stay idempotent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct AlertMark {
    pub entity: String,
    pub ip: String,
    /// Seconds since the epoch of the alert.
    pub alerted_at: i64,
    pub alert_id: String,
    /// `s3://bucket/key` of the object whose pair alerted.
    pub source: String,
}

impl AlertMark {
    /// Key of a pair's mark under `prefix`: a hash of the pair, so any principal name or IPv6
    /// text gives a short, safe key.
    pub fn key(prefix: &str, entity: &str, ip: IpAddr) -> String {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in entity.bytes().chain([0x1f]).chain(ip.to_string().bytes()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        let mut p = prefix.to_owned();
        if !p.is_empty() && !p.ends_with('/') {
            p.push('/');
        }
        format!("{p}{h:016x}.json")
    }

    /// Suppresses an alert at `now` from `source` when this mark is from another object and
    /// younger than the window.
    pub fn suppresses(
        &self,
        now: i64,
        window_secs: i64,
        source: &str,
        tuning: &str,
    ) -> Option<Suppressed> {
        (self.source != source && now >= self.alerted_at && now - self.alerted_at < window_secs)
            .then(|| Suppressed {
                kind: "dedup",
                rule: format!(
                    "{tuning} alerts.dedup_hours = {}: already alerted at {} (alert {}, from {})",
                    window_secs as f64 / 3600.0,
                    ipsight_core::time::rfc3339(self.alerted_at),
                    self.alert_id,
                    self.source
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipsight_core::tuning::{PrincipalAge, Subject};

    const EXAMPLE: &str = include_str!("../../../docs/tuning.example.toml");

    fn day(s: &str) -> i64 {
        ipsight_core::time::day_number(s).unwrap()
    }

    fn subject(entity: &str, ip: &str) -> Subject<'static> {
        Subject {
            entity: Box::leak(entity.to_owned().into_boxed_str()),
            ip: Some(ip.parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn example_file_parses() {
        let t = parse("docs/tuning.example.toml", EXAMPLE).unwrap();
        assert!(t.allow.len() >= 3);
        assert!(t.aws_callers.invoked_by && t.aws_callers.service_addresses);
        assert_eq!(t.learning_days, Some(14));
        assert_eq!(t.dedup_window_secs, Some(24 * 3600));
    }

    #[test]
    fn one_line_silences_an_egress() {
        let t = parse(
            "t.toml",
            "allow = [\n  { cidr = \"203.0.113.0/24\", expires = \"2027-06-30\", reason = \"Paris office egress\" },\n]\n",
        )
        .unwrap();
        let s = t
            .check(&subject("AIDAX", "203.0.113.77"), day("2027-01-01"))
            .unwrap();
        assert_eq!(s.kind, "allow");
        assert_eq!(
            s.rule,
            "t.toml allow[0] (line 2): cidr 203.0.113.0/24 — \"Paris office egress\", expires 2027-06-30"
        );
        assert!(t
            .check(&subject("AIDAX", "203.0.114.1"), day("2027-01-01"))
            .is_none());
        // Expired the day after `expires`.
        assert!(t
            .check(&subject("AIDAX", "203.0.113.77"), day("2027-06-30"))
            .is_some());
        assert!(t
            .check(&subject("AIDAX", "203.0.113.77"), day("2027-07-01"))
            .is_none());
        assert_eq!(t.expired(day("2027-07-01")).count(), 1);
        // TOML dates work as well as strings; [[allow]] tables as well as inline ones.
        let t = parse(
            "t.toml",
            "[[allow]]\ncidr = \"2001:db8::/32\"\nexpires = 2027-06-30\nreason = \"v6 office\"\n",
        )
        .unwrap();
        assert!(t
            .check(&subject("AIDAX", "2001:db8:1::5"), day("2027-01-01"))
            .is_some());
        assert!(t
            .check(&subject("AIDAX", "203.0.113.1"), day("2027-01-01"))
            .is_none());
    }

    #[test]
    fn asn_country_and_principals() {
        let t = parse(
            "t.toml",
            r#"allow = [
  { asn = "AS64500", principal = "AROACI:runner-7", expires = "never", reason = "CI" },
  { country = "fr", principal = ["AIDAALICE", "AIDABOB"], expires = "never", reason = "remote" },
]"#,
        )
        .unwrap();
        // The principal is normalised as everywhere else: the session suffix is cut.
        assert_eq!(t.allow[0].principals, ["AROACI"]);
        let d = day("2030-01-01");
        let mut s = subject("AROACI", "198.51.100.1");
        assert!(t.check(&s, d).is_none(), "no ASN known: no match");
        s.asn = Some(64500);
        assert_eq!(t.check(&s, d).unwrap().kind, "allow");
        s.entity = "AROAOTHER";
        assert!(t.check(&s, d).is_none());
        let mut s = subject("AIDABOB", "192.0.2.1");
        s.country = Some("FR");
        assert!(t.check(&s, d).unwrap().rule.contains("allow[1] (line 3)"));
        assert!(t.needs_network());
    }

    #[test]
    fn aws_callers_and_learning() {
        let t = parse(
            "t.toml",
            "[aws_callers]\ninvoked_by = true\nservice_addresses = true\n[learning]\ndays = 14\n",
        )
        .unwrap();
        let d = day("2026-03-10");
        let mut s = subject("AIDAX", "52.94.1.1");
        s.invoked_by = Some("athena.amazonaws.com");
        assert_eq!(t.check(&s, d).unwrap().kind, "invoked_by");
        s.invoked_by = None;
        let route53 = vec!["AMAZON".to_owned(), "ROUTE53_HEALTHCHECKS".to_owned()];
        s.aws_services = Some(&route53);
        assert_eq!(t.check(&s, d).unwrap().kind, "aws_service_address");
        // An EC2 address is anyone's instance: not AWS acting.
        let ec2 = vec!["AMAZON".to_owned(), "EC2".to_owned()];
        s.aws_services = Some(&ec2);
        assert!(t.check(&s, d).is_none());
        s.principal = PrincipalAge::New;
        assert!(t.check(&s, d).unwrap().rule.contains("new to the baseline"));
        s.principal = PrincipalAge::FirstSeen(d - 13);
        assert!(t.check(&s, d).unwrap().rule.contains("day 14 of 14"));
        s.principal = PrincipalAge::FirstSeen(d - 14);
        assert!(t.check(&s, d).is_none());
    }

    #[test]
    fn errors_name_file_entry_and_reason() {
        let cases = [
            ("allow = [\n { cidr = \"10.0.0.0/33\", expires = \"never\", reason = \"x\" },\n]", "allow[0] (line 2): cidr \"10.0.0.0/33\": prefix length \"33\" is not 0 to 32"),
            ("allow = [\n { cidr = \"10.0.0.0/8\", reason = \"x\" },\n]", "allow[0] (line 2): no expires"),
            ("allow = [\n { cidr = \"10.0.0.0/8\", expires = \"never\" },\n]", "allow[0] (line 2): no reason"),
            ("allow = [\n { principal = \"AIDAX\", expires = \"never\", reason = \"x\" },\n]", "names no network"),
            ("allow = [\n { country = \"France\", expires = \"never\", reason = \"x\" },\n]", "country \"France\" is not an ISO 3166-1"),
            ("allow = [\n { asn = -1, expires = \"never\", reason = \"x\" },\n]", "asn -1"),
            ("allow = [\n { cidr = \"10.0.0.0/8\", expires = \"next year\", reason = \"x\" },\n]", "expires \"next year\""),
            ("allow = [\n { cidr = \"10.0.0.0/8\", expires = \"2027-13-01\", reason = \"x\" },\n]", "not a YYYY-MM-DD"),
            ("allow = [\n { cdir = \"10.0.0.0/8\", expires = \"never\", reason = \"x\" },\n]", "unknown field `cdir`"),
            ("[learning]\ndays = 0\n", "learning.days (line 2): 0 is not 1 to 3650"),
            ("[alerts]\ndedup_hours = -1\n", "alerts.dedup_hours (line 2)"),
            ("version = 2\n", "version 2 is not supported"),
            ("[alert]\ndedup_hours = 1\n", "unknown field `alert`"),
            ("allow = [ { cidr = ", "tuning file t.toml: "),
        ];
        for (text, want) in cases {
            let e = parse("t.toml", text).unwrap_err().to_string();
            assert!(e.starts_with("tuning file t.toml: "), "{e}");
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn dedup_marks() {
        let k = AlertMark::key("alert-state", "AIDAX", "2001:db8::1".parse().unwrap());
        assert!(k.starts_with("alert-state/") && k.ends_with(".json") && k.len() == 12 + 16 + 5);
        let m = AlertMark {
            entity: "AIDAX".into(),
            ip: "192.0.2.1".into(),
            alerted_at: 1_000_000,
            alert_id: "abc".into(),
            source: "s3://in/a.json".into(),
        };
        // The same object again (a retry): not a duplicate.
        assert!(m
            .suppresses(1_000_100, 3600, "s3://in/a.json", "t")
            .is_none());
        let s = m
            .suppresses(1_000_100, 3600, "s3://in/b.json", "t")
            .unwrap();
        assert_eq!(s.kind, "dedup");
        assert!(
            s.rule.contains(
                "already alerted at 1970-01-12T13:46:40Z (alert abc, from s3://in/a.json)"
            ),
            "{}",
            s.rule
        );
        assert!(m
            .suppresses(1_003_600, 3600, "s3://in/b.json", "t")
            .is_none());
    }
}
