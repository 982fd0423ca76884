//! Fused rows where analysts work: Security Hub findings (ASFF, `BatchImportFindings`) and OCSF
//! Detection Findings (class 2004, for Security Lake custom sources).
//!
//! The finding of a `<principal, address>` has a deterministic `Id`, so re-running a report (or
//! the next day's) updates it in Security Hub instead of duplicating it; its `UpdatedAt` comes
//! from the report date, never the clock. `RecordState` and `Workflow` are never sent: they
//! belong to the analysts.
pub mod asff;
pub mod ocsf;
pub mod publish;

use std::net::IpAddr;

use ipsight_enrich::Network;
use serde::Serialize;

pub use asff::{finding, request_bodies, Finding, Importer};
pub use publish::{publish, PublishOutcome};

/// Which function found it: its `GeneratorId` and its own `Id` space, so an ipcheck alert and
/// the fused row of the same pair are two findings, each updated in place by its own function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Generator {
    /// A fused row (`ipsight-fuse`, `<account>/ipsight/unusual-ip/<principal>/<ip>`).
    #[default]
    Fuse,
    /// An ipcheck alert (`ipsight-ipcheck`, `<account>/ipsight/ipcheck-alert/<principal>/<ip>`).
    Ipcheck,
}

impl Generator {
    pub fn generator_id(self) -> &'static str {
        match self {
            Self::Fuse => "ipsight-fuse",
            Self::Ipcheck => "ipsight-ipcheck",
        }
    }

    /// The `Id` segment naming the kind of detection.
    pub fn id_kind(self) -> &'static str {
        match self {
            Self::Fuse => "unusual-ip",
            Self::Ipcheck => "ipcheck-alert",
        }
    }
}

/// What a finding is built from: one fused row or one ipcheck alert (their fields, borrowed).
#[derive(Debug, Clone)]
pub struct Detection<'a> {
    pub generator: Generator,
    /// Report date (`YYYY-MM-DD`).
    pub date: &'a str,
    pub entity: &'a str,
    pub ip: IpAddr,
    /// Fused risk, 0–100 (an ipcheck alert: its unusual percentile, see `ipcheck::security_hub`).
    pub risk: f64,
    pub max_severity: f64,
    pub unusual_percentile: Option<f64>,
    /// The baseline's history level (`ip`, `/24`, `none`, `new_principal`…), when known.
    pub history: Option<&'a str>,
    pub explanation: &'a str,
    pub finding_types: &'a [String],
    pub finding_ids: &'a [String],
    /// The principal's account and region (the row's first), when known.
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
    pub first_seen: Option<&'a str>,
    pub last_seen: Option<&'a str>,
    pub network: Option<&'a Network>,
}

/// Rows not turned into findings, by reason.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Skipped {
    /// Suppressed rows (trusted list, analyst label, tuning rule): reported, not published.
    pub suppressed: usize,
    /// Over Security Hub's 240 KB a finding.
    pub too_large: usize,
}
