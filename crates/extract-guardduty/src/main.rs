use extract_guardduty::{handle, Config};
use ipsight_aws::S3Store;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Cold start: refuse a bad configuration before serving anything, build clients once.
    let cfg = Config::from_env()?;
    let store = S3Store::from_conf(&aws_config::load_from_env().await);
    ipsight_lambda_shell::run(|event| handle(&cfg, &store, event)).await
}
