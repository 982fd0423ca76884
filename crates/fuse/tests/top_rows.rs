//! The top rows, once (`PUBLISH_TOP_N`): the fuse Lambda's handler against moto_server through
//! the real SDK clients. An EventBridge rule on the bus forwards `ipsight.fuse` events to an SQS
//! queue; the queue receives exactly the new top rows, an hourly re-run sends nothing, a row whose
//! risk rose a band is sent again, and a failed publish leaves the state unwritten.
use std::collections::BTreeSet;

use fuse::top::{self, PublishedState, TopRows};
use fuse::triage::Triage;
use fuse::{handle_with, Config, NoScorer};
use ipsight_aws::S3Store;
use ipsight_ports::ObjectStore;
use ipsight_testkit::S3Server;
use serde_json::{json, Value};

fn record(id: &str, entity: &str, ip: &str, severity: f64, updated: &str) -> Value {
    json!({"finding_id": id, "type": "UnauthorizedAccess:IAMUser/MaliciousIPCaller", "severity": severity,
           "account_id": "123456789012", "region": "us-east-1",
           "created_at": "2026-01-19T10:00:00Z", "updated_at": updated,
           "event_first_seen": "2026-01-19T09:00:00Z", "event_last_seen": "2026-01-19T10:00:00Z",
           "count": 1, "sample": false,
           "pairs": [{"entity": entity, "ip": ip, "action": "AWS_API_CALL"}]})
}

struct World {
    s3: S3Server,
    bucket: String,
    store: S3Store,
    events: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    bus: String,
}

async fn world() -> World {
    let s3 = S3Server::start().await;
    let bucket = s3.unique_bucket("top-rows");
    s3.create_bucket(&bucket).await;
    let conf = s3.sdk_config();
    let events = aws_sdk_eventbridge::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let bus = s3.unique_bucket("top-bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let queue = sqs
        .create_queue()
        .queue_name(s3.unique_bucket("top-q"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let rule = s3.unique_bucket("top-rule");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(json!({"source": [top::EVENT_SOURCE]}).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    World {
        store: S3Store::from_conf(&conf),
        s3,
        bucket,
        events,
        sqs,
        queue,
        bus,
    }
}

impl World {
    async fn finding(&self, id: &str, entity: &str, ip: &str, sev: f64, updated: &str) {
        self.s3
            .put(
                &self.bucket,
                &format!("infer/guardduty/findings/{id}.json"),
                record(id, entity, ip, sev, updated)
                    .to_string()
                    .into_bytes(),
            )
            .await;
    }

    fn config(&self, bus: &str) -> Config {
        Config::from_lookup(ipsight_testkit::vars(&[
            ("DATA_BUCKET", &self.bucket),
            ("LOOKBACK_DAYS", "all"),
            ("PUBLISH_TOP_N", "3"),
            ("PUBLISH_MIN_RISK", "30"),
            ("EVENT_BUS_NAME", bus),
        ]))
        .unwrap()
    }

    async fn run(&self, cfg: &Config, date: &str) -> anyhow::Result<Value> {
        let triage = Triage {
            events: Some(self.events.clone()),
            ..Triage::default()
        };
        handle_with(
            cfg,
            &self.store,
            None::<&NoScorer>,
            &triage,
            json!({"date": date}),
        )
        .await
    }

    /// Every event the rule delivered so far (the queue drained).
    async fn received(&self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let page = self
                .sqs
                .receive_message()
                .queue_url(&self.queue)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let msgs = page.messages();
            if msgs.is_empty() {
                return out;
            }
            for m in msgs {
                out.push(serde_json::from_str(m.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    async fn state(&self) -> Option<PublishedState> {
        let body = self
            .s3
            .get(&self.bucket, fuse::triage::DEFAULT_STATE_KEY)
            .await?;
        Some(PublishedState::parse("state", &body).unwrap())
    }
}

fn principals(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["detail"]["row"]["entity"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_top_rows_are_published_once() {
    let w = world().await;
    // Unscored rows rank on severity alone: risk 95, 80, 50, 45, 20.
    w.finding(
        "p1",
        "AIDATOPCRIT",
        "203.0.113.1",
        9.5,
        "2026-01-19T10:00:00Z",
    )
    .await;
    w.finding(
        "p2",
        "AIDATOPHIGH",
        "203.0.113.2",
        8.0,
        "2026-01-19T10:00:00Z",
    )
    .await;
    w.finding(
        "p3",
        "AIDATOPMED",
        "203.0.113.3",
        5.0,
        "2026-01-19T10:00:00Z",
    )
    .await;
    w.finding(
        "p4",
        "AIDATOPFOURTH",
        "203.0.113.4",
        4.5,
        "2026-01-19T10:00:00Z",
    )
    .await;
    w.finding(
        "p5",
        "AIDATOPLOW",
        "203.0.113.5",
        2.0,
        "2026-01-19T10:00:00Z",
    )
    .await;
    let cfg = w.config(&w.bus);

    let resp = w.run(&cfg, "2026-01-20").await.unwrap();
    assert_eq!(resp["top_rows"]["sent"], 3, "{resp}");
    assert_eq!(resp["top_rows"]["counts"]["new"], 3, "{resp}");
    let got = w.received().await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        principals(&got),
        ["AIDATOPCRIT", "AIDATOPHIGH", "AIDATOPMED"]
            .map(String::from)
            .into()
    );
    let crit = got
        .iter()
        .find(|e| e["detail"]["row"]["entity"] == "AIDATOPCRIT")
        .unwrap();
    assert_eq!(crit["source"], "ipsight.fuse");
    assert_eq!(crit["detail-type"], top::DETAIL_TYPE);
    // The key is the Security Hub finding's Id.
    assert_eq!(
        crit["detail"]["row_id"],
        "123456789012/ipsight/unusual-ip/AIDATOPCRIT/203.0.113.1"
    );
    assert_eq!(crit["detail"]["band"], "CRITICAL");
    assert_eq!(crit["detail"]["previous_band"], Value::Null);
    assert_eq!(crit["detail"]["report_date"], "2026-01-20");
    let state = w.state().await.expect("state written after the publish");
    assert_eq!(state.rows.len(), 3);

    // The next hour's run, and the next day's: nothing new, nothing sent, state untouched.
    for date in ["2026-01-20", "2026-01-21"] {
        let resp = w.run(&cfg, date).await.unwrap();
        assert_eq!(resp["top_rows"]["sent"], 0, "{resp}");
        assert_eq!(resp["top_rows"]["counts"]["published_before"], 3, "{resp}");
        assert_eq!(resp["top_rows"]["state_written"], false, "{resp}");
    }
    assert!(w.received().await.is_empty());

    // GuardDuty updates the medium finding to high: the row rose a band and alerts again.
    w.finding(
        "p3",
        "AIDATOPMED",
        "203.0.113.3",
        8.5,
        "2026-01-21T10:00:00Z",
    )
    .await;
    let resp = w.run(&cfg, "2026-01-21").await.unwrap();
    assert_eq!(resp["top_rows"]["sent"], 1, "{resp}");
    assert_eq!(resp["top_rows"]["counts"]["band_rose"], 1, "{resp}");
    let got = w.received().await;
    assert_eq!(principals(&got), ["AIDATOPMED".to_owned()].into());
    assert_eq!(got[0]["detail"]["band"], "HIGH");
    assert_eq!(got[0]["detail"]["previous_band"], "MEDIUM");
    let row =
        &w.state().await.unwrap().rows["123456789012/ipsight/unusual-ip/AIDATOPMED/203.0.113.3"];
    assert_eq!(
        (
            row.band.as_str(),
            row.first_published.as_str(),
            row.last_published.as_str()
        ),
        ("HIGH", "2026-01-20", "2026-01-21")
    );
}

/// A bus that does not exist: the run fails naming it, and no state is written, so the retry
/// (with the bus fixed) still publishes every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publish_writes_no_state() {
    let w = world().await;
    w.finding(
        "f1",
        "AIDAFAILONE",
        "198.51.100.1",
        9.0,
        "2026-01-19T10:00:00Z",
    )
    .await;
    let e = w
        .run(&w.config("no-such-bus"), "2026-01-20")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no-such-bus"), "{e}");
    assert!(w.state().await.is_none());
    let resp = w.run(&w.config(&w.bus), "2026-01-20").await.unwrap();
    assert_eq!(resp["top_rows"]["sent"], 1, "{resp}");
    assert_eq!(w.received().await.len(), 1);
}

#[test]
fn configuration() {
    let ok = Config::from_lookup(ipsight_testkit::vars(&[
        ("DATA_BUCKET", "d"),
        ("PUBLISH_TOP_N", "5"),
        ("EVENT_BUS_NAME", "alerts"),
    ]))
    .unwrap();
    let p = ok.publish_top.unwrap();
    assert_eq!(
        p.rows,
        TopRows {
            top_n: 5,
            min_risk: 0.0
        }
    );
    assert_eq!(p.state.to_string(), "s3://d/state/fuse-published-top.json");
    let off = Config::from_lookup(ipsight_testkit::vars(&[
        ("DATA_BUCKET", "d"),
        ("PUBLISH_TOP_N", "0"),
    ]))
    .unwrap();
    assert!(off.publish_top.is_none());
    for (vars, says) in [
        (vec![("PUBLISH_TOP_N", "5")], "EVENT_BUS_NAME"),
        (
            vec![
                ("PUBLISH_TOP_N", "5"),
                ("EVENT_BUS_NAME", "b"),
                ("PUBLISH_STATE_KEY", "infer/guardduty/findings/state.json"),
            ],
            "FINDINGS_PREFIX",
        ),
        (
            vec![
                ("PUBLISH_TOP_N", "5"),
                ("EVENT_BUS_NAME", "b"),
                ("PUBLISH_MIN_RISK", "150"),
            ],
            "PUBLISH_MIN_RISK",
        ),
        (vec![("PUBLISH_TOP_N", "many")], "PUBLISH_TOP_N"),
    ] {
        let mut all = vec![("DATA_BUCKET", "d")];
        all.extend(vars);
        let e = Config::from_lookup(ipsight_testkit::vars(&all))
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{says}: {e}");
    }
}

/// A second fuse run that records its own published rows right after this run read the state
/// (once): what happens when a manual invocation runs beside the schedule.
struct OtherRun<'a> {
    store: &'a S3Store,
    state: ipsight_ports::ObjectRef,
    /// The other run's row (another each time: the same bytes would keep the same ETag).
    row: String,
    raced: std::sync::atomic::AtomicBool,
}

impl ipsight_testkit::hooked::AfterGet for OtherRun<'_> {
    async fn after_get(&self, obj: &ipsight_ports::ObjectRef) {
        if *obj != self.state || self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // The other run's state: what was there (if anything) and one row of its own.
        let mut other = match ipsight_ports::read_small(self.store, obj, 1 << 20).await {
            Ok(body) => PublishedState::parse("state", &body).unwrap(),
            Err(_) => PublishedState::default(),
        };
        other.rows.insert(
            self.row.clone(),
            top::Published {
                band: "HIGH".into(),
                risk: 80.0,
                first_published: "2026-01-20".into(),
                last_published: "2026-01-20".into(),
            },
        );
        self.store
            .put_bytes(obj, other.to_json().into(), "application/json")
            .await
            .unwrap();
    }
}

/// Two runs at once: the state written in between is not overwritten (S3 conditional writes on
/// moto: `If-None-Match: *` for a first state, `If-Match: <ETag>` after); the run that lost fails
/// saying so, and its retry keeps the other run's row and records its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_run_state_is_not_overwritten() {
    let w = world().await;
    let cfg = w.config(&w.bus);
    let state_ref = ipsight_ports::ObjectRef::new(&w.bucket, fuse::triage::DEFAULT_STATE_KEY);
    for (round, (id, principal)) in [("r1", "AIDARACEONE"), ("r2", "AIDARACETWO")]
        .into_iter()
        .enumerate()
    {
        // Round 0: no state yet (the other run creates it); round 1: a state exists.
        w.finding(id, principal, "198.51.100.7", 9.0, "2026-01-19T10:00:00Z")
            .await;
        let other = format!("123456789012/ipsight/unusual-ip/AIDAOTHERRUN{round}/192.0.2.9");
        let racing = ipsight_testkit::hooked::HookedStore {
            inner: &w.store,
            hook: OtherRun {
                store: &w.store,
                state: state_ref.clone(),
                row: other.clone(),
                raced: false.into(),
            },
        };
        let triage = Triage {
            events: Some(w.events.clone()),
            ..Triage::default()
        };
        let e = handle_with(
            &cfg,
            &racing,
            None::<&NoScorer>,
            &triage,
            json!({"date": "2026-01-20"}),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("changed while this run published"),
            "round {round}: {e}"
        );
        let after = w.state().await.unwrap();
        assert!(after.rows.contains_key(&other), "round {round}: {after:?}");
        assert!(
            !after.rows.keys().any(|k| k.contains(principal)),
            "round {round}: overwritten: {after:?}"
        );
        // The events went out before the state write (at least once).
        assert_eq!(
            principals(&w.received().await),
            [principal.to_owned()].into()
        );

        // The retry reads the other run's state, sends the row again, and records both.
        let resp = w.run(&cfg, "2026-01-20").await.unwrap();
        assert_eq!(resp["top_rows"]["sent"], 1, "{resp}");
        let after = w.state().await.unwrap();
        assert!(after.rows.contains_key(&other));
        assert!(
            after.rows.keys().any(|k| k.contains(principal)),
            "{after:?}"
        );
        w.received().await;
    }
}
