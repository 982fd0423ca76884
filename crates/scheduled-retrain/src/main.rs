use ipsight_aws::S3Store;
use scheduled_retrain::{run, Config, FUNCTION};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Cold start: refuse a bad configuration before the first schedule fires.
    let conf = aws_config::load_from_env().await;
    let cfg = Config::from_env(conf.region().map(|r| r.to_string()))?;
    let store = S3Store::from_conf(&conf);
    let sagemaker = cfg
        .settings
        .sagemaker
        .as_ref()
        .map(|_| aws_sdk_sagemaker::Client::new(&conf));
    let work_dir = std::env::temp_dir();
    println!(
        "{}",
        json!({"event": "cold_start", "function": FUNCTION, "model": cfg.settings.model.to_string(),
               "tuples": cfg.settings.tuples.as_ref().map(|(b, p)| format!("s3://{b}/{p}")),
               "pairs": cfg.settings.pairs.as_ref().map(|p| format!("s3://{}/{}", p.bucket, p.objects_prefix)),
               "training_days": cfg.settings.pairs.as_ref().map(|p| p.days),
               "max_embedded_training_bytes": cfg.settings.max_embedded_bytes,
               "sagemaker_fallback": cfg.settings.sagemaker.is_some()})
    );
    ipsight_lambda_shell::run(|event: Value| {
        // The schedule's event carries nothing the run needs; its id ties the logs together.
        let id = event.get("id").cloned().unwrap_or(Value::Null);
        println!(
            "{}",
            json!({"event": "invoked", "function": FUNCTION, "trigger_id": id})
        );
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let (cfg, store, sagemaker, work_dir) = (&cfg, &store, sagemaker.as_ref(), &work_dir);
        async move { Ok(run(cfg, store, sagemaker, now_ms, work_dir).await?) }
    })
    .await
}
