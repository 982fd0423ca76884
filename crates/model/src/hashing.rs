//! The stable hashes that map entities and IP prefixes to table rows. They are part of the model file
//! contract (recorded in its header as [`HASH_SCHEME`]): changing any constant here means a new format
//! version, because saved models would silently score through the wrong rows.

/// Recorded in the model header so a reader can tell which scheme a file was trained with.
pub const HASH_SCHEME: &str = "entity: FNV-1a 64 over the UTF-8 bytes, mod num_entity_vectors; \
/8 and /16: exact (first octet; first two octets); \
/24: splitmix64(prefix24 ^ 0x9e3779b97f4a7c15) mod prefix24_buckets; \
/32: splitmix64(address ^ 0xd1b54a32d192ed03) mod address_buckets; \
IPv6 /32, /48, /56, /64 (p = the prefix's bits as an integer): \
splitmix64(p ^ 0x2545f4914f6cdd1d), splitmix64(p ^ 0x9fb21c651e98df25), \
splitmix64(p ^ 0xc2b2ae3d27d4eb4f), splitmix64(p ^ 0x165667b19e3779f9) mod ipv6_buckets, \
in the rows after the IPv4 rows of the /8, /16, /24 and /32 tables";

/// The scheme of format-1 files (IPv4 only), which still load.
pub const HASH_SCHEME_V1: &str = "entity: FNV-1a 64 over the UTF-8 bytes, mod num_entity_vectors; \
/8 and /16: exact (first octet; first two octets); \
/24: splitmix64(prefix24 ^ 0x9e3779b97f4a7c15) mod prefix24_buckets; \
/32: splitmix64(address ^ 0xd1b54a32d192ed03) mod address_buckets";

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const SALT24: u64 = 0x9e37_79b9_7f4a_7c15;
const SALT32: u64 = 0xd1b5_4a32_d192_ed03;
const SALT_V6: [u64; 4] = [
    0x2545_f491_4f6c_dd1d,
    0x9fb2_1c65_1e98_df25,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
];

/// An address as the IP encoder sees it, in 64 bits: an IPv6 address is its /64 (the interface id
/// rotates with privacy addresses and carries little signal), an IPv4 address is tagged with all
/// ones in the high half. That tag is `ffff:ffff::/32`, inside multicast `ff00::/8`, which is never
/// the source of a request (the parsers refuse it), so the two families never share a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IpKey(pub u64);

const V4_TAG: u64 = 0xffff_ffff << 32;

impl IpKey {
    #[inline]
    pub fn is_ipv4(self) -> bool {
        self.0 & V4_TAG == V4_TAG
    }

    /// An address with this key: the IPv4 address, or the /64 with a zero interface id.
    pub fn to_ip(self) -> std::net::IpAddr {
        if self.is_ipv4() {
            std::net::Ipv4Addr::from(self.0 as u32).into()
        } else {
            std::net::Ipv6Addr::from((self.0 as u128) << 64).into()
        }
    }
}

impl From<std::net::Ipv4Addr> for IpKey {
    #[inline]
    fn from(ip: std::net::Ipv4Addr) -> Self {
        IpKey(V4_TAG | u32::from(ip) as u64)
    }
}

impl From<std::net::Ipv6Addr> for IpKey {
    #[inline]
    fn from(ip: std::net::Ipv6Addr) -> Self {
        IpKey((u128::from(ip) >> 64) as u64)
    }
}

impl From<std::net::IpAddr> for IpKey {
    #[inline]
    fn from(ip: std::net::IpAddr) -> Self {
        match ip {
            std::net::IpAddr::V4(v4) => v4.into(),
            std::net::IpAddr::V6(v6) => v6.into(),
        }
    }
}

/// Table sizes the row functions need (the IPv4 rows come first in each table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLayout {
    pub prefix24_buckets: u32,
    pub address_buckets: u32,
    /// Rows per IPv6 level; 0 = the model has none (IPv4 only).
    pub ipv6_buckets: u32,
}

impl RowLayout {
    /// Rows of the four tables: IPv4 rows, then `ipv6_buckets` IPv6 rows.
    pub fn table_rows(&self) -> [usize; 4] {
        let v6 = self.ipv6_buckets as usize;
        [
            256 + v6,
            65536 + v6,
            self.prefix24_buckets as usize + v6,
            self.address_buckets as usize + v6,
        ]
    }

    /// Rows of the four tables for a key. The four levels of an IPv6 address (/32 ISP or cloud,
    /// /48 site, /56 delegated home prefix, /64 subnet) play the parts of IPv4's /8, /16, /24 and
    /// address; so every address hits each table exactly once. Needs `ipv6_buckets > 0` for IPv6.
    #[inline]
    pub fn rows(&self, key: IpKey) -> [u32; 4] {
        if key.is_ipv4() {
            return ip_rows(key.0 as u32, self.prefix24_buckets, self.address_buckets);
        }
        let n = self.ipv6_buckets as u64;
        let base = [256u32, 65536, self.prefix24_buckets, self.address_buckets];
        let prefixes = [key.0 >> 32, key.0 >> 16, key.0 >> 8, key.0];
        std::array::from_fn(|l| base[l] + (splitmix64(prefixes[l] ^ SALT_V6[l]) % n) as u32)
    }
}

/// FNV-1a, 64-bit, over the bytes as given (entities are hashed over their UTF-8 bytes, untrimmed
/// beyond what the parsers already trimmed).
#[inline]
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The splitmix64 finaliser: spreads consecutive prefixes over the buckets so that neighbouring
/// /24s do not systematically collide.
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Entity hash → bucket. Unseen entities land in some bucket too, as in SageMaker.
#[inline]
pub fn entity_bucket_of_hash(hash: u64, num_entity_vectors: u64) -> u32 {
    (hash % num_entity_vectors) as u32
}

/// The bucket of an entity string.
#[inline]
pub fn entity_bucket(entity: &str, num_entity_vectors: u64) -> u32 {
    entity_bucket_of_hash(fnv1a64(entity.as_bytes()), num_entity_vectors)
}

/// Rows of the four IP tables for an address: /8, /16 (exact), /24 and /32 (hashed).
#[inline]
pub fn ip_rows(ip: u32, prefix24_buckets: u32, address_buckets: u32) -> [u32; 4] {
    [
        ip >> 24,
        ip >> 16,
        (splitmix64((ip >> 8) as u64 ^ SALT24) % prefix24_buckets as u64) as u32,
        (splitmix64(ip as u64 ^ SALT32) % address_buckets as u64) as u32,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn ipv6_rows_follow_the_prefix_hierarchy() {
        let l = RowLayout {
            prefix24_buckets: 1000,
            address_buckets: 1000,
            ipv6_buckets: 1 << 16,
        };
        let key = |s: &str| IpKey::from(s.parse::<std::net::IpAddr>().unwrap());
        let a = l.rows(key("2a01:e0a:3c8:7b0:1cf3:e8f4:aa40:3c01"));
        // Another interface id (privacy address) in the same /64: the same rows.
        assert_eq!(a, l.rows(key("2a01:e0a:3c8:7b0::99")));
        // Same /56, another /64: the first three rows only.
        let b = l.rows(key("2a01:e0a:3c8:7b1::1"));
        assert_eq!(a[..3], b[..3]);
        assert_ne!(a[3], b[3]);
        // Same ISP /32, another customer's /48.
        let c = l.rows(key("2a01:e0a:9999::1"));
        assert_eq!(a[0], c[0]);
        assert_ne!(a[1], c[1]);
        for (r, rows) in a.iter().zip(l.table_rows()) {
            assert!((*r as usize) < rows && *r as usize >= rows - (1 << 16));
        }
        // IPv4 keeps its rows, below the IPv6 ones.
        let v4 = l.rows(key("203.0.113.7"));
        assert_eq!(
            v4,
            ip_rows(
                u32::from(std::net::Ipv4Addr::new(203, 0, 113, 7)),
                1000,
                1000
            )
        );
        assert!(key("203.0.113.7").is_ipv4() && !key("2001:db8::1").is_ipv4());
        assert!(!key("::cb00:7107").is_ipv4());
    }

    #[test]
    fn ip_rows_are_exact_for_short_prefixes() {
        let ip = u32::from(std::net::Ipv4Addr::new(203, 0, 113, 7));
        let r = ip_rows(ip, 1000, 1000);
        assert_eq!(r[0], 203);
        assert_eq!(r[1], 203 * 256);
        assert!(r[2] < 1000 && r[3] < 1000);
    }
}
