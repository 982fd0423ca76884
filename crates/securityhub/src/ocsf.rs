//! OCSF 1.1 Detection Finding (class 2004): the same detection for Security Lake custom sources
//! and SIEMs that speak OCSF.
use ipsight_core::time::epoch_seconds;
use serde_json::{json, Map, Value};

use crate::asff::severity_label;
use crate::Detection;

pub const CLASS_UID: u32 = 2004;
const CATEGORY_UID: u32 = 2;
const ACTIVITY_CREATE: u32 = 1;

/// OCSF `severity_id` of a Security Hub label (1 informational … 5 critical).
fn severity_id(label: &str) -> u32 {
    match label {
        "CRITICAL" => 5,
        "HIGH" => 4,
        "MEDIUM" => 3,
        "LOW" => 2,
        _ => 1,
    }
}

fn millis(t: Option<&str>) -> Option<i64> {
    t.and_then(epoch_seconds).map(|s| s * 1000)
}

/// One Detection Finding. `uid` is the Security Hub finding id, so the two outputs name the same
/// detection the same way.
pub fn detection_finding(d: &Detection, uid: &str) -> Value {
    let label = severity_label(d.risk);
    let sev = severity_id(label);
    let time = millis(d.last_seen)
        .or_else(|| millis(Some(d.date)))
        .unwrap_or(0);
    let mut info = Map::new();
    info.insert("uid".into(), uid.into());
    info.insert(
        "title".into(),
        format!("{} acted from an unusual address {}", d.entity, d.ip).into(),
    );
    info.insert("desc".into(), d.explanation.into());
    info.insert("types".into(), json!(d.finding_types));
    info.insert(
        "analytic".into(),
        json!({"name": "ipsight", "type_id": 4, "type": "Statistical"}),
    );
    if let Some(t) = millis(d.first_seen) {
        info.insert("first_seen_time".into(), t.into());
    }
    if let Some(t) = millis(d.last_seen) {
        info.insert("last_seen_time".into(), t.into());
    }
    let mut endpoint = json!({"ip": d.ip.to_string()});
    if let Some(n) = d.network {
        if n.asn.is_some() || n.as_org.is_some() {
            endpoint["autonomous_system"] = json!({"number": n.asn, "name": n.as_org});
        }
        if n.country.is_some() || n.city.is_some() {
            endpoint["location"] = json!({"country": n.country, "city": n.city});
        }
    }
    let mut cloud = json!({"provider": "AWS"});
    if let Some(a) = d.account {
        cloud["account"] = json!({"uid": a, "type_id": 10, "type": "AWS Account"});
    }
    if let Some(r) = d.region {
        cloud["region"] = r.into();
    }
    json!({
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "severity_id": sev,
        "severity": label.to_ascii_lowercase(),
        "status_id": 1,
        "status": "New",
        "time": time,
        "risk_score": d.risk.round() as i64,
        "metadata": {"version": "1.1.0", "product": {"name": "ipsight", "vendor_name": "ipsight"}},
        "finding_info": info,
        "cloud": cloud,
        "evidences": [{"actor": {"user": {"uid": d.entity}}, "src_endpoint": endpoint}],
        "resources": [{"uid": d.entity, "type": "Principal"}],
        "unmapped": {"unusual_percentile": d.unusual_percentile, "history": d.history,
                     "max_severity": d.max_severity, "guardduty_finding_ids": d.finding_ids,
                     "network": d.network},
    })
}
