use ipsight_aws::S3Store;
use lambda_runtime::{service_fn, LambdaEvent};
use scheduled_retrain::{run, Config, FUNCTION};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Cold start: refuse a bad configuration before the first schedule fires.
    let conf = aws_config::load_from_env().await;
    let cfg = Config::from_env(conf.region().map(|r| r.to_string()))?;
    let store = S3Store::from_conf(&conf);
    let sagemaker = cfg
        .sagemaker
        .as_ref()
        .map(|_| aws_sdk_sagemaker::Client::new(&conf));
    let work_dir = std::env::temp_dir();
    println!(
        "{}",
        json!({"event": "cold_start", "function": FUNCTION, "model": cfg.model.to_string(),
               "train": format!("s3://{}/{}", cfg.training_bucket, cfg.training_prefix),
               "max_embedded_training_bytes": cfg.max_embedded_bytes,
               "sagemaker_fallback": cfg.sagemaker.is_some()})
    );
    let (cfg, store, sagemaker, work_dir) = (&cfg, &store, sagemaker.as_ref(), &work_dir);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        // The schedule's event carries nothing the run needs; its id ties the logs together.
        let id = ev.payload.get("id").cloned().unwrap_or(Value::Null);
        println!(
            "{}",
            json!({"event": "invoked", "function": FUNCTION, "trigger_id": id})
        );
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        run(cfg, store, sagemaker, now_ms, work_dir)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
