//! What the baseline knows of a principal, in fused rows (issue 14): `fuse::assemble` with a real
//! trained hybrid detector behind the scorer port and a MaxMind-format database says "first time
//! this principal is seen from AS64511 (Example Hosting)" (field and why), gives the principal's
//! first-seen day, and the tuning file's learning period counts from it.
use std::net::Ipv4Addr;
use std::sync::Arc;

use fuse::{assemble, FuseOptions, ScoreTable};
use ipsight_enrich::Enricher;
use ipsight_formats::guardduty::FindingRecord;
use ipsight_model::{train_hybrid, HybridOptions, Hyperparameters, NewPrincipals, PairLog};
use ipsight_ports::{Baseline, EmbeddedScorer};
use ipsight_testkit::mmdb::write_mmdb;
use serde_json::json;

#[tokio::test]
async fn rows_carry_network_history_and_learn_from_first_seen() {
    let today = (ipsight_core::time::now_secs() / 86_400) as u32;
    let date = ipsight_core::time::date(today as i64 * 86_400);
    // user1..19 for 200 days; user0 only for the last 3.
    let mut log = PairLog::new();
    for k in 0..10u8 {
        for u in 0..20u8 {
            let first = if u == 0 {
                today - 3
            } else {
                today - 200 + k as u32
            };
            log.push(
                &format!("user{u}"),
                Ipv4Addr::new(10, u, 0, k).into(),
                3,
                Some(first),
                Some(today - 1),
            );
        }
    }
    let mut hp = Hyperparameters::new(64, 8);
    hp.epochs = 2;
    hp.mini_batch_size = 50;
    let opts = ipsight_model::TrainOptions {
        threads: Some(1),
        seed: 5,
        ..ipsight_model::TrainOptions::default()
    };
    let (model, det, _) = train_hybrid(
        &hp,
        &opts,
        &HybridOptions::default(),
        &log,
        None,
        &mut |_| {},
    )
    .unwrap();
    let scorer = EmbeddedScorer::new(Arc::new(model))
        .with_baseline(Baseline::new(Arc::new(det), NewPrincipals::Alert, "test"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn.mmdb");
    write_mmdb(
        &asn,
        "GeoLite2-ASN",
        6,
        &[
            (
                "10.0.0.0/8",
                json!({"autonomous_system_number": 64500, "autonomous_system_organization": "Example Corp"}),
            ),
            (
                "198.51.100.0/24",
                json!({"autonomous_system_number": 64511, "autonomous_system_organization": "Example Hosting"}),
            ),
        ],
    );
    let enricher = Enricher::open(&[&asn], None).unwrap();
    let records: Vec<FindingRecord> = [
        ("f1", "user5", "198.51.100.7"),
        ("f2", "user0", "198.51.100.8"),
    ]
    .iter()
    .map(|(id, e, ip)| {
        serde_json::from_value(json!({"finding_id": id, "type": "T", "severity": 5.0,
                "account_id": "111122223333", "region": "eu-west-1", "count": 1, "sample": false,
                "updated_at": format!("{date}T00:00:00Z"),
                "pairs": [{"entity": e, "ip": ip, "action": "AWS_API_CALL"}]}))
        .unwrap()
    })
    .collect();
    let tuning =
        ipsight_formats::tuning::parse("t.toml", "version = 1\n[learning]\ndays = 14\n").unwrap();
    let opts = FuseOptions {
        date: date.clone(),
        lookback_days: None,
        trusted: None,
        threats: None,
        include_samples: false,
        labels: None,
        tuning: Some(tuning),
    };
    let out = assemble(
        &records,
        ScoreTable::default(),
        Some(&scorer),
        &opts,
        Some(&enricher),
    )
    .await
    .unwrap();
    let row = |e: &str| out.report.rows.iter().find(|r| r.entity == e).unwrap();
    let r = row("user5");
    assert_eq!(r.status, "active");
    assert_eq!(r.network_history.unwrap().asn, Some("first"));
    assert!(r
        .explanation
        .contains("First time this principal is seen from AS64511 (Example Hosting)."));
    assert!(r.principal_first_seen.is_some());
    let l = row("user0");
    assert_eq!(
        l.principal_first_seen.as_deref(),
        Some(ipsight_core::time::date((today as i64 - 3) * 86_400).as_str())
    );
    assert_eq!(l.status, "suppressed");
    assert!(
        l.suppressed_reason
            .as_deref()
            .unwrap()
            .contains("(day 4 of 14)"),
        "{:?}",
        l.suppressed_reason
    );
    assert_eq!(out.tuning.unwrap().suppressed.get("learning"), Some(&1));
}
