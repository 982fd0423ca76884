//! AWS Security Finding Format (ASFF) findings for fused rows, and `BatchImportFindings` request
//! bodies within the service's limits (≤ 100 findings and ≤ 6 MB a request, ≤ 240 KB a finding).
use std::collections::BTreeMap;
use std::net::IpAddr;

use ipsight_enrich::Network;
use serde::Serialize;

use crate::{Detection, Generator, Skipped};

pub const SCHEMA_VERSION: &str = "2018-10-08";
pub const MAX_FINDINGS_PER_REQUEST: usize = 100;
/// 6 MB request limit.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;
pub const MAX_FINDING_BYTES: usize = 240 * 1024;
const MAX_DESCRIPTION_CHARS: usize = 1024;
const MAX_TITLE_CHARS: usize = 256;
const MAX_PRODUCT_FIELD_CHARS: usize = 2048;

/// Who imports. The fuse Lambda knows its own account and region (its function ARN); the CLI
/// takes `--account`/`--region` or, without them, imports each finding as the principal's own
/// account and region would (the default product of that account).
#[derive(Debug, Clone)]
pub struct Importer {
    pub account: Option<String>,
    pub region: Option<String>,
    pub partition: String,
    /// `UpdatedAt` of every finding (unless its last event is later): the report date's
    /// midnight, so a re-run of the same report sends the same bytes and a later report updates
    /// the finding instead of duplicating it.
    pub updated_at: String,
}

impl Importer {
    /// An importer for the report of `date` (`YYYY-MM-DD`) in the `aws` partition.
    pub fn for_date(date: &str, account: Option<String>, region: Option<String>) -> Self {
        Self {
            account,
            region,
            partition: "aws".to_owned(),
            updated_at: format!("{date}T00:00:00Z"),
        }
    }
}

/// Placeholder account when neither the importer nor the row names one (a finding record
/// without `account_id`); Security Hub refuses it, so it is visible rather than misfiled.
pub const UNKNOWN_ACCOUNT: &str = "000000000000";
const DEFAULT_REGION: &str = "us-east-1";

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Finding {
    pub schema_version: &'static str,
    pub id: String,
    pub product_arn: String,
    pub generator_id: String,
    pub aws_account_id: String,
    pub types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_observed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_observed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub severity: Severity,
    pub title: String,
    pub description: String,
    pub product_name: &'static str,
    pub company_name: &'static str,
    pub resources: Vec<Resource>,
    pub network: NetworkSection,
    pub product_fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Severity {
    /// `INFORMATIONAL`, `LOW`, `MEDIUM`, `HIGH`, `CRITICAL`.
    pub label: &'static str,
    /// The fused risk as text (`97.31`).
    pub original: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Resource {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub id: String,
    pub partition: String,
    pub region: String,
    pub details: ResourceDetails,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceDetails {
    pub other: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSection {
    pub direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip_v4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip_v6: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_domain: Option<String>,
}

/// The fused risk (0–100) as a Security Hub label. The bands follow Security Hub's own
/// normalized-severity bands (1–39 low, 40–69 medium, 70–89 high, 90–100 critical).
pub fn severity_label(risk: f64) -> &'static str {
    match risk {
        r if r >= 90.0 => "CRITICAL",
        r if r >= 70.0 => "HIGH",
        r if r >= 40.0 => "MEDIUM",
        r if r >= 1.0 => "LOW",
        _ => "INFORMATIONAL",
    }
}

/// At most `n` characters, cut on a character boundary, `…` marking the cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(n - 1).collect();
    out.push('…');
    out
}

/// The resource type of a principal id by its IAM prefix.
fn resource_type(entity: &str) -> &'static str {
    match entity.get(..4) {
        Some("AIDA") => "AwsIamUser",
        Some("AROA") => "AwsIamRole",
        _ => "Other",
    }
}

/// `AS64500 Example Transit, DE, Berlin; AWS EC2 us-east-1; vpn, hosting`.
pub fn describe_network(n: &Network) -> String {
    let mut parts = Vec::new();
    let mut who = Vec::new();
    if let Some(a) = n.asn {
        who.push(format!("AS{a}"));
    }
    if let Some(o) = &n.as_org {
        who.push(o.clone());
    }
    let mut place = vec![who.join(" ")];
    place.extend(n.country.clone());
    place.extend(n.city.clone());
    place.retain(|p| !p.is_empty());
    if !place.is_empty() {
        parts.push(place.join(", "));
    }
    if let Some(aws) = &n.aws {
        parts.push(format!("AWS {} {}", aws.services.join("/"), aws.region));
    }
    if !n.flags.is_empty() {
        parts.push(n.flags.join(", "));
    }
    parts.join("; ")
}

/// The deterministic finding id of a `<principal, address>`: a re-run, or tomorrow's report,
/// updates the same finding instead of adding one.
pub fn finding_id(account: &str, entity: &str, ip: IpAddr) -> String {
    generated_id(Generator::Fuse, account, entity, ip)
}

/// [`finding_id`] in a generator's own id space.
pub fn generated_id(g: Generator, account: &str, entity: &str, ip: IpAddr) -> String {
    format!("{account}/ipsight/{}/{entity}/{ip}", g.id_kind())
}

pub fn finding(importer: &Importer, d: &Detection) -> Finding {
    let account = d.account.unwrap_or(UNKNOWN_ACCOUNT).to_owned();
    let region = d.region.unwrap_or(DEFAULT_REGION).to_owned();
    let importer_account = importer.account.as_deref().unwrap_or(&account);
    let product_arn = format!(
        "arn:{}:securityhub:{}:{importer_account}:product/{importer_account}/default",
        importer.partition,
        importer.region.as_deref().unwrap_or(&region),
    );
    // Security Hub wants UpdatedAt ≥ CreatedAt; both stay functions of the inputs.
    let created_at = d
        .first_seen
        .map_or_else(|| importer.updated_at.clone(), str::to_owned);
    let updated_at = [
        Some(importer.updated_at.as_str()),
        d.first_seen,
        d.last_seen,
    ]
    .into_iter()
    .flatten()
    .max()
    .expect("updated_at is always there")
    .to_owned();
    let network_text = d.network.map(describe_network).filter(|s| !s.is_empty());
    let title = clip(
        &format!(
            "{} acted from an unusual address {}{}",
            d.entity,
            d.ip,
            network_text
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ),
        MAX_TITLE_CHARS,
    );
    let mut description = format!("Risk {:.1}/100. {}", d.risk, d.explanation);
    if let Some(n) = &network_text {
        description.push_str(&format!(" Network: {n}."));
    }
    if !d.finding_types.is_empty() {
        description.push_str(&format!(" GuardDuty: {}.", d.finding_types.join(", ")));
    }
    let mut fields = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        if !v.is_empty() {
            fields.insert(format!("ipsight/{k}"), clip(&v, MAX_PRODUCT_FIELD_CHARS));
        }
    };
    put("risk", format!("{:.2}", d.risk));
    put("report_date", d.date.to_owned());
    put("explanation", d.explanation.to_owned());
    if let Some(u) = d.unusual_percentile {
        put("unusual_percentile", format!("{u:.2}"));
    }
    if let Some(h) = d.history {
        put("history", h.to_owned());
    }
    put("max_severity", format!("{:.1}", d.max_severity));
    put("finding_types", d.finding_types.join(","));
    put("guardduty_finding_ids", d.finding_ids.join(","));
    if let Some(n) = d.network {
        put("asn", n.asn.map(|a| a.to_string()).unwrap_or_default());
        put("as_org", n.as_org.clone().unwrap_or_default());
        put("country", n.country.clone().unwrap_or_default());
        put("city", n.city.clone().unwrap_or_default());
        put("flags", n.flags.join(","));
        if let Some(a) = &n.aws {
            put("aws_services", a.services.join(","));
            put("aws_region", a.region.clone());
            put("aws_prefix", a.prefix.clone());
        }
    }
    let mut other = BTreeMap::new();
    other.insert("PrincipalId".to_owned(), d.entity.to_owned());
    Finding {
        schema_version: SCHEMA_VERSION,
        id: generated_id(d.generator, &account, d.entity, d.ip),
        product_arn,
        generator_id: d.generator.generator_id().to_owned(),
        aws_account_id: account,
        types: vec!["Unusual Behaviors/User".to_owned()],
        first_observed_at: d.first_seen.map(str::to_owned),
        last_observed_at: d.last_seen.map(str::to_owned),
        created_at,
        updated_at,
        severity: Severity {
            label: severity_label(d.risk),
            original: format!("{:.2}", d.risk),
        },
        title,
        description: clip(&description, MAX_DESCRIPTION_CHARS),
        product_name: "ipsight",
        company_name: "ipsight",
        resources: vec![Resource {
            kind: resource_type(d.entity),
            id: d.entity.to_owned(),
            partition: importer.partition.clone(),
            region,
            details: ResourceDetails { other },
        }],
        network: NetworkSection {
            direction: "IN",
            source_ip_v4: d.ip.is_ipv4().then(|| d.ip.to_string()),
            source_ip_v6: d.ip.is_ipv6().then(|| d.ip.to_string()),
            source_domain: None,
        },
        product_fields: fields,
    }
}

/// `BatchImportFindings` request bodies (`{"Findings":[...]}`), each within the count and size
/// limits, in the findings' order. A finding over 240 KB cannot be sent: it is skipped and counted.
pub fn request_bodies(findings: &[Finding], skipped: &mut Skipped) -> Vec<Vec<Finding>> {
    const ENVELOPE: usize = r#"{"Findings":[]}"#.len();
    let mut batches: Vec<Vec<Finding>> = Vec::new();
    let mut bytes = ENVELOPE;
    for f in findings {
        let size = serde_json::to_vec(f).map_or(usize::MAX, |v| v.len());
        if size > MAX_FINDING_BYTES {
            skipped.too_large += 1;
            continue;
        }
        let full = batches.last().is_none_or(|b| {
            b.len() >= MAX_FINDINGS_PER_REQUEST || bytes + 1 + size > MAX_REQUEST_BYTES
        });
        if full {
            batches.push(Vec::new());
            bytes = ENVELOPE;
        }
        bytes += size + 1;
        batches.last_mut().expect("pushed above").push(f.clone());
    }
    batches
}

/// One request body as JSON text (one line of `--security-hub OUT`).
pub fn body_json(batch: &[Finding]) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Body<'a> {
        findings: &'a [Finding],
    }
    serde_json::to_string(&Body { findings: batch }).expect("findings serialise")
}
