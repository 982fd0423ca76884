//! GuardDuty findings: shapes, labels, and agreement with the world's pairs.
use std::collections::BTreeSet;
use std::fs;
use std::io::Read;

use flate2::read::GzDecoder;
use ipsight_synth::{
    eventbridge_event, generate_findings, geo, write_eventbridge_events, write_findings_json,
    write_guardduty_export, FindingsOptions, SynthConfig, World,
};
use serde_json::Value;

/// The extractor's rule: principalId with the role session cut (AROA prefix), ipAddressV4.
fn pair(f: &Value) -> Option<(String, String)> {
    let pid = f["resource"]["accessKeyDetails"]["principalId"].as_str()?;
    let entity = if pid.starts_with("AROA") {
        pid.split(':').next().unwrap()
    } else {
        pid
    };
    let ip =
        f["service"]["action"]["awsApiCallAction"]["remoteIpDetails"]["ipAddressV4"].as_str()?;
    Some((entity.to_owned(), ip.to_owned()))
}

#[test]
fn findings_are_labelled_and_consistent() {
    let world = World::new(SynthConfig::new(4, 40, 10));
    let opts = FindingsOptions {
        attacks: 60,
        benign: 80,
        port_probes: 6,
        updates: 10,
        seed: 3,
    };
    let fs_ = generate_findings(&world, &opts);
    assert_eq!(fs_.len(), 60 + 80 + 6 + 10);
    assert_eq!(fs_, generate_findings(&world, &opts), "deterministic");
    let normal: BTreeSet<(String, String)> = world
        .normal_pairs(0..10)
        .map(|(e, ip)| (e, ip.to_string()))
        .collect();
    let mut role_sessions = 0;
    let mut types = BTreeSet::new();
    for f in &fs_ {
        let v = &f.finding;
        assert_eq!(v["schemaVersion"], "2.0");
        let id = v["id"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(v["severity"].is_number());
        assert_eq!(v["service"]["archived"], false);
        types.insert(v["type"].as_str().unwrap().to_owned());
        match (&f.entity, f.ip) {
            (Some(e), Some(ip)) => {
                let (pe, pip) = pair(v).expect("api-call finding has a pair");
                assert_eq!((&pe, pip.as_str()), (e, ip.to_string().as_str()));
                if v["resource"]["accessKeyDetails"]["principalId"]
                    .as_str()
                    .unwrap()
                    .contains(':')
                    && v["resource"]["accessKeyDetails"]["userType"] == "AssumedRole"
                {
                    role_sessions += 1;
                }
                if f.attack {
                    assert!(!world.is_usual(e, ip), "attack from a usual network");
                    assert!(!normal.contains(&(e.clone(), ip.to_string())));
                } else {
                    assert!(
                        normal.contains(&(e.clone(), ip.to_string())),
                        "benign pair not in normal pairs"
                    );
                }
                assert!(geo::is_public_v4(ip));
            }
            _ => {
                assert!(!f.attack);
                assert_eq!(v["type"], "Recon:EC2/PortProbeUnprotectedPort");
            }
        }
    }
    assert!(
        role_sessions > 0,
        "roles carry their session suffix as GuardDuty sends it"
    );
    assert!(types.len() >= 4, "{types:?}");
    // Updated copies: same id, higher count.
    let ids: Vec<&str> = fs_
        .iter()
        .map(|f| f.finding["id"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert!(unique.len() < ids.len());
    assert!(fs_
        .iter()
        .any(|f| f.finding["service"]["count"].as_i64().unwrap() > 1));

    let ev = eventbridge_event(&fs_[0].finding);
    assert_eq!(ev["detail-type"], "GuardDuty Finding");
    assert_eq!(ev["source"], "aws.guardduty");
    assert_eq!(ev["detail"], fs_[0].finding);
    assert_eq!(ev["account"], fs_[0].finding["accountId"]);
}

#[test]
fn writers_produce_parseable_files() {
    let world = World::new(SynthConfig::new(6, 20, 7));
    let fs_ = generate_findings(&world, &FindingsOptions::default());
    let dir = std::env::temp_dir().join(format!("ipsight-synth-gd-{}", std::process::id()));
    let keys = write_guardduty_export(&dir, &fs_).unwrap();
    let mut lines = 0;
    for k in &keys {
        let parts: Vec<&str> = k.split('/').collect();
        assert_eq!((parts[0], parts[2]), ("AWSLogs", "GuardDuty"));
        assert!(k.ends_with(".jsonl.gz"));
        let mut s = String::new();
        GzDecoder::new(fs::File::open(dir.join(k)).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        for l in s.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["accountId"].as_str(), Some(parts[1]));
            lines += 1;
        }
    }
    assert_eq!(lines, fs_.len());
    assert_eq!(
        keys,
        write_guardduty_export(&dir, &fs_).unwrap(),
        "idempotent keys"
    );

    write_findings_json(&dir.join("findings.json"), &fs_).unwrap();
    let arr: Vec<Value> =
        serde_json::from_str(&fs::read_to_string(dir.join("findings.json")).unwrap()).unwrap();
    assert_eq!(arr.len(), fs_.len());

    let names = write_eventbridge_events(&dir.join("events"), &fs_).unwrap();
    assert_eq!(names.len(), fs_.len());
    let ev: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("events").join(&names[0])).unwrap())
            .unwrap();
    assert_eq!(ev["version"], "0");
    fs::remove_dir_all(&dir).unwrap();
}
