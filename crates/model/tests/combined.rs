//! The combined score's two promises, checked on fitted combiners: adding history never makes a
//! pair less normal (monotone), and fitting gives the same weights whatever the thread count
//! (deterministic).
use std::net::{IpAddr, Ipv4Addr};

use ipsight_model::baseline::BaselineBuilder;
use ipsight_model::combine::{fit_detector, negatives, Combiner, FitInfo};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn random_ip(rng: &mut SmallRng) -> IpAddr {
    // A small address space so that random pairs hit every level of each other's history.
    IpAddr::V4(Ipv4Addr::new(
        10 + rng.random_range(0..3),
        rng.random_range(0..3),
        rng.random_range(0..3),
        rng.random_range(0..4),
    ))
}

/// A combiner fitted on held-back pairs near the entities' history (high dots) against negatives
/// (low dots), with every weight pushed away from zero so all terms take part.
fn fitted(threads: usize) -> Combiner {
    let mut rng = SmallRng::seed_from_u64(3);
    let mut b = BaselineBuilder::new();
    for _ in 0..2000 {
        let e = format!("e{}", rng.random_range(0..40));
        let ip = random_ip(&mut rng);
        b.add(&e, ip, rng.random_range(1..20), None, None);
    }
    let older = b.build("principal");
    let held: Vec<(String, IpAddr)> = (0..400)
        .map(|_| (format!("e{}", rng.random_range(0..40)), random_ip(&mut rng)))
        .collect();
    let held_dots: Vec<f32> = held
        .iter()
        .map(|(e, ip)| older.lookup(e, *ip).history().lookup_score() * 3.0 + rng.random::<f32>())
        .collect();
    let (neg, _, _) = negatives(&held, 9);
    let neg_dots: Vec<f32> = (0..neg.len()).map(|_| rng.random::<f32>() - 1.0).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let det = pool.install(|| {
        fit_detector(
            &older,
            older.clone(),
            &held,
            &held_dots,
            &neg,
            &neg_dots,
            FitInfo::default(),
        )
    });
    det.combiner
}

#[test]
fn fitting_is_deterministic_across_thread_counts() {
    assert_eq!(fitted(1), fitted(2));
    assert_eq!(fitted(2), fitted(3));
}

#[test]
fn adding_history_never_lowers_the_score() {
    let mut c = fitted(2);
    // Whatever the fit chose, every term must be monotone: force all of them on.
    c.breadth_weight = c.breadth_weight.max(0.3);
    c.others_weight = c.others_weight.max(0.7);
    c.personal_weight = c.personal_weight.max(0.5);
    for w in c.events_weight.iter_mut() {
        *w = w.max(0.2);
    }
    let mut rng = SmallRng::seed_from_u64(11);
    for round in 0..200 {
        let mut b = BaselineBuilder::new();
        for _ in 0..rng.random_range(0..60) {
            let e = format!("e{}", rng.random_range(0..4));
            b.add(&e, random_ip(&mut rng), rng.random_range(1..5), None, None);
        }
        let e = format!("e{}", rng.random_range(0..4));
        // The entity must be known before, or "before" is a new principal (a separate policy).
        b.add(&e, random_ip(&mut rng), 1, None, None);
        let ip = random_ip(&mut rng);
        let dot = rng.random::<f32>() * 6.0 - 3.0;
        let before = b.build("principal");
        let z0 = c.score(dot, &before.lookup(&e, ip));
        b.add(&e, ip, rng.random_range(1..5), None, None);
        let after = b.build("principal");
        let z1 = c.score(dot, &after.lookup(&e, ip));
        assert!(
            z1 >= z0,
            "round {round}: {e} {ip}: {z0} before, {z1} after adding the pair ({:?} → {:?})",
            before.lookup(&e, ip).history(),
            after.lookup(&e, ip).history()
        );
        // The wording: seen at the address is never less normal than never seen (here an
        // address no one used), at the same dot product.
        let never = c.score(
            dot,
            &after.lookup(&e, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        );
        assert!(
            z1 >= never,
            "round {round}: {z1} seen vs {never} never seen"
        );
    }
}
