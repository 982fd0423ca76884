//! Enrichment cost per pair, on databases of realistic size built here (no download).
//!
//! ```text
//! cargo run --release -p ipsight-enrich --example bench_enrich -- [NETWORKS] [LOOKUPS]
//! ```
//! Builds a GeoLite2-ASN-layout and a GeoLite2-City-layout database with NETWORKS random /24s
//! each (default 100000; GeoLite2-ASN has ~500k networks) and an ip-ranges.json of 10000 prefixes
//! (the published file has ~9000 IPv4 + IPv6), then looks up LOOKUPS addresses (default 1000000,
//! half inside a known network) through all three, single thread, and prints ns per pair.
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use ipsight_enrich::{AwsRanges, Enricher, IpDb, Network};
use ipsight_testkit::mmdb::write_mmdb;
use serde_json::{json, Value};

/// xorshift: deterministic addresses without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let networks: usize = args.next().map_or(100_000, |a| a.parse().unwrap());
    let lookups: usize = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let nets: Vec<u32> = (0..networks)
        .map(|_| (rng.next() as u32 & 0xffff_ff00) | 0x0100_0000)
        .collect();
    let cidr = |n: &u32| format!("{}/24", Ipv4Addr::from(*n));
    let cidrs: Vec<String> = nets.iter().map(cidr).collect();
    let asn: Vec<(&str, Value)> = cidrs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                c.as_str(),
                json!({"autonomous_system_number": 1000 + i % 60000,
                       "autonomous_system_organization": format!("Org {}", i % 60000)}),
            )
        })
        .collect();
    let city: Vec<(&str, Value)> = cidrs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                c.as_str(),
                json!({"continent": {"code": "EU", "names": {"en": "Europe"}},
                       "country": {"iso_code": (["DE", "FR", "US", "JP"][i % 4]), "names": {"en": "Somewhere", "de": "Irgendwo"}},
                       "city": {"names": {"en": format!("City {}", i % 5000)}},
                       "location": {"latitude": 1.5, "longitude": 2.5, "accuracy_radius": 100}}),
            )
        })
        .collect();
    let t = Instant::now();
    let asn_path = dir.path().join("asn.mmdb");
    let city_path = dir.path().join("city.mmdb");
    write_mmdb(&asn_path, "GeoLite2-ASN", 6, &asn);
    write_mmdb(&city_path, "GeoLite2-City", 6, &city);
    eprintln!("built databases in {:.1?}", t.elapsed());
    let prefixes: Vec<Value> = (0..10_000)
        .map(|i| {
            let n = Ipv4Addr::from(rng.next() as u32 & 0xffff_f000);
            json!({"ip_prefix": format!("{n}/20"), "region": "us-east-1",
                   "service": (["AMAZON", "EC2", "S3"][i % 3]), "network_border_group": "us-east-1"})
        })
        .collect();
    let ranges = json!({"syncToken": "1", "createDate": "2026-12-01-00-00-00", "prefixes": prefixes, "ipv6_prefixes": []});
    let t = Instant::now();
    let enricher = Enricher::new(
        vec![
            IpDb::open(&asn_path).unwrap(),
            IpDb::open(&city_path).unwrap(),
        ],
        Some(AwsRanges::parse("ip-ranges.json", &serde_json::to_vec(&ranges).unwrap()).unwrap()),
    );
    eprintln!("loaded in {:.1?}", t.elapsed());
    let addrs: Vec<IpAddr> = (0..lookups)
        .map(|i| {
            let r = rng.next();
            let a = if i % 2 == 0 {
                nets[(r % nets.len() as u64) as usize] | (r >> 40) as u32 & 0xff
            } else {
                r as u32
            };
            IpAddr::V4(Ipv4Addr::from(a))
        })
        .collect();
    let t = Instant::now();
    let mut found = 0usize;
    for a in &addrs {
        let n = enricher.lookup(*a, Network::default()).unwrap();
        found += n.asn.is_some() as usize;
    }
    let el = t.elapsed();
    println!(
        "{lookups} lookups ({found} in a known network) through 2 databases of {networks} networks + 10000 AWS prefixes: {:.0} ns/pair, {:.2} M pairs/s, one thread",
        el.as_nanos() as f64 / lookups as f64,
        lookups as f64 / el.as_secs_f64() / 1e6
    );
}
