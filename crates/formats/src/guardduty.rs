//! GuardDuty findings → `<entity, ip>` inference records.
//!
//! A finding names a principal (`resource.accessKeyDetails`; for EKS audit-log findings the IAM
//! identity behind the Kubernetes user, `kubernetesUserDetails.uid`; for attack sequences each
//! actor) and one or more remote addresses (the API caller, the network peer, every port prober, the
//! Kubernetes client's `remoteIpDetails` and `sourceIPs`, the RDS client, the sequence's endpoints).
//! Each IPv4 remote address paired with the normalised principal is one tuple for the IP Insights
//! scorer; IPv6 addresses are kept aside (SageMaker IP Insights is IPv4-only) and flagged in the
//! record.
//!
//! Every finding family is read (IAM, EC2, S3, EKS audit and runtime, RDS, Lambda, Malware
//! Protection, attack sequences): every field is optional, and a field of an unexpected shape
//! (EKS `kubernetesApiCallAction.userAgent` is a string where API calls have an object) reads as
//! absent instead of failing the finding, let alone the other findings of its object. A finding
//! that yields no record is counted by reason ([`FindingSkip`]) with its id among
//! [`ExtractStats::skipped`].
//!
//! Findings arrive in several shapes, all accepted by [`read_findings`]:
//! * one finding (`{"schemaVersion":"2.0","id":…}`), as the console's "Export" shows it;
//! * an EventBridge "GuardDuty Finding" event (`detail` is the finding);
//! * a JSON array of findings (or of events);
//! * `{"Findings":[…]}` from `aws guardduty get-findings` / boto3, whose keys are **PascalCase**
//!   (`AccessKeyDetails.PrincipalId`) and whose `AdditionalInfo` is `{"Value":"<json>","Type":…}`;
//! * the S3 export: one finding per line (`.jsonl`, usually gzipped), read line by line, so a large
//!   export is never held whole; a line that is not JSON is an error naming its line number;
//! * findings as Security Hub delivers them (ASFF, [`crate::asff`]): `GetFindings` output and
//!   EventBridge "Security Hub Findings - Imported" events. GuardDuty's give the same record as the
//!   native finding; other products' findings are counted (`other_product`), not errors.
//!
//! The access key id in `accessKeyDetails` is never deserialised: it cannot leak into records or logs.
use std::io::{self, BufRead, Read};
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::entity::{eks_principal_id, entity_for, EntityFields, EntityKind};
use crate::ip::{classify_ip, IpClass};
use crate::limit::{is_cap_error, maybe_gunzip, CappedReader};

/// Limits for one input (object or file).
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Maximum uncompressed bytes read (gzip-bomb guard).
    pub max_uncompressed_bytes: u64,
    /// Maximum bytes of one JSONL line (one finding).
    pub max_line_bytes: usize,
    /// What the records' entities are (the preparer's and the model's definition).
    pub entity: EntityKind,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            // GuardDuty exports are small (findings are aggregated); this only stops a bomb.
            max_uncompressed_bytes: 1 << 30,
            max_line_bytes: 8 << 20,
            entity: EntityKind::Principal,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuardDutyError {
    #[error("read failed at line {line} (truncated or corrupt gzip?): {source}")]
    Read { line: u64, source: io::Error },
    #[error(
        "uncompressed size exceeds the cap of {cap} bytes (gzip bomb or unexpectedly large object)"
    )]
    TooLarge { cap: u64 },
    #[error("line {line} exceeds {limit} bytes")]
    LineTooLong { line: u64, limit: usize },
    #[error("invalid JSON at line {line}: {source}")]
    Json {
        line: u64,
        source: serde_json::Error,
    },
    #[error("{}not a GuardDuty finding: {what}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    NotAFinding { line: Option<u64>, what: String },
}

// ---------------------------------------------------------------------------------------------
// The finding, as far as we read it. Every field is optional and unknown fields are skipped; the
// lenient helpers accept the type variations seen in the wild (numbers as strings, asn as either).

/// A GuardDuty finding (camelCase, as in events, exports and the REST API).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Finding {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub account_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub region: Option<String>,
    #[serde(rename = "type", deserialize_with = "lenient_string")]
    pub finding_type: Option<String>,
    #[serde(deserialize_with = "lenient_f64")]
    pub severity: Option<f64>,
    #[serde(deserialize_with = "lenient_string")]
    pub created_at: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub updated_at: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub title: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub resource: Option<Resource>,
    #[serde(deserialize_with = "lenient")]
    pub service: Option<Service>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resource {
    #[serde(deserialize_with = "lenient_string")]
    pub resource_type: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub access_key_details: Option<AccessKeyDetails>,
    #[serde(deserialize_with = "lenient")]
    pub instance_details: Option<InstanceDetails>,
    #[serde(deserialize_with = "lenient")]
    pub kubernetes_details: Option<KubernetesDetails>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubernetesDetails {
    #[serde(deserialize_with = "lenient")]
    pub kubernetes_user_details: Option<KubernetesUserDetails>,
}

/// The Kubernetes user of an EKS audit-log finding. For IAM-authenticated users `uid` is
/// `aws-iam-authenticator:<account>:<principal id>` (`heptio-authenticator-aws:` on older
/// clusters) and `username` is often the IAM ARN.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubernetesUserDetails {
    #[serde(deserialize_with = "lenient_string")]
    pub username: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub uid: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstanceDetails {
    #[serde(deserialize_with = "lenient_string")]
    pub instance_id: Option<String>,
}

/// `{"fullUserAgent": "...", "userAgentCategory": "..."}` (newer findings, in the API call action
/// or in `additionalInfo`), or a plain string (EKS `kubernetesApiCallAction.userAgent`).
#[derive(Debug, Clone, Default)]
pub struct UserAgent {
    pub full_user_agent: Option<String>,
}

impl<'de> Deserialize<'de> for UserAgent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let full_user_agent = match Value::deserialize(d)? {
            Value::String(s) => Some(s),
            Value::Object(o) => o
                .get("fullUserAgent")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        Ok(UserAgent { full_user_agent })
    }
}

/// `accessKeyId` is deliberately absent: access-key ids must never reach a record or a log line.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessKeyDetails {
    #[serde(deserialize_with = "lenient_string")]
    pub principal_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_type: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    #[serde(deserialize_with = "lenient")]
    pub action: Option<Action>,
    #[serde(deserialize_with = "lenient_u64")]
    pub count: Option<u64>,
    #[serde(deserialize_with = "lenient_string")]
    pub event_first_seen: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub event_last_seen: Option<String>,
    /// Kept as JSON: its shape differs between events (`{"sample":true}`) and the API
    /// (`{"value":"{\"sample\":true}","type":"default"}`).
    pub additional_info: Option<Value>,
    #[serde(deserialize_with = "lenient")]
    pub detection: Option<Detection>,
}

/// `service.detection`: GuardDuty Extended Threat Detection attack sequences.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Detection {
    #[serde(deserialize_with = "lenient")]
    pub sequence: Option<Sequence>,
}

/// An attack sequence: who (actors) used which addresses (endpoints), tied by its signals.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Sequence {
    #[serde(deserialize_with = "lenient_vec")]
    pub actors: Vec<SequenceActor>,
    #[serde(deserialize_with = "lenient_vec")]
    pub endpoints: Vec<SequenceEndpoint>,
    #[serde(deserialize_with = "lenient_vec")]
    pub signals: Vec<SequenceSignal>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SequenceActor {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub user: Option<SequenceUser>,
}

/// `credentialUid` (an access key id) is deliberately absent, as in [`AccessKeyDetails`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SequenceUser {
    #[serde(deserialize_with = "lenient_string")]
    pub uid: Option<String>,
    #[serde(rename = "type", deserialize_with = "lenient_string")]
    pub user_type: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub account: Option<SequenceAccount>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SequenceAccount {
    #[serde(deserialize_with = "lenient_string")]
    pub uid: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SequenceEndpoint {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SequenceSignal {
    #[serde(deserialize_with = "lenient_strings")]
    pub actor_ids: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub endpoint_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Action {
    #[serde(deserialize_with = "lenient_string")]
    pub action_type: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub aws_api_call_action: Option<RemoteAction>,
    #[serde(deserialize_with = "lenient")]
    pub network_connection_action: Option<RemoteAction>,
    #[serde(deserialize_with = "lenient")]
    pub port_probe_action: Option<PortProbeAction>,
    #[serde(deserialize_with = "lenient")]
    pub kubernetes_api_call_action: Option<RemoteAction>,
    #[serde(deserialize_with = "lenient")]
    pub rds_login_attempt_action: Option<RemoteAction>,
}

/// Any action with a single `remoteIpDetails`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RemoteAction {
    #[serde(deserialize_with = "lenient")]
    pub remote_ip_details: Option<RemoteIpDetails>,
    /// The API's service (`s3.amazonaws.com`), for `principal+event_source` entities.
    #[serde(deserialize_with = "lenient_string")]
    pub service_name: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub user_agent: Option<UserAgent>,
    /// Every client address of a Kubernetes API call (EKS audit logs' `sourceIPs`).
    #[serde(rename = "sourceIPs", deserialize_with = "lenient_strings")]
    pub source_ips: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortProbeAction {
    #[serde(deserialize_with = "lenient_vec")]
    pub port_probe_details: Vec<RemoteAction>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RemoteIpDetails {
    #[serde(rename = "ipAddressV4", deserialize_with = "lenient_string")]
    pub ip_address_v4: Option<String>,
    #[serde(rename = "ipAddressV6", deserialize_with = "lenient_string")]
    pub ip_address_v6: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub country: Option<Country>,
    #[serde(deserialize_with = "lenient")]
    pub city: Option<City>,
    #[serde(deserialize_with = "lenient")]
    pub organization: Option<Organization>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Country {
    #[serde(deserialize_with = "lenient_string")]
    pub country_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub country_code: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct City {
    #[serde(deserialize_with = "lenient_string")]
    pub city_name: Option<String>,
}

/// `remoteIpDetails.organization`: GuardDuty's own network context of the address.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Organization {
    /// A string in findings (`"16509"`; `"-1"` when unknown).
    #[serde(deserialize_with = "lenient_string")]
    pub asn: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub asn_org: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub isp: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub org: Option<String>,
}

/// What GuardDuty said about a remote address (`remoteIpDetails`), kept on the record so fuse
/// can show it without an IP database (a database, when configured, fills what it lacks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteNetwork {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn_org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// ISO 3166-1 alpha-2 (`countryCode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
}

impl RemoteNetwork {
    fn of(d: &RemoteIpDetails) -> Option<Self> {
        let known = |s: Option<&String>| {
            s.map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty() && s != "-1" && !s.eq_ignore_ascii_case("unknown"))
        };
        let org = d.organization.as_ref();
        let n = Self {
            asn: org
                .and_then(|o| o.asn.as_deref())
                .and_then(|a| a.trim().trim_start_matches("AS").parse::<u32>().ok()),
            asn_org: known(org.and_then(|o| o.asn_org.as_ref())),
            isp: known(org.and_then(|o| o.isp.as_ref())),
            org: known(org.and_then(|o| o.org.as_ref())),
            country_code: known(d.country.as_ref().and_then(|c| c.country_code.as_ref())),
            city: known(d.city.as_ref().and_then(|c| c.city_name.as_ref())),
        };
        (n != Self::default()).then_some(n)
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// A nested object of an unexpected shape reads as absent: GuardDuty adds finding families and
/// varies shapes between them, and one odd field must not cost the finding.
fn lenient<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(T::deserialize(Value::deserialize(d)?).ok())
}

/// The readable elements of an array (anything else: none).
fn lenient_vec<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(a) => a
            .into_iter()
            .filter_map(|v| T::deserialize(v).ok())
            .collect(),
        _ => Vec::new(),
    })
}

/// The string elements of an array; a lone string is a one-element list.
fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(a) => a
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        Value::String(s) => vec![s],
        _ => Vec::new(),
    })
}

fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite()))
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

impl Finding {
    /// `service.additionalInfo.sample`: GuardDuty's generated sample findings
    /// (`CreateSampleFindings`, the console's "Generate sample findings").
    pub fn is_sample(&self) -> bool {
        let Some(info) = self
            .service
            .as_ref()
            .and_then(|s| s.additional_info.as_ref())
        else {
            return false;
        };
        fn truthy(v: Option<&Value>) -> bool {
            match v {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                _ => false,
            }
        }
        if truthy(info.get("sample")) {
            return true;
        }
        // API shape: the additional info is JSON text in `value`.
        match info.get("value") {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                .map(|v| truthy(v.get("sample")))
                .unwrap_or(false),
            Some(v @ Value::Object(_)) => truthy(v.get("sample")),
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The inference record: what extract-guardduty writes per finding and fuse reads back.

/// One `<entity, ip>` a finding names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingPair<I> {
    pub entity: String,
    pub ip: I,
    /// Where the address came from: `AWS_API_CALL`, `NETWORK_CONNECTION`, `PORT_PROBE`,
    /// `KUBERNETES_API_CALL`, `RDS_LOGIN_ATTEMPT`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// GuardDuty's `remoteIpDetails` network context of the address, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<RemoteNetwork>,
}

/// The inference record of one finding: its context and the pairs it names.
///
/// Timestamps are GuardDuty's ISO 8601 strings with fractional seconds cut
/// (`2022-01-13T00:00:47Z`), so they compare correctly as strings whichever form the source used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRecord {
    pub finding_id: String,
    #[serde(rename = "type")]
    pub finding_type: String,
    pub severity: f64,
    pub account_id: String,
    pub region: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub event_first_seen: Option<String>,
    #[serde(default)]
    pub event_last_seen: Option<String>,
    pub count: u64,
    pub sample: bool,
    #[serde(default)]
    pub user_type: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// IPv4 pairs: the tuples for the scorer.
    pub pairs: Vec<FindingPair<Ipv4Addr>>,
    /// IPv6 remote addresses, kept aside: IP Insights is IPv4-only.
    #[serde(default)]
    pub ipv6: Vec<FindingPair<Ipv6Addr>>,
    /// What the pairs' entities are; records written before the field existed are `principal`.
    #[serde(default, skip_serializing_if = "is_principal")]
    pub entity_kind: EntityKind,
}

fn is_principal(k: &EntityKind) -> bool {
    *k == EntityKind::Principal
}

impl FindingRecord {
    /// True when `self` is an older version of the finding than `other` (GuardDuty updates a
    /// finding in place: same id, higher `count`, later `updatedAt`). Used to ignore a stale
    /// redelivery instead of overwriting a newer record with it.
    pub fn is_older_than(&self, other: &FindingRecord) -> bool {
        (self.count, self.updated_at.as_deref()) < (other.count, other.updated_at.as_deref())
    }
}

/// Why a finding yields no record. Counted, never an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingSkip {
    /// No `id`: there is no key to store it under.
    NoId,
    /// No principal: no `resource.accessKeyDetails.principalId`, no IAM identity behind a
    /// Kubernetes user, no sequence actor (EC2, S3-data, RDS, Lambda, malware findings…).
    NoPrincipal,
    /// A principal but no remote IP address at all (e.g. `AWS_SERVICE` callers, DNS findings).
    NoRemoteIp,
    /// A Security Hub (ASFF) finding of another product than GuardDuty.
    OtherProduct,
    /// A finding-like object whose shape could not be read at all.
    Unreadable,
}

/// A finding that yielded no record: its id (when it has one), where it was, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFinding {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub reason: FindingSkip,
}

/// How many skipped findings [`ExtractStats::skipped`] names; the counts cover them all.
pub const MAX_SKIPPED_LISTED: usize = 100;

/// Counts over findings.
/// `records + no_id + no_principal + no_remote_ip + other_product + unreadable == findings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExtractStats {
    pub findings: u64,
    pub records: u64,
    pub pairs: u64,
    pub ipv6_pairs: u64,
    pub invalid_ips: u64,
    pub samples: u64,
    pub no_id: u64,
    pub no_principal: u64,
    pub no_remote_ip: u64,
    pub other_product: u64,
    pub unreadable: u64,
    /// The first [`MAX_SKIPPED_LISTED`] findings that yielded no record, for the logs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedFinding>,
}

impl ExtractStats {
    pub fn add(&mut self, o: &ExtractStats) {
        self.findings += o.findings;
        self.records += o.records;
        self.pairs += o.pairs;
        self.ipv6_pairs += o.ipv6_pairs;
        self.invalid_ips += o.invalid_ips;
        self.samples += o.samples;
        self.no_id += o.no_id;
        self.no_principal += o.no_principal;
        self.no_remote_ip += o.no_remote_ip;
        self.other_product += o.other_product;
        self.unreadable += o.unreadable;
        let room = MAX_SKIPPED_LISTED.saturating_sub(self.skipped.len());
        self.skipped.extend(o.skipped.iter().take(room).cloned());
    }

    /// Count one extraction result.
    pub fn count(&mut self, r: &Result<FindingRecord, SkippedFinding>) {
        self.findings += 1;
        let skip = match r {
            Ok(rec) => {
                self.records += 1;
                self.pairs += rec.pairs.len() as u64;
                self.ipv6_pairs += rec.ipv6.len() as u64;
                self.samples += rec.sample as u64;
                return;
            }
            Err(skip) => skip,
        };
        *match skip.reason {
            FindingSkip::NoId => &mut self.no_id,
            FindingSkip::NoPrincipal => &mut self.no_principal,
            FindingSkip::NoRemoteIp => &mut self.no_remote_ip,
            FindingSkip::OtherProduct => &mut self.other_product,
            FindingSkip::Unreadable => &mut self.unreadable,
        } += 1;
        if self.skipped.len() < MAX_SKIPPED_LISTED {
            self.skipped.push(skip.clone());
        }
    }
}

/// Cut fractional seconds from an ISO 8601 UTC timestamp so that `…:47.000Z` and `…:47Z` compare
/// equal as strings. Anything not in that form is returned unchanged.
pub fn canonical_time(s: &str) -> String {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() > 20 && b[10] == b'T' && b[19] == b'.' && s.ends_with('Z') {
        let frac = &s[20..s.len() - 1];
        if frac.bytes().all(|c| c.is_ascii_digit()) {
            return format!("{}Z", &s[..19]);
        }
    }
    s.to_owned()
}

/// Every `<entity, ip>` a finding names, with its context.
pub fn extract(f: &Finding) -> Result<FindingRecord, FindingSkip> {
    extract_counting(f, EntityKind::Principal, &mut 0)
}

/// The user agent GuardDuty recorded for an API call (AWS or Kubernetes), where it did.
fn user_agent(f: &Finding) -> Option<&str> {
    let s = f.service.as_ref()?;
    let action = s.action.as_ref();
    [
        action.and_then(|a| a.aws_api_call_action.as_ref()),
        action.and_then(|a| a.kubernetes_api_call_action.as_ref()),
    ]
    .into_iter()
    .flatten()
    .find_map(|a| a.user_agent.as_ref()?.full_user_agent.as_deref())
    .or_else(|| {
        s.additional_info
            .as_ref()?
            .get("userAgent")?
            .get("fullUserAgent")?
            .as_str()
    })
}

/// A remote address a finding names, and the action that named it.
struct Remote<'a> {
    action: &'static str,
    ip: &'a str,
    country: Option<&'a str>,
    network: Option<RemoteNetwork>,
}

/// Every remote address of the finding's action, in a stable order.
fn remotes(f: &Finding) -> Vec<Remote<'_>> {
    let mut out = Vec::new();
    let Some(action) = f.service.as_ref().and_then(|s| s.action.as_ref()) else {
        return out;
    };
    fn add<'a>(out: &mut Vec<Remote<'a>>, name: &'static str, a: &'a RemoteAction) {
        if let Some(d) = &a.remote_ip_details {
            let country = d.country.as_ref().and_then(|c| c.country_name.as_deref());
            for ip in [d.ip_address_v4.as_deref(), d.ip_address_v6.as_deref()]
                .into_iter()
                .flatten()
            {
                out.push(Remote {
                    action: name,
                    ip,
                    country,
                    network: RemoteNetwork::of(d),
                });
            }
        }
        for ip in &a.source_ips {
            out.push(Remote {
                action: name,
                ip,
                country: None,
                network: None,
            });
        }
    }
    for (name, a) in [
        ("AWS_API_CALL", &action.aws_api_call_action),
        ("NETWORK_CONNECTION", &action.network_connection_action),
        ("KUBERNETES_API_CALL", &action.kubernetes_api_call_action),
        ("RDS_LOGIN_ATTEMPT", &action.rds_login_attempt_action),
    ] {
        if let Some(a) = a {
            add(&mut out, name, a);
        }
    }
    if let Some(p) = &action.port_probe_action {
        for d in &p.port_probe_details {
            add(&mut out, "PORT_PROBE", d);
        }
    }
    out
}

/// An attack sequence's `(actor, endpoint address)` pairs: those its signals tie together, or, with a
/// single actor, that actor and every endpoint.
fn sequence_links(f: &Finding) -> Vec<(&SequenceUser, &str)> {
    let Some(seq) = f
        .service
        .as_ref()
        .and_then(|s| s.detection.as_ref())
        .and_then(|d| d.sequence.as_ref())
    else {
        return Vec::new();
    };
    let actors: std::collections::HashMap<&str, &SequenceUser> = seq
        .actors
        .iter()
        .filter_map(|a| Some((a.id.as_deref()?, a.user.as_ref()?)))
        .collect();
    let endpoints: std::collections::HashMap<&str, &str> = seq
        .endpoints
        .iter()
        .filter_map(|e| Some((e.id.as_deref()?, e.ip.as_deref()?)))
        .collect();
    let mut links: Vec<(&SequenceUser, &str)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // GuardDuty names at most 400 actors, 400 endpoints and 100 signals; a hostile finding must not
    // turn their product into millions of steps.
    let mut budget = MAX_SEQUENCE_STEPS;
    'signals: for s in &seq.signals {
        for a in s.actor_ids.iter().filter_map(|id| actors.get(id.as_str())) {
            for ip in s
                .endpoint_ids
                .iter()
                .filter_map(|id| endpoints.get(id.as_str()))
            {
                budget -= 1;
                if budget == 0 {
                    break 'signals;
                }
                if seen.insert((*a as *const SequenceUser, *ip)) {
                    links.push((a, ip));
                }
            }
            budget = budget.saturating_sub(s.endpoint_ids.len().min(MAX_SEQUENCE_STEPS));
            if budget == 0 {
                break 'signals;
            }
        }
    }
    if links.is_empty() {
        if let [only] = seq.actors.as_slice() {
            if let Some(u) = &only.user {
                links.extend(
                    seq.endpoints
                        .iter()
                        .filter_map(|e| Some((u, e.ip.as_deref()?)))
                        .take(MAX_SEQUENCE_STEPS),
                );
            }
        }
    }
    links
}

/// Most steps (actor × endpoint id pairs looked at) spent on one attack sequence: far above
/// GuardDuty's own maxima for what it links, far below what would stall the extractor.
const MAX_SEQUENCE_STEPS: usize = 100_000;

/// The pairs of one finding, without duplicates: several port probes (or an address in both
/// `remoteIpDetails` and `sourceIPs`) from one address are one pair.
#[derive(Default)]
struct Pairs {
    v4: Vec<FindingPair<Ipv4Addr>>,
    v6: Vec<FindingPair<Ipv6Addr>>,
    seen: std::collections::HashSet<(String, std::net::IpAddr)>,
}

impl Pairs {
    fn add(&mut self, entity: &str, r: &Remote<'_>, invalid_ips: &mut u64) {
        fn pair<I>(entity: &str, ip: I, r: &Remote<'_>) -> FindingPair<I> {
            FindingPair {
                entity: entity.to_owned(),
                ip,
                action: r.action.to_owned(),
                country: r.country.map(str::to_owned),
                network: r.network.clone(),
            }
        }
        let ip = match classify_ip(r.ip) {
            IpClass::V4(ip) => std::net::IpAddr::V4(ip),
            IpClass::V6(ip) => std::net::IpAddr::V6(ip),
            _ => {
                *invalid_ips += 1;
                return;
            }
        };
        if !self.seen.insert((entity.to_owned(), ip)) {
            return;
        }
        match ip {
            std::net::IpAddr::V4(ip) => self.v4.push(pair(entity, ip, r)),
            std::net::IpAddr::V6(ip) => self.v6.push(pair(entity, ip, r)),
        }
    }
}

fn extract_counting(
    f: &Finding,
    kind: EntityKind,
    invalid_ips: &mut u64,
) -> Result<FindingRecord, FindingSkip> {
    let id =
        f.id.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(FindingSkip::NoId)?;
    let resource = f.resource.as_ref();
    let akd = resource.and_then(|r| r.access_key_details.as_ref());
    let k8s_user = resource
        .and_then(|r| r.kubernetes_details.as_ref())
        .and_then(|k| k.kubernetes_user_details.as_ref());
    let user_type = akd.and_then(|a| a.user_type.as_deref());
    let fields = EntityFields {
        identity_type: user_type,
        principal_id: akd.and_then(|a| a.principal_id.as_deref()).or_else(|| {
            k8s_user
                .and_then(|u| u.uid.as_deref())
                .and_then(eks_principal_id)
        }),
        account_id: f.account_id.as_deref(),
        // GuardDuty names no ARN, except as the Kubernetes user name of an IAM identity.
        arn: k8s_user
            .and_then(|u| u.username.as_deref())
            .filter(|u| u.starts_with("arn:")),
        event_source: f
            .service
            .as_ref()
            .and_then(|s| s.action.as_ref())
            .and_then(|a| a.aws_api_call_action.as_ref())
            .and_then(|a| a.service_name.as_deref()),
        user_agent: user_agent(f),
        instance_id: resource
            .and_then(|r| r.instance_details.as_ref())
            .and_then(|i| i.instance_id.as_deref()),
    };
    let entity = entity_for(kind, &fields);
    let mut pairs = Pairs::default();
    if let Some(e) = &entity {
        for r in remotes(f) {
            pairs.add(e, &r, invalid_ips);
        }
    }
    let mut actors = 0;
    for (user, ip) in sequence_links(f) {
        let actor = EntityFields {
            identity_type: user.user_type.as_deref(),
            principal_id: user.uid.as_deref().filter(|u| !u.starts_with("arn:")),
            account_id: user
                .account
                .as_ref()
                .and_then(|a| a.uid.as_deref())
                .or(f.account_id.as_deref()),
            arn: user.uid.as_deref().filter(|u| u.starts_with("arn:")),
            ..fields
        };
        if let Some(e) = entity_for(kind, &actor) {
            actors += 1;
            let r = Remote {
                action: "ATTACK_SEQUENCE",
                ip,
                country: None,
                network: None,
            };
            pairs.add(&e, &r, invalid_ips);
        }
    }
    if entity.is_none() && actors == 0 {
        return Err(FindingSkip::NoPrincipal);
    }
    if pairs.v4.is_empty() && pairs.v6.is_empty() {
        return Err(FindingSkip::NoRemoteIp);
    }
    let service = f.service.as_ref();
    let time = |s: Option<&String>| s.map(|s| canonical_time(s));
    Ok(FindingRecord {
        finding_id: id.to_owned(),
        finding_type: f.finding_type.clone().unwrap_or_default(),
        severity: f.severity.unwrap_or(0.0).clamp(0.0, 10.0),
        account_id: f.account_id.clone().unwrap_or_default(),
        region: f.region.clone().unwrap_or_default(),
        created_at: time(f.created_at.as_ref()),
        updated_at: time(f.updated_at.as_ref()),
        event_first_seen: time(service.and_then(|s| s.event_first_seen.as_ref())),
        event_last_seen: time(service.and_then(|s| s.event_last_seen.as_ref())),
        count: service.and_then(|s| s.count).unwrap_or(1),
        sample: f.is_sample(),
        user_type: user_type.map(str::to_owned),
        title: f.title.clone(),
        pairs: pairs.v4,
        ipv6: pairs.v6,
        entity_kind: kind,
    })
}

/// One record per finding: when the same finding appears more than once (an export holding two
/// versions, several inputs), the newest version wins, at the position of its first appearance.
pub fn keep_latest(records: Vec<FindingRecord>) -> Vec<FindingRecord> {
    let mut index = std::collections::HashMap::<(String, String, String), usize>::new();
    let mut out: Vec<FindingRecord> = Vec::with_capacity(records.len());
    for r in records {
        let k = (r.account_id.clone(), r.region.clone(), r.finding_id.clone());
        match index.get(&k) {
            Some(&i) => {
                if out[i].is_older_than(&r) {
                    out[i] = r;
                }
            }
            None => {
                index.insert(k, out.len());
                out.push(r);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Input shapes.

/// One finding as read: the finding, or why the object that stood for one cannot be one.
pub type ReadFinding = Result<Finding, SkippedFinding>;

/// Read every finding in `input` (gzipped or not, any shape listed in the module docs), calling
/// `each` for each one in input order.
pub fn read_findings<R: BufRead>(
    input: R,
    opts: &ReadOptions,
    mut each: impl FnMut(ReadFinding),
) -> Result<u64, GuardDutyError> {
    let capped = CappedReader::new(
        maybe_gunzip(input).map_err(|source| GuardDutyError::Read { line: 1, source })?,
        opts.max_uncompressed_bytes,
    );
    let cap = opts.max_uncompressed_bytes;
    let io_err = |line: u64, e: io::Error| {
        if is_cap_error(&e) {
            GuardDutyError::TooLarge { cap }
        } else {
            GuardDutyError::Read { line, source: e }
        }
    };
    let mut r = io::BufReader::with_capacity(64 << 10, capped);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let mut findings = 0u64;
    let mut emit = |f: ReadFinding| {
        findings += 1;
        each(f)
    };
    // The first non-blank line decides: a complete JSON value → one document per line (the S3
    // export); an incomplete one → a single (pretty-printed) document.
    loop {
        buf.clear();
        line_no += 1;
        let n = read_line_capped(&mut r, &mut buf, opts.max_line_bytes)
            .map_err(|e| io_err(line_no, e))?
            .ok_or(GuardDutyError::LineTooLong {
                line: line_no,
                limit: opts.max_line_bytes,
            })?;
        if n == 0 {
            return Ok(findings); // empty input: no findings
        }
        if !buf.iter().all(u8::is_ascii_whitespace) {
            break;
        }
    }
    match serde_json::from_slice::<Value>(&buf) {
        Ok(v) => {
            visit(v, Some(line_no), 0, &mut emit)?;
            loop {
                buf.clear();
                line_no += 1;
                let n = read_line_capped(&mut r, &mut buf, opts.max_line_bytes)
                    .map_err(|e| io_err(line_no, e))?
                    .ok_or(GuardDutyError::LineTooLong {
                        line: line_no,
                        limit: opts.max_line_bytes,
                    })?;
                if n == 0 {
                    break;
                }
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let v = serde_json::from_slice::<Value>(&buf).map_err(|source| {
                    GuardDutyError::Json {
                        line: line_no,
                        source,
                    }
                })?;
                visit(v, Some(line_no), 0, &mut emit)?;
            }
        }
        Err(e) if e.is_eof() => {
            r.read_to_end(&mut buf).map_err(|e| io_err(line_no, e))?;
            let v =
                serde_json::from_slice::<Value>(&buf).map_err(|source| GuardDutyError::Json {
                    line: source.line() as u64 + line_no - 1,
                    source,
                })?;
            visit(v, None, 0, &mut emit)?;
        }
        Err(source) => {
            return Err(GuardDutyError::Json {
                line: line_no,
                source,
            })
        }
    }
    Ok(findings)
}

/// The findings of one already-parsed document (a Lambda event, an SQS body): any shape
/// [`read_findings`] accepts except JSONL.
pub fn read_value(v: Value, mut each: impl FnMut(ReadFinding)) -> Result<u64, GuardDutyError> {
    let mut n = 0u64;
    visit(v, None, 0, &mut |f| {
        n += 1;
        each(f)
    })?;
    Ok(n)
}

/// Extract every finding of one already-parsed document: records in input order, and the counts.
pub fn extract_value(v: Value) -> Result<(Vec<FindingRecord>, ExtractStats), GuardDutyError> {
    extract_value_as(v, EntityKind::Principal)
}

/// [`extract_value`] with another entity definition.
pub fn extract_value_as(
    v: Value,
    kind: EntityKind,
) -> Result<(Vec<FindingRecord>, ExtractStats), GuardDutyError> {
    let mut x = Extraction::new(kind);
    read_value(v, |f| x.take(f))?;
    Ok(x.finish())
}

/// Read findings and extract them: records in input order, and the counts.
pub fn extract_all<R: BufRead>(
    input: R,
    opts: &ReadOptions,
) -> Result<(Vec<FindingRecord>, ExtractStats), GuardDutyError> {
    let mut x = Extraction::new(opts.entity);
    read_findings(input, opts, |f| x.take(f))?;
    Ok(x.finish())
}

/// Records and counts of the findings read so far.
struct Extraction {
    kind: EntityKind,
    records: Vec<FindingRecord>,
    stats: ExtractStats,
    invalid_ips: u64,
}

impl Extraction {
    fn new(kind: EntityKind) -> Self {
        Self {
            kind,
            records: Vec::new(),
            stats: ExtractStats::default(),
            invalid_ips: 0,
        }
    }

    fn take(&mut self, f: ReadFinding) {
        let r = f.and_then(|f| {
            extract_counting(&f, self.kind, &mut self.invalid_ips).map_err(|reason| {
                SkippedFinding {
                    id: f.id.clone(),
                    line: None,
                    reason,
                }
            })
        });
        self.stats.count(&r);
        if let Ok(rec) = r {
            self.records.push(rec);
        }
    }

    fn finish(mut self) -> (Vec<FindingRecord>, ExtractStats) {
        self.stats.invalid_ips = self.invalid_ips;
        (self.records, self.stats)
    }
}

/// Classify one JSON document and emit the findings it holds.
fn visit(
    mut v: Value,
    line: Option<u64>,
    depth: u32,
    emit: &mut impl FnMut(ReadFinding),
) -> Result<(), GuardDutyError> {
    let not = |what: String| GuardDutyError::NotAFinding { line, what };
    if depth > 3 {
        return Err(not("nested more than 3 levels deep".into()));
    }
    match &mut v {
        Value::Array(items) => {
            for item in std::mem::take(items) {
                visit(item, line, depth + 1, emit)?;
            }
            Ok(())
        }
        Value::Object(obj) => {
            if let Some(dt) = obj.get("detail-type").and_then(Value::as_str) {
                let dt = dt.to_owned();
                let source = obj
                    .get("source")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                return match (source.as_str(), dt.as_str()) {
                    ("aws.guardduty", "GuardDuty Finding") => {
                        let account = obj.get("account").cloned();
                        let region = obj.get("region").cloned();
                        let Some(mut detail) = obj.remove("detail").filter(Value::is_object) else {
                            return Err(not("a GuardDuty Finding event without a detail".into()));
                        };
                        // The finding carries its own account and region; the envelope's are a
                        // fallback.
                        let d = detail.as_object_mut().expect("checked");
                        for (k, fallback) in [("accountId", account), ("region", region)] {
                            if !d.contains_key(k) {
                                if let Some(f) = fallback {
                                    d.insert(k.to_owned(), f);
                                }
                            }
                        }
                        finding(detail, line, emit);
                        Ok(())
                    }
                    ("aws.securityhub", "Security Hub Findings - Imported") => {
                        let Some(list) = obj
                            .get_mut("detail")
                            .and_then(|d| d.get_mut("findings"))
                            .filter(|l| l.is_array())
                        else {
                            return Err(not(format!("a {dt} event without detail.findings")));
                        };
                        visit(list.take(), line, depth + 1, emit)
                    }
                    _ => Err(not(format!("an EventBridge event {source} / {dt}"))),
                };
            }
            for k in ["Findings", "findings"] {
                if let Some(list) = obj.get_mut(k).filter(|l| l.is_array()) {
                    let list = list.take();
                    return visit(list, line, depth + 1, emit);
                }
            }
            if crate::asff::is_asff(obj) {
                match crate::asff::to_guardduty(v) {
                    Ok(f) => finding(f, line, emit),
                    Err(id) => emit(Err(SkippedFinding {
                        id,
                        line,
                        reason: FindingSkip::OtherProduct,
                    })),
                }
                return Ok(());
            }
            let has = |k: &str| obj.contains_key(k);
            let looks_like_finding = has("schemaVersion")
                || has("SchemaVersion")
                || ((has("id") || has("Id"))
                    && (has("type") || has("Type") || has("service") || has("Service")));
            if looks_like_finding {
                finding(v, line, emit);
                return Ok(());
            }
            let keys: Vec<&str> = obj.keys().map(String::as_str).take(8).collect();
            Err(not(format!("an object with fields {}", keys.join(", "))))
        }
        other => Err(not(format!("a JSON {}", json_type(other)))),
    }
}

/// Emit one finding object: the finding, or, when even the lenient structs cannot read it, an
/// unreadable finding with its id (its neighbours are unaffected).
fn finding(mut v: Value, line: Option<u64>, emit: &mut impl FnMut(ReadFinding)) {
    // GetFindings through the CLI / boto3 names every field in PascalCase.
    if v.as_object().is_some_and(|o| {
        o.keys()
            .any(|k| k.starts_with(|c: char| c.is_ascii_uppercase()))
    }) {
        camel_case_keys(&mut v);
    }
    let id = v.get("id").and_then(|i| match i {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    emit(Finding::deserialize(v).map_err(|_| SkippedFinding {
        id,
        line,
        reason: FindingSkip::Unreadable,
    }));
}

/// `AccessKeyDetails` → `accessKeyDetails`, recursively. `IpAddressV4` → `ipAddressV4`.
pub(crate) fn camel_case_keys(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let entries = std::mem::take(o);
            for (k, mut val) in entries {
                camel_case_keys(&mut val);
                let mut c = k.chars();
                let key = match c.next() {
                    Some(first) if first.is_ascii_uppercase() => {
                        let mut s = String::with_capacity(k.len());
                        s.push(first.to_ascii_lowercase());
                        s.push_str(c.as_str());
                        s
                    }
                    _ => k,
                };
                o.insert(key, val);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(camel_case_keys),
        _ => {}
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Read one line (with its `\n`) into `buf`. `Ok(None)` when the line is longer than `max`.
fn read_line_capped<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<usize>> {
    let n = r.by_ref().take(max as u64 + 1).read_until(b'\n', buf)?;
    if buf.len() > max && buf.last() != Some(&b'\n') {
        return Ok(None);
    }
    Ok(Some(n))
}

impl FindingRecord {
    /// The tuple CSV of this finding (`entity,ip\n` per IPv4 pair).
    pub fn tuples_csv(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.pairs {
            crate::tuples::write_tuple(&mut out, &p.entity, p.ip).expect("writing to a Vec");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(v: Value) -> Result<FindingRecord, FindingSkip> {
        let mut out = Vec::new();
        read_findings(v.to_string().as_bytes(), &ReadOptions::default(), |f| {
            out.push(f)
        })
        .unwrap();
        assert_eq!(out.len(), 1);
        extract(out[0].as_ref().unwrap())
    }

    fn api_finding(user_type: &str, principal: &str, ip: &str) -> Value {
        json!({"schemaVersion":"2.0","accountId":"111122223333","region":"eu-west-1","id":"f1",
            "type":"UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS","severity":8,
            "createdAt":"2026-01-05T10:00:00.123Z","updatedAt":"2026-01-06T10:00:00.000Z",
            "resource":{"resourceType":"AccessKey","accessKeyDetails":{"accessKeyId":"ASIASECRETSECRET","principalId":principal,"userType":user_type,"userName":"x"}},
            "service":{"count":3,"eventFirstSeen":"2026-01-05T09:00:00Z","eventLastSeen":"2026-01-06T09:59:00.000Z",
                "action":{"actionType":"AWS_API_CALL","awsApiCallAction":{"api":"ListBuckets","remoteIpDetails":{"ipAddressV4":ip,"organization":{"asn":"-1"},"country":{"countryName":"Nowhere"}}}}}})
    }

    #[test]
    fn entity_kinds_from_a_finding() {
        let f = json!({"id": "f1", "accountId": "111122223333", "region": "us-east-1",
            "type": "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
            "severity": 8,
            "resource": {"accessKeyDetails": {"principalId": "AROAEXAMPLE:i-0abc", "userType": "AssumedRole"},
                         "instanceDetails": {"instanceId": "i-0abc"}},
            "service": {"action": {"actionType": "AWS_API_CALL", "awsApiCallAction": {
                "serviceName": "s3.amazonaws.com",
                "userAgent": {"fullUserAgent": "aws-cli/2.15.0 Python/3.11", "userAgentCategory": "CLI"},
                "remoteIpDetails": {"ipAddressV4": "198.51.100.7"}}}}});
        let one = |k: EntityKind| {
            let (r, st) = extract_value_as(f.clone(), k).unwrap();
            (
                r.first()
                    .map(|r| (r.pairs[0].entity.clone(), r.entity_kind)),
                st.no_principal,
            )
        };
        assert_eq!(
            one(EntityKind::Principal),
            (Some(("AROAEXAMPLE".into(), EntityKind::Principal)), 0)
        );
        assert_eq!(
            one(EntityKind::PrincipalEventSource).0.unwrap().0,
            "AROAEXAMPLE|s3.amazonaws.com"
        );
        assert_eq!(one(EntityKind::UserAgentFamily).0.unwrap().0, "aws-cli");
        assert_eq!(one(EntityKind::InstanceId).0.unwrap().0, "i-0abc");
        // No ARN in findings: no record, counted.
        assert_eq!(one(EntityKind::Arn), (None, 1));
        // The kind travels with the record; a principal record serialises as before.
        let (r, _) = extract_value_as(f.clone(), EntityKind::UserAgentFamily).unwrap();
        let v = serde_json::to_value(&r[0]).unwrap();
        assert_eq!(v["entity_kind"], "user_agent_family");
        let back: FindingRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back.entity_kind, EntityKind::UserAgentFamily);
        let (r, _) = extract_value_as(f, EntityKind::Principal).unwrap();
        let v = serde_json::to_value(&r[0]).unwrap();
        assert!(v.get("entity_kind").is_none(), "{v}");
        let back: FindingRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back.entity_kind, EntityKind::Principal);
    }

    #[test]
    fn entity_rule_is_the_preparers() {
        for (t, p, want) in [
            ("IAMUser", "AIDAALICE", "AIDAALICE"),
            ("AssumedRole", "AROABUILD:i-0abc", "AROABUILD"),
            ("Role", "AROABUILD:alice@example.com", "AROABUILD"),
            ("FederatedUser", "111122223333:carol", "111122223333:carol"),
            ("Root", "111122223333", "111122223333"),
        ] {
            let r = one(api_finding(t, p, "198.51.100.7")).unwrap();
            assert_eq!(r.pairs.len(), 1);
            assert_eq!(r.pairs[0].entity, want, "{t} {p}");
            // The preparer, fed a CloudTrail record of the same identity, writes the same entity.
            let trail = json!({"Records":[{"userIdentity":{"type":t,"principalId":p,"accountId":"111122223333"},
                "sourceIPAddress":"198.51.100.7"}]});
            let mut csv = Vec::new();
            crate::prepare_cloudtrail(
                trail.to_string().as_bytes(),
                &mut csv,
                &crate::PrepareOptions::default(),
            )
            .unwrap();
            assert_eq!(csv, r.tuples_csv(), "{t} {p}");
        }
        let r = one(api_finding("IAMUser", "AIDAALICE", "198.51.100.7")).unwrap();
        assert_eq!(r.severity, 8.0);
        assert_eq!(r.count, 3);
        assert_eq!(r.created_at.as_deref(), Some("2026-01-05T10:00:00Z"));
        assert_eq!(r.event_last_seen.as_deref(), Some("2026-01-06T09:59:00Z"));
        assert_eq!(r.pairs[0].action, "AWS_API_CALL");
        assert_eq!(r.pairs[0].country.as_deref(), Some("Nowhere"));
        // `asn: "-1"` is GuardDuty's unknown: no network context at all.
        assert_eq!(r.pairs[0].network, None);
        let mut f = api_finding("IAMUser", "AIDAALICE", "198.51.100.7");
        f["service"]["action"]["awsApiCallAction"]["remoteIpDetails"] = json!({"ipAddressV4": "198.51.100.7",
            "organization": {"asn": "16509", "asnOrg": "AMAZON-02", "isp": "Amazon.com", "org": "Amazon.com"},
            "country": {"countryCode": "US", "countryName": "United States"}, "city": {"cityName": "Ashburn"}});
        let n = one(f).unwrap().pairs[0].network.clone().unwrap();
        assert_eq!(
            (
                n.asn,
                n.asn_org.as_deref(),
                n.country_code.as_deref(),
                n.city.as_deref()
            ),
            (Some(16509), Some("AMAZON-02"), Some("US"), Some("Ashburn"))
        );
        assert!(!r.sample);
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("ASIA"), "{text}");
        assert_eq!(r.tuples_csv(), b"AIDAALICE,198.51.100.7\n");
        let back: FindingRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn port_probes_network_v6_and_skips() {
        let probe = json!({"id":"p","type":"Recon:EC2/PortProbeUnprotectedPort","severity":2,"accountId":"1","region":"r",
            "resource":{"accessKeyDetails":{"principalId":"AROAX:s","userType":"AssumedRole"}},
            "service":{"action":{"portProbeAction":{"portProbeDetails":[
                {"remoteIpDetails":{"ipAddressV4":"203.0.113.1"}},
                {"remoteIpDetails":{"ipAddressV4":"203.0.113.2"}},
                {"remoteIpDetails":{"ipAddressV4":"203.0.113.1"}},
                {"remoteIpDetails":{"ipAddressV6":"2001:db8::1"}},
                {"remoteIpDetails":{"ipAddressV4":"not-an-ip"}}]},
              "networkConnectionAction":{"remoteIpDetails":{"ipAddressV4":"192.0.2.9"}}}}});
        let (recs, st) =
            extract_all(probe.to_string().as_bytes(), &ReadOptions::default()).unwrap();
        let r = &recs[0];
        let ips: Vec<String> = r.pairs.iter().map(|p| p.ip.to_string()).collect();
        assert_eq!(ips, ["192.0.2.9", "203.0.113.1", "203.0.113.2"]);
        assert_eq!(r.ipv6.len(), 1);
        assert_eq!(r.pairs[1].action, "PORT_PROBE");
        assert_eq!(st.invalid_ips, 1);
        assert_eq!(st.ipv6_pairs, 1);

        let v6_only = json!({"id":"v","type":"t","accountId":"1","region":"r",
            "resource":{"accessKeyDetails":{"principalId":"AIDAX","userType":"IAMUser"}},
            "service":{"action":{"awsApiCallAction":{"remoteIpDetails":{"ipAddressV6":"2001:db8::2"}}}}});
        let r = one(v6_only).unwrap();
        assert!(r.pairs.is_empty() && r.ipv6.len() == 1);
        assert!(r.tuples_csv().is_empty());

        let no_principal = json!({"id":"n","type":"Backdoor:EC2/C&CActivity.B!DNS","resource":{"resourceType":"Instance"},
            "service":{"action":{"networkConnectionAction":{"remoteIpDetails":{"ipAddressV4":"192.0.2.1"}}}}});
        assert_eq!(one(no_principal), Err(FindingSkip::NoPrincipal));
        let no_ip = json!({"id":"n","type":"t","resource":{"accessKeyDetails":{"principalId":"AIDAX"}},
            "service":{"action":{"awsApiCallAction":{"remoteIpDetails":{"ipAddressV4":"AWS Internal"}}}}});
        assert_eq!(one(no_ip), Err(FindingSkip::NoRemoteIp));
        let no_id = json!({"schemaVersion":"2.0","type":"t","resource":{"accessKeyDetails":{"principalId":"AIDAX"}}});
        assert_eq!(one(no_id), Err(FindingSkip::NoId));
    }

    #[test]
    fn shapes() {
        let f = api_finding("IAMUser", "AIDAALICE", "198.51.100.7");
        let opts = ReadOptions::default();
        let ids = |text: &str| -> Vec<String> {
            let (recs, _) = extract_all(text.as_bytes(), &opts).unwrap();
            recs.iter().map(|r| r.finding_id.clone()).collect()
        };
        // Pretty-printed single finding.
        assert_eq!(ids(&serde_json::to_string_pretty(&f).unwrap()), ["f1"]);
        // EventBridge event, with the envelope's account/region as fallback.
        let mut bare = f.clone();
        bare.as_object_mut().unwrap().remove("accountId");
        let ev = json!({"version":"0","id":"e","detail-type":"GuardDuty Finding","source":"aws.guardduty",
            "account":"999988887777","region":"us-east-1","time":"t","resources":[],"detail":bare});
        let (recs, _) = extract_all(ev.to_string().as_bytes(), &opts).unwrap();
        assert_eq!(recs[0].account_id, "999988887777");
        assert_eq!(recs[0].region, "eu-west-1");
        // Array, GetFindings wrapper, JSONL with blank lines.
        let mut g = f.clone();
        g["id"] = json!("f2");
        assert_eq!(ids(&json!([f, g]).to_string()), ["f1", "f2"]);
        assert_eq!(
            ids(&serde_json::to_string_pretty(&json!({"Findings": [f, g]})).unwrap()),
            ["f1", "f2"]
        );
        assert_eq!(ids(&format!("{f}\n\n{g}\n")), ["f1", "f2"]);
        assert!(ids("").is_empty());
        // Gzipped JSONL.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, format!("{f}\n{g}\n").as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let (recs, _) = extract_all(&gz[..], &opts).unwrap();
        assert_eq!(recs.len(), 2);
        // A bad line is named.
        let e = extract_all(format!("{f}\n{g}\n{{\"id\":\n").as_bytes(), &opts).unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        let e = extract_all(format!("{f}\n[1]\n").as_bytes(), &opts).unwrap_err();
        assert!(
            e.to_string().contains("line 2: not a GuardDuty finding"),
            "{e}"
        );
        let e = extract_all(
            br#"{"source":"aws.s3","detail-type":"Object Created","detail":{}}"#.as_slice(),
            &opts,
        )
        .unwrap_err();
        assert!(e.to_string().contains("aws.s3 / Object Created"), "{e}");
        // Caps.
        let small = ReadOptions {
            max_uncompressed_bytes: 100,
            max_line_bytes: 1 << 20,
            ..ReadOptions::default()
        };
        let e = extract_all(format!("{f}\n{g}\n").as_bytes(), &small).unwrap_err();
        assert!(matches!(e, GuardDutyError::TooLarge { cap: 100 }), "{e}");
        let short = ReadOptions {
            max_uncompressed_bytes: 1 << 20,
            max_line_bytes: 100,
            ..ReadOptions::default()
        };
        let e = extract_all(format!("{f}\n").as_bytes(), &short).unwrap_err();
        assert!(
            matches!(e, GuardDutyError::LineTooLong { line: 1, .. }),
            "{e}"
        );
    }

    #[test]
    fn pascal_case_get_findings_output() {
        let v = json!({"Findings":[{"AccountId":"111122223333","Region":"us-east-1","Id":"P1","Type":"Recon:IAMUser/MaliciousIPCaller",
            "Severity":5.0,"CreatedAt":"2026-01-05T00:00:00.000Z","UpdatedAt":"2026-01-05T00:00:00.000Z","SchemaVersion":"2.0",
            "Resource":{"AccessKeyDetails":{"AccessKeyId":"AKIASECRET","PrincipalId":"AIDAPASCAL","UserName":"u","UserType":"IAMUser"}},
            "Service":{"Count":2,"EventFirstSeen":"2026-01-04T00:00:00.000Z","EventLastSeen":"2026-01-05T00:00:00.000Z",
              "AdditionalInfo":{"Value":"{\"sample\":true}","Type":"default"},
              "Action":{"ActionType":"AWS_API_CALL","AwsApiCallAction":{"RemoteIpDetails":{"IpAddressV4":"198.51.100.9"}}}}}]});
        let (recs, st) = extract_all(v.to_string().as_bytes(), &ReadOptions::default()).unwrap();
        assert_eq!(st.records, 1);
        let r = &recs[0];
        assert_eq!(r.pairs[0].entity, "AIDAPASCAL");
        assert_eq!(r.pairs[0].ip.to_string(), "198.51.100.9");
        assert_eq!(r.count, 2);
        assert!(r.sample);
        assert_eq!(r.severity, 5.0);
    }

    #[test]
    fn freshness_keys_and_times() {
        let r = one(api_finding("IAMUser", "AIDAALICE", "198.51.100.7")).unwrap();
        let mut newer = r.clone();
        newer.count = 4;
        assert!(r.is_older_than(&newer));
        assert!(!newer.is_older_than(&r));
        assert!(!r.is_older_than(&r));
        let mut other = r.clone();
        other.finding_id = "f2".into();
        let kept = keep_latest(vec![r.clone(), other.clone(), newer.clone(), r.clone()]);
        assert_eq!(kept, vec![newer.clone(), other]);
        let mut later = r.clone();
        later.updated_at = Some("2026-01-07T00:00:00Z".into());
        assert!(r.is_older_than(&later));
        assert_eq!(
            canonical_time("2022-01-13T00:00:47.427Z"),
            "2022-01-13T00:00:47Z"
        );
        assert_eq!(
            canonical_time("2017-12-08T15:32:49Z"),
            "2017-12-08T15:32:49Z"
        );
    }

    /// The shapes of the real samples, written by us: an EventBridge event from a delegated
    /// administrator (envelope account ≠ finding account) for a generated sample finding, an S3
    /// finding that names an access key, and an EC2 network finding without a principal.
    #[test]
    fn own_findings_in_real_shapes() {
        let opts = ReadOptions::default();
        use ipsight_testkit::guardduty_shapes as shapes;
        let sample_event = shapes::sample_finding_event();
        let (recs, st) = extract_all(sample_event.to_string().as_bytes(), &opts).unwrap();
        assert_eq!(st.records, 1);
        let r = &recs[0];
        assert_eq!(
            r.account_id, "444455556666",
            "the finding's account, not the envelope's"
        );
        assert_eq!(r.finding_type, "UnauthorizedAccess:IAMUser/TorIPCaller");
        assert_eq!(r.pairs[0].entity, "GeneratedFindingPrincipalId");
        assert_eq!(r.pairs[0].ip.to_string(), "198.51.100.0");
        assert_eq!((r.severity, r.count, r.sample), (5.0, 1, true));
        assert_eq!(r.event_first_seen.as_deref(), Some("2017-12-08T15:32:49Z"));

        let s3_finding = shapes::s3_finding();
        let (recs, _) = extract_all(
            serde_json::to_string_pretty(&s3_finding)
                .unwrap()
                .as_bytes(),
            &opts,
        )
        .unwrap();
        assert_eq!(recs[0].finding_type, "PenTest:S3/ParrotLinux");
        assert_eq!(recs[0].pairs.len(), 1);
        assert_eq!(recs[0].pairs[0].entity, "AROAEXAMPLE");
        assert!(recs[0].sample);

        let ec2_finding = shapes::ec2_network_finding();
        let (recs, st) = extract_all(ec2_finding.to_string().as_bytes(), &opts).unwrap();
        assert!(recs.is_empty());
        assert_eq!((st.findings, st.no_principal), (1, 1));
    }

    fn real(dir: &std::path::Path, name: &str) -> (Vec<FindingRecord>, ExtractStats) {
        let f = std::fs::File::open(dir.join(name)).unwrap();
        extract_all(io::BufReader::new(f), &ReadOptions::default()).unwrap()
    }

    #[test]
    fn real_findings() {
        let Some(dir) = ipsight_testkit::real_data("guardduty", "formats guardduty::real_findings")
        else {
            return;
        };
        let real = |name| real(&dir, name);
        // A finding document (aws-samples): IAM user, API call from 198.51.100.0, sample.
        let (recs, st) = real("aws-samples-gd-automated-response__guardduty_iam_event.json");
        assert_eq!(st.records, 1);
        let r = &recs[0];
        assert_eq!(r.finding_id, "30bf285e52a1e405084ff6ec28e06e17");
        assert_eq!(r.finding_type, "Recon:IAMUser/MaliciousIPCaller.Custom");
        assert_eq!(r.pairs[0].entity, "GeneratedFindingPrincipalId");
        assert_eq!(r.pairs[0].ip.to_string(), "198.51.100.0");
        assert_eq!((r.severity, r.count, r.sample), (5.0, 1, true));
        assert_eq!(r.account_id, "123456789012");
        assert_eq!(r.event_first_seen.as_deref(), Some("2022-01-13T00:00:47Z"));
        // S3 finding with an access key and API caller.
        let (recs, _) = real("aws-samples-gd-automated-response__guardduty_s3_event.json");
        assert_eq!(recs[0].finding_type, "PenTest:S3/ParrotLinux");
        assert_eq!(recs[0].pairs.len(), 1);
        // EC2 network connection: no principal → counted, skipped.
        let (recs, st) = real("aws-samples-gd-automated-response__guardduty_ec2_event.json");
        assert!(recs.is_empty());
        assert_eq!((st.findings, st.no_principal), (1, 1));
        // EventBridge events (cloud-custodian): the account comes from the finding, not the envelope.
        let (recs, _) = real("cloud-custodian__iam-duty-event.json");
        assert_eq!(recs[0].account_id, "883606788610");
        assert_eq!(
            recs[0].finding_type,
            "UnauthorizedAccess:IAMUser/TorIPCaller"
        );
        assert_eq!(
            recs[0].event_first_seen.as_deref(),
            Some("2017-12-08T15:32:49Z")
        );
        assert!(recs[0].sample);
        let (recs, st) = real("cloud-custodian__ec2-duty-event.json");
        assert!(recs.is_empty());
        assert_eq!(st.no_principal, 1);
    }
}
