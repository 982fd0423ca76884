//! The fusion's promises: monotone in severity and unusualness, suppression and escalation by IP
//! lists, one row per pair, and byte-identical reports for identical inputs.
use std::net::Ipv4Addr;

use fuse::{fuse, risk, FuseOptions, IpList, ScoreEntry, ScoreSource, ScoreTable};
use ipsight_formats::guardduty::{FindingPair, FindingRecord};

fn rec(id: &str, entity: &str, ip: &str, severity: f64, ftype: &str) -> FindingRecord {
    FindingRecord {
        finding_id: id.into(),
        finding_type: ftype.into(),
        severity,
        account_id: "111122223333".into(),
        region: "eu-west-1".into(),
        created_at: Some("2026-01-05T10:00:00Z".into()),
        updated_at: Some("2026-01-05T10:00:00Z".into()),
        event_first_seen: Some("2026-01-05T09:00:00Z".into()),
        event_last_seen: Some("2026-01-05T10:00:00Z".into()),
        count: 1,
        sample: false,
        user_type: Some("IAMUser".into()),
        title: None,
        pairs: vec![FindingPair {
            entity: entity.into(),
            ip: ip.parse().unwrap(),
            action: "AWS_API_CALL".into(),
            country: None,
            network: None,
        }],
        ipv6: vec![],
        entity_kind: Default::default(),
    }
}

fn opts() -> FuseOptions {
    FuseOptions {
        date: "2026-01-05".into(),
        lookback_days: None,
        trusted: None,
        threats: None,
        include_samples: false,
        labels: None,
        tuning: None,
    }
}

fn score(t: &mut ScoreTable, e: &str, ip: &str, dp: f32, unusual: f64) {
    t.insert(
        e.into(),
        ip.parse().unwrap(),
        ScoreEntry {
            dot_product: dp,
            unusual_percentile: Some(unusual),
            source: ScoreSource::File,
            embedding_percentile: Some(unusual),
            history: None,
            explanation: None,
            nearest: Vec::new(),
        },
    );
}

#[test]
fn risk_is_monotone_in_both_components() {
    let sev: Vec<f64> = (0..=100).map(|i| i as f64 / 10.0).collect();
    let unus: Vec<f64> = (0..=1000).map(|i| i as f64 / 1000.0).collect();
    for &s in &sev {
        for w in unus.windows(2) {
            assert!(risk(s, Some(w[0]), false) <= risk(s, Some(w[1]), false));
            assert!(risk(s, Some(w[0]), true) <= risk(s, Some(w[1]), true));
        }
    }
    for &u in &unus {
        for w in sev.windows(2) {
            assert!(risk(w[0], Some(u), false) <= risk(w[1], Some(u), false));
        }
    }
    // Strictly, away from the floors.
    assert!(risk(5.0, Some(0.5), false) < risk(5.0, Some(0.6), false));
    assert!(risk(5.0, Some(0.999), false) < risk(5.0, Some(0.9995), false));
    assert!(risk(5.0, Some(0.5), false) < risk(5.1, Some(0.5), false));
    assert!(risk(9.9, Some(0.5), false) < risk(9.9, Some(0.6), false));
    // Unscored = severity alone; the threat list only adds.
    assert!((risk(7.0, None, false) - 70.0).abs() < 1e-9);
    assert!((risk(7.0, Some(0.0), false) - 70.0).abs() < 1e-9);
    assert!(risk(7.0, Some(0.3), true) > risk(7.0, Some(0.3), false));
    // A medium finding from an address the principal never uses outranks a high finding from its
    // everyday address.
    assert!(risk(5.0, Some(0.999), false) > risk(8.0, Some(0.5), false));
}

#[test]
fn rows_rank_suppress_and_escalate() {
    let records = vec![
        rec("f1", "AIDAALICE", "198.51.100.7", 8.0, "B:IAMUser/High"),
        rec("f2", "AIDAALICE", "198.51.100.7", 5.0, "A:IAMUser/Medium"),
        rec("f3", "AROABUILD", "203.0.113.9", 5.0, "A:IAMUser/Medium"),
        rec("f4", "AIDABOB", "192.0.2.10", 8.0, "B:IAMUser/High"),
        rec("f5", "AIDACAROL", "192.0.2.77", 2.0, "C:IAMUser/Low"),
        rec("f6", "AIDADAVE", "10.9.9.9", 8.0, "B:IAMUser/High"),
    ];
    let mut t = ScoreTable::default();
    score(&mut t, "AIDAALICE", "198.51.100.7", -1.0, 60.0);
    score(&mut t, "AROABUILD", "203.0.113.9", -6.0, 99.99);
    score(&mut t, "AIDABOB", "192.0.2.10", 4.0, 10.0);
    score(&mut t, "AIDADAVE", "10.9.9.9", -7.0, 99.99);
    // AIDACAROL unscored.
    let mut o = opts();
    o.trusted = Some(IpList::parse("trusted.txt", "# office NAT\n10.0.0.0/8\n").unwrap());
    o.threats = Some(IpList::parse("threats.txt", "192.0.2.0/25\n").unwrap());
    let r = fuse(&records, &t, &o);

    let order: Vec<(&str, Option<usize>, &str)> = r
        .rows
        .iter()
        .map(|x| (x.entity.as_str(), x.rank, x.status))
        .collect();
    assert_eq!(
        order,
        vec![
            ("AROABUILD", Some(1), "active"),    // 5.0 but never-seen address
            ("AIDABOB", Some(2), "escalated"),   // 8.0, usual address, on the threat list
            ("AIDAALICE", Some(3), "active"),    // 8.0 (+5.0), middling
            ("AIDACAROL", Some(4), "escalated"), // 2.0 unscored, threat list
            ("AIDADAVE", None, "suppressed"),    // trusted range, reported last
        ]
    );
    let alice = &r.rows[2];
    assert_eq!(alice.finding_count, 2);
    assert_eq!(alice.max_severity, 8.0);
    assert_eq!(alice.finding_types, ["A:IAMUser/Medium", "B:IAMUser/High"]);
    assert_eq!(alice.finding_ids, ["f1", "f2"]);
    assert_eq!(alice.unusual_percentile, Some(60.0));
    assert!(alice
        .explanation
        .contains("max severity 8.0 from 2 findings"));
    let carol = &r.rows[3];
    assert_eq!(carol.score_source, "unscored");
    assert!(
        carol.explanation.contains("not scored"),
        "{}",
        carol.explanation
    );
    assert!(carol.explanation.contains("threats.txt (192.0.2.0/25)"));
    let dave = &r.rows[4];
    assert_eq!(
        dave.suppressed_reason.as_deref(),
        Some("trusted list trusted.txt (10.0.0.0/8)")
    );
    assert!(dave.explanation.starts_with("SUPPRESSED"));
    assert_eq!(
        (
            r.summary.rows,
            r.summary.ranked,
            r.summary.suppressed,
            r.summary.escalated
        ),
        (5, 4, 1, 2)
    );
    assert_eq!(r.summary.unscored, 1);
}

#[test]
fn samples_window_updates_and_ties() {
    let mut sample = rec(
        "s1",
        "GeneratedFindingPrincipalId",
        "198.51.100.0",
        5.0,
        "T",
    );
    sample.sample = true;
    let mut old = rec("o1", "AIDAOLD", "192.0.2.1", 5.0, "T");
    old.event_last_seen = Some("2025-11-01T00:00:00Z".into());
    let mut v1 = rec("u1", "AIDAUPD", "192.0.2.2", 5.0, "T");
    let mut v2 = v1.clone();
    v2.count = 9;
    v2.event_last_seen = Some("2026-01-05T12:00:00Z".into());
    v1.count = 3;
    // Equal risk and severity, both unscored: ties fall back to entity then IP.
    let tie_b = rec("t2", "AIDATIE", "192.0.2.20", 5.0, "T");
    let tie_a = rec("t1", "AIDATIE", "192.0.2.3", 5.0, "T");
    let records = vec![sample, old, v2, v1, tie_b, tie_a];
    let mut o = opts();
    o.lookback_days = Some(30);
    let r = fuse(&records, &ScoreTable::default(), &o);
    let rows: Vec<(&str, String, &str)> = r
        .rows
        .iter()
        .map(|x| (x.entity.as_str(), x.ip.to_string(), x.status))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("AIDATIE", "192.0.2.3".into(), "active"),
            ("AIDATIE", "192.0.2.20".into(), "active"),
            ("AIDAUPD", "192.0.2.2".into(), "active"),
            (
                "GeneratedFindingPrincipalId",
                "198.51.100.0".into(),
                "suppressed"
            ),
        ]
    );
    // The updated finding counts once, with its latest count and last-seen time.
    let upd = &r.rows[2];
    assert_eq!((upd.finding_count, upd.event_count), (1, 9));
    assert_eq!(upd.last_seen.as_deref(), Some("2026-01-05T12:00:00Z"));
    assert_eq!(r.summary.findings, 5);
    assert_eq!(r.summary.findings_in_window, 4);
    assert_eq!(
        r.rows[3].suppressed_reason.as_deref(),
        Some("GuardDuty sample findings only")
    );
    o.include_samples = true;
    let r = fuse(&records, &ScoreTable::default(), &o);
    assert!(r.rows.iter().all(|x| x.status == "active"));
}

#[test]
fn same_inputs_same_bytes_whatever_the_order() {
    let mut records: Vec<FindingRecord> = (0..200)
        .map(|i| {
            rec(
                &format!("f{i}"),
                &format!("AIDA{:03}", i % 37),
                &Ipv4Addr::new(198, 51, (i % 7) as u8, (i % 11) as u8).to_string(),
                [2.0, 5.0, 8.0][i % 3],
                ["X", "Y", "Z,\"quoted\""][i % 3],
            )
        })
        .collect();
    let mut t = ScoreTable::default();
    for (i, r) in records.iter().enumerate().step_by(2) {
        let p = &r.pairs[0];
        score(
            &mut t,
            &p.entity,
            &p.ip.to_string(),
            i as f32 / 10.0 - 5.0,
            (i % 100) as f64,
        );
    }
    let mut o = opts();
    o.threats = Some(IpList::parse("threats.txt", "198.51.3.0/24").unwrap());
    let a = fuse(&records, &t, &o);
    records.reverse();
    let b = fuse(&records, &t, &o);
    assert_eq!(a.to_json(), b.to_json());
    assert_eq!(a.to_csv(), b.to_csv());
    let csv = String::from_utf8(a.to_csv()).unwrap();
    assert!(csv.starts_with("rank,status,risk,entity,ip,"));
    assert_eq!(csv.lines().count(), a.rows.len() + 1);
    // Quoted finding types survive CSV quoting.
    assert!(csv.contains("\"Z,\"\"quoted\"\"\""), "{}", &csv[..400]);
    let v: serde_json::Value = serde_json::from_slice(&a.to_json()).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), a.rows.len());
    assert_eq!(v["rows"][0]["rank"], 1);
}

#[test]
fn analyst_labels_suppress_false_positives_and_keep_true_positives_on_top() {
    use ipsight_core::labels::{Label, LabelSet, Verdict};
    let label = |entity: &str, ip: Option<&str>, cidr: Option<&str>, v, expires: Option<&str>| {
        ipsight_formats::labels::validated(Label {
            entity: entity.into(),
            ip: ip.map(|s| s.parse().unwrap()),
            cidr: cidr.map(|s| s.parse().unwrap()),
            verdict: v,
            who: "alice".into(),
            when: "2026-01-04T12:00:00Z".into(),
            why: "checked with the user".into(),
            expires: expires.map(Into::into),
        })
        .unwrap()
    };
    let records = vec![
        rec("f1", "AIDAALICE", "198.51.100.7", 8.0, "B:IAMUser/High"),
        rec("f2", "AROABUILD", "203.0.113.9", 5.0, "A:IAMUser/Medium"),
        rec("f3", "AIDABOB", "192.0.2.10", 2.0, "C:IAMUser/Low"),
        rec("f4", "AIDADAVE", "10.9.9.9", 8.0, "B:IAMUser/High"),
    ];
    let mut t = ScoreTable::default();
    score(&mut t, "AIDAALICE", "198.51.100.7", -6.0, 99.99);
    score(&mut t, "AROABUILD", "203.0.113.9", -6.0, 99.9);
    score(&mut t, "AIDABOB", "192.0.2.10", 4.0, 10.0);
    score(&mut t, "AIDADAVE", "10.9.9.9", -7.0, 99.99);
    let mut o = opts();
    o.trusted = Some(IpList::parse("trusted.txt", "10.0.0.0/8\n").unwrap());
    o.labels = Some(LabelSet::new([
        // Alice's new home range: a confirmed false positive.
        label(
            "AIDAALICE",
            None,
            Some("198.51.100.0/24"),
            Verdict::FalsePositive,
            None,
        ),
        // Bob's low finding is a confirmed compromise.
        label(
            "AIDABOB",
            Some("192.0.2.10"),
            None,
            Verdict::TruePositive,
            None,
        ),
        // Dave's address is trusted, but an analyst confirmed it: the decision wins.
        label(
            "AIDADAVE",
            Some("10.9.9.9"),
            None,
            Verdict::TruePositive,
            None,
        ),
        // Expired before the report date: ignored.
        label(
            "AROABUILD",
            Some("203.0.113.9"),
            None,
            Verdict::FalsePositive,
            Some("2026-01-05"),
        ),
    ]));
    let r = fuse(&records, &t, &o);
    let order: Vec<(&str, Option<usize>, &str, Option<&str>)> = r
        .rows
        .iter()
        .map(|x| (x.entity.as_str(), x.rank, x.status, x.label))
        .collect();
    assert_eq!(
        order,
        vec![
            ("AIDADAVE", Some(1), "escalated", Some("true_positive")),
            ("AIDABOB", Some(2), "escalated", Some("true_positive")),
            ("AROABUILD", Some(3), "active", None),
            ("AIDAALICE", None, "suppressed", Some("false_positive")),
        ]
    );
    let alice = &r.rows[3];
    let why = alice.suppressed_reason.as_deref().unwrap();
    assert!(
        why.contains("false positive for 198.51.100.0/24 by alice")
            && why.contains("checked with the user"),
        "{why}"
    );
    assert!(alice
        .explanation
        .starts_with("SUPPRESSED (labelled false positive"));
    assert!(r.rows[1].explanation.contains("Confirmed by an analyst"));
    let json = String::from_utf8(r.to_json()).unwrap();
    assert!(json.contains(r#""label": "false_positive""#), "{json}");
    // Without labels the rows carry no label field (reports unchanged for existing users).
    o.labels = None;
    let plain = String::from_utf8(fuse(&records, &t, &o).to_json()).unwrap();
    assert!(!plain.contains("\"label\""));
}
