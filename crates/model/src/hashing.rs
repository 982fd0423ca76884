//! The stable hashes that map entities and IP prefixes to table rows. They are part of the model file
//! contract (recorded in its header as [`HASH_SCHEME`]): changing any constant here means a new format
//! version, because saved models would silently score through the wrong rows.

/// Recorded in the model header so a reader can tell which scheme a file was trained with.
pub const HASH_SCHEME: &str = "entity: FNV-1a 64 over the UTF-8 bytes, mod num_entity_vectors; \
/8 and /16: exact (first octet; first two octets); \
/24: splitmix64(prefix24 ^ 0x9e3779b97f4a7c15) mod prefix24_buckets; \
/32: splitmix64(address ^ 0xd1b54a32d192ed03) mod address_buckets";

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const SALT24: u64 = 0x9e37_79b9_7f4a_7c15;
const SALT32: u64 = 0xd1b5_4a32_d192_ed03;

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
    fn ip_rows_are_exact_for_short_prefixes() {
        let ip = u32::from(std::net::Ipv4Addr::new(203, 0, 113, 7));
        let r = ip_rows(ip, 1000, 1000);
        assert_eq!(r[0], 203);
        assert_eq!(r[1], 203 * 256);
        assert!(r[2] < 1000 && r[3] < 1000);
    }
}
