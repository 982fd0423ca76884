//! The tuning file's rules and how they apply: `allow` entries (a range, an ASN, a country, for
//! some principals, until a day), AWS acting for a principal, the learning period. Rules are pure
//! data here: the callers supply what they know about a pair ([`Subject`]) and the day it is
//! judged on. The TOML schema and its parsing are `ipsight_formats::tuning`.
use std::net::IpAddr;

/// The services of AWS's `ip-ranges.json` whose addresses customers (and so attackers) can rent:
/// an API call from one of them is not AWS acting on its own.
pub const CUSTOMER_SERVICES: &[&str] = &["EC2", "GLOBALACCELERATOR"];

/// An address range, IPv4 or IPv6, host bits masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    len: u8,
}

impl Net {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (a, l) = match text.split_once('/') {
            Some((a, l)) => (a.trim(), Some(l.trim())),
            None => (text.trim(), None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("prefix length {l:?} is not 0 to {max}"))?,
        };
        Ok(Self {
            addr: mask(addr, len),
            len,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - len as u32).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// One `allow` entry: every condition it names must hold (a CIDR *and* an ASN, say); with
/// principals, only for them.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowRule {
    /// Position in the `allow` array (0-based) and the line it starts on.
    pub index: usize,
    pub line: usize,
    pub cidr: Option<Net>,
    pub asn: Option<u32>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    /// Empty: every principal.
    pub principals: Vec<String>,
    /// Last day the rule applies (days since 1970-01-01); `None` = `never` expires.
    pub expires: Option<i64>,
    pub expires_text: String,
    pub reason: String,
}

impl AllowRule {
    fn what(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = &self.cidr {
            parts.push(format!("cidr {c}"));
        }
        if let Some(a) = self.asn {
            parts.push(format!("asn {a}"));
        }
        if let Some(c) = &self.country {
            parts.push(format!("country {c}"));
        }
        if !self.principals.is_empty() {
            parts.push(format!("principal {}", self.principals.join("|")));
        }
        parts.join(", ")
    }

    /// Needs an ASN or country, which only enrichment (or GuardDuty) supplies.
    pub fn needs_network(&self) -> bool {
        self.asn.is_some() || self.country.is_some()
    }

    pub fn is_active(&self, day: i64) -> bool {
        self.expires.is_none_or(|e| day <= e)
    }

    fn matches(&self, s: &Subject<'_>) -> bool {
        (self.principals.is_empty() || self.principals.iter().any(|p| p == s.entity))
            && self
                .cidr
                .is_none_or(|c| s.ip.is_some_and(|ip| c.contains(ip)))
            && self.asn.is_none_or(|a| s.asn == Some(a))
            && self
                .country
                .as_deref()
                .is_none_or(|c| s.country.is_some_and(|x| x.eq_ignore_ascii_case(c)))
    }
}

/// `[aws_callers]`: AWS acting for a principal is not the principal acting from a new place.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AwsCallers {
    /// Exclude CloudTrail events with `userIdentity.invokedBy` (an AWS service made the call).
    pub invoked_by: bool,
    /// Exclude addresses AWS publishes for a service other than `AMAZON` (the superset) and the
    /// customer services.
    pub service_addresses: bool,
    /// Services whose addresses customers rent (default [`CUSTOMER_SERVICES`]): never excluded.
    pub customer_services: Vec<String>,
}

/// How long the pipeline has known the principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrincipalAge {
    /// Nothing is known (no baseline): the learning period cannot apply.
    #[default]
    Unknown,
    /// The baseline has never seen the principal (`history: new_principal`).
    New,
    /// First seen on this day (days since 1970-01-01).
    FirstSeen(i64),
}

/// What a caller knows about a pair when it asks whether the tuning suppresses it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub entity: &'a str,
    pub ip: Option<IpAddr>,
    pub asn: Option<u32>,
    pub country: Option<&'a str>,
    /// AWS services whose published ranges hold the address (`network.aws.services`).
    pub aws_services: Option<&'a [String]>,
    /// CloudTrail `userIdentity.invokedBy` of the events behind the pair.
    pub invoked_by: Option<&'a str>,
    pub principal: PrincipalAge,
}

/// Why a pair is suppressed: the kind of rule and the rule itself, as written in reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    /// `allow`, `invoked_by`, `aws_service_address`, `learning`, `dedup`.
    pub kind: &'static str,
    /// `tuning.toml allow[0] (line 3): cidr 203.0.113.0/24 — "Paris office egress", expires 2027-06-30`.
    pub rule: String,
}

/// A validated tuning file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tuning {
    /// Where it came from (file name or S3 URI), named in every rule text.
    pub name: String,
    pub allow: Vec<AllowRule>,
    pub aws_callers: AwsCallers,
    /// `[learning] days`: no alerts for a principal in its first days.
    pub learning_days: Option<u32>,
    /// `[alerts] dedup_hours`, in seconds: the same pair alerts at most once per window.
    pub dedup_window_secs: Option<i64>,
}

impl Tuning {
    /// Rules past their expiry on `day` (days since 1970-01-01): no longer applied, worth a line
    /// in the logs so someone renews or deletes them.
    pub fn expired(&self, day: i64) -> impl Iterator<Item = &AllowRule> {
        self.allow.iter().filter(move |r| !r.is_active(day))
    }

    /// Some rule needs an ASN or country: without an IP database it can only match what
    /// GuardDuty itself says about the address.
    pub fn needs_network(&self) -> bool {
        self.allow.iter().any(AllowRule::needs_network)
    }

    /// The first rule that suppresses the pair on `day`, in this order: AWS service callers
    /// (`invokedBy`, then AWS service addresses), `allow` entries (in file order), the learning
    /// period.
    pub fn check(&self, s: &Subject<'_>, day: i64) -> Option<Suppressed> {
        let name = &self.name;
        if self.aws_callers.invoked_by {
            if let Some(by) = s.invoked_by {
                return Some(Suppressed {
                    kind: "invoked_by",
                    rule: format!(
                        "{name} aws_callers.invoked_by: called by the AWS service {by} for the principal"
                    ),
                });
            }
        }
        if self.aws_callers.service_addresses {
            if let Some(services) = s.aws_services {
                let customer = services
                    .iter()
                    .any(|x| self.aws_callers.customer_services.iter().any(|c| c == x));
                let service: Vec<&str> = services
                    .iter()
                    .map(String::as_str)
                    .filter(|x| *x != "AMAZON")
                    .collect();
                if !customer && !service.is_empty() {
                    return Some(Suppressed {
                        kind: "aws_service_address",
                        rule: format!(
                            "{name} aws_callers.service_addresses: an address AWS publishes for {}",
                            service.join(", ")
                        ),
                    });
                }
            }
        }
        if let Some(r) = self.allow.iter().find(|r| r.is_active(day) && r.matches(s)) {
            return Some(Suppressed {
                kind: "allow",
                rule: format!(
                    "{name} allow[{}] (line {}): {} — {:?}, expires {}",
                    r.index,
                    r.line,
                    r.what(),
                    r.reason,
                    r.expires_text
                ),
            });
        }
        if let Some(days) = self.learning_days {
            let first = match s.principal {
                PrincipalAge::Unknown => None,
                PrincipalAge::New => Some(day),
                PrincipalAge::FirstSeen(d) => Some(d),
            };
            if let Some(first) = first.filter(|f| day - f < days as i64) {
                return Some(Suppressed {
                    kind: "learning",
                    rule: format!(
                        "{name} learning.days = {days}: principal {} (day {} of {days})",
                        if first == day {
                            "new to the baseline".to_owned()
                        } else {
                            format!("first seen {}", day_text(first))
                        },
                        day - first + 1
                    ),
                });
            }
        }
        None
    }
}

fn day_text(day: i64) -> String {
    let (y, m, d) = crate::time::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}
