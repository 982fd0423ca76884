//! Analyst labels: one record per decision on an `<entity, ip>` pair (or an entity and a CIDR range),
//! as JSON lines.
//!
//! ```json
//! {"entity":"AIDAEXAMPLE","ip":"198.51.100.7","verdict":"false_positive","who":"alice","when":"2026-01-20T10:00:00Z","why":"new home ISP"}
//! {"entity":"AIDAEXAMPLE","cidr":"198.51.100.0/24","verdict":"true_positive","who":"bob","when":"2026-01-21T09:00:00Z","why":"stolen key","expires":"2026-03-01"}
//! ```
//!
//! Storage is append-only: in S3 every decision is its own object under `labels/` (see
//! [`object_key`]), so two analysts labelling at once never read-modify-write the same object and
//! cannot lose each other's decision; locally it is one JSON lines file that `ipsight label add`
//! appends to. Readers concatenate whatever they find: a file, or every object under the prefix.
//!
//! Matching ([`LabelSet::lookup`]): for each key (entity + exact IP, or entity + CIDR), the latest
//! decision (by `when`, then by position) replaces the earlier ones; an expired latest decision
//! leaves the key unlabelled (it does not revive the one it replaced). Among the keys covering a
//! pair, the most specific wins: the exact pair, then the longest CIDR prefix.
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::entity::normalise_entity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The pair is normal: suppress its alerts and teach the model.
    FalsePositive,
    /// The pair is malicious: keep it on top.
    TruePositive,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::FalsePositive => "false_positive",
            Self::TruePositive => "true_positive",
        }
    }
}

impl std::str::FromStr for Verdict {
    type Err = LabelError;
    fn from_str(s: &str) -> Result<Self, LabelError> {
        match s.trim().replace('-', "_").to_ascii_lowercase().as_str() {
            "false_positive" | "fp" => Ok(Self::FalsePositive),
            "true_positive" | "tp" => Ok(Self::TruePositive),
            _ => Err(LabelError::Invalid(format!(
                "verdict {s:?}: expected false-positive or true-positive"
            ))),
        }
    }
}

/// An IPv4 range, network bits masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix as u32)
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.network)
    }
}

impl std::str::FromStr for Cidr {
    type Err = LabelError;
    fn from_str(s: &str) -> Result<Self, LabelError> {
        let bad = || LabelError::Invalid(format!("{s:?} is not an IPv4 CIDR range (a.b.c.d/n)"));
        let (ip, len) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Self {
            network: Ipv4Addr::from(u32::from(ip) & Self::mask(prefix)),
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One analyst decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub entity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<Cidr>,
    pub verdict: Verdict,
    pub who: String,
    /// RFC 3339.
    pub when: String,
    pub why: String,
    /// RFC 3339 or `YYYY-MM-DD` (midnight UTC): the decision no longer applies from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
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

/// Seconds since the Unix epoch of an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.f](Z|±HH:MM)`) or
/// of a bare date (midnight UTC).
pub fn epoch_seconds(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy.rem_euclid(400);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    if b.len() == 10 {
        return Some(days * 86_400);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &r[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let h: i64 = o[1..3].parse().ok()?;
            let m: i64 = o[4..6].parse().ok()?;
            let v = h * 3600 + m * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

impl Label {
    /// Checks a decision before it is stored: one target (IP or CIDR), a valid `when` and
    /// `expires`, who and why given. The entity is normalised with the tuple contract's rule, so a
    /// label on `AROA…:session` applies to the role, as scoring does.
    pub fn validated(mut self) -> Result<Self, LabelError> {
        let inv = |m: String| Err(LabelError::Invalid(m));
        self.entity = match normalise_entity(None, Some(&self.entity), None) {
            Some(e) => e,
            None => return inv("entity is empty".into()),
        };
        match (&self.ip, &self.cidr) {
            (Some(_), Some(_)) => return inv("give either ip or cidr, not both".into()),
            (None, None) => return inv("give an ip or a cidr".into()),
            _ => {}
        }
        if self.who.trim().is_empty() {
            return inv("who is empty: say who made the decision".into());
        }
        if self.why.trim().is_empty() {
            return inv("why is empty: say why (it is shown in the report)".into());
        }
        if epoch_seconds(&self.when).is_none() {
            return inv(format!("when {:?} is not an RFC 3339 timestamp", self.when));
        }
        if let Some(x) = &self.expires {
            if epoch_seconds(x).is_none() {
                return inv(format!(
                    "expires {x:?} is neither an RFC 3339 timestamp nor YYYY-MM-DD"
                ));
            }
        }
        Ok(self)
    }

    /// The label's target, for messages: `198.51.100.7` or `198.51.100.0/24`.
    pub fn target(&self) -> String {
        match (&self.ip, &self.cidr) {
            (Some(ip), _) => ip.to_string(),
            (None, Some(c)) => c.to_string(),
            (None, None) => String::new(),
        }
    }

    fn prefix_len(&self) -> u8 {
        if self.ip.is_some() {
            32
        } else {
            self.cidr.map_or(0, |c| c.prefix)
        }
    }

    fn covers(&self, ip: Ipv4Addr) -> bool {
        match (&self.ip, &self.cidr) {
            (Some(x), _) => *x == ip,
            (None, Some(c)) => c.contains(ip),
            _ => false,
        }
    }

    pub fn is_expired_at(&self, at_epoch: i64) -> bool {
        self.expires
            .as_deref()
            .and_then(epoch_seconds)
            .is_some_and(|x| at_epoch >= x)
    }

    /// One line of explanation: `false positive (alice, 2026-01-20T10:00:00Z: new home ISP)`.
    pub fn describe(&self) -> String {
        let v = match self.verdict {
            Verdict::FalsePositive => "false positive",
            Verdict::TruePositive => "true positive",
        };
        let exp = self
            .expires
            .as_ref()
            .map(|x| format!(", until {x}"))
            .unwrap_or_default();
        format!(
            "labelled {v} for {} by {} at {}{exp}: {}",
            self.target(),
            self.who,
            self.when,
            self.why
        )
    }

    /// The JSON line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a label serialises")
    }
}

/// The S3 key of one decision under `prefix`: dated, then a hash of the decision itself, so the same
/// decision written twice (a retry) lands on the same key, and two different ones never collide.
pub fn object_key(prefix: &str, label: &Label) -> String {
    let mut p = prefix.to_owned();
    if !p.is_empty() && !p.ends_with('/') {
        p.push('/');
    }
    let line = label.to_line();
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
        let l: Label = serde_json::from_str(&line).map_err(|e| err(e.to_string()))?;
        out.push(l.validated().map_err(|e| err(e.to_string()))?);
    }
    Ok(out)
}

pub fn write_label(mut w: impl Write, label: &Label) -> std::io::Result<()> {
    writeln!(w, "{}", label.to_line())
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(Ipv4Addr),
    Cidr(Cidr),
}

/// Every decision, in the order read, indexed for lookups by entity.
#[derive(Debug, Clone, Default)]
pub struct LabelSet {
    /// Per entity: the latest decision of each key.
    latest: HashMap<String, HashMap<Key, Label>>,
    /// Decisions read (before replacement).
    pub decisions: usize,
}

impl LabelSet {
    pub fn new(labels: impl IntoIterator<Item = Label>) -> Self {
        let mut set = Self::default();
        for l in labels {
            set.insert(l);
        }
        set
    }

    pub fn insert(&mut self, l: Label) {
        self.decisions += 1;
        let key = match (l.ip, l.cidr) {
            (Some(ip), _) => Key::Ip(ip),
            (None, Some(c)) => Key::Cidr(c),
            (None, None) => return,
        };
        let slot = self.latest.entry(l.entity.clone()).or_default();
        let when = epoch_seconds(&l.when).unwrap_or(i64::MIN);
        match slot.get(&key) {
            // Equal times: the later one read wins (append order).
            Some(old) if epoch_seconds(&old.when).unwrap_or(i64::MIN) > when => {}
            _ => {
                slot.insert(key, l);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// The decision that applies to the pair at `at_epoch` (seconds), if any: the most specific
    /// unexpired key covering the IP.
    pub fn lookup(&self, entity: &str, ip: Ipv4Addr, at_epoch: i64) -> Option<&Label> {
        self.latest
            .get(entity)?
            .values()
            .filter(|l| l.covers(ip) && !l.is_expired_at(at_epoch))
            .max_by_key(|l| l.prefix_len())
    }

    /// The current decisions (latest per key), sorted by entity, target, time.
    pub fn current(&self) -> Vec<&Label> {
        let mut v: Vec<&Label> = self.latest.values().flat_map(|m| m.values()).collect();
        v.sort_by(|a, b| {
            (&a.entity, a.prefix_len(), a.target(), &a.when).cmp(&(
                &b.entity,
                b.prefix_len(),
                b.target(),
                &b.when,
            ))
        });
        v
    }

    /// Unexpired decisions on exact pairs, both verdicts: what threshold re-calibration judges
    /// a model on. Sorted.
    pub fn labelled_pairs(&self, at_epoch: i64) -> Vec<(String, Ipv4Addr, Verdict)> {
        let mut v: Vec<(String, Ipv4Addr, Verdict)> = self
            .latest
            .iter()
            .flat_map(|(e, m)| {
                m.values().filter_map(move |l| {
                    (!l.is_expired_at(at_epoch))
                        .then_some(())
                        .and(l.ip.map(|ip| (e.clone(), ip, l.verdict)))
                })
            })
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    }

    /// Unexpired false-positive decisions on exact pairs: what retraining adds to the training set.
    /// (A CIDR false positive says "anything in this range is fine for this principal"; its
    /// addresses are not known, so only exact pairs are taught.)
    pub fn false_positive_pairs(&self, at_epoch: i64) -> Vec<(String, Ipv4Addr)> {
        let mut v: Vec<(String, Ipv4Addr)> = self
            .latest
            .iter()
            .flat_map(|(e, m)| {
                m.values().filter_map(move |l| {
                    (l.verdict == Verdict::FalsePositive && !l.is_expired_at(at_epoch))
                        .then_some(())
                        .and(l.ip.map(|ip| (e.clone(), ip)))
                })
            })
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(entity: &str, target: &str, v: Verdict, when: &str) -> Label {
        let (ip, cidr) = if target.contains('/') {
            (None, Some(target.parse().unwrap()))
        } else {
            (Some(target.parse().unwrap()), None)
        };
        Label {
            entity: entity.into(),
            ip,
            cidr,
            verdict: v,
            who: "alice".into(),
            when: when.into(),
            why: "test".into(),
            expires: None,
        }
        .validated()
        .unwrap()
    }

    #[test]
    fn times() {
        assert_eq!(epoch_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(epoch_seconds("1970-01-02"), Some(86_400));
        assert_eq!(
            epoch_seconds("2026-01-20T10:00:00+01:00"),
            epoch_seconds("2026-01-20T09:00:00Z")
        );
        assert_eq!(
            epoch_seconds("2026-01-20T09:00:00.123Z"),
            epoch_seconds("2026-01-20T09:00:00Z")
        );
        assert_eq!(epoch_seconds("2026-01-20T09:00:00"), None);
        assert_eq!(epoch_seconds("yesterday"), None);
        assert_eq!(epoch_seconds("2026-13-01"), None);
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
        let line = l.to_line();
        assert!(line.contains(r#""verdict":"false_positive""#), "{line}");
        assert!(!line.contains("cidr") && !line.contains("expires"));
        let back = read_labels(format!("{line}\n\n{line}\n").as_bytes(), "x").unwrap();
        assert_eq!(back, vec![l.clone(), l.clone()]);
        let mut both = l.clone();
        both.cidr = Some("10.0.0.0/8".parse().unwrap());
        assert!(both.validated().is_err());
        let mut no_why = l.clone();
        no_why.why = " ".into();
        assert!(no_why.validated().is_err());
        let err = read_labels(r#"{"entity":"x"}"#.as_bytes(), "labels.jsonl").unwrap_err();
        assert!(err.to_string().starts_with("labels.jsonl line 1:"), "{err}");
        assert_eq!(
            "10.1.2.3/16".parse::<Cidr>().unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert!("10.1.2.3/33".parse::<Cidr>().is_err());
        assert_eq!(
            "False-Positive".parse::<Verdict>().unwrap(),
            Verdict::FalsePositive
        );
    }

    #[test]
    fn matching_rules() {
        let t = |s| epoch_seconds(s).unwrap();
        let mut set = LabelSet::new([
            label(
                "u",
                "10.0.0.0/8",
                Verdict::TruePositive,
                "2026-01-01T00:00:00Z",
            ),
            label(
                "u",
                "10.1.2.0/24",
                Verdict::FalsePositive,
                "2026-01-02T00:00:00Z",
            ),
            label(
                "u",
                "10.1.2.3",
                Verdict::TruePositive,
                "2026-01-03T00:00:00Z",
            ),
        ]);
        let at = t("2026-02-01");
        let v =
            |set: &LabelSet, ip: &str| set.lookup("u", ip.parse().unwrap(), at).map(|l| l.verdict);
        assert_eq!(
            v(&set, "10.1.2.3"),
            Some(Verdict::TruePositive),
            "exact pair first"
        );
        assert_eq!(
            v(&set, "10.1.2.4"),
            Some(Verdict::FalsePositive),
            "longest prefix"
        );
        assert_eq!(v(&set, "10.9.9.9"), Some(Verdict::TruePositive));
        assert_eq!(v(&set, "11.0.0.1"), None);
        assert_eq!(set.lookup("other", "10.1.2.3".parse().unwrap(), at), None);
        // A later decision on the same key replaces the earlier one, whatever the read order.
        set.insert(label(
            "u",
            "10.1.2.3",
            Verdict::FalsePositive,
            "2026-01-04T00:00:00Z",
        ));
        set.insert(label(
            "u",
            "10.1.2.3",
            Verdict::TruePositive,
            "2025-12-31T00:00:00Z",
        ));
        assert_eq!(v(&set, "10.1.2.3"), Some(Verdict::FalsePositive));
        assert_eq!(set.decisions, 5);
        assert_eq!(set.current().len(), 3);
        assert_eq!(
            set.false_positive_pairs(at),
            vec![("u".to_owned(), "10.1.2.3".parse().unwrap())]
        );
        // Expiry: from the expiry on, the key is unlabelled and the broader range applies.
        let mut l = label(
            "u",
            "10.1.2.3",
            Verdict::FalsePositive,
            "2026-01-05T00:00:00Z",
        );
        l.expires = Some("2026-01-10".into());
        set.insert(l.validated().unwrap());
        assert_eq!(
            set.lookup("u", "10.1.2.3".parse().unwrap(), t("2026-01-09T23:59:59Z"))
                .map(|l| l.verdict),
            Some(Verdict::FalsePositive)
        );
        assert_eq!(v(&set, "10.1.2.3"), Some(Verdict::FalsePositive), "the /24");
        assert!(set.false_positive_pairs(at).is_empty());
    }

    #[test]
    fn keys_are_dated_and_stable() {
        let l = label(
            "u",
            "10.1.2.3",
            Verdict::TruePositive,
            "2026-01-03T04:05:06Z",
        );
        let k = object_key("labels", &l);
        assert!(k.starts_with("labels/2026/01/03/20260103T040506-"), "{k}");
        assert!(k.ends_with(".jsonl"));
        assert_eq!(k, object_key("labels/", &l));
        let mut other = l.clone();
        other.why = "different".into();
        assert_ne!(k, object_key("labels/", &other));
    }
}
