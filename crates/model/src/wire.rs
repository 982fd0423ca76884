//! SageMaker IP Insights inference wire format, byte-compatible requests and responses.
//!
//! Requests (`Content-Type`):
//! - `text/csv`: `entity,ip` lines (spaces around fields are ignored, as in the documentation's
//!   `entity_id_1, 192.168.1.2`);
//! - `application/json`: `{"instances":[{"data":{"features":{"values":["e","1.2.3.4"]}}},
//!   {"features":["e","1.2.3.4"]}]}` (both instance shapes, mixed freely);
//! - `application/jsonlines`: one instance object per line, either shape.
//!
//! Responses (`Accept`): `application/json` → `{"predictions":[{"dot_product":x},...]}`;
//! `application/jsonlines` → one `{"dot_product":x}` per line; `; verbose=True` adds
//! `entity_embedding` and `ip_embedding`.
//!
//! IPv6 (ipsight only: SageMaker's IP Insights is IPv4-only): the same requests may carry IPv6
//! addresses, which a format-2 model scores; IPv4 requests and responses are unchanged byte for byte.
use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;
use thiserror::Error;

use crate::model::Model;

#[derive(Debug, Error, PartialEq)]
pub enum WireError {
    #[error("unsupported content type {0:?} (IP Insights accepts text/csv, application/json, application/jsonlines)")]
    UnsupportedContentType(String),
    #[error("unsupported accept type {0:?} (IP Insights answers application/json or application/jsonlines, optionally with verbose=True)")]
    UnsupportedAccept(String),
    #[error("record {record}: {message}")]
    Record { record: usize, message: String },
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("request body is not UTF-8 (at byte {0})")]
    Utf8(usize),
}

/// A request body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Csv,
    Json,
    JsonLines,
}

impl ContentType {
    /// Parses a `Content-Type` header value (parameters such as `charset` are ignored).
    pub fn parse(s: &str) -> Result<Self, WireError> {
        let base = s
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "text/csv" => Ok(Self::Csv),
            "application/json" => Ok(Self::Json),
            "application/jsonlines" | "application/jsonl" | "application/x-jsonlines" => {
                Ok(Self::JsonLines)
            }
            _ => Err(WireError::UnsupportedContentType(s.to_string())),
        }
    }
}

/// A response's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    pub jsonlines: bool,
    pub verbose: bool,
}

impl Default for Accept {
    /// `application/json`, as SageMaker answers when no Accept header is given.
    fn default() -> Self {
        Self {
            jsonlines: false,
            verbose: false,
        }
    }
}

impl Accept {
    /// Parses an `Accept` header value, e.g. `application/json; verbose=True`. `*/*` and an empty
    /// value mean `application/json`.
    pub fn parse(s: &str) -> Result<Self, WireError> {
        let mut parts = s.split(';');
        let base = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let jsonlines = match base.as_str() {
            "" | "*/*" | "application/json" => false,
            "application/jsonlines" | "application/jsonl" | "application/x-jsonlines" => true,
            _ => return Err(WireError::UnsupportedAccept(s.to_string())),
        };
        let mut verbose = false;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("verbose") {
                    verbose = matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1");
                }
            }
        }
        Ok(Self { jsonlines, verbose })
    }

    /// The response's `Content-Type`.
    pub fn content_type(&self) -> &'static str {
        if self.jsonlines {
            "application/jsonlines"
        } else {
            "application/json"
        }
    }
}

/// One `(entity, ip)` pair of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub entity: String,
    pub ip: IpAddr,
}

impl crate::baseline::PairKey for Record {
    fn entity(&self) -> &str {
        &self.entity
    }
    fn ip(&self) -> IpAddr {
        self.ip
    }
}

/// Splits one CSV line into entity and IP text. The entity may be double-quoted (with `""` for a
/// quote) so it can contain commas; the IP is the rest of the line. Shared by requests and the
/// training reader so both sides hash exactly the same entity string.
pub fn split_csv_pair(line: &str) -> Result<(Cow<'_, str>, &str), String> {
    let line = line.trim_matches(|c: char| c == '\r' || c == '\n');
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix('"') {
        let mut entity = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if rest[i + 1..].starts_with('"') {
                    entity.push('"');
                    chars.next();
                } else {
                    let after = rest[i + 1..].trim_start();
                    let ip = after
                        .strip_prefix(',')
                        .ok_or_else(|| "expected a comma after the quoted entity".to_string())?;
                    return Ok((Cow::Owned(entity), ip.trim()));
                }
            } else {
                entity.push(c);
            }
        }
        return Err("unterminated quoted entity".into());
    }
    let (e, ip) = line
        .split_once(',')
        .ok_or_else(|| "expected two columns: entity,ip".to_string())?;
    Ok((Cow::Borrowed(e.trim()), ip.trim()))
}

/// Parses dotted-quad IPv4 or IPv6 text, with a message that shows the offending value. IPv4 stays
/// strict dotted-quad, like the built-in algorithm: the IPv4-mapped form `::ffff:a.b.c.d` is refused
/// (ipsight's producers write the IPv4 host), so both sides hash the same address. Unspecified and
/// multicast IPv6 addresses are refused (never the source of a request), as are zone ids and
/// brackets (std's strict grammar).
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    let t = s.trim();
    if let Ok(v4) = t.parse::<Ipv4Addr>() {
        return Ok(IpAddr::V4(v4));
    }
    if t.contains(',') {
        return Err(format!(
            "expected two columns (entity,ip), found more: {s:?}"
        ));
    }
    if !t.contains(':') {
        return Err(format!("{t:?} is not a dotted-quad IPv4 address"));
    }
    let v6 = t
        .parse::<Ipv6Addr>()
        .map_err(|_| format!("{t:?} is not an IPv4 or IPv6 address"))?;
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Err(format!(
            "{t:?} is an IPv4-mapped IPv6 address: send the IPv4 address {v4}"
        ));
    }
    if v6.is_unspecified() || v6.is_multicast() {
        return Err(format!(
            "{t:?} is an unspecified or multicast IPv6 address, never a request's source"
        ));
    }
    Ok(IpAddr::V6(v6))
}

/// Parses a request body. Records are numbered from 1 (CSV and JSON Lines: the line number; JSON:
/// the position in `instances`).
pub fn parse_request(body: &[u8], content_type: ContentType) -> Result<Vec<Record>, WireError> {
    let text = std::str::from_utf8(body).map_err(|e| WireError::Utf8(e.valid_up_to()))?;
    match content_type {
        ContentType::Csv => {
            let mut out = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let record = i + 1;
                let err = |message: String| WireError::Record { record, message };
                let (entity, ip) = split_csv_pair(line).map_err(err)?;
                let ip = parse_ip(ip).map_err(err)?;
                out.push(Record {
                    entity: entity.into_owned(),
                    ip,
                });
            }
            Ok(out)
        }
        ContentType::Json => {
            let v: Value =
                serde_json::from_str(text).map_err(|e| WireError::Json(e.to_string()))?;
            let instances = v
                .get("instances")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    WireError::Json("expected an object with an \"instances\" array".into())
                })?;
            instances
                .iter()
                .enumerate()
                .map(|(i, inst)| {
                    instance(inst).map_err(|message| WireError::Record {
                        record: i + 1,
                        message,
                    })
                })
                .collect()
        }
        ContentType::JsonLines => {
            let mut out = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let record = i + 1;
                let v: Value = serde_json::from_str(line).map_err(|e| WireError::Record {
                    record,
                    message: format!("not valid JSON: {e}"),
                })?;
                out.push(instance(&v).map_err(|message| WireError::Record { record, message })?);
            }
            Ok(out)
        }
    }
}

/// One instance in either documented shape.
fn instance(v: &Value) -> Result<Record, String> {
    let values = v
        .pointer("/data/features/values")
        .or_else(|| v.get("features"))
        .and_then(Value::as_array)
        .ok_or_else(|| {
            "expected {\"data\":{\"features\":{\"values\":[entity, ip]}}} or {\"features\":[entity, ip]}".to_string()
        })?;
    if values.len() != 2 {
        return Err(format!(
            "expected 2 values (entity, ip), found {}",
            values.len()
        ));
    }
    let entity = match &values[0] {
        Value::String(s) => s.clone(),
        // An opaque identifier that happens to be numeric (e.g. an account id) is still an id.
        Value::Number(n) => n.to_string(),
        other => return Err(format!("entity must be a string, found {other}")),
    };
    let ip = values[1]
        .as_str()
        .ok_or_else(|| format!("ip must be a string, found {}", values[1]))?;
    Ok(Record {
        entity,
        ip: parse_ip(ip)?,
    })
}

/// One prediction to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub dot_product: f32,
    /// Present for verbose responses.
    pub embeddings: Option<(Vec<f32>, Vec<f32>)>,
}

fn push_f32(out: &mut String, x: f32) {
    if x.is_finite() {
        // serde_json's (ryu) shortest round-trip formatting, as Python's json would print a float.
        out.push_str(&serde_json::to_string(&x).expect("finite float"));
    } else {
        out.push_str("null");
    }
}

fn push_prediction(out: &mut String, p: &Prediction) {
    out.push_str("{\"dot_product\":");
    push_f32(out, p.dot_product);
    if let Some((e, ip)) = &p.embeddings {
        for (name, v) in [("entity_embedding", e), ("ip_embedding", ip)] {
            let _ = write!(out, ",\"{name}\":[");
            for (i, &x) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_f32(out, x);
            }
            out.push(']');
        }
    }
    out.push('}');
}

/// Writes a response body in the requested format.
pub fn write_response(predictions: &[Prediction], accept: Accept) -> Vec<u8> {
    let mut out = String::with_capacity(predictions.len() * 32 + 16);
    if accept.jsonlines {
        for p in predictions {
            push_prediction(&mut out, p);
            out.push('\n');
        }
    } else {
        out.push_str("{\"predictions\":[");
        for (i, p) in predictions.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_prediction(&mut out, p);
        }
        out.push_str("]}");
    }
    out.into_bytes()
}

/// Scores parsed records with a model, with embeddings when `verbose`. An IPv6 record on an
/// IPv4-only model (format 1) fails the request, naming the record.
pub fn predict(
    model: &Model,
    records: &[Record],
    verbose: bool,
) -> Result<Vec<Prediction>, WireError> {
    use rayon::prelude::*;
    records
        .par_iter()
        .enumerate()
        .with_min_len(4096)
        .map(|(i, r)| {
            let err = |e: crate::ModelError| WireError::Record {
                record: i + 1,
                message: e.to_string(),
            };
            // The same arithmetic as the non-verbose path, so verbose never changes a score.
            let dot_product = model.score_ip(&r.entity, r.ip).map_err(err)?;
            let embeddings = if verbose {
                let e = model.entity_vector(&r.entity).to_vec();
                Some((e, model.ip_vector_of(r.ip).map_err(err)?))
            } else {
                None
            };
            Ok(Prediction {
                dot_product,
                embeddings,
            })
        })
        .collect()
}

/// The whole invocation: request body in, response body out (what `POST /invocations` does).
pub fn invoke(
    model: &Model,
    body: &[u8],
    content_type: &str,
    accept: &str,
) -> Result<Vec<u8>, WireError> {
    let ct = ContentType::parse(content_type)?;
    let accept = Accept::parse(accept)?;
    let records = parse_request(body, ct)?;
    Ok(write_response(
        &predict(model, &records, accept.verbose)?,
        accept,
    ))
}
