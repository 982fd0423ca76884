//! Where analysts work: network context on every row (`IP_DB_URIS`), Security Hub findings
//! (`SECURITY_HUB=true`) and the new top rows on an EventBridge bus (`PUBLISH_TOP_N`). Databases
//! and clients are loaded or built once at cold start.
use ipsight_aws::config::{ConfigError, Env};
use ipsight_enrich::Enricher;
use ipsight_ports::{read_small_tagged, PutCondition};
use ipsight_ports::{ObjectRef, ObjectStore, StoreError};
use ipsight_securityhub::Importer;
use serde::Serialize;

use crate::report::Report;
use crate::top::{self, PublishedState, TopCounts, TopRows};

pub use ipsight_aws::triage::{ip_db_uris, load_enricher, security_hub_target};

/// What a run adds beyond the report objects, built once at cold start.
#[derive(Default)]
pub struct Triage {
    pub enricher: Option<Enricher>,
    /// The client and `(account, region)` that import the findings.
    pub security_hub: Option<(aws_sdk_securityhub::Client, (String, String))>,
    /// The client that sends the new top rows (`PUBLISH_TOP_N`).
    pub events: Option<aws_sdk_eventbridge::Client>,
}

impl Triage {
    pub fn importer(&self, date: &str) -> Option<Importer> {
        self.security_hub.as_ref().map(|(_, (account, region))| {
            Importer::for_date(date, Some(account.clone()), Some(region.clone()))
        })
    }
}

/// Where and what the new top rows are published (`PUBLISH_TOP_N`, `PUBLISH_MIN_RISK`,
/// `EVENT_BUS_NAME`, `PUBLISH_STATE_KEY`).
#[derive(Debug, Clone, PartialEq)]
pub struct TopPublishing {
    pub rows: TopRows,
    pub bus: String,
    /// The "published before" state, in the data bucket.
    pub state: ObjectRef,
}

/// Default `PUBLISH_STATE_KEY`: apart from everything fuse lists or writes per report.
pub const DEFAULT_STATE_KEY: &str = "state/fuse-published-top.json";

/// `PUBLISH_TOP_N` unset or 0: off. Otherwise `EVENT_BUS_NAME` is required, `PUBLISH_MIN_RISK`
/// (0–100) defaults to 0, and the state key must lie outside the findings, scores and reports
/// prefixes (it would be read as a finding record, or expire with the reports).
pub fn top_publishing(
    env: &Env<impl Fn(&str) -> Option<String>>,
    cfg: &crate::Config,
) -> Result<Option<TopPublishing>, ConfigError> {
    let top_n: usize = env.number("PUBLISH_TOP_N", 0)?;
    if top_n == 0 {
        return Ok(None);
    }
    let bus = env.get("EVENT_BUS_NAME").ok_or_else(|| {
        ConfigError::unusable(
            "EVENT_BUS_NAME",
            "PUBLISH_TOP_N is set: name the EventBridge bus the new top rows go to",
        )
    })?;
    let key = env.or("PUBLISH_STATE_KEY", DEFAULT_STATE_KEY);
    for (what, prefix) in [
        ("FINDINGS_PREFIX", &cfg.findings_prefix),
        ("SCORES_PREFIX", &cfg.scores_prefix),
        ("REPORTS_PREFIX", &cfg.reports_prefix),
    ] {
        if key.starts_with(prefix.as_str()) || key.ends_with('/') {
            return Err(ConfigError::invalid(
                "PUBLISH_STATE_KEY",
                key,
                format!("must be an object key outside {what} ({prefix:?})"),
            ));
        }
    }
    Ok(Some(TopPublishing {
        rows: TopRows {
            top_n,
            min_risk: env.percent_opt("PUBLISH_MIN_RISK")?.unwrap_or(0.0),
        },
        bus,
        state: ObjectRef::new(&cfg.data_bucket, key),
    }))
}

/// What publishing the new top rows did, for the run's result and log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TopOutcome {
    pub counts: TopCounts,
    pub sent: usize,
    pub state_written: bool,
}

/// Read the state (none yet: empty), send the report's new top rows, then record them. The
/// state is written only after `PutEvents` accepted every entry: a failure sends them again on
/// the retry (same `publish_id`), never loses them. A state that cannot be read (other than
/// missing) or parsed fails the run rather than re-alerting every row. The write is conditional
/// on the version read (absent, or the same ETag): a second run at the same time (a manual
/// invocation beside the schedule) cannot overwrite the rows the first one recorded; the loser
/// fails, and its retry reads the winner's state.
pub async fn publish_top_rows(
    store: &impl ObjectStore,
    client: &aws_sdk_eventbridge::Client,
    p: &TopPublishing,
    report: &Report,
) -> anyhow::Result<TopOutcome> {
    let (before, version) = match read_small_tagged(store, &p.state, MAX_STATE_BYTES).await {
        Ok((body, version)) => (PublishedState::parse(&p.state.to_string(), &body)?, version),
        // S3 answers 403 for a missing key unless ListBucket applies to it: the template grants
        // it on the state key, and a first run may still see 403 where that condition is not
        // evaluated. Either way there is no state yet; a real permission problem surfaces when
        // the state is written.
        Err(StoreError::NotFound(_) | StoreError::AccessDenied(_)) => {
            (PublishedState::default(), None)
        }
        Err(e) => return Err(e.into()),
    };
    let plan = top::plan(report, &before, &p.rows);
    let entries = top::request_bodies(&p.bus, &plan.events)
        .into_iter()
        .flatten()
        .map(|e| e.to_sdk())
        .collect();
    let sent = ipsight_aws::events::put_events(client, &p.bus, entries)
        .await
        .map_err(anyhow::Error::msg)?;
    let state_written = plan.changes(&before);
    if state_written {
        let cond = version
            .as_deref()
            .map_or(PutCondition::Absent, PutCondition::Matches);
        let written = store
            .put_bytes_if(
                &p.state,
                plan.state.to_json().into(),
                "application/json",
                cond,
            )
            .await?;
        if !written {
            anyhow::bail!(
                "{}: the published-rows state changed while this run published {sent} events \
                 (another fuse run at the same time?); not overwritten, the retry reads it",
                p.state
            );
        }
    }
    Ok(TopOutcome {
        counts: plan.counts,
        sent,
        state_written,
    })
}

/// A state of 10,000 rows is about 2 MB; this bounds a wrong object, not real use.
const MAX_STATE_BYTES: u64 = 64 << 20;
