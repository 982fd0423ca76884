//! ipcheck in the Lambda shell: analyst labels read once per invocation, then every object scored.
use ipsight_enrich::Enricher;
use ipsight_formats::notify::S3Object;
use ipsight_lambda_shell::{InputError, Outcome, PerObject};
use ipsight_ports::{load_labels, ObjectLister, ObjectStore, Scorer};
use serde_json::{json, Map, Value};

use crate::{process_object_with, AlertSink, Config, Extras, Scored, FUNCTION};

/// One invocation's view of ipcheck: its configuration, ports and the labels as of now.
struct Ipcheck<'a, St, S, A> {
    cfg: &'a Config,
    store: &'a St,
    scorer: &'a S,
    alerts: &'a A,
    extras: Extras<'a>,
}

/// An invocation's results added up.
#[derive(Debug, Default)]
struct Totals {
    pairs: usize,
    alerts: usize,
    new_principal_pairs: usize,
}

impl<St: ObjectStore, S: Scorer, A: AlertSink> PerObject for Ipcheck<'_, St, S, A> {
    const FUNCTION: &'static str = FUNCTION;
    type Done = Scored;
    type Totals = Totals;

    async fn process(&self, obj: &S3Object) -> Result<Outcome<Scored>, InputError> {
        process_object_with(
            self.cfg,
            self.store,
            self.scorer,
            self.alerts,
            &self.extras,
            obj,
        )
        .await
    }

    fn tally(total: &mut Totals, written: &mut Vec<String>, done: Scored) {
        written.push(done.scores.to_string());
        total.pairs += done.pairs;
        total.alerts += done.alerts;
        total.new_principal_pairs += done.new_principal_pairs;
    }

    fn report(total: Totals, summary: &mut Map<String, Value>) {
        summary.insert("pairs".into(), json!(total.pairs));
        summary.insert("alerts".into(), json!(total.alerts));
        summary.insert(
            "new_principal_pairs".into(),
            json!(total.new_principal_pairs),
        );
    }

    fn concurrency(&self) -> usize {
        self.cfg.message_concurrency
    }
}

/// Handle one Lambda event (SQS batches with partial failures, or direct S3 / EventBridge / SNS:
/// see `ipsight_lambda_shell`). A message fails when its body is not a notification we understand
/// or any of its objects failed.
pub async fn handle<S: Scorer, A: AlertSink>(
    cfg: &Config,
    store: &(impl ObjectStore + ObjectLister),
    scorer: &S,
    alerts: &A,
    event: Value,
) -> Result<Value, anyhow::Error> {
    handle_with(cfg, store, scorer, alerts, None, event).await
}

/// [`handle`] with the network databases loaded at cold start (`IP_DB_URIS`).
pub async fn handle_with<S: Scorer, A: AlertSink>(
    cfg: &Config,
    store: &(impl ObjectStore + ObjectLister),
    scorer: &S,
    alerts: &A,
    enricher: Option<&Enricher>,
    event: Value,
) -> Result<Value, anyhow::Error> {
    // Read per invocation (a few small objects), so a decision applies from the next batch on,
    // without a redeploy or a cold start. Unreadable labels fail the invocation: alerting on a
    // pair an analyst cleared, or not alerting on a confirmed one, is worse than a retry.
    let labels = match &cfg.labels {
        Some(src) => Some(load_labels(store, src).await?),
        None => None,
    };
    // The tuning file likewise; an unreadable one fails the invocation rather than
    // un-silencing every known egress at once.
    let tuning = match &cfg.tuning {
        Some(o) => Some(ipsight_aws::triage::load_tuning(store, o).await?),
        None => None,
    };
    let f = Ipcheck {
        cfg,
        store,
        scorer,
        alerts,
        extras: Extras {
            labels: labels.as_ref(),
            tuning: tuning.as_ref(),
            enricher,
        },
    };
    ipsight_lambda_shell::handle(&f, event).await
}
