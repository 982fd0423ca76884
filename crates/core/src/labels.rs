//! Analyst decisions and how they apply: one decision per `<entity, ip>` pair (or an entity and a
//! CIDR range), false or true positive, from a time on, until an optional expiry.
//!
//! Matching ([`LabelSet::lookup`]): for each key (entity + exact IP, or entity + CIDR), the latest
//! decision (by `when`, then by position) replaces the earlier ones; an expired latest decision
//! leaves the key unlabelled (it does not revive the one it replaced). Among the keys covering a
//! pair, the most specific wins: the exact pair, then the longest CIDR prefix. A range only covers
//! addresses of its own family; `::ffff:a.b.c.d` is the IPv4 host.
//!
//! The JSON lines shape, its reading rules (entity normalisation, validation) and the storage
//! layout are elsewhere: `ipsight_formats::labels` and `ipsight_ports::labels`.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::time::epoch_seconds;

/// A value that is not a verdict or a range, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s.trim().replace('-', "_").to_ascii_lowercase().as_str() {
            "false_positive" | "fp" => Ok(Self::FalsePositive),
            "true_positive" | "tp" => Ok(Self::TruePositive),
            _ => Err(Invalid(format!(
                "verdict {s:?}: expected false-positive or true-positive"
            ))),
        }
    }
}

/// An IPv4 or IPv6 range, network bits masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    fn mask128(prefix: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - prefix as u32)
        }
    }

    fn mask32(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix as u32)
        }
    }

    /// Whether the range holds `ip` (an address of the other family never; `::ffff:a.b.c.d` is
    /// the IPv4 host).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                u32::from(a) & Self::mask32(self.prefix) == u32::from(n)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                u128::from(a) & Self::mask128(self.prefix) == u128::from(n)
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad = || {
            Invalid(format!(
                "{s:?} is not a CIDR range (a.b.c.d/0-32 or an IPv6 prefix/0-128)"
            ))
        };
        let (ip, len) = s.trim().split_once('/').ok_or_else(bad)?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        let network = match ip.parse::<IpAddr>().map_err(|_| bad())? {
            IpAddr::V4(v4) if prefix <= 32 => {
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & Self::mask32(prefix)))
            }
            IpAddr::V6(v6) if prefix <= 128 => {
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & Self::mask128(prefix)))
            }
            _ => return Err(bad()),
        };
        Ok(Self { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// One analyst decision (the entity already normalised, the address in canonical form: see
/// `ipsight_formats::labels::validated`).
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub entity: String,
    pub ip: Option<IpAddr>,
    pub cidr: Option<Cidr>,
    pub verdict: Verdict,
    pub who: String,
    /// RFC 3339.
    pub when: String,
    pub why: String,
    /// RFC 3339 or `YYYY-MM-DD` (midnight UTC): the decision no longer applies from then on.
    pub expires: Option<String>,
}

impl Label {
    /// The label's target, for messages: `198.51.100.7` or `198.51.100.0/24`.
    pub fn target(&self) -> String {
        match (&self.ip, &self.cidr) {
            (Some(ip), _) => ip.to_string(),
            (None, Some(c)) => c.to_string(),
            (None, None) => String::new(),
        }
    }

    /// How specific the target is: an exact address is longer than any range of its family.
    fn prefix_len(&self) -> u8 {
        match (self.ip, self.cidr) {
            (Some(IpAddr::V4(_)), _) => 32,
            (Some(IpAddr::V6(_)), _) => 128,
            (None, c) => c.map_or(0, |c| c.prefix),
        }
    }

    fn covers(&self, ip: IpAddr) -> bool {
        match (&self.ip, &self.cidr) {
            (Some(x), _) => *x == ip.to_canonical(),
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
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
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
    pub fn lookup(&self, entity: &str, ip: IpAddr, at_epoch: i64) -> Option<&Label> {
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
    pub fn labelled_pairs(&self, at_epoch: i64) -> Vec<(String, IpAddr, Verdict)> {
        let mut v: Vec<(String, IpAddr, Verdict)> = self
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
    pub fn false_positive_pairs(&self, at_epoch: i64) -> Vec<(String, IpAddr)> {
        let mut v: Vec<(String, IpAddr)> = self
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
    }

    #[test]
    fn ranges_and_verdicts() {
        assert_eq!(
            "10.1.2.3/16".parse::<Cidr>().unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert!("10.1.2.3/33".parse::<Cidr>().is_err());
        assert!("2001:db8::/129".parse::<Cidr>().is_err());
        assert!("2001:db8::/32".parse::<Cidr>().is_ok());
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
        set.insert(l);
        assert_eq!(
            set.lookup("u", "10.1.2.3".parse().unwrap(), t("2026-01-09T23:59:59Z"))
                .map(|l| l.verdict),
            Some(Verdict::FalsePositive)
        );
        assert_eq!(v(&set, "10.1.2.3"), Some(Verdict::FalsePositive), "the /24");
        assert!(set.false_positive_pairs(at).is_empty());
    }
}
