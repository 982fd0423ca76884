//! The tuning file applied to a fused report: after enrichment (allow rules by ASN or country need
//! the row's network), before anything is written or published.
use ipsight_core::tuning::{PrincipalAge, Subject, Tuning};

use crate::report::{day_number, Report, Row};

/// What the tuning did to one report, for the run's log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TuningOutcome {
    /// Rows suppressed, by rule kind (`allow`, `aws_service_address`, `learning`, ...).
    pub suppressed: std::collections::BTreeMap<&'static str, usize>,
    /// Allow entries past their expiry on the report date (not applied), as `allow[i] (line n)`.
    pub expired: Vec<String>,
}

/// What the tuning may know about a row: the address's network (GuardDuty's `remoteIpDetails`,
/// then the databases) and the principal's history.
fn subject(r: &Row) -> Subject<'_> {
    let net = r.network.as_ref();
    Subject {
        entity: &r.entity,
        ip: Some(r.ip),
        asn: net.and_then(|n| n.asn),
        country: net.and_then(|n| n.country.as_deref()),
        aws_services: net
            .and_then(|n| n.aws.as_ref())
            .map(|a| a.services.as_slice()),
        invoked_by: None,
        principal: principal_age(r),
    }
}

/// `history: new_principal` on a scored row means the baseline has never seen the principal;
/// otherwise the learning period counts from its first-seen day, when the baseline knows it.
fn principal_age(r: &Row) -> PrincipalAge {
    match (
        r.history,
        r.principal_first_seen.as_deref().and_then(day_number),
    ) {
        (Some(ipsight_ports::History::NewPrincipal), _) => PrincipalAge::New,
        (_, Some(day)) => PrincipalAge::FirstSeen(day),
        _ => PrincipalAge::Unknown,
    }
}

impl Report {
    /// Suppress the active rows a tuning rule covers (still listed, with the rule in
    /// `suppressed_reason` and the explanation), then re-rank. Rows an analyst confirmed or a
    /// threat list escalated are left alone: an allowlist must not hide a known-bad address.
    pub fn apply_tuning(&mut self, tuning: &Tuning) -> TuningOutcome {
        let mut out = TuningOutcome {
            expired: Vec::new(),
            ..Default::default()
        };
        let Some(day) = day_number(&self.date) else {
            return out;
        };
        out.expired = tuning
            .expired(day)
            .map(|r| format!("allow[{}] (line {})", r.index, r.line))
            .collect();
        for r in &mut self.rows {
            if r.status != "active" {
                continue;
            }
            if let Some(s) = tuning.check(&subject(r), day) {
                *out.suppressed.entry(s.kind).or_default() += 1;
                r.explanation = format!("SUPPRESSED ({}). {}", s.rule, r.explanation);
                r.suppressed_reason = Some(s.rule);
                r.status = "suppressed";
            }
        }
        // Stable: the ranked rows keep their order, the newly suppressed ones join the end.
        self.rows.sort_by_key(|r| (r.status == "suppressed") as u8);
        let mut rank = 0;
        for r in &mut self.rows {
            r.rank = (r.status != "suppressed").then(|| {
                rank += 1;
                rank
            });
        }
        self.summary.ranked = rank;
        self.summary.suppressed = self.rows.len() - rank;
        self.summary.escalated = self.rows.iter().filter(|r| r.status == "escalated").count();
        out
    }
}
