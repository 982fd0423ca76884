//! The IPv6 behaviour model (issue 13): ISP /32s, delegated /56s that rarely change, daily privacy
//! addresses, office /48s, hotel /64s, and the anomalies the evaluation uses.
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use ipsight_synth::{geo, SynthConfig, World};

fn v6_pairs(w: &World, days: std::ops::Range<u32>) -> Vec<(String, Ipv6Addr)> {
    w.normal_pairs_dual_in_time_order(days)
        .into_iter()
        .filter_map(|(e, ip)| match ip {
            IpAddr::V6(v6) => Some((e, v6)),
            IpAddr::V4(_) => None,
        })
        .collect()
}

fn isp_blocks() -> BTreeSet<[u16; 2]> {
    geo::COUNTRIES
        .iter()
        .flat_map(|c| c.isps.iter().map(move |i| geo::isp_v6_32(c, i)))
        .collect()
}

fn top(ip: Ipv6Addr, groups: usize) -> Vec<u16> {
    ip.segments()[..groups].to_vec()
}

/// The IPv4 tuples of the default world are those it had before IPv6 was modelled: the FNV-1a
/// hash of its sorted tuples over 14 days, measured on commit 538a080 (before this model). IPv6
/// draws from its own streams, so the existing worlds — and every figure measured on them — stay put.
#[test]
fn ipv4_of_existing_worlds_is_unchanged() {
    let w = World::new(SynthConfig::default());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut n = 0u64;
    for (e, ip) in w.expected_tuples(0..14) {
        for b in format!("{e},{ip}\n").bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        n += 1;
    }
    assert_eq!(
        (n, h),
        EXPECTED_DEFAULT_WORLD,
        "default world IPv4 tuples moved"
    );
}

/// `(tuples, FNV-1a of the sorted "entity,ip\n" lines)` of `SynthConfig::default()` over days
/// 0..14, printed by this test's body on commit 538a080.
const EXPECTED_DEFAULT_WORLD: (u64, u64) = (15950, 0x3c81_1479_f92d_6547);

/// Turning IPv6 on for offices and hotels moves calls from IPv4 to IPv6 and nothing else: the same
/// events at the same times, only some sources differ.
#[test]
fn ipv6_offices_and_hotels_only_change_sources() {
    let base = SynthConfig::new(4, 60, 21);
    let v6 = SynthConfig {
        ipv6_offices: 1.0,
        ipv6_trips: 1.0,
        ..base.clone()
    };
    let (a, b) = (World::new(base), World::new(v6));
    let (mut moved, mut same) = (0, 0);
    for day in 0..21 {
        let (ea, eb) = (a.day_events(day), b.day_events(day));
        assert_eq!(ea.len(), eb.len(), "day {day}");
        for (x, y) in ea.iter().zip(&eb) {
            assert_eq!((x.time, x.actor, x.uid), (y.time, y.actor, y.uid));
            if x.source == y.source {
                same += 1;
            } else {
                assert!(
                    a.tuple_of(x).is_ok() && b.tuple_of(y).is_err(),
                    "{x:?} {y:?}"
                );
                moved += 1;
            }
        }
    }
    assert!(moved > 1000 && same > moved, "{moved} moved, {same} same");
}

#[test]
fn ipv6_follows_how_addresses_are_handed_out() {
    let w = World::new(SynthConfig::dual_stack(7, 200, 21));
    let pairs = v6_pairs(&w, 0..21);
    let all = w.normal_pairs_dual_in_time_order(0..21).len();
    // A dual-stack organisation: a good share of its calls are IPv6.
    assert!(pairs.len() * 4 > all, "{} of {all}", pairs.len());
    let blocks = isp_blocks();
    for (e, ip) in &pairs {
        // Every address sits in an access ISP's /32 and one of its entity's prefixes.
        let s = ip.segments();
        assert!(blocks.contains(&[s[0], s[1]]), "{ip}");
        assert!(geo::is_public_v6(*ip), "{ip}");
        assert!(w.is_usual_v6(e, *ip), "{e} {ip}");
    }
    // Privacy addresses: within one /64, interface ids rotate from day to day, so the exact
    // address is rarely seen again on another day while the /64 is.
    let mut days_of_ip: BTreeMap<Ipv6Addr, BTreeSet<u32>> = BTreeMap::new();
    let mut days_of_64: BTreeMap<Vec<u16>, BTreeSet<u32>> = BTreeMap::new();
    for day in 0..21 {
        for (_, ip) in v6_pairs(&w, day..day + 1) {
            days_of_ip.entry(ip).or_default().insert(day);
            days_of_64.entry(top(ip, 4)).or_default().insert(day);
        }
    }
    assert!(days_of_ip.values().all(|d| d.len() == 1));
    let multi_day_64 = days_of_64.values().filter(|d| d.len() > 1).count();
    assert!(
        multi_day_64 * 2 > days_of_64.len(),
        "{multi_day_64} of {}",
        days_of_64.len()
    );
    // Delegated /56s rarely change: most IPv6 homes keep one /56 for three weeks, a few are
    // renumbered, always within their ISP's /32.
    let homes: Vec<_> = w.actors.iter().filter_map(|a| a.ipv6.as_ref()).collect();
    let renumbered = homes.iter().filter(|h| h.renumber_days > 0).count();
    assert!(
        renumbered > 0 && renumbered * 2 < homes.len(),
        "{renumbered} of {}",
        homes.len()
    );
    // Offices: colleagues share the office /48 on a few /64s.
    let mut entities_of_48: BTreeMap<Vec<u16>, BTreeSet<&str>> = BTreeMap::new();
    for (e, ip) in &pairs {
        entities_of_48.entry(top(*ip, 3)).or_default().insert(e);
    }
    assert!(w.offices.iter().any(|o| o.ipv6.is_some()));
    assert!(entities_of_48.values().any(|s| s.len() > 3));
    // Deterministic.
    assert_eq!(
        pairs,
        v6_pairs(&World::new(SynthConfig::dual_stack(7, 200, 21)), 0..21)
    );
}

#[test]
fn ipv6_anomalies_are_never_usual() {
    let w = World::new(SynthConfig::dual_stack(3, 100, 21));
    let v6_entities: BTreeSet<String> = w.ipv6_entities().into_iter().collect();
    assert!(!v6_entities.is_empty());
    let random = w.ipv6_random_pairs(3000, 1);
    assert_eq!(random.len(), 3000);
    for (e, ip) in &random {
        assert!(v6_entities.contains(e));
        assert!(geo::is_public_v6(*ip), "{ip}");
        assert!(!w.is_usual_v6(e, *ip), "{e} {ip}");
    }
    assert_eq!(random, w.ipv6_random_pairs(3000, 1));
    assert_ne!(random, w.ipv6_random_pairs(3000, 2));
    // The hard case: the entity's own ISP /32 (home or office), never one of its prefixes.
    let blocks = isp_blocks();
    let own_isp: BTreeMap<String, BTreeSet<Vec<u16>>> =
        v6_pairs(&w, 0..21)
            .into_iter()
            .fold(BTreeMap::new(), |mut m, (e, ip)| {
                m.entry(e).or_default().insert(top(ip, 2));
                m
            });
    let hard = w.ipv6_same_isp_pairs(3000, 1);
    assert_eq!(hard.len(), 3000);
    let mut from_a_used_isp = 0;
    for (e, ip) in &hard {
        let s = ip.segments();
        assert!(blocks.contains(&[s[0], s[1]]), "{ip}");
        assert!(!w.is_usual_v6(e, *ip), "{e} {ip}");
        from_a_used_isp += usize::from(own_isp.get(e).is_some_and(|s| s.contains(&top(*ip, 2))));
    }
    // Almost always an ISP the entity was seen using (a home or office it has but did not use
    // over IPv6 in these days is the rest).
    assert!(from_a_used_isp * 10 > hard.len() * 9, "{from_a_used_isp}");
    let shuffled = w.ipv6_shuffled_pairs(2000, 14..21, 1);
    assert_eq!(shuffled.len(), 2000);
    assert!(shuffled.iter().all(|(e, ip)| !w.is_usual_v6(e, *ip)));
}
