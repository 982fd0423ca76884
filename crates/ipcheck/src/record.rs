//! What ipcheck writes: one score record per distinct pair, and alerts with stable ids.
use std::net::IpAddr;

use ipsight_ports::{History, Nearest};
use serde::Serialize;

use crate::{Kind, Threshold};

/// One line of `scores/<source key>.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreRecord {
    pub entity: String,
    /// IPv4, or IPv6 in canonical RFC 5952 text.
    pub ip: IpAddr,
    /// IP Insights' score: higher = more normal.
    pub dot_product: f32,
    /// 0–100, higher = less normal. With the baseline sidecar: the combined score's share of
    /// held-back recent normal activity that looked more normal (a new principal: 100 or 0 by
    /// `NEW_PRINCIPALS`); without: the embedding's, on its training pairs (None uncalibrated).
    pub unusual_percentile: Option<f64>,
    /// The embedding's own unusualness on the same scale.
    pub embedding_percentile: Option<f64>,
    /// Where the address sits in the principal's history (`ip`, `/24`, `/16`, IPv6 `/64` … `/32`,
    /// `none`, `new_principal`); null without a baseline.
    pub history: Option<History>,
    /// Why, in one sentence: history level, nearest known prefixes, both percentiles.
    pub explanation: String,
    /// Up to 3 prefixes the principal used nearest to this address.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nearest: Vec<Nearest>,
    pub alert: bool,
    /// Events of the source with this pair.
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// `s3://bucket/key` of the object the pair came from.
    pub source: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The analyst decision on the pair (`false_positive`: no alert; `true_positive`: alert).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'static str>,
    /// Who decided, when and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_reason: Option<String>,
    /// The AWS service behind every event of the pair (CloudTrail `userIdentity.invokedBy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
    /// Network of the address (`IP_DB_URIS`), on pairs that crossed the alert threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<ipsight_enrich::Network>,
    /// Whether the principal's baseline ever placed it in the address's AS / country (`seen` or
    /// `first`), on alert candidates with IP databases and a baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_history: Option<ipsight_enrich::NetworkHistory>,
    /// The tuning rule (`TUNING_URI`) that kept a pair beyond the threshold from alerting:
    /// `allow`, AWS service callers, learning period or the dedup window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_reason: Option<String>,
}

/// One alert: the record, why it alerted, and a stable id for de-duplication downstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub alert_id: String,
    #[serde(flatten)]
    pub record: ScoreRecord,
    pub threshold: Threshold,
}

/// FNV-1a over what identifies the alert: the same input always yields the same id.
pub(crate) fn alert_id(record: &ScoreRecord) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    let id_text = format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{:?}\u{1f}{:?}",
        record.source, record.entity, record.ip, record.class_uid, record.finding_id
    );
    for b in id_text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

impl Alert {
    pub(crate) fn new(record: ScoreRecord, threshold: Threshold) -> Self {
        Self {
            alert_id: alert_id(&record),
            record,
            threshold,
        }
    }
}
