use ipcheck::alerts::{EventBridgeSink, SecurityHubSink, Sinks};
use ipcheck::{handle_with, Config};
use ipsight_aws::S3Store;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Cold start: refuse a bad configuration before serving anything, build clients and load the
    // model once.
    let cfg = Config::from_env()?;
    let conf = aws_config::load_from_env().await;
    let store = S3Store::from_conf(&conf);
    let scorer = cfg.scorer.build(&conf).await?;
    scorer.check_entity(cfg.entity)?;
    // Databases are read once here; a bad one fails the cold start, naming the object.
    let enricher = ipsight_aws::triage::load_enricher(&store, &cfg.ip_dbs).await?;
    let alerts = Sinks {
        event_bridge: cfg
            .event_bus
            .as_ref()
            .map(|bus| EventBridgeSink::from_conf(&conf, bus)),
        security_hub: cfg.security_hub.clone().map(|target| {
            SecurityHubSink::new(ipsight_securityhub::publish::client(&conf), target)
        }),
    };
    println!(
        "{}",
        json!({"event": "cold_start", "function": ipcheck::FUNCTION, "scorer": scorer.describe(),
               "event_bus": cfg.event_bus,
               "security_hub": cfg.security_hub.is_some(), "threshold": cfg.threshold,
               "ip_databases": enricher.as_ref().map(|e| e.databases().len()),
               "tuning": cfg.tuning.as_ref().map(ToString::to_string)})
    );
    ipsight_lambda_shell::run(|event| {
        handle_with(&cfg, &store, &scorer, &alerts, enricher.as_ref(), event)
    })
    .await
}
