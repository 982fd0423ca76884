//! The report's rows as Security Hub findings and OCSF Detection Findings. Suppressed rows stay
//! in the report (with the rule that suppressed them) and are not published.

use ipsight_securityhub::{asff, ocsf, Detection, Finding, Importer, Skipped};
use serde_json::Value;

use crate::report::{Report, Row};

fn detection<'a>(date: &'a str, r: &'a Row) -> Detection<'a> {
    Detection {
        generator: ipsight_securityhub::Generator::Fuse,
        date,
        entity: &r.entity,
        ip: r.ip,
        risk: r.risk,
        max_severity: r.max_severity,
        unusual_percentile: r.unusual_percentile,
        history: r.history.map(|h| h.as_str()),
        explanation: &r.explanation,
        finding_types: &r.finding_types,
        finding_ids: &r.finding_ids,
        account: r.accounts.first().map(String::as_str),
        region: r.regions.first().map(String::as_str),
        first_seen: r.first_seen.as_deref(),
        last_seen: r.last_seen.as_deref(),
        network: r.network.as_ref(),
    }
}

/// A row's deterministic id: its Security Hub finding's `Id` (the row's first account, as the
/// finding's `AwsAccountId`), also the key of the top rows' "published before" state.
pub fn row_id(r: &Row) -> String {
    asff::finding_id(
        r.accounts
            .first()
            .map_or(asff::UNKNOWN_ACCOUNT, String::as_str),
        &r.entity,
        r.ip,
    )
}

fn published(report: &Report) -> (Vec<Detection<'_>>, Skipped) {
    let mut skipped = Skipped::default();
    let mut out = Vec::new();
    for r in &report.rows {
        if r.status == "suppressed" {
            skipped.suppressed += 1;
        } else {
            out.push(detection(&report.date, r));
        }
    }
    (out, skipped)
}

/// `BatchImportFindings` batches of the report's unsuppressed rows, in rank order.
pub fn security_hub_batches(report: &Report, importer: &Importer) -> (Vec<Vec<Finding>>, Skipped) {
    let (detections, mut skipped) = published(report);
    let findings: Vec<Finding> = detections
        .iter()
        .map(|d| asff::finding(importer, d))
        .collect();
    let batches = asff::request_bodies(&findings, &mut skipped);
    (batches, skipped)
}

/// One OCSF Detection Finding per unsuppressed row; `uid` is the Security Hub finding's `Id`.
pub fn ocsf_findings(report: &Report, importer: &Importer) -> Vec<Value> {
    published(report)
        .0
        .iter()
        .map(|d| ocsf::detection_finding(d, &asff::finding(importer, d).id))
        .collect()
}
