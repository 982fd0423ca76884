//! The fusion itself: findings × scores → one ranked row per `<entity, ip>`. Pure and synchronous;
//! the Lambda and the CLI gather the inputs and write the outputs.
//!
//! # Risk
//!
//! Each signal is read as a *p-value*, the chance of seeing something at least this alarming in
//! normal operation:
//! * GuardDuty: `p_gd = 1 − severity/10` (floored at 0.01);
//! * IP Insights: `p_ip = 1 − unusual_percentile/100`, the share of known-normal activity that
//!   looked *even less* normal than this pair (floored at 0.0005, the calibration's resolution);
//!   1 when the pair could not be scored;
//! * threat list: `p_threat = 0.1` when the address is on it, else 1.
//!
//! `risk = 100 × (1 − p_gd × p_ip × p_threat)`: a noisy-OR of independent evidence. Ranking by it is
//! ranking by the summed surprise `−log p_gd − log p_ip − log p_threat` (Fisher's way of combining
//! independent tests), so it is strictly increasing in severity and in unusualness, an
//! unremarkable pair leaves GuardDuty's order alone, and an address the principal never uses lifts
//! a medium finding above a high finding on the principal's everyday address. See the README.
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

use ipsight_core::labels::{LabelSet, Verdict};
use ipsight_core::time::epoch_seconds;
use ipsight_enrich::{EnrichError, Enricher, Network};
use ipsight_formats::guardduty::{keep_latest, FindingRecord, RemoteNetwork};
use serde::Serialize;

use crate::lists::IpList;
use crate::scores::ScoreTable;

/// Floors: a p-value of 0 would make one signal override the other entirely.
pub const P_SEVERITY_FLOOR: f64 = 0.01;
pub const P_UNUSUAL_FLOOR: f64 = 0.0005;
/// How much more alarming an address on the threat list makes a row.
pub const P_THREAT: f64 = 0.1;

pub const FORMULA: &str = "risk = 100 * (1 - p_gd * p_ip * p_threat); p_gd = max(1 - max_severity/10, 0.01); \
p_ip = max(1 - unusual_percentile/100, 0.0005), or 1 when unscored; p_threat = 0.1 on the threat list, else 1";

/// The combined risk (0–100) of a severity (0–10), an unusualness (0–1, `None` = unscored) and
/// whether the address is on the threat list.
pub fn risk(max_severity: f64, unusualness: Option<f64>, threat: bool) -> f64 {
    100.0 * (1.0 - p_values(max_severity, unusualness, threat).3)
}

/// `(p_gd, p_ip, p_threat, product)`.
fn p_values(max_severity: f64, unusualness: Option<f64>, threat: bool) -> (f64, f64, f64, f64) {
    let p_gd = (1.0 - max_severity.clamp(0.0, 10.0) / 10.0).max(P_SEVERITY_FLOOR);
    let p_ip = unusualness.map_or(1.0, |u| (1.0 - u.clamp(0.0, 1.0)).max(P_UNUSUAL_FLOOR));
    let p_t = if threat { P_THREAT } else { 1.0 };
    (p_gd, p_ip, p_t, p_gd * p_ip * p_t)
}

#[derive(Debug, Clone)]
pub struct FuseOptions {
    /// Report date, `YYYY-MM-DD`.
    pub date: String,
    /// Only findings last seen in the `lookback_days` days ending on `date` (inclusive); `None`:
    /// every finding given.
    pub lookback_days: Option<u32>,
    pub trusted: Option<IpList>,
    pub threats: Option<IpList>,
    /// Rank GuardDuty's generated sample findings like real ones (default: suppressed).
    pub include_samples: bool,
    /// Analyst decisions, as of the report date: a confirmed false positive is suppressed (and
    /// listed, saying who decided and why); a confirmed true positive is escalated and ranked
    /// above every unconfirmed row. The analyst's decision beats the trusted list.
    pub labels: Option<LabelSet>,
    /// The tuning file: applied by [`crate::assemble`] after the rows have their network (allow
    /// rules by ASN or country need it); [`fuse`] alone does not apply it.
    pub tuning: Option<ipsight_core::tuning::Tuning>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// 1-based rank among rows that are not suppressed.
    pub rank: Option<usize>,
    /// `active`, `escalated` (threat list) or `suppressed`.
    pub status: &'static str,
    pub risk: f64,
    pub entity: String,
    /// IPv4, or IPv6 in canonical RFC 5952 text.
    pub ip: IpAddr,
    pub max_severity: f64,
    pub finding_types: Vec<String>,
    pub finding_count: usize,
    /// Sum of the findings' `count` (events GuardDuty aggregated).
    pub event_count: u64,
    pub dot_product: Option<f32>,
    /// The unusualness the risk uses: the combined score's percentile when the pair was scored
    /// with the baseline sidecar, else the embedding's.
    pub unusual_percentile: Option<f64>,
    /// The embedding's own unusualness (0–100, higher = less normal).
    pub embedding_percentile: Option<f64>,
    /// Where the address sits in the principal's history (`ip`, `/24`, `/16`, IPv6 levels, `none`,
    /// `new_principal`); null when unscored or scored without a baseline.
    pub history: Option<ipsight_ports::History>,
    /// Up to 3 prefixes the principal used nearest to this address.
    pub nearest: Vec<ipsight_ports::Nearest>,
    /// The score's own why (history, nearest known prefixes, both percentiles), as the scorer
    /// wrote it; also quoted in `explanation`.
    pub score_explanation: Option<String>,
    /// `scores`, `scorer` or `unscored`.
    pub score_source: &'static str,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// Every finding on the row is a GuardDuty sample finding.
    pub sample: bool,
    pub escalated_by: Option<String>,
    pub suppressed_reason: Option<String>,
    /// The analyst decision applied to the row (`false_positive` / `true_positive`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'static str>,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub countries: Vec<String>,
    pub finding_ids: Vec<String>,
    pub explanation: String,
    /// Network of the address: GuardDuty's `remoteIpDetails` first, then the databases
    /// (`--ip-db` / `IP_DB_URIS`, `--aws-ranges`); absent when neither knows anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Whether the principal's baseline ever placed it in this AS / country (`seen`/`first`):
    /// with IP databases and a scorer whose baseline knows the principal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_history: Option<ipsight_enrich::NetworkHistory>,
    /// The principal's first day in the baseline (`YYYY-MM-DD`), when a scorer's baseline knows it:
    /// the tuning file's learning period counts from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_first_seen: Option<String>,
    #[serde(skip)]
    raw_risk: f64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub findings: usize,
    pub findings_in_window: usize,
    pub rows: usize,
    pub ranked: usize,
    pub escalated: usize,
    pub suppressed: usize,
    pub unscored: usize,
    /// IPv6 pairs named by findings in the window (ranked beside the IPv4 ones).
    pub ipv6_pairs: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub date: String,
    pub formula: &'static str,
    pub summary: Summary,
    /// Ranked rows first, then suppressed ones.
    pub rows: Vec<Row>,
}

#[derive(Default)]
struct Agg {
    max_severity: f64,
    types: BTreeSet<String>,
    ids: BTreeSet<String>,
    accounts: BTreeSet<String>,
    regions: BTreeSet<String>,
    countries: BTreeSet<String>,
    events: u64,
    first: Option<String>,
    last: Option<String>,
    all_samples: bool,
    /// What GuardDuty said about the address (`remoteIpDetails`), first one given.
    guardduty_network: Option<RemoteNetwork>,
}

pub use ipsight_core::time::day_number;

fn min_opt(a: &mut Option<String>, b: Option<&String>) {
    if let Some(b) = b {
        if a.as_ref().is_none_or(|a| b < a) {
            *a = Some(b.clone());
        }
    }
}

fn max_opt(a: &mut Option<String>, b: Option<&String>) {
    if let Some(b) = b {
        if a.as_ref().is_none_or(|a| b > a) {
            *a = Some(b.clone());
        }
    }
}

/// Pairs the findings name (what needs a score).
pub fn finding_pairs(records: &[FindingRecord]) -> BTreeSet<(String, IpAddr)> {
    records
        .iter()
        .flat_map(|r| pairs_of(r).map(|(e, ip, _, _)| (e.clone(), ip)))
        .collect()
}

/// A finding's pairs, IPv4 then IPv6, with the remote address's country and GuardDuty's network.
#[allow(clippy::type_complexity)]
fn pairs_of(
    r: &FindingRecord,
) -> impl Iterator<Item = (&String, IpAddr, &Option<String>, &Option<RemoteNetwork>)> {
    let v4 = r
        .pairs
        .iter()
        .map(|p| (&p.entity, IpAddr::V4(p.ip), &p.country, &p.network));
    let v6 = r
        .ipv6
        .iter()
        .map(|p| (&p.entity, IpAddr::V6(p.ip), &p.country, &p.network));
    v4.chain(v6)
}

/// GuardDuty's `remoteIpDetails` as a [`Network`]: the first source of a row's network.
fn guardduty_network(g: &RemoteNetwork) -> Network {
    Network {
        asn: g.asn,
        as_org: g.asn_org.clone().or_else(|| g.org.clone()),
        country: g.country_code.clone(),
        city: g.city.clone(),
        sources: vec!["guardduty".to_owned()],
        ..Network::default()
    }
}

/// Fuse findings and scores into the ranked report.
pub fn fuse(records: &[FindingRecord], scores: &ScoreTable, opts: &FuseOptions) -> Report {
    let records = keep_latest(records.to_vec());
    let report_day = day_number(&opts.date);
    let in_window = |r: &FindingRecord| -> bool {
        let (Some(lookback), Some(end)) = (opts.lookback_days, report_day) else {
            return true;
        };
        let seen = r
            .event_last_seen
            .as_deref()
            .or(r.updated_at.as_deref())
            .or(r.created_at.as_deref())
            .and_then(day_number);
        seen.is_some_and(|d| d <= end && d > end - lookback as i64)
    };
    let mut summary = Summary {
        findings: records.len(),
        ..Default::default()
    };
    let mut aggs: HashMap<(String, IpAddr), Agg> = HashMap::new();
    for r in records.iter().filter(|r| in_window(r)) {
        summary.findings_in_window += 1;
        summary.ipv6_pairs += r.ipv6.len();
        for (entity, ip, country, gd_net) in pairs_of(r) {
            let a = aggs.entry((entity.clone(), ip)).or_insert_with(|| Agg {
                all_samples: true,
                ..Default::default()
            });
            a.max_severity = a.max_severity.max(r.severity);
            a.types.insert(r.finding_type.clone());
            if a.ids.insert(r.finding_id.clone()) {
                a.events += r.count;
            }
            a.accounts.insert(r.account_id.clone());
            a.regions.insert(r.region.clone());
            if let Some(c) = country {
                a.countries.insert(c.clone());
            }
            if a.guardduty_network.is_none() {
                a.guardduty_network = gd_net.clone();
            }
            min_opt(
                &mut a.first,
                r.event_first_seen.as_ref().or(r.created_at.as_ref()),
            );
            max_opt(
                &mut a.last,
                r.event_last_seen.as_ref().or(r.updated_at.as_ref()),
            );
            a.all_samples &= r.sample;
        }
    }
    let mut rows: Vec<Row> = aggs
        .into_iter()
        .map(|((entity, ip), a)| build_row(entity, ip, a, scores, opts))
        .collect();
    rows.sort_by(|x, y| {
        (x.status == "suppressed")
            .cmp(&(y.status == "suppressed"))
            .then((y.label == Some("true_positive")).cmp(&(x.label == Some("true_positive"))))
            .then(y.raw_risk.total_cmp(&x.raw_risk))
            .then(y.max_severity.total_cmp(&x.max_severity))
            // More unusual first; unscored after scored.
            .then_with(|| match (x.dot_product, y.dot_product) {
                (Some(a), Some(b)) => a.total_cmp(&b),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then_with(|| x.entity.cmp(&y.entity))
            .then(x.ip.cmp(&y.ip))
    });
    let mut rank = 0;
    for r in &mut rows {
        if r.status != "suppressed" {
            rank += 1;
            r.rank = Some(rank);
        }
    }
    summary.rows = rows.len();
    summary.ranked = rank;
    summary.suppressed = rows.len() - rank;
    summary.escalated = rows.iter().filter(|r| r.status == "escalated").count();
    summary.unscored = rows.iter().filter(|r| r.score_source == "unscored").count();
    Report {
        date: opts.date.clone(),
        formula: FORMULA,
        summary,
        rows,
    }
}

fn build_row(entity: String, ip: IpAddr, a: Agg, scores: &ScoreTable, o: &FuseOptions) -> Row {
    let score = scores.get(&entity, ip).cloned();
    let u = score.as_ref().map(|s| s.unusualness());
    let threat = o
        .threats
        .as_ref()
        .and_then(|l| l.matching(ip).map(|m| (l, m)));
    let trusted = o
        .trusted
        .as_ref()
        .and_then(|l| l.matching(ip).map(|m| (l, m)));
    let (p_gd, p_ip, p_t, p) = p_values(a.max_severity, u, threat.is_some());
    let raw_risk = 100.0 * (1.0 - p);
    // Labels apply as of the start of the report day, so a re-run of a past date is reproducible
    // as long as no decision about that day is added afterwards.
    let label = o.labels.as_ref().and_then(|set| {
        let at = epoch_seconds(&o.date).unwrap_or(i64::MAX);
        set.lookup(&entity, ip, at)
    });
    let mut suppressed_reason = match (&trusted, a.all_samples && !o.include_samples) {
        (Some((l, m)), _) => Some(format!("trusted list {} ({m})", l.name)),
        (None, true) => Some("GuardDuty sample findings only".to_owned()),
        _ => None,
    };
    let mut escalated_by = threat.as_ref().map(|(l, m)| format!("{} ({m})", l.name));
    match label {
        Some(l) if l.verdict == Verdict::FalsePositive => {
            suppressed_reason = Some(l.describe());
        }
        Some(l) => {
            suppressed_reason = None;
            escalated_by = Some(match escalated_by {
                Some(t) => format!("{}; threat list {t}", l.describe()),
                None => l.describe(),
            });
        }
        None => {}
    }
    let status = match (&suppressed_reason, &escalated_by) {
        (Some(_), _) => "suppressed",
        (None, Some(_)) => "escalated",
        _ => "active",
    };

    let types: Vec<String> = a.types.into_iter().collect();
    let n = a.ids.len();
    let mut ex = String::new();
    if let Some(why) = &suppressed_reason {
        let _ = write!(ex, "SUPPRESSED ({why}). ");
    }
    let _ = write!(
        ex,
        "GuardDuty: max severity {:.1} from {n} finding{} ({}), {} event{}.",
        a.max_severity,
        if n == 1 { "" } else { "s" },
        types.join(", "),
        a.events,
        if a.events == 1 { "" } else { "s" },
    );
    match (&score, u) {
        (Some(s), Some(u)) if s.history.is_some() => {
            let _ = write!(
                ex,
                " IP Insights with the principal's history ({})",
                s.history.map_or("", |h| h.as_str()),
            );
            // A score file written without the sentence still reads as one.
            match s.explanation.as_deref().filter(|e| !e.trim().is_empty()) {
                Some(why) => {
                    let _ = write!(ex, ": {why}");
                }
                None => ex.push('.'),
            }
            if !ex.ends_with('.') {
                ex.push('.');
            }
            let _ = write!(
                ex,
                " Combined unusualness {:.2}% (dot_product {:.3}).",
                u * 100.0,
                s.dot_product
            );
        }
        (Some(s), Some(u)) => {
            let _ = write!(
                ex,
                " IP Insights: less normal than {:.2}% of known activity (dot_product {:.3}, {}; \
                 no baseline: the embedding alone).",
                u * 100.0,
                s.dot_product,
                if s.unusual_percentile.is_some() {
                    "calibrated"
                } else {
                    "uncalibrated: 1 - sigmoid(dot_product)"
                }
            );
        }
        _ => ex.push_str(" IP Insights: pair not scored; ranked on severity alone."),
    }
    match (label.map(|l| l.verdict), &escalated_by) {
        (Some(Verdict::TruePositive), Some(t)) => {
            let _ = write!(ex, " Confirmed by an analyst ({t}): escalated.");
        }
        (_, Some(t)) => {
            let _ = write!(ex, " Address on threat list {t}: escalated.");
        }
        _ => {}
    }
    let _ = write!(
        ex,
        " risk = 100 × (1 − {p_gd:.3} × {p_ip:.4} × {p_t}) = {raw_risk:.3}."
    );

    Row {
        rank: None,
        status,
        risk: (raw_risk * 1e4).round() / 1e4,
        entity,
        ip,
        max_severity: a.max_severity,
        finding_types: types,
        finding_count: n,
        event_count: a.events,
        dot_product: score.as_ref().map(|s| s.dot_product),
        unusual_percentile: u.map(|u| (u * 1e6).round() / 1e4),
        embedding_percentile: score.as_ref().and_then(|s| s.embedding_percentile),
        history: score.as_ref().and_then(|s| s.history),
        score_source: score.as_ref().map_or("unscored", |s| s.source.as_str()),
        nearest: score
            .as_ref()
            .map(|s| s.nearest.clone())
            .unwrap_or_default(),
        score_explanation: score.and_then(|s| s.explanation),
        first_seen: a.first,
        last_seen: a.last,
        sample: a.all_samples,
        escalated_by,
        suppressed_reason,
        label: label.map(|l| l.verdict.as_str()),
        accounts: a.accounts.into_iter().collect(),
        regions: a.regions.into_iter().collect(),
        countries: a.countries.into_iter().collect(),
        finding_ids: a.ids.into_iter().collect(),
        explanation: ex,
        network: a.guardduty_network.as_ref().map(guardduty_network),
        network_history: None,
        principal_first_seen: None,
        raw_risk,
    }
}

impl Report {
    /// `suspicious.json`: pretty, newline-terminated, byte-identical for identical inputs.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("report serialises");
        v.push(b'\n');
        v
    }

    /// Add the network of every row's address. Stops at the first database record that cannot
    /// be decoded (the error names the database and the address): a corrupt database is a
    /// configuration error, not a property of one row.
    pub fn enrich(&mut self, enricher: &Enricher) -> Result<(), EnrichError> {
        for r in &mut self.rows {
            // GuardDuty's own view first; the databases fill what it lacks.
            let known = r.network.take().unwrap_or_default();
            r.network = Some(enricher.lookup(r.ip, known)?);
        }
        Ok(())
    }

    /// What the scorer's baseline knows of each row's principal: its first-seen day (for the
    /// learning period) and, with IP databases, whether it was ever seen from the row's AS /
    /// country ("First time this principal is seen from AS64500 (Example Transit)." joins the
    /// explanation). One baseline lookup per principal.
    pub fn principal_context(
        &mut self,
        enricher: Option<&Enricher>,
        profile_of: &dyn Fn(&str) -> Option<ipsight_ports::PrincipalProfile>,
    ) -> Result<(), EnrichError> {
        let mut profiles: HashMap<String, Option<ipsight_ports::PrincipalProfile>> = HashMap::new();
        for r in &mut self.rows {
            let p = profiles
                .entry(r.entity.clone())
                .or_insert_with(|| profile_of(&r.entity));
            let Some(p) = p else { continue };
            r.principal_first_seen = p
                .first_seen_day
                .map(|d| ipsight_core::time::date(d * 86_400));
            if let (Some(e), Some(net)) = (enricher, &r.network) {
                if let Some((h, sentence)) =
                    ipsight_enrich::network_history(e, net, p.prefixes.iter().copied())?
                {
                    r.network_history = Some(h);
                    if let Some(s) = sentence {
                        r.explanation = format!("{} {s}", r.explanation);
                    }
                }
            }
        }
        Ok(())
    }

    /// `suspicious.csv`: one line per row, same order as the JSON, with a header.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut out = String::from(
            "rank,status,risk,entity,ip,max_severity,finding_types,finding_count,event_count,\
             dot_product,unusual_percentile,score_source,first_seen,last_seen,sample,escalated_by,\
             suppressed_reason,accounts,regions,finding_ids,explanation,asn,as_org,country,\
             history,embedding_percentile,nearest,score_explanation\n",
        );
        for r in &self.rows {
            let opt = |v: Option<String>| v.unwrap_or_default();
            let fields = [
                opt(r.rank.map(|x| x.to_string())),
                r.status.to_owned(),
                r.risk.to_string(),
                r.entity.clone(),
                r.ip.to_string(),
                r.max_severity.to_string(),
                r.finding_types.join(";"),
                r.finding_count.to_string(),
                r.event_count.to_string(),
                opt(r.dot_product.map(|x| x.to_string())),
                opt(r.unusual_percentile.map(|x| x.to_string())),
                r.score_source.to_owned(),
                opt(r.first_seen.clone()),
                opt(r.last_seen.clone()),
                r.sample.to_string(),
                opt(r.escalated_by.clone()),
                opt(r.suppressed_reason.clone()),
                r.accounts.join(";"),
                r.regions.join(";"),
                r.finding_ids.join(";"),
                r.explanation.clone(),
                opt(r
                    .network
                    .as_ref()
                    .and_then(|n| n.asn)
                    .map(|a| a.to_string())),
                opt(r.network.as_ref().and_then(|n| n.as_org.clone())),
                opt(r.network.as_ref().and_then(|n| n.country.clone())),
                opt(r.history.map(|h| h.as_str().to_owned())),
                opt(r.embedding_percentile.map(|x| x.to_string())),
                nearest_text(&r.nearest),
                opt(r.score_explanation.clone()),
            ];
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                csv_field(&mut out, f);
            }
            out.push('\n');
        }
        out.into_bytes()
    }
}

/// `10.1.0.0/24 (12 events, last 2026-11-07); ...`: the nearest known prefixes in one cell.
pub fn nearest_text(near: &[ipsight_ports::Nearest]) -> String {
    near.iter()
        .map(ipsight_ports::Nearest::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// RFC 4180: quote fields holding a comma, quote or line break. Fields starting with a formula
/// character are prefixed with `'` so that a spreadsheet opening the report does not evaluate
/// attacker-influenced text (principal names, finding types).
fn csv_field(out: &mut String, f: &str) {
    let guarded;
    let f = if f.starts_with(['=', '+', '@']) || (f.starts_with('-') && f.parse::<f64>().is_err()) {
        guarded = format!("'{f}");
        guarded.as_str()
    } else {
        f
    };
    if f.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&f.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(f);
    }
}
