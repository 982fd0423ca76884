//! Trusted and threat IP lists in GuardDuty's plain-text format: one IPv4/IPv6 address or CIDR range
//! per line; blank lines and `#` comments ignored (GuardDuty's TXT list format, so the lists an
//! account already uploads to GuardDuty can be reused as is).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, thiserror::Error)]
#[error("{source_name} line {line}: {text:?} is not an IP address or CIDR range")]
pub struct ListError {
    pub source_name: String,
    pub line: usize,
    pub text: String,
}

/// A parsed list of IPv4 and IPv6 addresses and ranges.
#[derive(Debug, Clone, Default)]
pub struct IpList {
    /// Where the list came from (file name or S3 URI), named in explanations.
    pub name: String,
    /// `(network, prefix length)`, network already masked.
    v4: Vec<(u32, u8)>,
    v6: Vec<(u128, u8)>,
    pub ipv6_entries: usize,
}

impl IpList {
    pub fn parse(name: &str, text: &str) -> Result<Self, ListError> {
        let mut list = IpList {
            name: name.to_owned(),
            ..Default::default()
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = || ListError {
                source_name: name.to_owned(),
                line: i + 1,
                text: line.to_owned(),
            };
            let (addr, len) = match line.split_once('/') {
                Some((a, l)) => (a.trim(), Some(l.trim().parse::<u8>().map_err(|_| err())?)),
                None => (line, None),
            };
            match addr.parse::<IpAddr>().map_err(|_| err())? {
                IpAddr::V4(v4) => {
                    let len = len.unwrap_or(32);
                    if len > 32 {
                        return Err(err());
                    }
                    list.v4.push((u32::from(v4) & mask(len), len));
                }
                IpAddr::V6(v6) => {
                    let len = len.unwrap_or(128);
                    if len > 128 {
                        return Err(err());
                    }
                    list.v6.push((u128::from(v6) & mask6(len), len));
                    list.ipv6_entries += 1;
                }
            }
        }
        Ok(list)
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The most specific entry containing `ip`, as `a.b.c.d/len` or `2001:db8::/32`.
    pub fn matching(&self, ip: IpAddr) -> Option<String> {
        match ip {
            IpAddr::V4(ip) => {
                let x = u32::from(ip);
                self.v4
                    .iter()
                    .filter(|(net, len)| x & mask(*len) == *net)
                    .max_by_key(|(_, len)| *len)
                    .map(|(net, len)| format!("{}/{len}", Ipv4Addr::from(*net)))
            }
            IpAddr::V6(ip) => {
                let x = u128::from(ip);
                self.v6
                    .iter()
                    .filter(|(net, len)| x & mask6(*len) == *net)
                    .max_by_key(|(_, len)| *len)
                    .map(|(net, len)| format!("{}/{len}", Ipv6Addr::from(*net)))
            }
        }
    }
}

fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - len as u32).unwrap_or(0)
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardduty_txt_format() {
        let l = IpList::parse(
            "trusted.txt",
            "# office\n203.0.113.0/24\n\n198.51.100.7 # vpn\n2001:db8::/32\n0.0.0.0/0\n",
        )
        .unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(
            l.matching("203.0.113.77".parse().unwrap()).as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            l.matching("198.51.100.7".parse().unwrap()).as_deref(),
            Some("198.51.100.7/32")
        );
        assert_eq!(
            l.matching("8.8.8.8".parse().unwrap()).as_deref(),
            Some("0.0.0.0/0")
        );
        let e = IpList::parse("t.txt", "1.2.3.4\n10.0.0.0/33\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("t.txt line 2"));
        assert!(IpList::parse("t", "example.com").is_err());
        assert_eq!(
            l.matching("2001:db8:5::1".parse().unwrap()).as_deref(),
            Some("2001:db8::/32")
        );
        assert_eq!(l.matching("2001:db9::1".parse().unwrap()), None);
        // Host bits set in a CIDR are masked, as GuardDuty does.
        let l = IpList::parse("t", "10.1.2.3/8").unwrap();
        assert!(l.matching("10.200.0.1".parse().unwrap()).is_some());
    }
}
