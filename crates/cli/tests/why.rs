//! The "why" through the real binary (issue 11): `ipsight fuse --model M` scores the findings' pairs
//! with the model and the baseline sidecar beside it, and every row — terminal table, JSON, CSV —
//! carries the history and the detector's sentence; `ipsight baseline` fits a sidecar beside a
//! SageMaker endpoint (`ipsight serve` reached through `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`).
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

mod common;
use common::{path as s, succeed_with as ipsight};

/// A finding record as the extractor writes it.
fn record(id: &str, entity: &str, ip: &str) -> Value {
    json!({"finding_id": id, "type": "UnauthorizedAccess:IAMUser/MaliciousIPCaller", "severity": 5.0,
        "account_id": "111122223333", "region": "eu-west-1", "created_at": "2026-01-19T10:00:00Z",
        "updated_at": "2026-01-19T10:00:00Z", "event_first_seen": "2026-01-19T09:00:00Z",
        "event_last_seen": "2026-01-19T10:00:00Z", "count": 1, "sample": false, "user_type": "IAMUser",
        "pairs": [{"entity": entity, "ip": ip, "action": "AWS_API_CALL"}], "ipv6": []})
}

#[test]
fn fuse_with_a_model_and_its_sidecar_explains_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let (model, det) = ipsight_testkit::tiny_hybrid(7);
    let m = dir.path().join("model.ipsm");
    model.save(&m).unwrap();
    det.save(dir.path().join("model.ipsb")).unwrap();
    let findings = dir.path().join("findings");
    std::fs::create_dir_all(&findings).unwrap();
    for (id, e, ip) in [
        ("f1", "user3", "10.3.0.2"),
        ("f2", "user3", "198.51.100.9"),
        ("f3", "AIDANEWPRINCIPAL", "10.3.0.2"),
    ] {
        std::fs::write(
            findings.join(format!("{id}.json")),
            record(id, e, ip).to_string(),
        )
        .unwrap();
    }
    let out_dir = dir.path().join("out");
    let out = ipsight(
        &[
            "fuse",
            "--findings",
            s(&findings),
            "--model",
            s(&m),
            "--date",
            "2026-01-20",
            "--out",
            s(&out_dir),
        ],
        &[],
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("model.ipsb"), "{stderr}");
    let header = table.lines().next().unwrap();
    assert!(header.contains("history"), "{table}");
    for h in ["new_principal", "none", " ip "] {
        assert!(table.contains(h), "{h} in {table}");
    }
    // One "why:" line under each of the three rows, the detector's own sentence.
    assert_eq!(table.matches("\n      why: ").count(), 3, "{table}");
    let report: Value = serde_json::from_slice(
        &std::fs::read(out_dir.join("reports/2026-01-20/suspicious.json")).unwrap(),
    )
    .unwrap();
    for r in report["rows"].as_array().unwrap() {
        let ip: std::net::IpAddr = r["ip"].as_str().unwrap().parse().unwrap();
        let e = r["entity"].as_str().unwrap();
        let want = det.report(
            e,
            ip,
            model.score_ip(e, ip).unwrap(),
            ipsight_model::NewPrincipals::Alert,
        );
        assert_eq!(r["history"], json!(want.history), "{r}");
        assert_eq!(r["score_explanation"], json!(want.explanation), "{r}");
        assert!(
            table.contains(&format!("why: {}", want.explanation)),
            "{table}"
        );
    }
    let csv = std::fs::read_to_string(out_dir.join("reports/2026-01-20/suspicious.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .ends_with("history,embedding_percentile,nearest,score_explanation"));

    // NEW_PRINCIPALS=ignore: the new principal is still reported as such, but not unusual.
    let out = ipsight(
        &[
            "fuse",
            "--findings",
            s(&findings),
            "--model",
            s(&m),
            "--date",
            "2026-01-20",
            "--out",
            s(&out_dir),
        ],
        &[("NEW_PRINCIPALS", "ignore")],
    );
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(
        &std::fs::read(out_dir.join("reports/2026-01-20/suspicious.json")).unwrap(),
    )
    .unwrap();
    let new = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["entity"] == "AIDANEWPRINCIPAL")
        .unwrap();
    assert_eq!(new["history"], "new_principal");
    assert_eq!(new["unusual_percentile"], 0.0);
}

/// `ipsight serve` on a free port; returns the child and its address.
fn serve(model: &Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipsight"))
        .args(["serve", "--model", s(model), "--port", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("serve exited").unwrap();
        if let Some(rest) = l.split("listening on http://").nth(1) {
            break rest.split(':').take(2).collect::<Vec<_>>().join(":");
        }
    };
    (child, addr)
}

#[test]
fn baseline_fits_a_sidecar_beside_an_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = ipsight_testkit::tiny_hybrid(7);
    let m = dir.path().join("endpoint-model.ipsm");
    model.save(&m).unwrap();
    let train = dir.path().join("train.csv");
    let mut f = std::fs::File::create(&train).unwrap();
    let log = ipsight_testkit::tiny_log();
    for i in 0..log.len() {
        writeln!(f, "{},{}", log.entity(i), log.ip(i)).unwrap();
    }
    drop(f);
    let (mut child, addr) = serve(&m);
    let out_path = dir.path().join("endpoint.ipsb");
    let older = dir.path().join("older.csv");
    let endpoint_url = format!("http://{addr}");
    let out = Command::new(env!("CARGO_BIN_EXE_ipsight"))
        .args([
            "baseline",
            "--endpoint",
            "ipsight-test",
            "--train",
            s(&train),
            "--out",
            s(&out_path),
            "--older-out",
            s(&older),
        ])
        .envs([
            ("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", endpoint_url.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ])
        .output()
        .unwrap();
    child.kill().ok();
    child.wait().ok();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("fitted and calibrated on the held-back pairs"),
        "{stderr}"
    );
    let det = ipsight_model::Detector::load(&out_path).unwrap();
    assert_eq!(det.fit.model_fingerprint, None);
    assert_eq!(det.baseline.entities(), 20);
    // The older part as a SageMaker channel: IPv4 `entity,ip` lines only.
    let channel = std::fs::read_to_string(&older).unwrap();
    assert!(!channel.is_empty());
    assert!(channel.lines().all(|l| l
        .split_once(',')
        .unwrap()
        .1
        .parse::<std::net::Ipv4Addr>()
        .is_ok()));
    // IPv6 pairs of the older part are left out of the channel, counted.
    assert!((channel.lines().count() as u64) < det.fit.older_pairs);
    assert!(
        stderr.contains(&format!(
            "wrote the older part ({} pairs",
            channel.lines().count()
        )),
        "{stderr}"
    );
}
