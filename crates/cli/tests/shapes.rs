//! Issue 17's shapes through the real binary: OCSF translations (rc.2 JSON lines, a 1.1
//! pretty-printed document) give the tuples `prepare cloudtrail` gives for the raw records under the
//! same entity definition, and Security Hub's copies of GuardDuty findings give the native tuples.
use std::path::PathBuf;

mod common;
use common::ok as ipsight;

fn fixture(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../formats/tests/fixtures")
        .join(p)
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn ocsf_translations_give_the_cloudtrail_tuples() {
    let trail = fixture("ocsf/cloudtrail.json");
    for (entity, want_lines) in [("principal", 8), ("arn", 6), ("user_agent_family", 8)] {
        let want = ipsight(&["prepare", "cloudtrail", "--entity", entity, &trail]);
        assert_eq!(want.lines().count(), want_lines, "{entity}: {want}");
        for ocsf in ["ocsf/rc2.jsonl", "ocsf/v1_1.json"] {
            let got = ipsight(&["prepare", "ocsf", "--entity-kind", entity, &fixture(ocsf)]);
            assert_eq!(got, want, "{ocsf} under {entity}");
        }
    }
}

#[test]
fn security_hub_copies_give_the_native_tuples() {
    let native = ipsight(&["extract", "guardduty", &fixture("guardduty/export.jsonl")]);
    let asff = ipsight(&[
        "extract",
        "guardduty",
        &fixture("guardduty/asff-get-findings.json"),
    ]);
    // Security Hub does not carry the Kubernetes user of EKS findings: those pairs need the native
    // finding; every other tuple is the same, in the same order.
    let native_without_eks: String = native
        .lines()
        .filter(|l| !l.starts_with("AROAEXAMPLEEKSADMIN1,"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(native.lines().count(), 8);
    assert_eq!(asff, native_without_eks);
}
