//! Analyst labels on the wire: one JSON line per decision on an `<entity, ip>` pair (or an entity
//! and a CIDR range). The decision itself and how decisions apply (latest wins, expiry, the most
//! specific range) are `ipsight_core::labels`; where they are stored, `ipsight_ports::labels`.
//!
//! ```json
//! {"entity":"AIDAEXAMPLE","ip":"198.51.100.7","verdict":"false_positive","who":"alice","when":"2026-01-20T10:00:00Z","why":"new home ISP"}
//! {"entity":"AIDAEXAMPLE","cidr":"198.51.100.0/24","verdict":"true_positive","who":"bob","when":"2026-01-21T09:00:00Z","why":"stolen key","expires":"2026-03-01"}
//! ```
//!
//! Storage is append-only: in S3 every decision is its own object under `labels/`, so two analysts
//! labelling at once never read-modify-write the same object and cannot lose each other's
//! decision; locally it is one JSON lines file that `ipsight label add` appends to. Readers
//! concatenate whatever they find: a file, or every object under the prefix.
//!
//! IPv4 and IPv6 alike: `ip` is read by the tuple contract's one rule ([`crate::ip::classify_ip`]:
//! IPv6 kept in RFC 5952 text, `::ffff:a.b.c.d` is the IPv4 host, zones and brackets refused), and
//! `cidr` is an IPv4 (`/0`–`/32`) or IPv6 (`/0`–`/128`) range.
use std::io::{BufRead, Write};
use std::net::IpAddr;

use ipsight_core::labels::{Cidr, Invalid, Label, Verdict};
use ipsight_core::time::epoch_seconds;
use serde::{Deserialize, Serialize};

use crate::entity::normalise_entity;

/// A decision as a JSON line: the shape of [`Label`], field for field.
#[derive(Serialize, Deserialize)]
struct Line {
    entity: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_ip"
    )]
    ip: Option<IpAddr>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_cidr",
        deserialize_with = "deserialize_cidr"
    )]
    cidr: Option<Cidr>,
    verdict: VerdictLine,
    who: String,
    when: String,
    why: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum VerdictLine {
    FalsePositive,
    TruePositive,
}

impl Line {
    fn into_label(self) -> Label {
        Label {
            entity: self.entity,
            ip: self.ip,
            cidr: self.cidr,
            verdict: match self.verdict {
                VerdictLine::FalsePositive => Verdict::FalsePositive,
                VerdictLine::TruePositive => Verdict::TruePositive,
            },
            who: self.who,
            when: self.when,
            why: self.why,
            expires: self.expires,
        }
    }
}

impl From<&Label> for Line {
    fn from(l: &Label) -> Self {
        Self {
            entity: l.entity.clone(),
            ip: l.ip,
            cidr: l.cidr,
            verdict: match l.verdict {
                Verdict::FalsePositive => VerdictLine::FalsePositive,
                Verdict::TruePositive => VerdictLine::TruePositive,
            },
            who: l.who.clone(),
            when: l.when.clone(),
            why: l.why.clone(),
            expires: l.expires.clone(),
        }
    }
}

/// `ip` as the tuple contract reads a source address (one rule everywhere).
fn deserialize_ip<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    crate::ip::classify_ip(&s)
        .address()
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "ip {s:?} is not an IPv4 or IPv6 address a request can come from"
            ))
        })
}

fn serialize_cidr<S: serde::Serializer>(c: &Option<Cidr>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.collect_str(c),
        None => s.serialize_none(),
    }
}

fn deserialize_cidr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cidr>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .transpose()
}

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("{0}")]
    Invalid(String),
    #[error("{source_name} line {line}: {msg}")]
    Line {
        source_name: String,
        line: usize,
        msg: String,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<Invalid> for LabelError {
    fn from(e: Invalid) -> Self {
        Self::Invalid(e.0)
    }
}

/// Checks a decision before it is stored or after it is read: one target (IP or CIDR), a valid
/// `when` and `expires`, who and why given. The entity is normalised with the tuple contract's rule, so a
/// label on `AROA…:session` applies to the role, as scoring does.
pub fn validated(mut label: Label) -> Result<Label, LabelError> {
    let inv = |m: String| Err(LabelError::Invalid(m));
    label.entity = match normalise_entity(None, Some(&label.entity), None) {
        Some(e) => e,
        None => return inv("entity is empty".into()),
    };
    match (&label.ip, &label.cidr) {
        (Some(_), Some(_)) => return inv("give either ip or cidr, not both".into()),
        (None, None) => return inv("give an ip or a cidr".into()),
        _ => {}
    }
    // Built in code rather than read: the same rule as the reader (the mapped form is IPv4).
    if let Some(ip) = label.ip {
        match crate::ip::classify_ip(&ip.to_string()).address() {
            Some(a) => label.ip = Some(a),
            None => return inv(format!("ip {ip} is not an address a request can come from")),
        }
    }
    if label.who.trim().is_empty() {
        return inv("who is empty: say who made the decision".into());
    }
    if label.why.trim().is_empty() {
        return inv("why is empty: say why (it is shown in the report)".into());
    }
    if epoch_seconds(&label.when).is_none() {
        return inv(format!(
            "when {:?} is not an RFC 3339 timestamp",
            label.when
        ));
    }
    if let Some(x) = &label.expires {
        if epoch_seconds(x).is_none() {
            return inv(format!(
                "expires {x:?} is neither an RFC 3339 timestamp nor YYYY-MM-DD"
            ));
        }
    }
    Ok(label)
}

/// Read JSON lines of labels; blank lines are skipped, a malformed or invalid line is an error
/// naming the source and line (a silently ignored decision would be worse than a failed run).
pub fn read_labels(reader: impl BufRead, source_name: &str) -> Result<Vec<Label>, LabelError> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let err = |msg: String| LabelError::Line {
            source_name: source_name.to_owned(),
            line: i + 1,
            msg,
        };
        let l: Line = serde_json::from_str(&line).map_err(|e| err(e.to_string()))?;
        out.push(validated(l.into_label()).map_err(|e| err(e.to_string()))?);
    }
    Ok(out)
}

pub fn write_label(mut w: impl Write, label: &Label) -> std::io::Result<()> {
    writeln!(w, "{}", to_line(label))
}

/// The JSON line of a decision, without the newline.
pub fn to_line(label: &Label) -> String {
    serde_json::to_string(&Line::from(label)).expect("a label serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipsight_core::labels::LabelSet;

    fn label(entity: &str, target: &str, v: Verdict, when: &str) -> Label {
        let (ip, cidr) = if target.contains('/') {
            (None, Some(target.parse().unwrap()))
        } else {
            (Some(target.parse().unwrap()), None)
        };
        validated(Label {
            entity: entity.into(),
            ip,
            cidr,
            verdict: v,
            who: "alice".into(),
            when: when.into(),
            why: "test".into(),
            expires: None,
        })
        .unwrap()
    }

    #[test]
    fn round_trip_and_validation() {
        let l = label(
            "AROAROLE:i-0abc",
            "198.51.100.7",
            Verdict::FalsePositive,
            "2026-01-20T10:00:00Z",
        );
        assert_eq!(l.entity, "AROAROLE", "session cut as in the tuple contract");
        let line = to_line(&l);
        assert!(line.contains(r#""verdict":"false_positive""#), "{line}");
        assert!(!line.contains("cidr") && !line.contains("expires"));
        let back = read_labels(format!("{line}\n\n{line}\n").as_bytes(), "x").unwrap();
        assert_eq!(back, vec![l.clone(), l.clone()]);
        let mut both = l.clone();
        both.cidr = Some("10.0.0.0/8".parse().unwrap());
        assert!(validated(both).is_err());
        let mut no_why = l.clone();
        no_why.why = " ".into();
        assert!(validated(no_why).is_err());
        let err = read_labels(r#"{"entity":"x"}"#.as_bytes(), "labels.jsonl").unwrap_err();
        assert!(err.to_string().starts_with("labels.jsonl line 1:"), "{err}");
    }

    #[test]
    fn ipv6_pairs_and_ranges() {
        let at = epoch_seconds("2026-02-01").unwrap();
        let text = concat!(
            r#"{"entity":"AIDAX","ip":"2A02:1234:0:0::1","verdict":"false_positive","who":"a","when":"2026-01-20T10:00:00Z","why":"home"}"#,
            "\n",
            r#"{"entity":"AIDAX","cidr":"2a02:1234:0:ab00::/56","verdict":"true_positive","who":"b","when":"2026-01-21T10:00:00Z","why":"neighbour"}"#,
            "\n",
            r#"{"entity":"AIDAX","ip":"::ffff:192.0.2.7","verdict":"false_positive","who":"c","when":"2026-01-22T10:00:00Z","why":"mapped"}"#,
            "\n",
        );
        let labels = read_labels(text.as_bytes(), "labels.jsonl").unwrap();
        // Canonical RFC 5952 text when written back; the mapped form is the IPv4 host.
        assert_eq!(labels[0].target(), "2a02:1234::1");
        assert_eq!(labels[1].target(), "2a02:1234:0:ab00::/56");
        assert_eq!(labels[2].target(), "192.0.2.7");
        assert!(to_line(&labels[0]).contains(r#""ip":"2a02:1234::1""#));
        let set = LabelSet::new(labels);
        let v = |ip: &str| {
            set.lookup("AIDAX", ip.parse().unwrap(), at)
                .map(|l| l.verdict)
        };
        assert_eq!(v("2a02:1234::1"), Some(Verdict::FalsePositive));
        assert_eq!(v("2a02:1234:0:abff::9"), Some(Verdict::TruePositive));
        assert_eq!(v("2a02:1234:0:ac00::9"), None);
        assert_eq!(v("::ffff:192.0.2.7"), Some(Verdict::FalsePositive));
        assert_eq!(v("192.0.2.7"), Some(Verdict::FalsePositive));
        // A range covers its own family only.
        assert_eq!(v("0.0.0.1"), None);
        let fps = set.false_positive_pairs(at);
        assert_eq!(fps.len(), 2);
        assert!(fps.contains(&("AIDAX".into(), "2a02:1234::1".parse().unwrap())));
        // Hostile IPv6 text: a clear error naming the source and line.
        for bad in [
            "fe80::1%eth0",
            "[2001:db8::1]",
            "2001:db8:::1",
            "12345::1",
            "ff02::1",
        ] {
            let line = format!(
                r#"{{"entity":"AIDAX","ip":"{bad}","verdict":"true_positive","who":"a","when":"2026-01-20T10:00:00Z","why":"x"}}"#
            );
            let e = read_labels(line.as_bytes(), "l.jsonl")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("l.jsonl line 1: ip "), "{bad}: {e}");
        }
    }
}
