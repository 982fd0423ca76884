//! The behaviour model: entities, normal and anomalous pairs.
use ipsight_synth::{geo, IdentityKind, SynthConfig, World};

#[test]
fn entities_are_normalised_and_cover_kinds() {
    let w = World::new(SynthConfig::new(3, 60, 7));
    let ents = w.entities();
    assert!(ents
        .iter()
        .all(|e| !e.contains(':') || e.split(':').next().unwrap().len() == 12));
    let kinds: std::collections::BTreeSet<_> = w
        .identities
        .iter()
        .filter(|i| ents.contains(&i.principal_id))
        .map(|i| i.kind)
        .collect();
    assert!(kinds.contains(&IdentityKind::IamUser));
    assert!(kinds.contains(&IdentityKind::AssumedRole));
    assert!(kinds.contains(&IdentityKind::Root));
    assert!(kinds.contains(&IdentityKind::FederatedUser));
    for e in &ents {
        if e.starts_with("AIDA") || e.starts_with("AROA") {
            assert_eq!(e.len(), 21, "{e}");
        }
    }
    // Every normal pair is a known entity in one of its usual /24s, public.
    let mut n = 0;
    for (e, ip) in w.normal_pairs(0..7) {
        assert!(ents.contains(&e), "{e}");
        assert!(w.is_usual(&e, ip), "{e} {ip}");
        assert!(geo::is_public_v4(ip), "{ip}");
        n += 1;
    }
    assert!(n > 5000, "{n}");
}

#[test]
fn anomalous_pairs_are_never_usual() {
    let w = World::new(SynthConfig::new(5, 40, 14));
    let a = w.anomalous_pairs(5000, 1);
    assert_eq!(a.len(), 5000);
    let ents = w.entities();
    for (e, ip) in &a {
        assert!(ents.contains(e));
        assert!(!w.is_usual(e, *ip));
        assert!(geo::is_public_v4(*ip));
    }
    assert_eq!(a, w.anomalous_pairs(5000, 1));
    assert_ne!(a, w.anomalous_pairs(5000, 2));
    // And they never coincide with a normal pair's /24 for that entity.
    let normal: std::collections::BTreeSet<(String, [u8; 3])> = w
        .normal_pairs(0..14)
        .map(|(e, ip)| (e, geo::net24(ip)))
        .collect();
    assert!(a
        .iter()
        .all(|(e, ip)| !normal.contains(&(e.clone(), geo::net24(*ip)))));
}

#[test]
fn colleagues_share_office_and_travel_happens() {
    let w = World::new(SynthConfig::new(9, 60, 30));
    let mut per_office = std::collections::BTreeMap::new();
    for a in &w.actors {
        if let Some(o) = a.office {
            *per_office.entry(o).or_insert(0) += 1;
        }
    }
    assert!(per_office.values().any(|&n| n > 1));
    assert!(w.actors.iter().any(|a| !a.trips.is_empty()));
    assert!(w.actors.iter().any(|a| a.ipv6.is_some()));
    // Same /24 used by several entities (an office) shows up in the pairs.
    let mut by_net =
        std::collections::BTreeMap::<[u8; 3], std::collections::BTreeSet<String>>::new();
    for (e, ip) in w.normal_pairs(0..5) {
        by_net.entry(geo::net24(ip)).or_default().insert(e);
    }
    assert!(by_net.values().any(|s| s.len() > 2));
}
