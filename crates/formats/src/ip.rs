//! The IP half of the tuple contract: which `sourceIPAddress` values become a tuple.
use std::net::{Ipv4Addr, Ipv6Addr};

/// What a source address field holds, as far as IP Insights is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpClass {
    /// A usable IPv4 address (canonical form).
    V4(Ipv4Addr),
    /// An IPv6 address: SageMaker IP Insights is IPv4-only, so no tuple by default.
    V6(Ipv6Addr),
    /// `AWS Internal`: a call made by AWS on the principal's behalf.
    AwsInternal,
    /// A service host name such as `ec2.amazonaws.com` (service-to-service calls).
    ServiceHost,
    /// Neither an address nor a known marker.
    Invalid,
}

/// Classify a `sourceIPAddress` / `ipAddressV4` value.
///
/// Dotted-quad IPv4 with leading zeros (`010.001.002.003`) is read as **decimal** and returned in
/// canonical form: CloudTrail never writes octal, and anonymised public samples (stratus-red-team)
/// pad octets with zeros. IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is the same host as `1.2.3.4` and is
/// returned as IPv4. Anything with more or fewer than four octets, or an octet above 255, is invalid.
pub fn classify_ip(s: &str) -> IpClass {
    let s = s.trim();
    if let Some(v4) = parse_ipv4_decimal(s) {
        return IpClass::V4(v4);
    }
    if s.eq_ignore_ascii_case("AWS Internal") {
        return IpClass::AwsInternal;
    }
    if s.contains(':') {
        if let Ok(v6) = s.parse::<Ipv6Addr>() {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpClass::V4(v4);
            }
            return IpClass::V6(v6);
        }
        return IpClass::Invalid;
    }
    if is_host_name(s) {
        return IpClass::ServiceHost;
    }
    IpClass::Invalid
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
}
