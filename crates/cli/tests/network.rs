//! The issue-14 contract of `ipsight score --output ipsight --ip-db FILE [--ip-db FILE]`: each
//! line gains `network: {asn, as_org, country, ...}` with the values exactly as the databases
//! (built here with mmdb-writer, in GeoLite2 and IPinfo Lite layouts) hold them.

use ipsight_testkit::mmdb::write_mmdb;
use serde_json::{json, Value};

mod common;
use common::{ok, run as ipsight};

#[test]
fn score_lines_carry_the_databases_values() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let mut train = String::new();
    for u in 0..20 {
        for k in 0..10 {
            train.push_str(&format!("AIDAUSER{u:02},10.{u}.0.{k}\n"));
        }
    }
    std::fs::write(p("train.csv"), train).unwrap();
    ok(&[
        "train",
        "--train",
        &p("train.csv"),
        "--model",
        &p("m.ipsm"),
        "--threads",
        "1",
    ]);

    write_mmdb(
        dir.path().join("GeoLite2-ASN.mmdb").as_path(),
        "GeoLite2-ASN",
        6,
        &[(
            "203.0.113.0/24",
            json!({"autonomous_system_number": 64500, "autonomous_system_organization": "Example Transit"}),
        )],
    );
    write_mmdb(
        dir.path().join("GeoLite2-City.mmdb").as_path(),
        "GeoLite2-City",
        6,
        &[(
            "203.0.113.0/24",
            json!({"country": {"iso_code": "BR", "names": {"en": "Brazil"}}, "city": {"names": {"en": "Recife"}},
                   "location": {"latitude": -8.05, "longitude": -34.9}}),
        )],
    );
    write_mmdb(
        dir.path().join("ipinfo_lite.mmdb").as_path(),
        "ipinfo lite.mmdb",
        6,
        &[(
            "198.51.100.0/24",
            json!({"asn": "AS64510", "as_name": "Lite Networks", "as_domain": "lite.example",
                   "country_code": "NZ", "country": "New Zealand", "continent_code": "OC", "continent": "Oceania"}),
        )],
    );
    std::fs::write(
        p("req.csv"),
        "AIDAUSER01,10.1.0.3\nAIDAUSER01,203.0.113.9\nAIDAUSER02,198.51.100.77\n",
    )
    .unwrap();
    let text = ok(&[
        "score",
        "--model",
        &p("m.ipsm"),
        "--output",
        "ipsight",
        "--ip-db",
        &p("GeoLite2-ASN.mmdb"),
        "--ip-db",
        &p("GeoLite2-City.mmdb"),
        "--ip-db",
        &p("ipinfo_lite.mmdb"),
        &p("req.csv"),
    ]);
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    // The model's fields stay, in input order.
    assert_eq!(rows[1]["entity"], "AIDAUSER01");
    assert_eq!(rows[1]["ip"], "203.0.113.9");
    // (The score's own values are the hybrid test's business; here only that they are kept.)
    for k in [
        "dot_product",
        "unusual_percentile",
        "history",
        "explanation",
    ] {
        assert!(rows[1].get(k).is_some(), "{k} missing: {text}");
    }
    assert_eq!(
        rows[0]["network"],
        json!({"asn": null, "as_org": null, "country": null})
    );
    assert_eq!(
        rows[1]["network"],
        json!({"asn": 64500, "as_org": "Example Transit", "country": "BR", "city": "Recife",
               "sources": ["GeoLite2-ASN", "GeoLite2-City"]})
    );
    assert_eq!(
        rows[2]["network"],
        json!({"asn": 64510, "as_org": "Lite Networks", "country": "NZ", "sources": ["ipinfo lite.mmdb"]})
    );

    // Without databases there is no network key; with the SageMaker format they are refused.
    let text = ok(&[
        "score",
        "--model",
        &p("m.ipsm"),
        "--output",
        "ipsight",
        &p("req.csv"),
    ]);
    assert!(!text.contains("\"network\""), "{text}");
    let out = ipsight(&[
        "score",
        "--model",
        &p("m.ipsm"),
        "--ip-db",
        &p("GeoLite2-ASN.mmdb"),
        &p("req.csv"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--output ipsight"));
    // A file that is not a database is named.
    std::fs::write(p("bad.mmdb"), "nope").unwrap();
    let out = ipsight(&[
        "score",
        "--model",
        &p("m.ipsm"),
        "--output",
        "ipsight",
        "--ip-db",
        &p("bad.mmdb"),
        &p("req.csv"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.mmdb"));
}

/// `--tuning FILE` on `score --output ipsight`: one allow line suppresses a pair (the line keeps
/// every field and says which rule); with databases, each line says whether the principal's
/// baseline was ever in the address's AS and country, and the explanation names a first time.
#[test]
fn score_tuning_and_network_history() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let mut train = String::new();
    for u in 0..20 {
        for k in 0..10 {
            train.push_str(&format!("AIDAUSER{u:02},10.{u}.0.{k}\n"));
        }
    }
    std::fs::write(p("train.csv"), train).unwrap();
    ok(&[
        "train",
        "--train",
        &p("train.csv"),
        "--model",
        &p("m.ipsm"),
        "--threads",
        "1",
    ]);
    write_mmdb(
        dir.path().join("asn.mmdb").as_path(),
        "GeoLite2-ASN",
        6,
        &[
            (
                "10.0.0.0/8",
                json!({"autonomous_system_number": 64496, "autonomous_system_organization": "Example Corp"}),
            ),
            (
                "203.0.113.0/24",
                json!({"autonomous_system_number": 64500, "autonomous_system_organization": "Example Transit"}),
            ),
        ],
    );
    write_mmdb(
        dir.path().join("country.mmdb").as_path(),
        "GeoLite2-Country",
        6,
        &[
            ("10.0.0.0/8", json!({"country": {"iso_code": "FR"}})),
            ("203.0.113.0/24", json!({"country": {"iso_code": "BR"}})),
        ],
    );
    std::fs::write(
        p("tuning.toml"),
        "allow = [\n  { cidr = \"203.0.113.0/24\", principal = \"AIDAUSER02\", expires = \"never\", reason = \"Bob's VPN\" },\n]\n",
    )
    .unwrap();
    std::fs::write(
        p("req.csv"),
        "AIDAUSER01,10.1.0.3\nAIDAUSER01,203.0.113.9\nAIDAUSER02,203.0.113.10\n",
    )
    .unwrap();
    let args = |tuning: &str| {
        vec![
            "score".to_owned(),
            "--model".into(),
            p("m.ipsm"),
            "--output".into(),
            "ipsight".into(),
            "--ip-db".into(),
            p("asn.mmdb"),
            "--ip-db".into(),
            p("country.mmdb"),
            "--tuning".into(),
            p(tuning),
            p("req.csv"),
        ]
    };
    let a = args("tuning.toml");
    let text = ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows[0]["network_history"],
        json!({"asn": "seen", "country": "seen"}),
        "{text}"
    );
    assert_eq!(
        rows[1]["network_history"],
        json!({"asn": "first", "country": "first"})
    );
    assert!(
        rows[1]["explanation"].as_str().unwrap().ends_with(
            "First time this principal is seen from AS64500 (Example Transit) and from BR."
        ),
        "{text}"
    );
    assert!(rows[1].get("suppressed_reason").is_none());
    assert_eq!(
        rows[2]["suppressed_reason"],
        format!("{} allow[0] (line 2): cidr 203.0.113.0/24, principal AIDAUSER02 — \"Bob's VPN\", expires never", p("tuning.toml"))
    );
    assert!(
        rows[2].get("unusual_percentile").is_some(),
        "a suppressed line keeps its score"
    );

    std::fs::write(p("bad.toml"), "[learning]\ndays = \"two weeks\"\n").unwrap();
    let out = ipsight(
        &args("bad.toml")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("line 2"), "{err}");
}
