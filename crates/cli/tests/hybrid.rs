//! `ipsight train` with no hyperparameters writes the model and its baseline sidecar, and
//! `ipsight score --output ipsight` reports every pair with the combined score and its "why"
//! (the contract of issue 11), on the project's synthetic world. Runs the real binary.
use std::io::Write;
use std::path::Path;

use ipsight_model::Model;
use ipsight_synth::{SynthConfig, World};

mod common;
use common::{ok, run as ipsight};

fn write_training(dir: &Path, world: &World) -> String {
    let path = dir.join("train.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for (e, ip) in world.normal_pairs_in_time_order(0..14) {
        writeln!(f, "{e},{ip}").unwrap();
    }
    f.flush().unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn train_without_flags_then_score_with_the_why() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(SynthConfig::new(5, 30, 14));
    let train = write_training(dir.path(), &world);
    let model = dir.path().join("m.ipsm");
    let model_s = model.to_str().unwrap();
    let out = ipsight(&[
        "train",
        "--train",
        &train,
        "--model",
        model_s,
        "--threads",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let sidecar = dir.path().join("m.ipsb");
    assert!(sidecar.exists(), "no sidecar written: {stderr}");
    // The chosen defaults: 2 × distinct entities and the tutorial's settings.
    let m = Model::load(&model).unwrap();
    let entities = world
        .normal_pairs_in_time_order(0..14)
        .into_iter()
        .map(|(e, _)| e)
        .collect::<std::collections::HashSet<_>>()
        .len() as u64;
    assert_eq!(m.hyperparameters().num_entity_vectors, 2 * entities);
    assert_eq!(m.hyperparameters().vector_dim, 128);
    assert_eq!(m.hyperparameters().learning_rate, 0.01);
    assert_eq!(m.hyperparameters().mini_batch_size, 1000);
    assert!(stderr.contains("fitted and calibrated"), "{stderr}");

    let (e, ip) = world.normal_pairs_in_time_order(0..14)[0].clone();
    let far = world.anomalous_pairs(1, 3)[0].1;
    let request = format!("{e},{ip}\n{e},{far}\nAIDANEVERSEENBEFORE0,{ip}\n");
    let req = dir.path().join("req.csv");
    std::fs::write(&req, &request).unwrap();
    let req_s = req.to_str().unwrap();
    let text = ok(&["score", "--model", model_s, "--output", "ipsight", req_s]);
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    for (row, (entity, addr)) in rows.iter().zip([
        (e.as_str(), ip.to_string()),
        (e.as_str(), far.to_string()),
        ("AIDANEVERSEENBEFORE0", ip.to_string()),
    ]) {
        assert_eq!(row["entity"], entity);
        assert_eq!(row["ip"], addr.as_str());
        assert!(row["dot_product"].is_number());
        let u = row["unusual_percentile"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&u), "{row}");
        let p = row["embedding_percentile"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&p), "{row}");
        assert!(row["explanation"].as_str().unwrap().ends_with('.'), "{row}");
    }
    assert_eq!(rows[0]["history"], "ip");
    assert!(rows[0]["explanation"]
        .as_str()
        .unwrap()
        .starts_with("seen from this address"));
    assert_eq!(rows[1]["history"], "none");
    assert!(rows[1]["explanation"]
        .as_str()
        .unwrap()
        .starts_with("never seen from this /16; nearest known: "));
    assert!(!rows[1]["nearest"].as_array().unwrap().is_empty());
    assert!(
        rows[1]["unusual_percentile"].as_f64() > rows[0]["unusual_percentile"].as_f64(),
        "{text}"
    );
    assert_eq!(rows[2]["history"], "new_principal");
    assert_eq!(rows[2]["unusual_percentile"], 100.0);
    let quiet = ok(&[
        "score",
        "--model",
        model_s,
        "--output",
        "ipsight",
        "--new-principals",
        "ignore",
        req_s,
    ]);
    let last: serde_json::Value = serde_json::from_str(quiet.lines().nth(2).unwrap()).unwrap();
    assert_eq!(last["unusual_percentile"], 0.0);

    // The SageMaker response is unchanged by the sidecar: exactly what the wire function gives.
    let sm = ok(&["score", "--model", model_s, req_s]);
    let want = ipsight_model::wire::invoke(&m, request.as_bytes(), "text/csv", "application/json")
        .unwrap();
    assert_eq!(sm.trim_end().as_bytes(), &want[..]);

    // `ipsight evaluate` on the model and files reports the three detectors side by side.
    let normal_path = dir.path().join("normal.csv");
    let anomalous_path = dir.path().join("anomalous.csv");
    let normal: Vec<_> = world.normal_pairs(10..14).take(2000).collect();
    let csv = |pairs: &[(String, std::net::Ipv4Addr)]| -> String {
        pairs.iter().map(|(e, ip)| format!("{e},{ip}\n")).collect()
    };
    std::fs::write(&normal_path, csv(&normal)).unwrap();
    std::fs::write(&anomalous_path, csv(&world.anomalous_pairs(500, 9))).unwrap();
    let report = ok(&[
        "evaluate",
        "--model",
        model_s,
        "--normal",
        normal_path.to_str().unwrap(),
        "--anomalous",
        anomalous_path.to_str().unwrap(),
    ]);
    let auc_of = |name: &str| -> f64 {
        let line = report
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no {name} row: {report}"));
        line.split('|').nth(2).unwrap().trim().parse().unwrap()
    };
    for name in ["embedding", "lookup", "combined"] {
        let auc = auc_of(name);
        assert!((0.5..=1.0).contains(&auc), "{name} AUC {auc}: {report}");
    }
    // The anomalies are random addresses outside every /24 the principal uses: history alone
    // separates most of them, the combined score at least as well as the embedding.
    assert!(auc_of("combined") >= auc_of("embedding") - 0.01, "{report}");
    assert!(report.contains("| 1.0% |"), "{report}");

    // A corrupt sidecar is refused by name and reason; the SageMaker output still works.
    let mut bytes = std::fs::read(&sidecar).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&sidecar, &bytes).unwrap();
    let out = ipsight(&["score", "--model", model_s, "--output", "ipsight", req_s]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("m.ipsb") && err.contains("checksum"), "{err}");
    ok(&["score", "--model", model_s, req_s]);
}

#[test]
fn explicit_hyperparameters_are_honoured_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(SynthConfig::new(6, 10, 3));
    let train = write_training(dir.path(), &world);
    let model = dir.path().join("m");
    ok(&[
        "train",
        "--train",
        &train,
        "--model",
        model.to_str().unwrap(),
        "--vector-dim",
        "16",
        "--num-entity-vectors",
        "77",
        "--epochs",
        "2",
        "--learning-rate",
        "0.003",
        "--mini-batch-size",
        "500",
        "--random-negative-sampling-rate",
        "2",
    ]);
    let hp = Model::load(&model).unwrap().hyperparameters().clone();
    assert_eq!(
        (
            hp.vector_dim,
            hp.num_entity_vectors,
            hp.epochs,
            hp.learning_rate,
            hp.mini_batch_size
        ),
        (16, 77, 2, 0.003, 500)
    );
    assert_eq!(hp.random_negative_sampling_rate, 2);
    // A model path without extension gets `.ipsb` appended for its sidecar.
    assert!(dir.path().join("m.ipsb").exists());
}

#[test]
fn trains_from_a_pair_file_with_times_and_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(SynthConfig::new(7, 20, 10));
    // One pair line per pair and day, with that day's times, as `ipsight prepare --pairs` writes.
    let mut text = String::from("entity,ip,events,first_seen,last_seen\n");
    for d in 0..10 {
        let mut day: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for (e, ip) in world.normal_pairs(d..d + 1) {
            *day.entry((e, ip.to_string())).or_default() += 1;
        }
        let date = format!("2026-01-{:02}", 5 + d);
        for ((e, ip), n) in day {
            text.push_str(&format!("{e},{ip},{n},{date}T08:00:00Z,{date}T18:00:00Z\n"));
        }
    }
    let (e0, _) = world.normal_pairs(0..1).next().unwrap();
    text.push_str(&format!(
        "{e0},2001:db8:7:1::9,3,2026-01-14T08:00:00Z,2026-01-14T09:00:00Z\n"
    ));
    let train = dir.path().join("pairs.csv");
    std::fs::write(&train, &text).unwrap();
    let model = dir.path().join("p.ipsm");
    let out = ipsight(&[
        "train",
        "--train",
        train.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--epochs",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1 IPv6 pairs: in the baseline"), "{stderr}");
    let det = ipsight_model::Detector::load(dir.path().join("p.ipsb")).unwrap();
    assert!(det.baseline.has_times());
    // IPv6 history is kept even though the IPv4 model cannot embed it.
    let l = det.baseline.lookup(&e0, "2001:db8:7:1::1".parse().unwrap());
    assert_eq!(l.history(), ipsight_model::History::Prefix64);
    let days = det.baseline.describe(
        &det.baseline
            .lookup(&e0, world.normal_pairs(0..1).next().unwrap().1.into()),
    );
    assert!(days.contains(" days, last 2026-01-"), "{days}");
}

/// Scores `request` with `--output ipsight` and checks every row's percentiles are numbers in
/// 0–100 and no explanation says NaN.
fn score_rows(model: &str, dir: &Path, request: &str) -> Vec<serde_json::Value> {
    let req = dir.join("tiny-req.csv");
    std::fs::write(&req, request).unwrap();
    let text = ok(&[
        "score",
        "--model",
        model,
        "--output",
        "ipsight",
        req.to_str().unwrap(),
    ]);
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), request.lines().count(), "{text}");
    for row in &rows {
        for field in ["unusual_percentile", "embedding_percentile"] {
            let u = row[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} is not a number: {row}"));
            assert!((0.0..=100.0).contains(&u), "{row}");
        }
        let why = row["explanation"].as_str().unwrap();
        assert!(!why.contains("NaN"), "{row}");
    }
    rows
}

/// A tiny tuple CSV written principal by principal (20 users × 10 addresses, default settings):
/// holding back the end of the file would hold back whole principals, so train holds back the
/// newest share of each principal's pairs, says so, and every percentile is a number (it was
/// `null`, with "NaN%" in the explanation).
#[test]
fn tiny_input_sorted_by_principal_gets_numeric_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for u in 0..20 {
        for a in 0..10 {
            text.push_str(&format!("AIDATINYUSER{u:08},198.51.{u}.{}\n", 10 + a));
        }
    }
    let train = dir.path().join("tiny.csv");
    std::fs::write(&train, &text).unwrap();
    let model = dir.path().join("tiny.ipsm");
    let model_s = model.to_str().unwrap();
    let out = ipsight(&[
        "train",
        "--train",
        train.to_str().unwrap(),
        "--model",
        model_s,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("is not time order"), "{stderr}");
    assert!(stderr.contains("fitted and calibrated"), "{stderr}");
    let det = ipsight_model::Detector::load(dir.path().join("tiny.ipsb")).unwrap();
    assert_eq!(det.fit.held_back_by, "per_principal");
    assert_eq!(det.fit.held_back_new_principals, 0);
    assert!(det.is_calibrated());
    let rows = score_rows(
        model_s,
        dir.path(),
        "AIDATINYUSER00000003,198.51.3.12\nAIDATINYUSER00000003,198.51.3.200\nAIDATINYUSER00000003,203.0.113.77\nAIDANEWPRINCIPAL0000,198.51.3.12\n",
    );
    let history: Vec<&str> = rows
        .iter()
        .map(|r| r["history"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["ip", "/24", "none", "new_principal"]);
    // Monotone in history, whatever the tiny fit.
    let u: Vec<f64> = rows
        .iter()
        .map(|r| r["unusual_percentile"].as_f64().unwrap())
        .collect();
    assert!(u[0] <= u[2], "{rows:?}");
    assert!(rows[0]["explanation"]
        .as_str()
        .unwrap()
        .contains("of recent normal activity"));
}

/// One pair per principal: nothing can be held back of a known principal, so the percentiles are
/// the documented uncalibrated fallback (numbers, said so in the explanation), never NaN.
#[test]
fn one_pair_per_principal_gets_the_uncalibrated_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..30)
        .map(|u| format!("AIDAONEPAIRUSER{u:05},192.0.2.{}\n", 1 + u))
        .collect();
    let train = dir.path().join("one.csv");
    std::fs::write(&train, &text).unwrap();
    let model = dir.path().join("one.ipsm");
    let model_s = model.to_str().unwrap();
    let out = ipsight(&[
        "train",
        "--train",
        train.to_str().unwrap(),
        "--model",
        model_s,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("percentiles are uncalibrated"), "{stderr}");
    let rows = score_rows(
        model_s,
        dir.path(),
        "AIDAONEPAIRUSER00004,192.0.2.5\nAIDAONEPAIRUSER00004,203.0.113.9\n",
    );
    assert_eq!(rows[0]["history"], "ip");
    assert_eq!(rows[1]["history"], "none");
    assert!(
        rows[0]["unusual_percentile"].as_f64() <= rows[1]["unusual_percentile"].as_f64(),
        "{rows:?}"
    );
    assert!(rows[1]["explanation"]
        .as_str()
        .unwrap()
        .contains("uncalibrated"));
}
