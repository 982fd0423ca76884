//! The CloudTrail bucket agrees with the behaviour model, byte for byte and tuple for tuple.
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use ipsight_synth::{write_cloudtrail, CloudTrailOptions, SynthConfig, World};
use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ipsight-synth-{}-{}", name, std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn gunzip(p: &Path) -> Value {
    let mut s = String::new();
    GzDecoder::new(fs::File::open(p).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    serde_json::from_str(&s).unwrap()
}

fn small() -> World {
    World::new(SynthConfig {
        users: 25,
        automation: 4,
        days: 5,
        events_per_user_day: 20,
        ..SynthConfig::default()
    })
}

/// ARCHITECTURE.md's tuple rules, re-implemented independently on the JSON.
fn tuple(rec: &Value) -> Result<(String, Ipv4Addr), &'static str> {
    let ui = &rec["userIdentity"];
    let kind = ui["type"].as_str();
    let pid = ui["principalId"]
        .as_str()
        .filter(|p| !p.is_empty())
        .ok_or("no_principal")?;
    let entity = match kind {
        Some("FederatedUser") => pid.to_owned(),
        Some("AssumedRole") => pid.split(':').next().unwrap().to_owned(),
        _ => pid.to_owned(),
    };
    let ip = rec["sourceIPAddress"].as_str().ok_or("missing_ip")?;
    if ip == "AWS Internal" {
        return Err("aws_internal");
    }
    if ip.ends_with(".amazonaws.com") {
        return Err("service_host");
    }
    if ip.parse::<std::net::Ipv6Addr>().is_ok() {
        return Err("ipv6");
    }
    Ok((entity, ip.parse().map_err(|_| "invalid")?))
}

#[test]
fn bucket_matches_model() {
    let world = small();
    let dir = tmp("model");
    let opts = CloudTrailOptions {
        folder_markers: true,
        ..Default::default()
    };
    let sum = write_cloudtrail(&world, &dir, &opts).unwrap();
    assert!(sum.log_files > 10 && sum.records > 1000, "{sum:?}");

    let mut tuples = Vec::new();
    let mut skipped: BTreeMap<&str, u64> = BTreeMap::new();
    let mut records = 0u64;
    let (mut digests, mut insights, mut markers) = (0, 0, 0);
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut missing_ua = 0;
    for p in files(&dir) {
        let rel = p.strip_prefix(&dir).unwrap().to_str().unwrap().to_owned();
        if rel.ends_with("_$folder$") {
            assert_eq!(fs::metadata(&p).unwrap().len(), 0);
            markers += 1;
            continue;
        }
        let v = gunzip(&p);
        if rel.contains("/CloudTrail-Digest/") {
            assert!(v.get("Records").is_none(), "digest without Records");
            assert!(v["logFiles"].is_array());
            assert!(rel.contains("_CloudTrail-Digest_"));
            digests += 1;
            continue;
        }
        if rel.contains("/CloudTrail-Insight/") {
            assert!(v["Records"][0].get("userIdentity").is_none());
            insights += 1;
            continue;
        }
        // AWSLogs/<acct>/CloudTrail/<region>/YYYY/MM/DD/<acct>_CloudTrail_<region>_<ts>_<id>.json.gz
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 8, "{rel}");
        assert_eq!((parts[0], parts[2]), ("AWSLogs", "CloudTrail"));
        let name: Vec<&str> = parts[7].trim_end_matches(".json.gz").split('_').collect();
        assert_eq!(name.len(), 5, "{rel}");
        assert_eq!(
            (name[0], name[1], name[2]),
            (parts[1], "CloudTrail", parts[3])
        );
        assert_eq!(name[3].len(), 14);
        assert_eq!(name[4].len(), 16);
        for rec in v["Records"].as_array().unwrap() {
            records += 1;
            assert_eq!(rec["recipientAccountId"].as_str(), Some(parts[1]));
            assert_eq!(rec["awsRegion"].as_str(), Some(parts[3]));
            assert!(rec["eventTime"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}-{}-{}T", parts[4], parts[5], parts[6])));
            *kinds
                .entry(rec["userIdentity"]["type"].as_str().unwrap().to_owned())
                .or_default() += 1;
            if rec.get("userAgent").is_none() {
                missing_ua += 1;
            }
            match tuple(rec) {
                Ok(t) => tuples.push(t),
                Err(r) => *skipped.entry(r).or_default() += 1,
            }
        }
    }
    assert_eq!(records, sum.records);
    assert_eq!(tuples.len() as u64, sum.expected_tuples);
    assert_eq!(
        skipped.get("no_principal").copied().unwrap_or(0),
        sum.skipped.no_principal
    );
    assert_eq!(
        skipped.get("aws_internal").copied().unwrap_or(0),
        sum.skipped.aws_internal
    );
    assert_eq!(
        skipped.get("service_host").copied().unwrap_or(0),
        sum.skipped.service_host
    );
    assert_eq!(skipped.get("ipv6").copied().unwrap_or(0), sum.skipped.ipv6);
    assert_eq!(
        skipped.get("missing_ip").copied().unwrap_or(0),
        sum.skipped.missing_ip
    );
    assert!(!skipped.contains_key("invalid"));
    for reason in ["no_principal", "aws_internal", "service_host", "ipv6"] {
        assert!(
            skipped.get(reason).copied().unwrap_or(0) > 0,
            "no {reason} records: {skipped:?}"
        );
    }
    for k in [
        "IAMUser",
        "AssumedRole",
        "FederatedUser",
        "AWSService",
        "Root",
    ] {
        assert!(kinds.contains_key(k), "no {k}: {kinds:?}");
    }
    assert!(missing_ua > 0);
    assert_eq!(digests, sum.digest_files);
    assert!(digests > 0 && insights > 0 && markers > 0);

    tuples.sort();
    assert_eq!(tuples, world.expected_tuples(0..5));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn same_seed_same_bytes() {
    let run = |name: &str, seed: u64| {
        let world = World::new(SynthConfig {
            seed,
            users: 8,
            automation: 2,
            days: 2,
            ..SynthConfig::default()
        });
        let dir = tmp(name);
        write_cloudtrail(
            &world,
            &dir,
            &CloudTrailOptions {
                organization_trail: true,
                ..Default::default()
            },
        )
        .unwrap();
        let out: Vec<(String, Vec<u8>)> = files(&dir)
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(&dir).unwrap().to_str().unwrap().to_owned(),
                    fs::read(&p).unwrap(),
                )
            })
            .collect();
        fs::remove_dir_all(&dir).unwrap();
        out
    };
    let a = run("det-a", 7);
    let b = run("det-b", 7);
    assert_eq!(a, b);
    assert!(a[0].0.starts_with("AWSLogs/o-"), "{}", a[0].0);
    let c = run("det-c", 8);
    assert_ne!(a, c);
}
