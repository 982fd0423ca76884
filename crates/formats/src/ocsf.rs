//! OCSF events (Amazon Security Lake Parquet objects, OCSF JSON from custom sources and exports) →
//! `<entity, ip>` pairs with their context (class, time, account, region).
//!
//! Mapping (ARCHITECTURE.md, configurable through [`OcsfMapping`]):
//! * classes whose activity is a principal's (API Activity and the IAM classes Security Lake derives
//!   from CloudTrail): the actor, under the same entity definition ([`EntityKind`], `ENTITY`) and
//!   normalised exactly like the CloudTrail record it was translated from, so that OCSF pairs and
//!   CloudTrail pairs name the same entities (see "Actor fields per schema version" below);
//! * every other class (Network Activity 4001 / VPC Flow, DNS Activity 4003 / Route 53, …):
//!   `src_endpoint.instance_uid`, as in the Security Lake + SageMaker blog;
//! * ip: `src_endpoint.ip`, with the tuple contract's IP rules ([`classify_ip`]; IPv6 kept).
//!
//! Security Lake source version 1 is OCSF 1.0.0-rc.2 (`cloud.account_uid`, API Activity = 3005) and
//! version 2 is OCSF 1.1 (`cloud.account.uid`, API Activity = 6003): both are read.
//!
//! Actor fields per schema version (Security Lake's CloudTrail mappings):
//!
//! | CloudTrail `userIdentity.` | OCSF 1.0.0-rc.2          | OCSF 1.1 and later        |
//! |----------------------------|--------------------------|---------------------------|
//! | `principalId`              | `actor.user.uid`         | `actor.user.uid_alt`      |
//! | `arn`                      | `actor.user.uuid`        | `actor.user.uid`          |
//! | `accountId`                | `actor.user.account_uid` | `actor.user.account.uid`  |
//! | `type`                     | `actor.user.type`        | `actor.user.type`         |
//! | `eventSource`, `userAgent` | `api.service.name`, `http_request.user_agent` (both)  |
//!
//! The version is `metadata.version` (`1.0.0-rc.*`: rc.2 fields; anything else, or none: 1.1).
//! In 1.1 an event without `uid_alt` falls back to `uid` only when it is not an ARN: cutting
//! `arn:aws:sts::…:assumed-role/…` at its first `:` as a role session would merge every role into
//! one entity `arn`.
//!
//! JSON input is JSON lines (one event per line, or an array of events on a line) or one JSON
//! document (an event or an array of events, pretty-printed or not), gzipped or plain.
//!
//! Parquet is read with the `parquet` crate's row API (no arrow), projected to the top-level columns
//! the mapping names, so a wide OCSF table costs only the columns we use. Parquet needs random
//! access (the footer comes last): callers hand a `std::fs::File` (the Lambda downloads the object to
//! a size-capped temporary file first) or `Bytes`.
use std::io::{self, BufRead, Read};
use std::net::IpAddr;

use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};
use parquet::record::Field;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::entity::{eks_principal_id, entity_for, EntityFields, EntityKind};
use crate::ip::{classify_ip, IpClass};
use crate::limit::{is_cap_error, maybe_gunzip, CappedReader};

/// OCSF classes whose entity is the actor's principal by default: API Activity (6003 in OCSF 1.x,
/// 3005 in 1.0.0-rc.2, which Security Lake v1 uses for CloudTrail management events) and the IAM
/// classes Security Lake maps CloudTrail into (Account Change 3001, Authentication 3002, Authorize
/// Session 3003, Entity Management 3004, Group Management 3006).
pub const DEFAULT_ACTOR_CLASSES: &[u32] = &[3001, 3002, 3003, 3004, 3005, 3006, 6003];

/// Where the entity of a pair comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityRule {
    /// A dotted field path (`src_endpoint.instance_uid`); its value is the entity as is.
    Field(String),
    /// The actor under [`OcsfMapping::entity`]: for `principal`, the principal id of the schema
    /// version (module docs) normalised with `actor.user.type` (the AssumedRole session suffix cut,
    /// as for CloudTrail and GuardDuty), falling back to the account for Root.
    ActorPrincipal,
}

/// Which fields make a pair. The first rule that yields a value wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcsfMapping {
    /// Entity rules for [`OcsfMapping::actor_classes`].
    pub actor_entity: Vec<EntityRule>,
    /// Entity rules for every other class.
    pub endpoint_entity: Vec<EntityRule>,
    /// IP field paths.
    pub ip: Vec<String>,
    /// Classes that use [`OcsfMapping::actor_entity`].
    pub actor_classes: Vec<u32>,
    /// Only these classes yield pairs (`None`: all). Others are counted as `other_class`.
    pub classes: Option<Vec<u32>>,
    /// What [`EntityRule::ActorPrincipal`] yields: the same definition as the CloudTrail preparer
    /// and the model (`ENTITY`).
    pub entity: EntityKind,
}

impl Default for OcsfMapping {
    fn default() -> Self {
        Self {
            actor_entity: vec![EntityRule::ActorPrincipal],
            endpoint_entity: vec![EntityRule::Field("src_endpoint.instance_uid".into())],
            ip: vec!["src_endpoint.ip".into()],
            actor_classes: DEFAULT_ACTOR_CLASSES.to_vec(),
            classes: None,
            entity: EntityKind::Principal,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid OCSF mapping {name}={value:?}: {why}")]
pub struct MappingError {
    pub name: &'static str,
    pub value: String,
    pub why: String,
}

impl OcsfMapping {
    /// Build a mapping from configuration strings (environment variables or CLI flags), each a
    /// comma-separated list; `None` keeps the default. In entity lists `actor` means
    /// [`EntityRule::ActorPrincipal`], anything else is a field path.
    ///
    /// * `OCSF_ENTITY` (`src_endpoint.instance_uid`), `OCSF_ACTOR_ENTITY` (`actor`),
    ///   `OCSF_IP` (`src_endpoint.ip`), `OCSF_ACTOR_CLASSES` (`3001,…,6003`), `OCSF_CLASSES` (all);
    /// * `ENTITY` (`principal`): what `actor` yields, the definition shared with CloudTrail.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, MappingError> {
        let mut m = Self::default();
        let list = |name: &'static str, v: &str| -> Result<Vec<String>, MappingError> {
            let items: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if items.is_empty() {
                return Err(MappingError {
                    name,
                    value: v.to_owned(),
                    why: "empty list".into(),
                });
            }
            for i in &items {
                if i.split('.').any(str::is_empty) {
                    return Err(MappingError {
                        name,
                        value: v.to_owned(),
                        why: "empty path segment".into(),
                    });
                }
            }
            Ok(items)
        };
        let rules = |name, v: &str| -> Result<Vec<EntityRule>, MappingError> {
            Ok(list(name, v)?
                .into_iter()
                .map(|s| {
                    if s == "actor" {
                        EntityRule::ActorPrincipal
                    } else {
                        EntityRule::Field(s)
                    }
                })
                .collect())
        };
        let classes = |name, v: &str| -> Result<Vec<u32>, MappingError> {
            list(name, v)?
                .iter()
                .map(|c| {
                    c.parse().map_err(|_| MappingError {
                        name,
                        value: v.to_owned(),
                        why: "class ids are integers (4001, 4003, 6003, …)".into(),
                    })
                })
                .collect()
        };
        if let Some(v) = get("OCSF_ENTITY") {
            m.endpoint_entity = rules("OCSF_ENTITY", &v)?;
        }
        if let Some(v) = get("OCSF_ACTOR_ENTITY") {
            m.actor_entity = rules("OCSF_ACTOR_ENTITY", &v)?;
        }
        if let Some(v) = get("OCSF_IP") {
            m.ip = list("OCSF_IP", &v)?;
        }
        if let Some(v) = get("OCSF_ACTOR_CLASSES") {
            m.actor_classes = classes("OCSF_ACTOR_CLASSES", &v)?;
        }
        if let Some(v) = get("OCSF_CLASSES") {
            m.classes = Some(classes("OCSF_CLASSES", &v)?);
        }
        if let Some(v) = get("ENTITY") {
            m.entity = v.parse().map_err(|why| MappingError {
                name: "ENTITY",
                value: v.clone(),
                why,
            })?;
        }
        Ok(m)
    }

    /// Top-level columns the mapping reads: all a Parquet projection needs.
    fn roots(&self) -> Vec<&str> {
        let mut roots = vec!["class_uid", "time", "cloud"];
        let rules = self.actor_entity.iter().chain(&self.endpoint_entity);
        for r in rules {
            match r {
                EntityRule::Field(p) => roots.push(root_of(p)),
                // `metadata` holds the schema version the actor's fields depend on.
                EntityRule::ActorPrincipal => roots.extend(actor_roots(self.entity)),
            }
        }
        roots.extend(self.ip.iter().map(|p| root_of(p)));
        roots.sort_unstable();
        roots.dedup();
        roots
    }
}

fn root_of(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}

/// One pair and where it came from. The source object is known by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OcsfPair {
    pub entity: String,
    pub ip: IpAddr,
    pub class_uid: Option<u32>,
    /// Event time, milliseconds since the epoch (OCSF `time`).
    pub time_ms: Option<i64>,
    pub account: Option<String>,
    pub region: Option<String>,
}

/// Counts for one object. Every event lands in exactly one bucket:
/// `pairs + other_class + no_entity + missing_ip + invalid_ip == events`; `ipv6` counts the IPv6
/// pairs among `pairs` (kept: ipsight's own model scores them; SageMaker-bound output filters them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OcsfStats {
    pub events: u64,
    pub pairs: u64,
    pub other_class: u64,
    pub no_entity: u64,
    pub missing_ip: u64,
    pub ipv6: u64,
    pub invalid_ip: u64,
}

impl OcsfStats {
    pub fn add(&mut self, o: &OcsfStats) {
        self.events += o.events;
        self.pairs += o.pairs;
        self.other_class += o.other_class;
        self.no_entity += o.no_entity;
        self.missing_ip += o.missing_ip;
        self.ipv6 += o.ipv6;
        self.invalid_ip += o.invalid_ip;
    }
}

/// Why an event yields no pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPair {
    OtherClass,
    NoEntity,
    MissingIp,
    InvalidIp,
}

#[derive(Debug, thiserror::Error)]
pub enum OcsfError {
    #[error("not a readable Parquet file: {0}")]
    Parquet(String),
    #[error("not OCSF: no class_uid column (columns: {0})")]
    NotOcsf(String),
    #[error("corrupt Parquet data at row {row}: {why}")]
    ParquetRow { row: u64, why: String },
    #[error("read failed at line {line} (truncated or corrupt gzip?): {source}")]
    Read { line: u64, source: io::Error },
    #[error(
        "uncompressed size exceeds the cap of {cap} bytes (gzip bomb or unexpectedly large object)"
    )]
    TooLarge { cap: u64 },
    #[error("line {line} exceeds {limit} bytes")]
    LineTooLarge { line: u64, limit: usize },
    #[error("invalid JSON at line {line}: {source}")]
    Json {
        line: u64,
        source: serde_json::Error,
    },
    #[error("line {line} is not a JSON object (an OCSF event is an object)")]
    NotAnObject { line: u64 },
}

/// Limits for one JSON-lines object.
#[derive(Debug, Clone)]
pub struct JsonLimits {
    pub max_uncompressed_bytes: u64,
    pub max_line_bytes: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_uncompressed_bytes: 4 << 30,
            max_line_bytes: 8 << 20,
        }
    }
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!cur.is_null()).then_some(cur)
}

fn text(v: &Value, path: &str) -> Option<String> {
    match lookup(v, path)? {
        Value::String(s) => {
            let s = s.trim();
            // VPC Flow Logs write `-` for "no data" (e.g. no instance on that side of the flow).
            (!s.is_empty() && s != "-").then(|| s.to_owned())
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Top-level columns [`actor_entity`] reads for `kind`.
fn actor_roots(kind: EntityKind) -> &'static [&'static str] {
    match kind {
        EntityKind::Principal | EntityKind::Arn => &["actor", "metadata"],
        EntityKind::PrincipalEventSource => &["actor", "metadata", "api"],
        EntityKind::UserAgentFamily => &["http_request"],
        EntityKind::InstanceId => &["src_endpoint"],
    }
}

fn is_arn(s: &str) -> bool {
    s.starts_with("arn:")
}

/// The actor's entity under `kind`, from the fields of the event's schema version (module docs).
fn actor_entity(ev: &Value, kind: EntityKind, account: Option<&str>) -> Option<String> {
    let uid = text(ev, "actor.user.uid");
    let rc = text(ev, "metadata.version").is_some_and(|v| v.starts_with("1.0.0-rc"));
    let (principal_id, arn) = if rc {
        (uid, text(ev, "actor.user.uuid"))
    } else {
        // 1.1 moved the principal id to `uid_alt` and put the ARN in `uid`. Without `uid_alt`,
        // `uid` is still an identity (EKS audit logs) unless it is the ARN. A principal id may
        // itself start with `arn:` (OIDC web identities), so only `uid` is tested.
        let (arn, other) = match uid {
            Some(u) if is_arn(&u) => (Some(u), None),
            u => (None, u),
        };
        (text(ev, "actor.user.uid_alt").or(other), arn)
    };
    // EKS audit logs name an IAM identity `aws-iam-authenticator:<account>:<principal id>`: the
    // principal id is the entity CloudTrail and GuardDuty's EKS findings give it.
    let principal_id = principal_id.map(|p| match eks_principal_id(&p) {
        Some(id) => id.to_owned(),
        None => p,
    });
    let identity_type = text(ev, "actor.user.type");
    let user_account = text(ev, "actor.user.account.uid")
        .or_else(|| text(ev, "actor.user.account_uid"))
        .or_else(|| account.map(str::to_owned));
    let event_source = text(ev, "api.service.name");
    let user_agent = text(ev, "http_request.user_agent");
    let instance_id = text(ev, "src_endpoint.instance_uid");
    entity_for(
        kind,
        &EntityFields {
            identity_type: identity_type.as_deref(),
            principal_id: principal_id.as_deref(),
            account_id: user_account.as_deref(),
            arn: arn.as_deref(),
            event_source: event_source.as_deref(),
            user_agent: user_agent.as_deref(),
            instance_id: instance_id.as_deref(),
        },
    )
}

/// Apply the mapping to one OCSF event (a JSON object, or a Parquet row converted to one).
pub fn event_pair(ev: &Value, m: &OcsfMapping) -> Result<OcsfPair, NoPair> {
    let class_uid = lookup(ev, "class_uid")
        .and_then(|c| c.as_u64().or_else(|| c.as_str()?.trim().parse().ok()))
        .and_then(|c| u32::try_from(c).ok());
    if let Some(allowed) = &m.classes {
        if !class_uid.is_some_and(|c| allowed.contains(&c)) {
            return Err(NoPair::OtherClass);
        }
    }
    // OCSF 1.1 (Security Lake v2) nests the account; 1.0.0-rc.2 (v1) has `account_uid`.
    let account = text(ev, "cloud.account.uid").or_else(|| text(ev, "cloud.account_uid"));
    let rules = if class_uid.is_some_and(|c| m.actor_classes.contains(&c)) {
        &m.actor_entity
    } else {
        &m.endpoint_entity
    };
    let entity = rules.iter().find_map(|r| match r {
        EntityRule::Field(p) => text(ev, p),
        EntityRule::ActorPrincipal => actor_entity(ev, m.entity, account.as_deref()),
    });
    let ip_text = m.ip.iter().find_map(|p| text(ev, p));
    let ip = match ip_text.as_deref() {
        None => Err(NoPair::MissingIp),
        Some(s) => match classify_ip(s) {
            IpClass::V4(v4) => Ok(IpAddr::V4(v4)),
            IpClass::V6(v6) => Ok(IpAddr::V6(v6)),
            // Service host names and "AWS Internal" are not client addresses.
            _ => Err(NoPair::InvalidIp),
        },
    };
    let entity = entity.ok_or(NoPair::NoEntity)?;
    let ip = ip?;
    let time_ms = lookup(ev, "time").and_then(|t| {
        t.as_i64()
            .or_else(|| t.as_f64().map(|f| f as i64))
            .or_else(|| t.as_str()?.trim().parse().ok())
    });
    Ok(OcsfPair {
        entity,
        ip,
        class_uid,
        time_ms,
        account,
        region: text(ev, "cloud.region"),
    })
}

impl OcsfStats {
    fn count(&mut self, r: &Result<OcsfPair, NoPair>) {
        self.events += 1;
        match r {
            Ok(p) => {
                self.pairs += 1;
                self.ipv6 += u64::from(p.ip.is_ipv6());
            }
            Err(NoPair::OtherClass) => self.other_class += 1,
            Err(NoPair::NoEntity) => self.no_entity += 1,
            Err(NoPair::MissingIp) => self.missing_ip += 1,
            Err(NoPair::InvalidIp) => self.invalid_ip += 1,
        }
    }
}

/// Read an OCSF Parquet file (any codec this build has: GZIP, Snappy, uncompressed), calling `each`
/// for every pair in file order.
pub fn read_parquet<R: ChunkReader + 'static>(
    reader: R,
    m: &OcsfMapping,
    each: impl FnMut(OcsfPair),
) -> Result<OcsfStats, OcsfError> {
    read_parquet_capped(reader, m, u64::MAX, each)
}

/// [`read_parquet`], refusing a file whose row groups declare more than `max_uncompressed_bytes`
/// of uncompressed column data: a small GZIP Parquet object can hold far more than it weighs.
pub fn read_parquet_capped<R: ChunkReader + 'static>(
    reader: R,
    m: &OcsfMapping,
    max_uncompressed_bytes: u64,
    mut each: impl FnMut(OcsfPair),
) -> Result<OcsfStats, OcsfError> {
    let file = SerializedFileReader::new(reader).map_err(|e| OcsfError::Parquet(e.to_string()))?;
    let declared: u64 = file
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| rg.total_byte_size().max(0) as u64)
        .sum();
    if declared > max_uncompressed_bytes {
        return Err(OcsfError::TooLarge {
            cap: max_uncompressed_bytes,
        });
    }
    let schema = file.metadata().file_metadata().schema();
    let roots = m.roots();
    let fields: Vec<_> = schema
        .get_fields()
        .iter()
        .filter(|f| roots.contains(&f.name()))
        .cloned()
        .collect();
    let mut stats = OcsfStats::default();
    if !fields.iter().any(|f| f.name() == "class_uid") {
        // Every OCSF event has a class: without one this is some other table (e.g. raw VPC Flow
        // Logs in Parquet), and reading it as OCSF would silently yield nothing.
        let mut cols: Vec<&str> = schema
            .get_fields()
            .iter()
            .map(|f| f.name())
            .take(12)
            .collect();
        if schema.get_fields().len() > 12 {
            cols.push("…");
        }
        return Err(OcsfError::NotOcsf(cols.join(", ")));
    }
    let projection = parquet::schema::types::Type::group_type_builder(schema.name())
        .with_fields(fields)
        .build()
        .map_err(|e| OcsfError::Parquet(e.to_string()))?;
    let rows = file
        .get_row_iter(Some(projection))
        .map_err(|e| OcsfError::Parquet(e.to_string()))?;
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| OcsfError::ParquetRow {
            row: i as u64,
            why: e.to_string(),
        })?;
        let mut obj = Map::with_capacity(row.len());
        for (name, field) in row.get_column_iter() {
            obj.insert(name.clone(), field_json(field));
        }
        let r = event_pair(&Value::Object(obj), m);
        stats.count(&r);
        if let Ok(p) = r {
            each(p);
        }
    }
    Ok(stats)
}

/// Open and read a Parquet file from disk.
pub fn read_parquet_path(
    path: &std::path::Path,
    m: &OcsfMapping,
    each: impl FnMut(OcsfPair),
) -> Result<OcsfStats, OcsfError> {
    let f = std::fs::File::open(path).map_err(|e| OcsfError::Parquet(e.to_string()))?;
    read_parquet(f, m, each)
}

/// A Parquet value as JSON. Timestamps become epoch milliseconds (OCSF's `timestamp_t`), binary
/// that is valid UTF-8 becomes a string (some writers store strings without the UTF8 annotation).
pub fn field_json(f: &Field) -> Value {
    match f {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(n) => (*n).into(),
        Field::Short(n) => (*n).into(),
        Field::Int(n) => (*n).into(),
        Field::Long(n) => (*n).into(),
        Field::UByte(n) => (*n).into(),
        Field::UShort(n) => (*n).into(),
        Field::UInt(n) => (*n).into(),
        Field::ULong(n) => (*n).into(),
        Field::Float16(x) => Value::from(x.to_f64()),
        Field::Float(x) => Value::from(*x as f64),
        Field::Double(x) => Value::from(*x),
        // Not used by any mapping; kept visible rather than guessed.
        Field::Decimal(_) => Value::Null,
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => Value::Null,
        },
        Field::Date(d) => (*d as i64 * 86_400_000).into(),
        Field::TimeMillis(t) => (*t).into(),
        Field::TimeMicros(t) => (*t).into(),
        Field::TimestampMillis(t) => (*t).into(),
        Field::TimestampMicros(t) => (t.div_euclid(1000)).into(),
        Field::Group(row) => Value::Object(
            row.get_column_iter()
                .map(|(k, v)| (k.clone(), field_json(v)))
                .collect(),
        ),
        Field::ListInternal(l) => Value::Array(l.elements().iter().map(field_json).collect()),
        Field::MapInternal(m) => Value::Object(
            m.entries()
                .iter()
                .map(|(k, v)| {
                    let key = match field_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, field_json(v))
                })
                .collect(),
        ),
    }
}

/// Read OCSF JSON (gzip or plain), calling `each` for every pair in file order. Two layouts, told
/// apart by the first non-blank line:
/// * JSON lines: one event object per line (or an array of events on a line), blank lines ignored;
///   each line is capped at [`JsonLimits::max_line_bytes`];
/// * one JSON document: an event or an array of events, pretty-printed or not (how OCSF examples,
///   exporters and analysts write `.json` files). Its first line is not a complete JSON value; the
///   document is streamed, one event at a time, so an array is never held whole.
///
/// Both are capped at [`JsonLimits::max_uncompressed_bytes`].
pub fn read_json<R: BufRead>(
    input: R,
    m: &OcsfMapping,
    limits: &JsonLimits,
    mut each: impl FnMut(OcsfPair),
) -> Result<OcsfStats, OcsfError> {
    let dec = maybe_gunzip(input).map_err(|e| OcsfError::Read { line: 0, source: e })?;
    let mut r = io::BufReader::with_capacity(
        64 << 10,
        CappedReader::new(dec, limits.max_uncompressed_bytes),
    );
    let mut stats = OcsfStats::default();
    let mut event = |ev: &Value| {
        let r = event_pair(ev, m);
        stats.count(&r);
        if let Ok(p) = r {
            each(p);
        }
    };
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut first = true;
    loop {
        buf.clear();
        line += 1;
        let n = (&mut r)
            .take(limits.max_line_bytes as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| read_error(e, line, limits))?;
        if n == 0 {
            break;
        }
        if buf.len() > limits.max_line_bytes && buf.last() != Some(&b'\n') {
            return Err(OcsfError::LineTooLarge {
                line,
                limit: limits.max_line_bytes,
            });
        }
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) if first && e.is_eof() => {
                let doc = io::Cursor::new(std::mem::take(&mut buf)).chain(r);
                read_document(doc, line, limits, &mut event)?;
                break;
            }
            Err(e) => return Err(OcsfError::Json { line, source: e }),
        };
        first = false;
        match v {
            Value::Object(_) => event(&v),
            Value::Array(a) if a.iter().all(Value::is_object) => a.iter().for_each(&mut event),
            _ => return Err(OcsfError::NotAnObject { line }),
        }
    }
    Ok(stats)
}

fn read_error(e: io::Error, line: u64, limits: &JsonLimits) -> OcsfError {
    if is_cap_error(&e) {
        OcsfError::TooLarge {
            cap: limits.max_uncompressed_bytes,
        }
    } else {
        OcsfError::Read { line, source: e }
    }
}

/// Stream one JSON document that starts at line `first_line`: an event object or an array of them.
fn read_document(
    doc: impl Read,
    first_line: u64,
    limits: &JsonLimits,
    event: &mut dyn FnMut(&Value),
) -> Result<(), OcsfError> {
    let mut de = serde_json::Deserializer::from_reader(doc);
    let res =
        serde::de::DeserializeSeed::deserialize(Events { event }, &mut de).and_then(|()| de.end());
    res.map_err(|e| match e.io_error_kind() {
        Some(io::ErrorKind::FileTooLarge) => OcsfError::TooLarge {
            cap: limits.max_uncompressed_bytes,
        },
        Some(_) => OcsfError::Read {
            line: first_line + e.line().saturating_sub(1) as u64,
            source: io::Error::other(e),
        },
        None => OcsfError::Json {
            line: first_line + e.line().saturating_sub(1) as u64,
            source: e,
        },
    })
}

/// The events of a JSON document, handed over one at a time as the parser reaches them.
struct Events<'a> {
    event: &'a mut dyn FnMut(&Value),
}

impl<'de> serde::de::DeserializeSeed<'de> for Events<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Events<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an OCSF event (a JSON object) or an array of them")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let v = Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        (self.event)(&v);
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0u64;
        while let Some(v) = seq.next_element::<Value>()? {
            if !v.is_object() {
                return Err(serde::de::Error::custom(format!(
                    "array element {index} is not a JSON object (an OCSF event is an object)"
                )));
            }
            (self.event)(&v);
            index += 1;
        }
        Ok(())
    }
}

/// Format epoch milliseconds as RFC 3339 UTC (`2023-04-05T06:07:08.123Z`, milliseconds only when
/// non-zero), with the one calendar of `ipsight_core::time`.
pub fn format_time_ms(ms: i64) -> String {
    let whole = ipsight_core::time::rfc3339(ms.div_euclid(1000));
    match ms.rem_euclid(1000) {
        0 => whole,
        milli => format!("{}.{milli:03}Z", whole.trim_end_matches('Z')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// Security Lake's published samples, or `None` (said on stderr) without the sample data.
    fn samples(test: &str) -> Option<PathBuf> {
        ipsight_testkit::real_data(
            "aws-security-lake-ocsf-validation/samples",
            &format!("formats ocsf::{test} on the Security Lake samples"),
        )
    }

    /// A Parquet object we wrote, as a file (the reader takes files, as the Lambda does).
    fn own_file(name: &str, schema: &str, events: &[Value]) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "ipsight-ocsf-{}-{name}.gz.parquet",
            std::process::id()
        ));
        std::fs::write(&path, ipsight_testkit::ocsf_parquet(schema, events)).unwrap();
        path
    }

    fn own_pairs(
        name: &str,
        schema: &str,
        events: &[Value],
        m: &OcsfMapping,
    ) -> (Vec<OcsfPair>, OcsfStats) {
        let path = own_file(name, schema, events);
        let got = pairs_of(&path, m);
        std::fs::remove_file(&path).ok();
        got
    }

    #[test]
    fn time_ms_text() {
        assert_eq!(format_time_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_time_ms(1_680_674_828_123),
            "2023-04-05T06:07:08.123Z"
        );
        assert_eq!(format_time_ms(1_680_674_828_000), "2023-04-05T06:07:08Z");
        assert_eq!(format_time_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_time_ms(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    /// Every table shape Security Lake writes, written by us: VPC Flow (inbound, outbound, `-`),
    /// Route 53, Security Hub findings, and raw flow logs that are not OCSF at all.
    #[test]
    fn own_security_lake_tables() {
        use ipsight_testkit::security_lake::{self as lake, *};
        let m = OcsfMapping::default();
        let (p, s) = own_pairs(
            "flows",
            NETWORK_ACTIVITY_RC2,
            &[
                flow(None, "198.51.100.1", "Inbound"),
                flow(Some("i-0123456789abcdef0"), "1.2.3.4", "Outbound"),
                flow(Some("-"), "1.2.3.5", "Outbound"),
                flow(Some("i-0123456789abcdef0"), "2001:db8::1", "Outbound"),
            ],
            &m,
        );
        let flow_pair = |ip: IpAddr| OcsfPair {
            entity: "i-0123456789abcdef0".into(),
            ip,
            class_uid: Some(4001),
            time_ms: Some(1_649_721_732_000),
            account: Some("123456789012".into()),
            region: Some("us-east-2".into()),
        };
        // The IPv6 flow is a pair like the IPv4 one (counted among `pairs` and in `ipv6`).
        assert_eq!(
            p,
            vec![
                flow_pair(IpAddr::from([1, 2, 3, 4])),
                flow_pair("2001:db8::1".parse().unwrap())
            ]
        );
        // No instance on the source side, and `-` (VPC Flow Logs' "no data"), are no entity.
        assert_eq!(
            (s.events, s.pairs, s.no_entity, s.ipv6),
            (4, 2, 2, 1),
            "{s:?}"
        );

        let dns = lake::dns("i-0d15cd0d3example", "vpc-00000000000000000", "4.5.64.102");
        let (p, _) = own_pairs("dns", DNS_ACTIVITY_RC2, std::slice::from_ref(&dns), &m);
        assert_eq!(
            (p[0].entity.clone(), p[0].ip),
            one("i-0d15cd0d3example", [4, 5, 64, 102])
        );
        assert_eq!(p[0].class_uid, Some(4003));
        assert_eq!(p[0].account.as_deref(), Some("111122223333"));
        // A configured mapping: the VPC as entity, DNS only.
        let by_vpc = OcsfMapping::from_lookup(|k| match k {
            "OCSF_ENTITY" => Some("src_endpoint.vpc_uid, src_endpoint.instance_uid".into()),
            "OCSF_CLASSES" => Some("4003".into()),
            _ => None,
        })
        .unwrap();
        let (p, _) = own_pairs("dns-vpc", DNS_ACTIVITY_RC2, &[dns], &by_vpc);
        assert_eq!(
            (p[0].entity.clone(), p[0].ip),
            one("vpc-00000000000000000", [4, 5, 64, 102])
        );
        let (p, s) = own_pairs(
            "flow-vpc",
            NETWORK_ACTIVITY_RC2,
            &[flow(Some("i-1"), "1.2.3.4", "Outbound")],
            &by_vpc,
        );
        assert!(p.is_empty() && s.other_class == 1, "{s:?}");

        // Security Hub findings have no source endpoint: events, no pairs, no error.
        let finding = lake::finding();
        let (p, s) = own_pairs("finding", FINDING_RC2, &[finding], &m);
        assert!(p.is_empty() && s.events == 1 && s.pairs == 0, "{s:?}");

        // Raw VPC Flow Logs stored as Parquet: not OCSF, said so.
        let raw = lake::raw_flow();
        let path = own_file("raw-flow", RAW_VPC_FLOW, &[raw]);
        let e = read_parquet_path(&path, &m, |_| {}).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(matches!(e, OcsfError::NotOcsf(_)), "{e}");
        assert!(e.to_string().contains("dstaddr"), "{e}");
    }

    /// CloudTrail records as Security Lake converts them (source version 1): the OCSF pairs are
    /// exactly the tuples the CloudTrail preparer makes from the raw records, so one model serves both.
    #[test]
    fn own_cloudtrail_classes_match_the_cloudtrail_preparer() {
        let raw = serde_json::json!({"Records": [
            {"eventTime": "2023-03-17T16:31:50Z", "eventSource": "iam.amazonaws.com", "eventName": "AttachRolePolicy", "awsRegion": "us-east-1",
             "sourceIPAddress": "71.192.137.28", "userAgent": "Mozilla/5.0",
             "userIdentity": {"type": "AssumedRole", "principalId": "AROAIOJRFK4IOK6BW5ISY:Admin-user", "accountId": "112233445566",
                "arn": "arn:aws:sts::112233445566:assumed-role/Admin/Admin-user", "accessKeyId": "ASIAEXAMPLE"}},
            {"eventTime": "2016-04-01T15:31:48Z", "eventSource": "elasticloadbalancing.amazonaws.com", "eventName": "CreateLoadBalancer",
             "awsRegion": "us-west-2", "sourceIPAddress": "192.0.2.17", "userAgent": "aws-cli/1.10.10",
             "userIdentity": {"type": "IAMUser", "principalId": "AIDAJDPLRKLG7UEXAMPLE", "accountId": "123456789012", "userName": "alice"}},
            {"eventTime": "2023-03-17T16:32:00Z", "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin", "awsRegion": "us-east-1",
             "sourceIPAddress": "203.0.113.5", "userIdentity": {"type": "Root", "principalId": "112233445566", "accountId": "112233445566"}},
            {"eventTime": "2023-03-17T16:33:00Z", "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole", "awsRegion": "us-east-1",
             "sourceIPAddress": "ec2.amazonaws.com", "userIdentity": {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}},
            {"eventTime": "2023-03-17T16:34:00Z", "eventSource": "iam.amazonaws.com", "eventName": "GetRole", "awsRegion": "us-east-1",
             "sourceIPAddress": "AWS Internal", "userIdentity": {"type": "IAMUser", "principalId": "AIDAJDPLRKLG7UEXAMPLE", "accountId": "123456789012"}},
            {"eventTime": "2023-03-17T16:35:00Z", "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "awsRegion": "us-east-1",
             "sourceIPAddress": "2001:db8::5", "userIdentity": {"type": "IAMUser", "principalId": "AIDAJDPLRKLG7UEXAMPLE", "accountId": "123456789012"}}
        ]});
        let records = raw["Records"].as_array().unwrap();
        // The records' `eventTime`s in epoch milliseconds.
        let times = [
            1_679_070_710_000,
            1_459_524_708_000,
            1_679_070_720_000,
            1_679_070_780_000,
            1_679_070_840_000,
            1_679_070_900_000,
        ];
        let events: Vec<Value> = records
            .iter()
            .zip(times)
            .map(|(r, ms)| ipsight_testkit::security_lake::from_cloudtrail(r, ms))
            .collect();
        let (p, s) = own_pairs(
            "cloudtrail",
            ipsight_testkit::security_lake::CLOUDTRAIL_RC2,
            &events,
            &OcsfMapping::default(),
        );
        // The OCSF reader keeps IPv6 pairs: compare with the preparer keeping them too.
        let mut csv = Vec::new();
        crate::prepare_cloudtrail(
            raw.to_string().as_bytes(),
            &mut csv,
            &crate::PrepareOptions {
                ipv6: crate::Ipv6Tuples::Keep,
                ..Default::default()
            },
        )
        .unwrap();
        let want: Vec<(String, IpAddr)> = String::from_utf8(csv)
            .unwrap()
            .lines()
            .map(|l| {
                let (e, ip) = crate::tuples::split_tuple(l).unwrap();
                (e.into_owned(), ip.parse().unwrap())
            })
            .collect();
        let got: Vec<(String, IpAddr)> = p.iter().map(|p| (p.entity.clone(), p.ip)).collect();
        assert_eq!(got, want);
        assert_eq!((s.events, got.len(), s.ipv6), (6, 4, 1));
        // The AssumedRole session suffix is cut, as for CloudTrail and GuardDuty.
        assert_eq!(got[0], one("AROAIOJRFK4IOK6BW5ISY", [71, 192, 137, 28]));
        assert_eq!(p[0].class_uid, Some(3001));
        // Source version 1 CloudTrail tables have no account under `cloud`.
        assert_eq!(p[1].account, None);
        assert_eq!(p[1].class_uid, Some(3005));
        assert_eq!(p[1].region.as_deref(), Some("us-west-2"));
        assert_eq!(
            format_time_ms(p[1].time_ms.unwrap()),
            "2016-04-01T15:31:48Z"
        );
    }

    /// Source version 2 (OCSF 1.1), EKS audit shape: `cloud.account.uid`, no type name, lists.
    #[test]
    fn own_ocsf_1_1_api_activity() {
        let ev = ipsight_testkit::security_lake::eks(
            "heptio-authenticator-aws:123456789012:ABCD1234567890EXAMPLE",
            "12.000.22.33",
        );
        let (p, _) = own_pairs(
            "eks",
            ipsight_testkit::security_lake::API_ACTIVITY_1_1,
            &[ev],
            &OcsfMapping::default(),
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].class_uid, Some(6003));
        // The IAM principal behind the Kubernetes user, as GuardDuty's EKS findings and CloudTrail
        // name it.
        assert_eq!(p[0].entity, "ABCD1234567890EXAMPLE");
        // Zero-padded octets of anonymised samples are decimal.
        assert_eq!(p[0].ip, IpAddr::from([12, 0, 22, 33]));
        assert!(p[0].account.as_deref().unwrap().contains("123456789012"));
    }

    fn pairs_of(path: &Path, m: &OcsfMapping) -> (Vec<OcsfPair>, OcsfStats) {
        let mut out = Vec::new();
        let stats = read_parquet_path(path, m, |p| out.push(p))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (out, stats)
    }

    fn parquet_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().ends_with(".parquet") {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    fn one(entity: &str, ip: [u8; 4]) -> (String, IpAddr) {
        (entity.to_owned(), IpAddr::from(ip))
    }

    #[test]
    fn every_security_lake_sample_reads() {
        let Some(samples) = samples("every_security_lake_sample_reads") else {
            return;
        };
        let m = OcsfMapping::default();
        let files = parquet_files(&samples);
        assert!(files.len() >= 30, "samples missing: {}", files.len());
        let mut ocsf = 0;
        for f in &files {
            let name = f.to_string_lossy();
            let r = read_parquet_path(f, &m, |_| {});
            if name.contains("/inputs/") {
                // Raw VPC Flow Logs stored as Parquet: not OCSF, said so.
                let e = r.unwrap_err();
                assert!(matches!(e, OcsfError::NotOcsf(_)), "{name}: {e}");
                assert!(e.to_string().contains("dstaddr"), "{e}");
            } else {
                let s = r.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(s.events >= 1, "{name}");
                ocsf += 1;
            }
        }
        assert!(ocsf >= 26);
    }

    #[test]
    fn network_and_dns_activity_use_the_instance() {
        let Some(samples) = samples("network_and_dns_activity_use_the_instance") else {
            return;
        };
        let m = OcsfMapping::default();
        let base = samples.join("1.0.0-rc.2");
        // Inbound flow: no instance on the source side.
        let (p, s) = pairs_of(&base.join("VPC_FLOW/example0.gz.parquet"), &m);
        assert!(p.is_empty());
        assert_eq!(s.no_entity, 1);
        let (p, _) = pairs_of(&base.join("VPC_FLOW/example1.gz.parquet"), &m);
        assert_eq!(
            p,
            vec![OcsfPair {
                entity: "i-000000000000000000".into(),
                ip: IpAddr::from([1, 2, 3, 4]),
                class_uid: Some(4001),
                time_ms: p[0].time_ms,
                account: Some("123456789012".into()),
                region: Some("us-east-2".into()),
            }]
        );
        assert!(p[0].time_ms.unwrap() > 1_600_000_000_000);
        // `-` is VPC Flow Logs' "no data", not an entity.
        let (p, s) = pairs_of(&base.join("VPC_FLOW/example3.gz.parquet"), &m);
        assert!(p.is_empty() && s.no_entity == 1, "{s:?}");
        let (p, _) = pairs_of(&base.join("ROUTE53/example3.json.gz.parquet"), &m);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].entity.clone(), p[0].ip),
            one("i-0d15cd0d3example", [4, 5, 64, 102])
        );
        assert_eq!(p[0].class_uid, Some(4003));
        assert_eq!(p[0].account.as_deref(), Some("111122223333"));
        // Security Hub findings (2001) have no source endpoint: events, no pairs, no error.
        let (p, s) = pairs_of(&base.join("SH_FINDINGS/example0.json.gz.parquet"), &m);
        assert!(p.is_empty() && s.events >= 1 && s.pairs == 0, "{s:?}");
    }

    /// The OCSF API-activity pairs of Security Lake's CloudTrail samples are exactly the tuples the
    /// CloudTrail preparer makes from the raw records they were converted from: one model serves both.
    #[test]
    fn cloudtrail_classes_match_the_cloudtrail_preparer() {
        let Some(samples) = samples("cloudtrail_classes_match_the_cloudtrail_preparer") else {
            return;
        };
        let m = OcsfMapping::default();
        let base = samples.join("1.0.0-rc.2/CLOUD_TRAIL");
        let mut compared = 0;
        let mut with_pairs = 0;
        for f in parquet_files(&base) {
            let (p, s) = pairs_of(&f, &m);
            assert_eq!(s.events, 1, "{}", f.display());
            let name = f
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace(".gz.parquet", ".gz");
            let raw = f.parent().unwrap().join("input").join(name);
            let mut csv = Vec::new();
            crate::prepare_cloudtrail(
                io::BufReader::new(std::fs::File::open(&raw).unwrap()),
                &mut csv,
                &crate::PrepareOptions {
                    ipv6: crate::Ipv6Tuples::Keep,
                    ..Default::default()
                },
            )
            .unwrap();
            let want: Vec<(String, IpAddr)> = String::from_utf8(csv)
                .unwrap()
                .lines()
                .map(|l| {
                    let (e, ip) = crate::tuples::split_tuple(l).unwrap();
                    (e.into_owned(), ip.parse().unwrap())
                })
                .collect();
            let got: Vec<(String, IpAddr)> = p.iter().map(|p| (p.entity.clone(), p.ip)).collect();
            assert_eq!(got, want, "{}", f.display());
            compared += 1;
            with_pairs += usize::from(!got.is_empty());
        }
        assert_eq!(compared, 21);
        assert!(with_pairs >= 15, "{with_pairs}");
        // The AssumedRole session suffix is cut, as for CloudTrail and GuardDuty.
        let (p, _) = pairs_of(
            &base.join("account_change/AttachRolePolicy.test.gz.parquet"),
            &m,
        );
        assert_eq!(
            (p[0].entity.clone(), p[0].ip),
            one("AROAIOJRFK4IOK6BW5ISY", [71, 192, 137, 28])
        );
        assert_eq!(p[0].class_uid, Some(3001));
        // rc.2 CloudTrail: the account is the actor's, not under `cloud`.
        let (p, _) = pairs_of(
            &base.join("api_activity(general CT events)/CreateLoadBalancer.test.gz.parquet"),
            &m,
        );
        assert_eq!(p[0].class_uid, Some(3005));
        assert_eq!(p[0].region.as_deref(), Some("us-west-2"));
        assert_eq!(
            format_time_ms(p[0].time_ms.unwrap()),
            "2016-04-01T15:31:48Z"
        );
    }

    #[test]
    fn ocsf_1_1_api_activity() {
        let Some(samples) = samples("ocsf_1_1_api_activity") else {
            return;
        };
        let (p, _) = pairs_of(
            &samples.join("1.1.0/EKS/test.parquet"),
            &OcsfMapping::default(),
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].class_uid, Some(6003));
        // The IAM principal behind the Kubernetes user, as GuardDuty's EKS findings and CloudTrail
        // name it.
        assert_eq!(p[0].entity, "ABCD1234567890EXAMPLE");
        // Zero-padded octets of anonymised samples are decimal.
        assert_eq!(p[0].ip, IpAddr::from([12, 0, 22, 33]));
        assert!(p[0].account.as_deref().unwrap().contains("123456789012"));
    }

    #[test]
    fn configurable_mapping() {
        let m = OcsfMapping::from_lookup(|k| match k {
            "OCSF_ENTITY" => Some("src_endpoint.vpc_uid, src_endpoint.instance_uid".into()),
            "OCSF_CLASSES" => Some("4003".into()),
            _ => None,
        })
        .unwrap();
        if let Some(samples) = samples("configurable_mapping") {
            let base = samples.join("1.0.0-rc.2");
            let (p, _) = pairs_of(&base.join("ROUTE53/example0.json.gz.parquet"), &m);
            assert_eq!(
                (p[0].entity.clone(), p[0].ip),
                one("vpc-00000000000000000", [10, 200, 21, 100])
            );
            let (p, s) = pairs_of(&base.join("VPC_FLOW/example1.gz.parquet"), &m);
            assert!(p.is_empty() && s.other_class == 1);
        }
        for (k, v) in [
            ("OCSF_IP", ""),
            ("OCSF_ENTITY", "a..b"),
            ("OCSF_ACTOR_CLASSES", "api"),
        ] {
            let e = OcsfMapping::from_lookup(|n| (n == k).then(|| v.to_owned())).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
        let m = OcsfMapping::from_lookup(|k| {
            (k == "OCSF_ACTOR_ENTITY").then(|| "actor.user.credential_uid".into())
        })
        .unwrap();
        assert_eq!(
            m.actor_entity,
            vec![EntityRule::Field("actor.user.credential_uid".into())]
        );
    }

    #[test]
    fn malformed_parquet_is_an_error() {
        let ours = own_file(
            "good",
            ipsight_testkit::security_lake::NETWORK_ACTIVITY_RC2,
            &[ipsight_testkit::security_lake::flow(
                Some("i-1"),
                "1.2.3.4",
                "Outbound",
            )],
        );
        malformed_variants_are_errors(&ours);
        std::fs::remove_file(&ours).ok();
        if let Some(samples) = samples("malformed_parquet_is_an_error") {
            malformed_variants_are_errors(&samples.join("1.0.0-rc.2/VPC_FLOW/example1.gz.parquet"));
        }
    }

    /// Empty, not Parquet, truncated, over the cap, corrupt pages: each an error, never a panic.
    fn malformed_variants_are_errors(f: &Path) {
        let good = std::fs::read(f).unwrap();
        let m = OcsfMapping::default();
        for (what, bytes) in [
            ("empty", Vec::new()),
            ("not parquet", b"{\"class_uid\":4001}\n".to_vec()),
            ("truncated", good[..good.len() / 2].to_vec()),
        ] {
            let tmp =
                std::env::temp_dir().join(format!("ipsight-ocsf-{}-{what}", std::process::id()));
            std::fs::write(&tmp, &bytes).unwrap();
            let e = read_parquet_path(&tmp, &m, |_| {}).unwrap_err();
            std::fs::remove_file(&tmp).ok();
            assert!(matches!(e, OcsfError::Parquet(_)), "{what}: {e}");
        }
        let e = read_parquet_capped(std::fs::File::open(f).unwrap(), &m, 100, |_| {}).unwrap_err();
        assert!(matches!(e, OcsfError::TooLarge { cap: 100 }), "{e}");
        assert!(read_parquet_capped(std::fs::File::open(f).unwrap(), &m, 1 << 20, |_| {}).is_ok());
        // Corrupt page data inside a valid footer: an error, never a panic.
        let mut bad = good.clone();
        for b in bad.iter_mut().skip(4).take(good.len() / 3) {
            *b ^= 0x5a;
        }
        let tmp = std::env::temp_dir().join(format!("ipsight-ocsf-{}-corrupt", std::process::id()));
        std::fs::write(&tmp, &bad).unwrap();
        let r = read_parquet_path(&tmp, &m, |_| {});
        std::fs::remove_file(&tmp).ok();
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn json_lines_both_versions() {
        let v10 = r#"{"class_uid":4001,"time":1700000000000,"cloud":{"account_uid":"111122223333","region":"eu-west-1"},"src_endpoint":{"instance_uid":"i-1","ip":"10.0.0.1"}}"#;
        let v11 = r#"{"class_uid":6003,"time":"1700000000123","cloud":{"account":{"uid":"444455556666"}},"actor":{"user":{"type":"AssumedRole","uid":"AROAX:sess","account":{"uid":"444455556666"}}},"src_endpoint":{"ip":"203.0.113.9"}}"#;
        let v6 = r#"{"class_uid":4001,"src_endpoint":{"instance_uid":"i-2","ip":"2001:db8::1"}}"#;
        let arr = format!("[{v10},{v10}]");
        let text = format!("{v10}\n\n{v11}\r\n{v6}\n{arr}\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        for input in [text.as_bytes().to_vec(), gz] {
            let mut p = Vec::new();
            let s = read_json(
                &input[..],
                &OcsfMapping::default(),
                &JsonLimits::default(),
                |x| p.push(x),
            )
            .unwrap();
            assert_eq!((s.events, s.pairs, s.ipv6), (5, 5, 1));
            assert_eq!(p[0].account.as_deref(), Some("111122223333"));
            assert_eq!(p[1].entity, "AROAX");
            assert_eq!(p[1].account.as_deref(), Some("444455556666"));
            assert_eq!(p[1].time_ms, Some(1_700_000_000_123));
            assert_eq!(
                format_time_ms(1_700_000_000_123),
                "2023-11-14T22:13:20.123Z"
            );
        }
        let bad = format!("{v10}\n{{\"class_uid\":\n");
        let e = read_json(
            bad.as_bytes(),
            &OcsfMapping::default(),
            &JsonLimits::default(),
            |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = read_json(
            &b"42\n"[..],
            &OcsfMapping::default(),
            &JsonLimits::default(),
            |_| {},
        )
        .unwrap_err();
        assert!(matches!(e, OcsfError::NotAnObject { line: 1 }));
        let small = JsonLimits {
            max_uncompressed_bytes: 100,
            max_line_bytes: 1000,
        };
        let e = read_json(text.as_bytes(), &OcsfMapping::default(), &small, |_| {}).unwrap_err();
        assert!(matches!(e, OcsfError::TooLarge { cap: 100 }), "{e}");
        let short = JsonLimits {
            max_uncompressed_bytes: 1 << 20,
            max_line_bytes: 50,
        };
        let e = read_json(text.as_bytes(), &OcsfMapping::default(), &short, |_| {}).unwrap_err();
        assert!(matches!(e, OcsfError::LineTooLarge { line: 1, .. }), "{e}");
    }

    #[test]
    fn times() {
        assert_eq!(format_time_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_time_ms(-1), "1969-12-31T23:59:59.999Z");
    }
}
