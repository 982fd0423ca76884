//! The IP half of the tuple contract: which `sourceIPAddress` values become a tuple, and in which
//! canonical text. One rule for CloudTrail, GuardDuty, OCSF and pair files.
//!
//! IPv6 (see the README's "IPv6" section):
//! * text is parsed strictly (std's RFC 4291 grammar) and written back in RFC 5952 canonical form
//!   (lower case, leading zeros dropped, the longest run of zero groups as `::`);
//! * `::ffff:a.b.c.d` (IPv4-mapped) is the IPv4 host `a.b.c.d`;
//! * other embedded-IPv4 forms stay IPv6: the deprecated IPv4-compatible `::1.2.3.4` is `::102:304`,
//!   NAT64 `64:ff9b::1.2.3.4` is `64:ff9b::102:304` (the IPv4 host is behind a translator, the
//!   caller's address is the IPv6 one);
//! * rejected as invalid (counted, never a tuple): zone ids (`fe80::1%eth0`: link-local scope, never
//!   in a log of a remote caller), brackets (`[2001:db8::1]`, URL syntax), `:::`, groups of more than
//!   four hex digits, more than eight groups, the unspecified `::` and multicast `ff00::/8`, which
//!   can never be the source of a request.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a source address field holds, as far as IP Insights is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpClass {
    /// A usable IPv4 address (canonical form).
    V4(Ipv4Addr),
    /// A usable IPv6 address. SageMaker IP Insights is IPv4-only: its channel and endpoint never
    /// receive these; ipsight's own model and baseline do.
    V6(Ipv6Addr),
    /// `AWS Internal`: a call made by AWS on the principal's behalf.
    AwsInternal,
    /// A service host name such as `ec2.amazonaws.com` (service-to-service calls).
    ServiceHost,
    /// Neither an address nor a known marker.
    Invalid,
}

impl IpClass {
    /// The address, for the two classes that have one.
    pub fn address(self) -> Option<IpAddr> {
        match self {
            IpClass::V4(v4) => Some(IpAddr::V4(v4)),
            IpClass::V6(v6) => Some(IpAddr::V6(v6)),
            _ => None,
        }
    }
}

/// Classify a `sourceIPAddress` / `ipAddressV4` / `ipAddressV6` value.
///
/// Dotted-quad IPv4 with leading zeros (`010.001.002.003`) is read as **decimal** and returned in
/// canonical form: CloudTrail never writes octal, and anonymised public samples (stratus-red-team)
/// pad octets with zeros. IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is the same host as `1.2.3.4` and is
/// returned as IPv4. Anything with more or fewer than four octets, or an octet above 255, is invalid.
/// IPv6 rules: the module documentation.
pub fn classify_ip(s: &str) -> IpClass {
    let s = s.trim();
    if let Some(v4) = parse_ipv4_decimal(s) {
        return IpClass::V4(v4);
    }
    if s.eq_ignore_ascii_case("AWS Internal") {
        return IpClass::AwsInternal;
    }
    if s.contains(':') {
        return match parse_ipv6_source(s) {
            Some(IpAddr::V4(v4)) => IpClass::V4(v4),
            Some(IpAddr::V6(v6)) => IpClass::V6(v6),
            None => IpClass::Invalid,
        };
    }
    if is_host_name(s) {
        return IpClass::ServiceHost;
    }
    IpClass::Invalid
}

/// IPv6 text as a request source: the mapped form is its IPv4 host; unspecified and multicast
/// addresses (never a source) and anything std's strict grammar refuses are `None`.
fn parse_ipv6_source(s: &str) -> Option<IpAddr> {
    let v6 = s.parse::<Ipv6Addr>().ok()?;
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(IpAddr::V4(v4));
    }
    if v6.is_unspecified() || v6.is_multicast() {
        return None;
    }
    Some(IpAddr::V6(v6))
}

/// Strict dotted-decimal IPv4: exactly four octets of 1–3 ASCII digits, each ≤ 255.
pub fn parse_ipv4_decimal(s: &str) -> Option<Ipv4Addr> {
    let b = s.as_bytes();
    if b.len() < 7 || b.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut n = 0usize;
    let mut val: u32 = 0;
    let mut digits = 0;
    for &c in b {
        match c {
            b'0'..=b'9' => {
                val = val * 10 + (c - b'0') as u32;
                digits += 1;
                if digits > 3 || val > 255 {
                    return None;
                }
            }
            b'.' => {
                if digits == 0 || n >= 3 {
                    return None;
                }
                octets[n] = val as u8;
                n += 1;
                val = 0;
                digits = 0;
            }
            _ => return None,
        }
    }
    if digits == 0 || n != 3 {
        return None;
    }
    octets[3] = val as u8;
    Some(Ipv4Addr::from(octets))
}

/// `ec2.amazonaws.com`, `cloudtrail.amazonaws.com`, `lambda.amazonaws.com.cn` and the like.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.contains('.')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
        && s.bytes().any(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_forms() {
        assert_eq!(
            classify_ip("1.2.3.4"),
            IpClass::V4(Ipv4Addr::new(1, 2, 3, 4))
        );
        assert_eq!(
            classify_ip(" 203.0.113.9 "),
            IpClass::V4(Ipv4Addr::new(203, 0, 113, 9))
        );
        assert_eq!(
            classify_ip("225.178.039.250"),
            IpClass::V4(Ipv4Addr::new(225, 178, 39, 250))
        );
        assert_eq!(
            classify_ip("01.02.03.04"),
            IpClass::V4(Ipv4Addr::new(1, 2, 3, 4))
        );
        assert_eq!(
            classify_ip("::ffff:1.2.3.4"),
            IpClass::V4(Ipv4Addr::new(1, 2, 3, 4))
        );
        for bad in [
            "1.2.3.4.5",
            "1.2.3",
            "256.1.1.1",
            "1..2.3",
            "1.2.3.4 ",
            "0001.2.3.4",
            "",
            "1.2.3.-4",
            "a.b.c.d",
            "1.2.3.4/24",
        ] {
            let c = classify_ip(bad);
            assert!(
                !matches!(c, IpClass::V4(_)) || bad.trim() == "1.2.3.4",
                "{bad:?} -> {c:?}"
            );
        }
    }

    #[test]
    fn markers_and_v6() {
        assert_eq!(classify_ip("AWS Internal"), IpClass::AwsInternal);
        assert_eq!(classify_ip("ec2.amazonaws.com"), IpClass::ServiceHost);
        assert_eq!(
            classify_ip("cloudtrail.amazonaws.com"),
            IpClass::ServiceHost
        );
        assert!(matches!(classify_ip("2001:db8::1"), IpClass::V6(_)));
        assert_eq!(classify_ip("2001:db8::zz"), IpClass::Invalid);
        assert_eq!(classify_ip("not an ip"), IpClass::Invalid);
        assert_eq!(classify_ip("1.2.3.4.5"), IpClass::Invalid);
    }

    /// Hostile and unusual IPv6 text: each is a documented canonical result or a rejection.
    #[test]
    fn ipv6_text_canonical_or_rejected() {
        let canonical = |s: &str| match classify_ip(s) {
            IpClass::V6(v6) => Some(v6.to_string()),
            IpClass::V4(v4) => Some(v4.to_string()),
            _ => None,
        };
        for (text, want) in [
            ("2001:DB8::1", "2001:db8::1"),
            ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("2001:db8::0:1", "2001:db8::1"),
            (
                " 2a01:e0a:3c8:7b0:1cf3:e8f4:aa40:3c01 ",
                "2a01:e0a:3c8:7b0:1cf3:e8f4:aa40:3c01",
            ),
            ("::ffff:1.2.3.4", "1.2.3.4"),
            ("::FFFF:0102:0304", "1.2.3.4"),
            ("::1.2.3.4", "::102:304"),
            ("64:ff9b::1.2.3.4", "64:ff9b::102:304"),
            ("::1", "::1"),
            ("fe80::1", "fe80::1"),
            ("fd00:ec2::23", "fd00:ec2::23"),
        ] {
            assert_eq!(canonical(text).as_deref(), Some(want), "{text:?}");
        }
        for bad in [
            "fe80::1%eth0",
            "fe80::1%25eth0",
            "[2001:db8::1]",
            "[2001:db8::1]:443",
            ":::",
            "1:::2",
            "2001:db8:00000::1",
            "2001:db8:1:2:3:4:5:6:7",
            "2001:db8::1::2",
            "::",
            "ff02::1",
            "ffff:ffff::1",
            "2001:db8::1/64",
            "2001:db8::1.2.3",
            "2001:db8::256.1.1.1",
            "::ffff:1.2.3.4.5",
            "2001:db8:\u{0}::1",
            ":",
        ] {
            assert_eq!(classify_ip(bad), IpClass::Invalid, "{bad:?}");
        }
    }
}
