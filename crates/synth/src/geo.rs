//! Plausible public address space: countries, their consumer ISPs' /16s, and AWS EC2 ranges.
//!
//! The /16s are real-looking ISP allocations (chosen to be public, routable and far from the
//! private, CGNAT, loopback, link-local, multicast and documentation ranges), fixed in the source so
//! the same seed always yields the same addresses. They are not claimed to be current allocations;
//! they only need to look like the traffic a security team sees, and to give every country a
//! distinct neighbourhood so that travel and attacks land in address space the user never used.
use std::net::{Ipv4Addr, Ipv6Addr};

/// An access provider: the name and ASN GuardDuty would report, and a /16 it announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isp {
    /// Organisation / ISP name.
    pub name: &'static str,
    /// Autonomous system number.
    pub asn: u32,
    /// The first two octets of the /16.
    pub net16: [u8; 2],
}

/// A country users live in, work in or travel to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country {
    /// English name, as GuardDuty's `countryName`.
    pub name: &'static str,
    /// ISO 3166 alpha-2 code.
    pub code: &'static str,
    /// Typical UTC offset in hours (working hours are generated in local time).
    pub utc_offset: i32,
    /// A city for GuardDuty's `cityName`.
    pub city: &'static str,
    /// Consumer and business ISPs with one /16 each.
    pub isps: &'static [Isp],
    /// Preferred AWS region for people in this country.
    pub region: &'static str,
}

const fn isp(name: &'static str, asn: u32, a: u8, b: u8) -> Isp {
    Isp {
        name,
        asn,
        net16: [a, b],
    }
}

/// The fixed country table; index order is part of the determinism contract (append only).
pub static COUNTRIES: &[Country] = &[
    Country {
        name: "United States",
        code: "US",
        utc_offset: -5,
        city: "Ashburn",
        region: "us-east-1",
        isps: &[
            isp("Comcast Cable Communications", 7922, 73, 162),
            isp("Charter Communications", 20115, 71, 84),
            isp("Verizon Business", 701, 108, 46),
            isp("AT&T Services", 7018, 99, 112),
        ],
    },
    Country {
        name: "United Kingdom",
        code: "GB",
        utc_offset: 0,
        city: "London",
        region: "eu-west-1",
        isps: &[
            isp("British Telecommunications", 2856, 86, 150),
            isp("Virgin Media", 5089, 82, 24),
            isp("Sky Broadband", 5607, 90, 216),
        ],
    },
    Country {
        name: "Germany",
        code: "DE",
        utc_offset: 1,
        city: "Frankfurt am Main",
        region: "eu-west-1",
        isps: &[
            isp("Deutsche Telekom AG", 3320, 84, 158),
            isp("Vodafone GmbH", 3209, 88, 70),
            isp("Telefonica Germany", 6805, 95, 91),
        ],
    },
    Country {
        name: "France",
        code: "FR",
        utc_offset: 1,
        city: "Paris",
        region: "eu-west-1",
        isps: &[
            isp("Orange S.A.", 3215, 90, 24),
            isp("Free SAS", 12322, 82, 64),
            isp("Societe Francaise du Radiotelephone", 15557, 109, 8),
        ],
    },
    Country {
        name: "Netherlands",
        code: "NL",
        utc_offset: 1,
        city: "Amsterdam",
        region: "eu-west-1",
        isps: &[
            isp("KPN B.V.", 1136, 77, 160),
            isp("Ziggo B.V.", 33915, 84, 104),
        ],
    },
    Country {
        name: "India",
        code: "IN",
        utc_offset: 5,
        city: "Bengaluru",
        region: "us-west-2",
        isps: &[
            isp("Bharti Airtel", 24560, 122, 161),
            isp("Reliance Jio Infocomm", 55836, 49, 36),
        ],
    },
    Country {
        name: "Japan",
        code: "JP",
        utc_offset: 9,
        city: "Tokyo",
        region: "us-west-2",
        isps: &[
            isp("NTT Communications", 4713, 153, 156),
            isp("KDDI Corporation", 2516, 106, 128),
            isp("SoftBank Corp.", 17676, 126, 72),
        ],
    },
    Country {
        name: "Brazil",
        code: "BR",
        utc_offset: -3,
        city: "Sao Paulo",
        region: "us-east-1",
        isps: &[
            isp("Claro NXT Telecomunicacoes", 28573, 177, 32),
            isp("Telefonica Brasil", 18881, 187, 10),
        ],
    },
    Country {
        name: "Australia",
        code: "AU",
        utc_offset: 10,
        city: "Sydney",
        region: "us-west-2",
        isps: &[
            isp("Telstra Corporation", 1221, 101, 160),
            isp("TPG Telecom", 7545, 58, 96),
        ],
    },
    Country {
        name: "Canada",
        code: "CA",
        utc_offset: -5,
        city: "Toronto",
        region: "us-east-1",
        isps: &[
            isp("Rogers Communications", 812, 99, 224),
            isp("Bell Canada", 577, 70, 48),
        ],
    },
    Country {
        name: "Singapore",
        code: "SG",
        utc_offset: 8,
        city: "Singapore",
        region: "us-west-2",
        isps: &[
            isp("Singapore Telecommunications", 9506, 116, 86),
            isp("StarHub Ltd", 4657, 118, 200),
        ],
    },
];

/// Hosting providers attackers rent from (used for attack findings' `organization`).
pub static HOSTING: &[Isp] = &[
    isp("DigitalOcean, LLC", 14061, 159, 89),
    isp("OVH SAS", 16276, 51, 68),
    isp("Hetzner Online GmbH", 24940, 65, 108),
    isp("Choopa, LLC", 20473, 45, 77),
    isp("M247 Europe SRL", 9009, 185, 220),
];

/// EC2 public /16s per region, for automation that runs on instances or behind NAT gateways.
pub fn ec2_ranges(region: &str) -> &'static [[u8; 2]] {
    match region {
        "us-east-1" => &[[3, 80], [54, 85], [52, 20], [34, 192]],
        "us-west-2" => &[[35, 160], [44, 224], [52, 88]],
        "eu-west-1" => &[[34, 240], [52, 48], [54, 170]],
        "eu-central-1" => &[[3, 120], [18, 184]],
        "ap-southeast-1" => &[[13, 212], [54, 251]],
        _ => &[[18, 200], [15, 160]],
    }
}

/// Whether an IPv4 address is usable as a public source address (not private, shared (CGNAT),
/// loopback, link-local, documentation, benchmarking, multicast, reserved or "this network").
pub fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224)
}

/// Who announces an address, as GuardDuty's `remoteIpDetails` would say: `(country name, city,
/// organisation)`. Looks the /16 up in the country, hosting and EC2 tables; `None` if unknown.
pub fn whois(ip: Ipv4Addr) -> Option<(&'static str, &'static str, Isp)> {
    let [a, b, _, _] = ip.octets();
    for c in COUNTRIES {
        if let Some(i) = c.isps.iter().find(|i| i.net16 == [a, b]) {
            return Some((c.name, c.city, *i));
        }
    }
    for (k, h) in HOSTING.iter().enumerate() {
        if h.net16 == [a, b] {
            let (country, city) = HOSTING_LOCATIONS[k];
            return Some((country, city, *h));
        }
    }
    for (region, country, city) in [
        ("us-east-1", "United States", "Ashburn"),
        ("us-west-2", "United States", "Boardman"),
        ("eu-west-1", "Ireland", "Dublin"),
        ("eu-central-1", "Germany", "Frankfurt am Main"),
        ("ap-southeast-1", "Singapore", "Singapore"),
        ("other", "United States", "Columbus"),
    ] {
        if ec2_ranges(region).contains(&[a, b]) {
            return Some((
                country,
                city,
                Isp {
                    name: "Amazon.com",
                    asn: 16509,
                    net16: [a, b],
                },
            ));
        }
    }
    None
}

/// The IPv6 /32 an ISP of `country` announces, as its first two groups. Real access providers hold
/// a /32 (or shorter) from their regional registry and delegate /56s (homes) or /48s (sites) from
/// it, so the /32 is the "same ISP" level of an IPv6 address. The block follows the registry of the
/// country (ARIN `2600::/12`, RIPE `2a00::/12`, APNIC `2400::/12`, LACNIC `2800::/12`); the rest is
/// derived from the ASN. Like the IPv4 table, not a claim about current allocations.
pub fn isp_v6_32(country: &Country, isp: &Isp) -> [u16; 2] {
    let rir: u16 = match country.code {
        "US" | "CA" => 0x2600,
        "IN" | "JP" | "AU" | "SG" => 0x2400,
        "BR" => 0x2800,
        _ => 0x2a00,
    };
    let h = crate::rng::mix(0x1b6a_5e32, isp.asn as u64);
    [rir | (h & 0xf) as u16, (h >> 16) as u16]
}

/// Whether an IPv6 address is a plausible public source: global unicast `2000::/3` outside the
/// documentation (`2001:db8::/32`), Teredo (`2001::/32`), 6to4 (`2002::/16`) and ORCHID/benchmarking
/// (`2001:2::/48`, `2001:10::/28`, `2001:20::/28`) blocks.
pub fn is_public_v6(ip: Ipv6Addr) -> bool {
    let g = ip.segments();
    (g[0] & 0xe000) == 0x2000
        && !(g[0] == 0x2001 && (g[1] == 0x0db8 || g[1] == 0 || (g[1] == 2 && g[2] == 0)))
        && !(g[0] == 0x2001 && (0x10..0x30).contains(&g[1]))
        && g[0] != 0x2002
}

/// `(country, city)` of each [`HOSTING`] provider's /16.
pub static HOSTING_LOCATIONS: &[(&str, &str)] = &[
    ("United States", "North Bergen"),
    ("France", "Roubaix"),
    ("Germany", "Falkenstein"),
    ("Netherlands", "Amsterdam"),
    ("Romania", "Bucharest"),
];

/// The /24 an address belongs to, as its first three octets.
#[inline]
pub fn net24(ip: Ipv4Addr) -> [u8; 3] {
    let [a, b, c, _] = ip.octets();
    [a, b, c]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_public() {
        for c in COUNTRIES {
            for i in c.isps {
                assert!(
                    is_public_v4(Ipv4Addr::new(i.net16[0], i.net16[1], 1, 1)),
                    "{}",
                    i.name
                );
            }
        }
        assert!(!is_public_v4(Ipv4Addr::new(192, 168, 1, 1)));
        assert!(!is_public_v4(Ipv4Addr::new(100, 64, 0, 1)));
        assert!(is_public_v4(Ipv4Addr::new(100, 128, 0, 1)));
    }

    #[test]
    fn isp_v6_blocks_are_public_and_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for c in COUNTRIES {
            for i in c.isps {
                let [a, b] = isp_v6_32(c, i);
                assert!(
                    is_public_v6(Ipv6Addr::new(a, b, 0, 0, 0, 0, 0, 1)),
                    "{}",
                    i.name
                );
                assert!(seen.insert([a, b]), "{} shares a /32", i.name);
            }
        }
        for bad in [
            "2001:db8::1",
            "2002:c000:201::1",
            "fe80::1",
            "::1",
            "ff02::1",
            "2001::1",
        ] {
            assert!(!is_public_v6(bad.parse().unwrap()), "{bad}");
        }
        assert!(is_public_v6("2a02:1234::1".parse().unwrap()));
    }
}
