use fuse::{handle, Config};
use ipsight_aws::scorers::{scorer_from_env, AnyScorer};
use ipsight_aws::S3Store;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Cold start: refuse a bad configuration before serving anything, build clients once.
    let cfg = Config::from_env()?;
    let conf = aws_config::load_from_env().await;
    let store = S3Store::from_conf(&conf);
    // Scores come from ipcheck's `scores/` objects. With a model or endpoint configured, pairs that
    // have no score yet are scored on the fly through the same scorer port; without, they are
    // reported as unscored (ranked on severity alone, and saying so).
    let configured = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
    let scorer: Option<AnyScorer> = if configured("SAGEMAKER_ENDPOINT") || configured("MODEL_URI") {
        let s = scorer_from_env(&conf).await?;
        // Fuse scores the extractor's pairs: the model must share their entity definition.
        s.check_entity(ipsight_aws::config::entity_kind(&|k| {
            std::env::var(k).ok()
        })?)?;
        Some(s)
    } else {
        None
    };
    let (cfg, store, scorer) = (&cfg, &store, scorer.as_ref());
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        handle(cfg, store, scorer, ev.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
