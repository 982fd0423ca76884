//! The top rows, once: a report's new top rows as EventBridge events, with a "published before"
//! state so an hourly report does not alert the same row again.
//!
//! * A row is a candidate when it is ranked (not suppressed), within the first `top_n` ranks and
//!   at or above `min_risk`.
//! * Its key is its deterministic id, the same as its Security Hub finding's `Id`
//!   (`<account>/ipsight/unusual-ip/<principal>/<ip>`), so the two can be joined.
//! * The state remembers, per row id, the highest risk band (Security Hub's severity bands:
//!   LOW < MEDIUM < HIGH < CRITICAL) it was published at. A candidate is published when its id is
//!   not in the state, or when its band is now *higher* than the one published: a row that climbs
//!   from MEDIUM to HIGH alerts again (the analyst triaged a lesser thing), one that stays in its
//!   band or falls does not, whatever the report date. The event says why (`previous_band`).
//! * The state is written only after every event was accepted. A run that fails in between
//!   publishes the same events again when retried, with the same `publish_id` (row id and band)
//!   for consumers to de-duplicate: at least once, never silently lost.
//!
//! Pure: the Lambda reads and writes the state in S3 and sends with `PutEvents`; `ipsight fuse
//! --publish-state FILE --events-out FILE` does the same on files and writes the request bodies.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::report::{Report, Row};

/// `source` of the events; rules match on it.
pub const EVENT_SOURCE: &str = "ipsight.fuse";
/// `detail-type` of the events.
pub const DETAIL_TYPE: &str = "ipsight new top suspicious row";
const STATE_VERSION: u32 = 1;

/// Which rows are published.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopRows {
    /// The first `top_n` ranked rows are candidates.
    pub top_n: usize,
    /// ... if their risk is at least this (0–100).
    pub min_risk: f64,
}

/// What was published before, by row id. Serialised with sorted keys: the same state is the
/// same bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PublishedState {
    pub version: u32,
    pub rows: BTreeMap<String, Published>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// The highest band the row was published at.
    pub band: String,
    /// Its risk then.
    pub risk: f64,
    /// Report dates of the first and the latest publication.
    pub first_published: String,
    pub last_published: String,
}

#[derive(Debug, thiserror::Error)]
#[error("publish state {name}: {why}")]
pub struct StateError {
    pub name: String,
    pub why: String,
}

impl PublishedState {
    /// Parse a state object or file; `name` is for the error.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Self, StateError> {
        let err = |why: String| StateError {
            name: name.to_owned(),
            why,
        };
        let s: Self = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
        if s.version != STATE_VERSION {
            return Err(err(format!(
                "version {} (this build reads version {STATE_VERSION})",
                s.version
            )));
        }
        if let Some((id, p)) = s.rows.iter().find(|(_, p)| band_rank(&p.band).is_none()) {
            return Err(err(format!("row {id}: unknown band {:?}", p.band)));
        }
        Ok(s)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(&Self {
            version: STATE_VERSION,
            rows: self.rows.clone(),
        })
        .expect("state serialises");
        v.push(b'\n');
        v
    }
}

/// Security Hub's bands in order; `None` for anything else.
fn band_rank(band: &str) -> Option<u8> {
    ["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
        .iter()
        .position(|b| *b == band)
        .map(|i| i as u8)
}

/// One event to send: the row and why it is new.
#[derive(Debug, Clone, PartialEq)]
pub struct TopEvent {
    pub row_id: String,
    pub band: &'static str,
    /// `detail` of the event (JSON text).
    pub detail: String,
}

/// A `PutEvents` request entry, in the API's own field names (`--events-out` writes these).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventEntry {
    pub event_bus_name: String,
    pub source: &'static str,
    pub detail_type: &'static str,
    pub detail: String,
}

impl EventEntry {
    pub fn new(bus: &str, ev: &TopEvent) -> Self {
        Self {
            event_bus_name: bus.to_owned(),
            source: EVENT_SOURCE,
            detail_type: DETAIL_TYPE,
            detail: ev.detail.clone(),
        }
    }

    /// Its size as EventBridge counts it (`Source` + `DetailType` + `Detail`).
    pub fn size(&self) -> usize {
        self.source.len() + self.detail_type.len() + self.detail.len()
    }

    pub fn to_sdk(&self) -> aws_sdk_eventbridge::types::PutEventsRequestEntry {
        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.event_bus_name)
            .source(self.source)
            .detail_type(self.detail_type)
            .detail(&self.detail)
            .build()
    }
}

/// Candidates by what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TopCounts {
    pub candidates: usize,
    /// Never published before.
    pub new: usize,
    /// Published before at a lower band.
    pub band_rose: usize,
    /// Published before at this band or higher: not sent again.
    pub published_before: usize,
    /// Over EventBridge's 256 KB an entry: not sent, not recorded (counted, named in the log).
    pub too_large: usize,
}

/// What a report should publish, and the state to keep once it has.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub events: Vec<TopEvent>,
    pub state: PublishedState,
    pub counts: TopCounts,
}

impl Plan {
    /// Whether the state changes (nothing to write otherwise).
    pub fn changes(&self, before: &PublishedState) -> bool {
        self.state.rows != before.rows
    }
}

fn detail(report: &Report, r: &Row, row_id: &str, band: &str, previous: Option<&str>) -> String {
    json!({
        "publish_id": format!("{row_id}#{band}"),
        "row_id": row_id,
        "band": band,
        "previous_band": previous,
        "report_date": report.date,
        "row": r,
    })
    .to_string()
}

/// The events a report should send given what was published before, and the state after.
pub fn plan(report: &Report, before: &PublishedState, opts: &TopRows) -> Plan {
    let mut state = before.clone();
    state.version = STATE_VERSION;
    let mut events = Vec::new();
    let mut counts = TopCounts::default();
    let candidates = report
        .rows
        .iter()
        .filter(|r| r.status != "suppressed" && r.rank.is_some_and(|k| k <= opts.top_n))
        .filter(|r| r.risk >= opts.min_risk);
    for r in candidates {
        counts.candidates += 1;
        let row_id = crate::findings::row_id(r);
        let band = ipsight_securityhub::asff::severity_label(r.risk);
        let previous = before.rows.get(&row_id);
        match previous {
            Some(p) if band_rank(&p.band) >= band_rank(band) => {
                counts.published_before += 1;
                continue;
            }
            Some(_) => counts.band_rose += 1,
            None => counts.new += 1,
        }
        let detail = detail(report, r, &row_id, band, previous.map(|p| p.band.as_str()));
        let size = EVENT_SOURCE.len() + DETAIL_TYPE.len() + detail.len();
        if size > ipsight_aws::events::MAX_REQUEST_BYTES {
            counts.too_large += 1;
            eprintln!(
                "{}",
                json!({"event": "top_row_too_large", "function": crate::FUNCTION, "row_id": row_id, "bytes": size})
            );
            continue;
        }
        state.rows.insert(
            row_id.clone(),
            Published {
                band: band.to_owned(),
                risk: r.risk,
                first_published: previous
                    .map_or_else(|| report.date.clone(), |p| p.first_published.clone()),
                last_published: report.date.clone(),
            },
        );
        events.push(TopEvent {
            row_id,
            band,
            detail,
        });
    }
    Plan {
        events,
        state,
        counts,
    }
}

/// The `PutEvents` request bodies of the events (`{"Entries": [...]}`, ≤ 10 entries and ≤ 256 KB
/// each), as `ipsight fuse --events-out` writes them one a line and the Lambda sends them.
pub fn request_bodies(bus: &str, events: &[TopEvent]) -> Vec<Vec<EventEntry>> {
    let entries = events.iter().map(|e| EventEntry::new(bus, e)).collect();
    ipsight_aws::events::requests(entries, EventEntry::size)
}

/// One request body as JSON text (one line of `--events-out`).
pub fn body_json(entries: &[EventEntry]) -> String {
    json!({ "Entries": entries }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{fuse, FuseOptions};
    use crate::scores::ScoreTable;
    use ipsight_formats::guardduty::FindingRecord;
    use serde_json::Value;

    fn report(rows: &[(&str, f64)]) -> Report {
        let records: Vec<FindingRecord> = rows
            .iter()
            .enumerate()
            .map(|(i, (entity, sev))| {
                serde_json::from_value(json!({"finding_id": format!("f{i}"), "type": "T", "severity": sev,
                    "account_id": "111122223333", "region": "eu-west-1", "count": 1, "sample": false,
                    "updated_at": "2026-03-01T00:00:00Z",
                    "pairs": [{"entity": entity, "ip": format!("192.0.2.{i}"), "action": "AWS_API_CALL"}]}))
                .unwrap()
            })
            .collect();
        let opts = FuseOptions {
            date: "2026-03-02".into(),
            lookback_days: None,
            trusted: None,
            threats: None,
            include_samples: false,
            labels: None,
            tuning: None,
        };
        fuse(&records, &ScoreTable::default(), &opts)
    }

    #[test]
    fn plan_state_round_trip_and_bands() {
        let opts = TopRows {
            top_n: 2,
            min_risk: 40.0,
        };
        let r = report(&[
            ("AIDAA", 9.5),
            ("AIDAB", 5.0),
            ("AIDAC", 4.9),
            ("AIDAD", 1.0),
        ]);
        let p = plan(&r, &PublishedState::default(), &opts);
        assert_eq!(p.events.len(), 2);
        assert_eq!(
            p.events.iter().map(|e| e.band).collect::<Vec<_>>(),
            ["CRITICAL", "MEDIUM"]
        );
        assert_eq!(
            p.events[0].row_id,
            "111122223333/ipsight/unusual-ip/AIDAA/192.0.2.0"
        );
        // The state's bytes parse back to the same state, and are stable.
        let bytes = p.state.to_json();
        let back = PublishedState::parse("s", &bytes).unwrap();
        assert_eq!(back, p.state);
        assert_eq!(back.to_json(), bytes);
        // Planned again from its own state: nothing.
        let again = plan(&r, &back, &opts);
        assert!(again.events.is_empty() && !again.changes(&back));
        assert_eq!(again.counts.published_before, 2);
        // B rises from MEDIUM to HIGH, A falls from CRITICAL to HIGH: only B is sent again.
        let r2 = report(&[("AIDAA", 8.0), ("AIDAB", 7.5)]);
        let p2 = plan(&r2, &back, &opts);
        assert_eq!(p2.events.len(), 1);
        assert!(p2.events[0].detail.contains(r#""previous_band":"MEDIUM""#));
        assert_eq!(p2.state.rows[&p2.events[0].row_id].band, "HIGH");
        // A keeps its highest band, so it will not re-alert when it climbs back to CRITICAL.
        assert_eq!(
            p2.state.rows["111122223333/ipsight/unusual-ip/AIDAA/192.0.2.0"].band,
            "CRITICAL"
        );
        // Request bodies: at most 10 entries each, in the API's field names.
        let many = report(&(0..23).map(|_| ("AIDAX", 9.0)).collect::<Vec<_>>());
        let all = plan(
            &many,
            &PublishedState::default(),
            &TopRows {
                top_n: 100,
                min_risk: 0.0,
            },
        );
        let bodies = request_bodies("bus", &all.events);
        assert_eq!(bodies.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 3]);
        let line: Value = serde_json::from_str(&body_json(&bodies[2])).unwrap();
        assert_eq!(line["Entries"][0]["EventBusName"], "bus");
        assert_eq!(line["Entries"][0]["Source"], EVENT_SOURCE);
    }

    #[test]
    fn bad_state_is_named() {
        for (bytes, says) in [
            (&b"{"[..], "EOF"),
            (br#"{"version":2,"rows":{}}"#, "version 2"),
            (
                br#"{"version":1,"rows":{"x":{"band":"SEVERE","risk":1,"first_published":"d","last_published":"d"}}}"#,
                "unknown band",
            ),
        ] {
            let e = PublishedState::parse("s3://b/state.json", bytes).unwrap_err().to_string();
            assert!(e.starts_with("publish state s3://b/state.json: ") && e.contains(says), "{e}");
        }
    }
}
