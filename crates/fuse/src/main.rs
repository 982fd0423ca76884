use fuse::{handle, Config, NoScorer};
use ipsight_aws::S3Store;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Cold start: refuse a bad configuration before serving anything, build clients once.
    let cfg = Config::from_env()?;
    let store = S3Store::from_conf(&aws_config::load_from_env().await);
    let (cfg, store) = (&cfg, &store);
    // Scores come from ipcheck's `scores/` objects; pairs without one are reported as unscored.
    // On-the-fly scoring plugs in here once the shared embedded/SageMaker Scorer adapters exist.
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        handle::<NoScorer>(cfg, store, None, ev.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
