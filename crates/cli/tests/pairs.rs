//! The pair-file contract of `ipsight prepare … --pairs` and `ipsight train --train PAIRS`, through
//! the real binary, on the synthetic organisation (exact expectations from the generator) and on
//! real public CloudTrail samples (consistency with the tuple output).
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use ipsight_formats::pairs::{read_pair_file, PAIR_HEADER};
use ipsight_synth::{time::rfc3339, write_cloudtrail, CloudTrailOptions, SynthConfig, World};

mod common;
use common::{path, succeed as ipsight};

type Pairs = BTreeMap<(String, String), (u64, String, String)>;

fn read_pairs(p: &Path) -> Pairs {
    let text = std::fs::read(p).unwrap();
    assert!(text.starts_with(format!("{PAIR_HEADER}\n").as_bytes()));
    let mut out = BTreeMap::new();
    read_pair_file(&text[..], |e, ip, h| {
        let old = out.insert(
            (e.to_owned(), ip.to_string()),
            (h.events, h.first_seen.clone(), h.last_seen.clone()),
        );
        assert!(old.is_none(), "{e},{ip} appears twice");
    })
    .unwrap();
    out
}

#[test]
fn synthetic_organisation_pairs_are_exactly_the_generators() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(SynthConfig::new(7, 24, 6));
    let trail = dir.path().join("trail");
    write_cloudtrail(
        &world,
        &trail,
        &CloudTrailOptions {
            organization_trail: true,
            ..Default::default()
        },
    )
    .unwrap();
    let pairs = dir.path().join("pairs.csv");
    let tuples = dir.path().join("tuples.csv");
    // --pairs alone writes no tuples (not even to stdout).
    let out = ipsight(&[
        "prepare",
        "cloudtrail",
        path(&trail),
        "--pairs",
        path(&pairs),
    ]);
    assert!(out.stdout.is_empty());
    let summary: serde_json::Value = serde_json::from_slice(
        out.stderr
            .trim_ascii_end()
            .rsplit(|&c| c == b'\n')
            .next()
            .unwrap(),
    )
    .unwrap();

    let want: Pairs = world
        .expected_pair_history(0..6)
        .into_iter()
        .map(|((e, ip), (n, first, last))| {
            ((e, ip.to_string()), (n, rfc3339(first), rfc3339(last)))
        })
        .collect();
    let got = read_pairs(&pairs);
    assert_eq!(got, want);
    let events: u64 = want.values().map(|v| v.0).sum();
    assert_eq!(summary["pair_file"]["pairs"], want.len());
    assert_eq!(summary["pair_file"]["events"], events);
    assert_eq!(summary["stats"]["tuples"], events);
    assert!(
        want.len() * 20 < events as usize,
        "{} pairs for {events} events",
        want.len()
    );

    // `ipsight train --train PAIRS` takes it, and the model tells the world's later activity from
    // the same principals at addresses they never use.
    let model = dir.path().join("m.ipsm");
    let train_args = vec![
        "train",
        "--train",
        path(&pairs),
        "--num-entity-vectors",
        "256",
        "--vector-dim",
        "16",
        "--epochs",
        "8",
        "--mini-batch-size",
        "200",
        "--learning-rate",
        "0.01",
        "--seed",
        "1",
        "--threads",
        "1",
    ];
    let mut args = train_args.clone();
    args.extend(["--model", path(&model)]);
    ipsight(&args);
    // What a user gets is the detector: the embedding (trained on the older half of the pairs by
    // first-seen day) combined with the history of all of them.
    let m = ipsight_model::Model::load(&model).unwrap();
    let detector =
        ipsight_model::combine::Detector::load(ipsight_model::sidecar::sidecar_path(&model))
            .unwrap();
    let normal = world.expected_tuples(0..6);
    let anomalous = world.anomalous_pairs(2000, 1);
    let combined = |v: &[(String, std::net::Ipv4Addr)]| -> Vec<f32> {
        v.iter()
            .map(|(e, ip)| {
                let dot = m.score(e, *ip);
                detector
                    .judge(
                        e,
                        std::net::IpAddr::V4(*ip),
                        dot,
                        ipsight_model::combine::NewPrincipals::Alert,
                    )
                    .combined as f32
            })
            .collect()
    };
    let auc = ipsight_model::eval::auc(&combined(&normal), &combined(&anomalous));
    assert!(auc > 0.95, "combined AUC {auc}");
    // The embedding alone, trained on every pair line (no hold-back), learns the world from a pair
    // file as it does from tuples.
    let all = dir.path().join("all.ipsm");
    let mut args = train_args.clone();
    args.extend(["--model", path(&all), "--holdback-fraction", "0"]);
    ipsight(&args);
    let m = ipsight_model::Model::load(&all).unwrap();
    let dots = |v: &[(String, std::net::Ipv4Addr)]| -> Vec<f32> {
        v.iter().map(|(e, ip)| m.score(e, *ip)).collect()
    };
    let auc = ipsight_model::eval::auc(&dots(&normal), &dots(&anomalous));
    assert!(auc > 0.95, "embedding AUC {auc}");

    // With -o as well: the same pair file, and tuples that aggregate to it.
    let pairs2 = dir.path().join("pairs2.csv");
    ipsight(&[
        "prepare",
        "cloudtrail",
        path(&trail),
        "-o",
        path(&tuples),
        "--pairs",
        path(&pairs2),
    ]);
    assert_eq!(
        std::fs::read(&pairs).unwrap(),
        std::fs::read(&pairs2).unwrap()
    );
    let mut from_tuples = BTreeMap::<(String, String), u64>::new();
    for l in std::fs::read_to_string(&tuples).unwrap().lines() {
        let (e, ip) = l.split_once(',').unwrap();
        *from_tuples.entry((e.into(), ip.into())).or_default() += 1;
    }
    assert_eq!(
        from_tuples,
        got.iter()
            .map(|(k, v)| (k.clone(), v.0))
            .collect::<BTreeMap<_, _>>()
    );
}

#[test]
fn a_failed_file_writes_no_pair_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"{"Records":[{"eventTime":"2026-01-05T10:00:00Z","userIdentity":{"type":"IAMUser","principalId":"AIDA1"},"sourceIPAddress":"198.51.100.7"}]}"#,
    )
    .unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"Records":[{"eventTime":"#).unwrap();
    let pairs = dir.path().join("p.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_ipsight"))
        .args([
            "prepare",
            "cloudtrail",
            path(&good),
            path(&bad),
            "--pairs",
            path(&pairs),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json"), "{err}");
    assert!(
        err.contains("1 of 2 files failed; no output written"),
        "{err}"
    );
    assert!(!pairs.exists());
    ipsight(&[
        "prepare",
        "cloudtrail",
        path(&good),
        "--pairs",
        path(&pairs),
    ]);
    assert_eq!(
        std::fs::read_to_string(&pairs).unwrap(),
        format!("{PAIR_HEADER}\nAIDA1,198.51.100.7,1,2026-01-05T10:00:00Z,2026-01-05T10:00:00Z\n")
    );
}

#[test]
fn real_cloudtrail_samples_pairs_agree_with_tuples() {
    let Some(real) = ipsight_testkit::real_data(
        "stratus-red-team",
        "ipsight-cli pairs::real_cloudtrail_samples_pairs_agree_with_tuples",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (tuples, pairs) = (dir.path().join("t.csv"), dir.path().join("p.csv"));
    ipsight(&[
        "prepare",
        "cloudtrail",
        path(&real),
        "--any-name",
        "-o",
        path(&tuples),
        "--pairs",
        path(&pairs),
    ]);
    let got = read_pairs(&pairs);
    let mut counts = BTreeMap::<(String, String), u64>::new();
    for l in std::fs::read_to_string(&tuples).unwrap().lines() {
        let (e, ip) = l.split_once(',').unwrap();
        *counts.entry((e.into(), ip.into())).or_default() += 1;
    }
    assert!(!got.is_empty());
    assert_eq!(counts, got.iter().map(|(k, v)| (k.clone(), v.0)).collect());
    for (k, (_, first, last)) in &got {
        assert!(first.len() == 20 && first.ends_with('Z'), "{k:?}: {first}");
        assert!(first <= last, "{k:?}");
    }
}

#[test]
fn ocsf_pairs_use_the_same_mapping_and_render_times_as_rfc3339() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        concat!(
            r#"{"class_uid":4001,"time":1700000000120,"src_endpoint":{"instance_uid":"i-1","ip":"203.0.113.9"}}"#, "\n",
            r#"{"class_uid":4001,"time":1700000000000,"src_endpoint":{"instance_uid":"i-1","ip":"203.0.113.9"}}"#, "\n",
            r#"{"class_uid":6003,"time":1700000100000,"actor":{"user":{"type":"AssumedRole","uid":"AROAX:sess"}},"src_endpoint":{"ip":"198.51.100.1"}}"#, "\n",
            r#"{"class_uid":4001,"time":1700000000000,"src_endpoint":{"instance_uid":"i-2","ip":"AWS Internal"}}"#, "\n",
        ),
    )
    .unwrap();
    let (tuples, pairs) = (dir.path().join("t.csv"), dir.path().join("p.csv"));
    ipsight(&[
        "prepare",
        "ocsf",
        path(&events),
        "-o",
        path(&tuples),
        "--pairs",
        path(&pairs),
    ]);
    assert_eq!(
        std::fs::read_to_string(&tuples).unwrap(),
        "i-1,203.0.113.9\ni-1,203.0.113.9\nAROAX,198.51.100.1\n"
    );
    assert_eq!(
        std::fs::read_to_string(&pairs).unwrap(),
        format!(
            "{PAIR_HEADER}\nAROAX,198.51.100.1,1,2023-11-14T22:15:00Z,2023-11-14T22:15:00Z\n\
             i-1,203.0.113.9,2,2023-11-14T22:13:20Z,2023-11-14T22:13:20.120Z\n"
        )
    );
}
