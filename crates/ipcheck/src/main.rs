use ipcheck::alerts::{AnySink, EventBridgeSink, NoAlerts};
use ipcheck::{handle, Config};
use ipsight_aws::scorers::scorer_from_env;
use ipsight_aws::S3Store;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Cold start: refuse a bad configuration before serving anything, build clients and load the
    // model once.
    let cfg = Config::from_env()?;
    let conf = aws_config::load_from_env().await;
    let store = S3Store::from_conf(&conf);
    let scorer = scorer_from_env(&conf).await?;
    scorer.check_entity(cfg.entity)?;
    let alerts = match &cfg.event_bus {
        Some(bus) => AnySink::EventBridge(EventBridgeSink::from_conf(&conf, bus)),
        None => AnySink::None(NoAlerts),
    };
    println!(
        "{}",
        json!({"event": "cold_start", "function": ipcheck::FUNCTION, "scorer": scorer.describe(),
               "event_bus": cfg.event_bus, "threshold": cfg.threshold})
    );
    let (cfg, store, scorer, alerts) = (&cfg, &store, &scorer, &alerts);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        handle(cfg, store, scorer, alerts, ev.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
