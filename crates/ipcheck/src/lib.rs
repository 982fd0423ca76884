//! ipcheck: score the `<entity, ip>` pairs of new objects with IP Insights, write the scores, raise
//! alerts for the unusual ones.
//!
//! Trigger: an SQS queue (partial batch responses). Each message body is an S3 event notification,
//! an EventBridge "Object Created" event (Amazon Security Lake subscriber notifications), an SNS
//! envelope around either, or `s3:TestEvent` (ignored). Direct S3 / EventBridge invocations work too.
//!
//! Objects, by key ([`classify_key`]):
//! * Security Lake OCSF Parquet (`*.parquet`, e.g. `*.gz.parquet`): downloaded to a size-capped
//!   temporary file (Parquet needs random access), read with [`ipsight_formats::ocsf`];
//! * OCSF JSON (JSON lines, or one document: an event or an array of events): `*.jsonl[.gz]`, and
//!   `*.json[.gz]` under `OCSF_JSON_PREFIX`;
//! * GuardDuty extractor records (`…/findings/…/<id>.json`): pairs with the finding's context;
//! * CloudTrail log objects (`…/CloudTrail/…_CloudTrail_….json.gz`);
//! * tuple CSVs (`*.csv`, `entity,ip`), except the extractor's per-finding tuple files, whose pairs
//!   are scored through the finding record beside them (with more context).
//!
//! Outputs, at keys derived from the source key only (redelivery overwrites with identical bytes):
//! * `<SCORES_PREFIX><source key>.jsonl`: one [`ScoreRecord`] per distinct pair (and class or
//!   finding), sorted, with how often and when it was seen, and why it scored so: with the model's
//!   baseline sidecar, `unusual_percentile` is the combined score's, beside `embedding_percentile`,
//!   `history`, `explanation` and `nearest` (a principal the baseline has never seen is
//!   `history: new_principal`, counted, and alerts by `NEW_PRINCIPALS`);
//! * `<ALERTS_PREFIX><source key>.jsonl`: the records beyond the threshold, as [`Alert`]s, and the
//!   same alerts sent to an EventBridge bus (`EVENT_BUS_NAME`) as `ipsight.ipcheck` /
//!   `IP Insights unusual activity` events. EventBridge has no de-duplication: a redelivered message
//!   sends its alerts again, with the same deterministic `alert_id` for consumers to de-duplicate.
//!
//! Where things live: `config` (environment), `route` (key → [`Kind`]), `read/<kind>` (one reader
//! per object kind), `pairs` (distinct-pair accumulation), `score` (scoring, labels, writing),
//! `record` (output shapes), `alerts` (the alert port), `handler` (the Lambda event).
pub mod alerts;
mod config;
mod handler;
mod pairs;
mod read;
mod record;
mod route;
mod score;
pub mod triage;

pub use alerts::{AlertSink, EventBridgeSink, NoAlerts, SecurityHubSink, Sinks};
pub use config::{Config, ConfigError, Limits, Threshold};
pub use handler::{handle, handle_with};
pub use record::{Alert, ScoreRecord};
pub use route::{classify_key, Kind};
pub use score::{
    derived_key, process_object, process_object_with, process_object_with_labels, scores_key,
    Scored,
};
pub use triage::Extras;

pub const FUNCTION: &str = "ipcheck";
