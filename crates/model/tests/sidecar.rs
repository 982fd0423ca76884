//! The baseline sidecar: round trip, and refusal of corrupt, truncated, foreign files and of a
//! sidecar of another entity definition or another model, each with a message naming the reason.
use std::net::IpAddr;

use ipsight_model::baseline::BaselineBuilder;
use ipsight_model::combine::{fit_detector, negatives, FitInfo};
use ipsight_model::{Detector, History, NewPrincipals, SidecarError};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A small detector fitted on held-back pairs whose dot products follow the history (normal pairs
/// high, negatives low), so the fit has something to learn.
fn detector() -> Detector {
    let mut b = BaselineBuilder::new();
    for i in 0..60u32 {
        let e = format!("AIDA{i:04}");
        b.add(
            &e,
            IpAddr::from([198, 51, (i % 7) as u8, 10]),
            20,
            Some(20_400),
            Some(20_410),
        );
        b.add(&e, ip("2001:db8:1:2::5"), 2, Some(20_405), None);
    }
    let older = b.build("principal");
    let held: Vec<(String, IpAddr)> = (0..60u32)
        .map(|i| {
            (
                format!("AIDA{i:04}"),
                IpAddr::from([198, 51, (i % 7) as u8, 11]),
            )
        })
        .collect();
    let held_dots: Vec<f32> = (0..60).map(|i| 2.0 + (i % 5) as f32 * 0.1).collect();
    let (neg, r, s) = negatives(&held, 7);
    let neg_dots: Vec<f32> = (0..neg.len())
        .map(|i| -1.0 + (i % 3) as f32 * 0.2)
        .collect();
    let full = older.clone();
    fit_detector(
        &older,
        full,
        &held,
        &held_dots,
        &neg,
        &neg_dots,
        FitInfo {
            random_negatives: r,
            shuffled_negatives: s,
            model_fingerprint: Some(0xabcd),
            ..FitInfo::default()
        },
    )
}

#[test]
fn round_trip_keeps_every_answer() {
    let det = detector();
    assert_eq!(det.fit.calibrated_on, "held_back");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.ipsb");
    det.save(&path).unwrap();
    let back = Detector::load(&path).unwrap();
    // The history and calibrations come back exactly; the combiner's f64 weights go through JSON
    // (shortest representation), so they are compared to the last few bits.
    assert!(
        back.baseline == det.baseline,
        "baseline differs after the round trip"
    );
    assert!(back.combined_calibration == det.combined_calibration);
    assert!(back.embedding_calibration == det.embedding_calibration);
    assert!(back.fit == det.fit);
    let (a, b) = (&back.combiner, &det.combiner);
    for (x, y) in [
        (a.bias, b.bias),
        (a.dot_weight, b.dot_weight),
        (a.dot_center, b.dot_center),
        (a.dot_scale, b.dot_scale),
    ]
    .into_iter()
    .chain(a.level_weight.into_iter().zip(b.level_weight))
    .chain(a.events_weight.into_iter().zip(b.events_weight))
    {
        assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{x} vs {y}");
    }
    for (e, a) in [
        ("AIDA0003", "198.51.3.10"),
        ("AIDA0003", "198.51.3.99"),
        ("AIDA0003", "203.0.113.1"),
        ("AIDA0003", "2001:db8:1:2::5"),
        ("AIDA0003", "2001:db8:1:9::5"),
        ("NEW", "198.51.3.10"),
    ] {
        let a = ip(a);
        assert_eq!(
            back.report(e, a, 1.0, NewPrincipals::Alert),
            det.report(e, a, 1.0, NewPrincipals::Alert)
        );
    }
    let v = back.judge("AIDA0003", ip("198.51.3.10"), 2.3, NewPrincipals::Alert);
    assert_eq!(v.history, History::Ip);
    let far = back.judge("AIDA0003", ip("203.0.113.1"), 2.3, NewPrincipals::Alert);
    assert!(
        far.unusual_percentile > v.unusual_percentile,
        "{far:?} {v:?}"
    );
    back.check_compatible("principal", Some(0xabcd)).unwrap();
    back.check_compatible("principal", None).unwrap();
}

#[test]
fn refuses_damaged_and_foreign_files() {
    let det = detector();
    let mut bytes = Vec::new();
    det.write_to(&mut bytes).unwrap();
    let read = |b: &[u8]| Detector::read_from(&mut &b[..]).unwrap_err();

    let mut flipped = bytes.clone();
    let at = bytes.len() - 40;
    flipped[at] ^= 1;
    assert!(matches!(
        read(&flipped),
        SidecarError::Checksum { part: "file", .. }
    ));
    let mut header_flip = bytes.clone();
    header_flip[30] ^= 1;
    assert!(read(&header_flip)
        .to_string()
        .starts_with("baseline sidecar is corrupt: header checksum mismatch"));
    assert!(matches!(
        read(&bytes[..bytes.len() - 3]),
        SidecarError::Truncated(_)
    ));
    assert!(matches!(read(&bytes[..100]), SidecarError::Truncated(_)));
    assert!(matches!(read(b"IPSIGHT\0rest"), SidecarError::BadMagic));
    let mut newer = bytes.clone();
    newer[8] = 9;
    let e = read(&newer);
    assert_eq!(
        e.to_string(),
        "baseline sidecar format version 9 is not supported (this build reads version 1)"
    );
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(read(&extra).to_string().contains("trailing bytes"));

    let e = det.check_compatible("arn", Some(0xabcd)).unwrap_err();
    assert!(
        e.to_string().contains("entity definition \"principal\""),
        "{e}"
    );
    let e = det.check_compatible("principal", Some(1)).unwrap_err();
    assert!(e.to_string().contains("another model"), "{e}");
}
