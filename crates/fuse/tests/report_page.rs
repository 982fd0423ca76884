//! The report page (`suspicious.html`) in a real headless Chromium (Debian's `chromium`,
//! installed by `scripts/test`): the page's own script renders the rows, and the assertions read
//! the DOM after it ran (`--dump-dom`). Filters are driven the way a user drives them (a value set
//! and an `input` event dispatched, a header clicked) and through the URL fragment a shared link
//! carries. A screenshot is written to `<target>/tmp/report-page.png` (Cargo's `CARGO_TARGET_TMPDIR`) for a person to look at.
//!
//! Without Chromium the test says `skipped:` and passes, unless `IPSIGHT_REQUIRE_BROWSER=1` (set by
//! `scripts/test`, so CI cannot skip it silently).
use std::path::{Path, PathBuf};
use std::process::Command;

use fuse::{fuse, FuseOptions, Report, ScoreTable};
use ipsight_enrich::Network;
use ipsight_formats::guardduty::FindingRecord;
use serde_json::json;

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("IPSIGHT_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

fn browser() -> Option<PathBuf> {
    let b = chromium();
    if b.is_none() {
        assert!(
            std::env::var("IPSIGHT_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "IPSIGHT_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)"
        );
        eprintln!("skipped: the report page test needs Chromium (apt-get install chromium)");
    }
    b
}

fn run(browser: &Path, args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn record(id: &str, entity: &str, ip: &str, severity: f64, ftype: &str) -> FindingRecord {
    let pair = json!([{"entity": entity, "ip": ip, "action": "AWS_API_CALL"}]);
    let (v4, v6) = if ip.contains(':') {
        (json!([]), pair)
    } else {
        (pair, json!([]))
    };
    serde_json::from_value(
        json!({"finding_id": id, "type": ftype, "severity": severity,
        "account_id": "123456789012", "region": "us-east-1",
        "created_at": "2026-01-19T10:00:00Z", "updated_at": "2026-01-19T10:00:00Z",
        "event_first_seen": "2026-01-18T09:00:00Z", "event_last_seen": "2026-01-19T10:00:00Z",
        "count": 3, "sample": false, "pairs": v4, "ipv6": v6}),
    )
    .unwrap()
}

const EVIL: &str = "AIDA<img src=x onerror=alert(1)>";

fn report() -> Report {
    let records = vec![
        record(
            "f1",
            "AIDAALICE",
            "203.0.113.7",
            8.0,
            "UnauthorizedAccess:IAMUser/MaliciousIPCaller",
        ),
        record(
            "f2",
            "AIDAALICE",
            "198.51.100.9",
            2.0,
            "Recon:IAMUser/UserPermissions",
        ),
        record(
            "f3",
            "AIDABOB",
            "192.0.2.10",
            5.0,
            "Discovery:IAMUser/AnomalousBehavior",
        ),
        record(
            "f4",
            "AIDABOB",
            "2001:db8::10",
            5.0,
            "Discovery:IAMUser/AnomalousBehavior",
        ),
        record(
            "f5",
            "AROACAROL",
            "192.0.2.99",
            8.0,
            "UnauthorizedAccess:IAMUser/TorIPCaller",
        ),
        record(
            "f6",
            EVIL,
            "198.51.100.66",
            3.0,
            "Recon:IAMUser/UserPermissions",
        ),
    ];
    let mut scores = ScoreTable::default();
    let lines = [
        json!({"entity": "AIDAALICE", "ip": "203.0.113.7", "dot_product": -3.0, "unusual_percentile": 99.9,
               "history": "none", "nearest": [{"prefix": "198.51.100.0/24", "events": 42, "last_seen": "2026-01-18"}]}),
        json!({"entity": "AIDAALICE", "ip": "198.51.100.9", "dot_product": 2.0, "unusual_percentile": 10.0}),
        json!({"entity": "AIDABOB", "ip": "192.0.2.10", "dot_product": -1.0, "unusual_percentile": 97.0}),
        json!({"entity": "AROACAROL", "ip": "192.0.2.99", "dot_product": -2.0, "unusual_percentile": 99.0}),
    ]
    .iter()
    .map(|l| l.to_string())
    .collect::<Vec<_>>()
    .join("\n");
    scores
        .read_jsonl(lines.as_bytes(), "scores.jsonl", None)
        .unwrap();
    let opts = FuseOptions {
        date: "2026-01-20".into(),
        lookback_days: None,
        trusted: None,
        threats: None,
        include_samples: false,
        labels: None,
        tuning: None,
    };
    let mut r = fuse(&records, &scores, &opts);
    for row in &mut r.rows {
        let (asn, org, cc) = match row.ip.to_string().as_str() {
            "203.0.113.7" => (64500, "Example Transit", "NL"),
            "198.51.100.9" => (64501, "Example Home ISP", "FR"),
            "2001:db8::10" => (64502, "Example V6 Net", "DE"),
            _ => (64511, "Example Hosting", "US"),
        };
        row.network = Some(Network {
            asn: Some(asn),
            as_org: Some(org.into()),
            country: Some(cc.into()),
            ..Network::default()
        });
    }
    r
}

/// The rendered rows of the main table: `(entity, ip)` in display order.
fn table_rows(dom: &str) -> Vec<(String, String)> {
    let body = dom
        .split("<table id=\"rows\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("rows table");
    body.split("<tr ")
        .skip(1)
        .filter_map(|tr| {
            let attr = |name: &str| {
                tr.split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|v| v.split('"').next())
                    .map(|v| {
                        v.replace("&lt;", "<")
                            .replace("&gt;", ">")
                            .replace("&amp;", "&")
                    })
            };
            Some((attr("data-entity")?, attr("data-ip")?))
        })
        .collect()
}

#[test]
fn report_page_filters_sorts_and_drills_down_in_chromium() {
    let Some(chrome) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let report = report();
    let page = dir.path().join("suspicious.html");
    std::fs::write(&page, report.to_html()).unwrap();
    let url = format!("file://{}", page.display());

    // As opened: every row, ranked, with the network columns.
    let dom = run(&chrome, &["--dump-dom"], &url);
    let rows = table_rows(&dom);
    assert_eq!(rows.len(), 6, "{dom}");
    assert_eq!(
        rows[0],
        ("AIDAALICE".to_owned(), "203.0.113.7".to_owned()),
        "ranked by risk"
    );
    assert!(dom.contains("6 of 6 rows"));
    assert!(dom.contains("Example Transit") && dom.contains(">NL<"));
    // Attacker-chosen text is shown as text, never run as markup.
    assert!(rows.iter().any(|(e, _)| e == EVIL));
    assert!(!dom.contains("<img"), "a principal name became an element");

    // A user types a principal into the filter: the rows update.
    let typed = dir.path().join("typed.html");
    let script = r#"<script>const q = document.getElementById("q"); q.value = "aidabob";
        q.dispatchEvent(new Event("input"));</script></body>"#;
    std::fs::write(
        &typed,
        String::from_utf8(report.to_html())
            .unwrap()
            .replace("</body>", script),
    )
    .unwrap();
    let dom = run(
        &chrome,
        &["--dump-dom"],
        &format!("file://{}", typed.display()),
    );
    let rows = table_rows(&dom);
    assert_eq!(
        rows,
        [
            ("AIDABOB".to_owned(), "192.0.2.10".to_owned()),
            ("AIDABOB".to_owned(), "2001:db8::10".to_owned())
        ]
    );
    assert!(dom.contains("2 of 6 rows"));

    // Country and sort through the controls: clicking "risk" twice sorts ascending.
    let clicked = dir.path().join("clicked.html");
    let script = r#"<script>const c = document.getElementById("country"); c.value = "US";
        c.dispatchEvent(new Event("input"));
        const th = document.querySelector('th[data-k="risk"]'); th.click(); th.click();</script></body>"#;
    std::fs::write(
        &clicked,
        String::from_utf8(report.to_html())
            .unwrap()
            .replace("</body>", script),
    )
    .unwrap();
    let dom = run(
        &chrome,
        &["--dump-dom"],
        &format!("file://{}", clicked.display()),
    );
    let rows = table_rows(&dom);
    assert_eq!(rows.len(), 3, "US rows: {rows:?}");
    assert_eq!(
        rows[2].0, "AROACAROL",
        "ascending risk puts the riskiest last"
    );

    // A shared link opens a principal: its drill-down shows the flagged pair, why, its networks.
    let dom = run(
        &chrome,
        &["--dump-dom"],
        &format!("{url}#principal=AIDAALICE&ip=203.0.113.7&minrisk=50"),
    );
    assert!(
        dom.contains("<h2 id=\"d-principal\">AIDAALICE</h2>"),
        "{dom}"
    );
    let why = dom.split("id=\"d-why\">").nth(1).unwrap();
    assert!(why.starts_with("GuardDuty: max severity 8.0"), "{why}");
    let networks = dom.split("<ul id=\"networks\">").nth(1).unwrap();
    assert!(networks.contains("AS64500 Example Transit · NL — 1 pair"));
    assert!(networks.contains("AS64501 Example Home ISP · FR — 1 pair"));
    assert!(dom.contains("2026-01-18T09:00:00Z"), "first seen");
    // Its baseline beside the flagged pair: the history level and the nearest known prefix.
    let baseline = dom.split("<table id=\"baseline\">").nth(1).unwrap();
    assert!(
        baseline.contains("198.51.100.0/24 (42 events, last 2026-01-18)"),
        "{baseline}"
    );
    assert!(baseline.contains("<td>none</td>"), "{baseline}");
    // minrisk=50 from the link hides Alice's low-risk pair in the table (not in her drill-down).
    assert!(!table_rows(&dom).iter().any(|(_, ip)| ip == "198.51.100.9"));

    // A screenshot of the opened drill-down, for a person to look at.
    // Cargo's own scratch directory for integration tests: it exists whatever the target dir
    // is (a relative "target" would be resolved from the crate's directory, where none exists).
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-page.png");
    run(
        &chrome,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,1000",
            "--hide-scrollbars",
        ],
        &format!("{url}#principal=AIDAALICE&ip=203.0.113.7"),
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 20_000, "a blank page is a few KB");
    eprintln!("screenshot: {}", shot.display());
}
