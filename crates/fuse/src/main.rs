use fuse::triage::{load_enricher, Triage};
use fuse::{handle_with, Config};
use ipsight_aws::S3Store;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Cold start: refuse a bad configuration before serving anything, build clients once.
    let cfg = Config::from_env()?;
    let conf = aws_config::load_from_env().await;
    let store = S3Store::from_conf(&conf);
    // Scores come from ipcheck's `scores/` objects; a configured scorer scores the pairs that have
    // none yet. Fuse scores the extractor's pairs: the model must share their entity definition.
    let scorer = match &cfg.scorer {
        Some(settings) => {
            let s = settings.build(&conf).await?;
            s.check_entity(cfg.entity)?;
            Some(s)
        }
        None => None,
    };
    // Databases are read once here; a bad one fails the cold start, naming the object.
    let triage = Triage {
        enricher: load_enricher(&store, &cfg.ip_dbs).await?,
        security_hub: cfg
            .security_hub
            .clone()
            .map(|target| (ipsight_securityhub::publish::client(&conf), target)),
        events: cfg
            .publish_top
            .as_ref()
            .map(|_| aws_sdk_eventbridge::Client::new(&conf)),
    };
    ipsight_lambda_shell::run(|event| handle_with(&cfg, &store, scorer.as_ref(), &triage, event))
        .await
}
