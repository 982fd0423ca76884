//! The scheduled retrain on S3 (moto) over the preparer's tuple CSVs (`TRAINING_URI`, no pair files)
//! when they are too large for the Lambda: they are copied into SageMaker's channel under the dated
//! prefix through `SageMakerChannel` — IPv4 only, the IPv6 tuples the preparer writes with
//! `IPV6=keep` counted and left out, malformed lines skipped and counted — and the job trains on
//! that copy, never on `train/cloudtrail/` itself. An input with no IPv4 tuple is refused, saying so.
use ipsight_aws::S3Store;
use ipsight_testkit::S3Server;
use serde_json::json;

fn config(bucket: &str) -> scheduled_retrain::Config {
    let vars: Vec<(String, String)> = vec![
        (
            "TRAINING_URI".into(),
            format!("s3://{bucket}/train/cloudtrail/"),
        ),
        (
            "MODEL_URI".into(),
            format!("s3://{bucket}/models/current/model.ipsm"),
        ),
        ("MAX_EMBEDDED_TRAINING_BYTES".into(), "10".into()),
        (
            "SAGEMAKER_TRAINING_ROLE_ARN".into(),
            "arn:aws:iam::123456789012:role/ipsight-sagemaker".into(),
        ),
        (
            "HYPERPARAMETERS".into(),
            json!({"num_entity_vectors": 2000, "vector_dim": 16}).to_string(),
        ),
    ];
    scheduled_retrain::Config::from_vars(
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        Some("us-east-1".into()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_tuple_input_goes_to_sagemaker_through_the_ipv4_channel() {
    let s3 = S3Server::start().await;
    let bucket = s3.unique_bucket("ipsight-tuples");
    s3.create_bucket(&bucket).await;
    // Three preparer outputs with IPV6=keep: IPv4 and IPv6 tuples side by side, and two lines the
    // tuple reader refuses as the embedded training does (skipped, counted): not a tuple, and an
    // IPv4-mapped address (tuple CSVs carry the IPv4 host).
    let files = [
        (
            "train/cloudtrail/dt=2026-12-01/a.json.gz.csv",
            "AIDAALICE,203.0.113.7\nAIDAALICE,2a02:1234:ab:cd01::7\nAIDABOB,198.51.100.1\n",
        ),
        (
            "train/cloudtrail/dt=2026-12-02/b.json.gz.csv",
            "AIDABOB,2a02:1234:ab:cd01::99\nAIDABOB,::ffff:198.51.100.2\nnot a tuple\n",
        ),
        (
            "train/cloudtrail/dt=2026-12-03/c.json.gz.csv",
            "\"AROAX:session,x\",192.0.2.9\nAIDAALICE,2001:db8::1\n",
        ),
    ];
    for (k, body) in files {
        s3.put(&bucket, k, body.as_bytes().to_vec()).await;
    }
    let store = S3Store::from_conf(&s3.sdk_config());
    let sm = aws_sdk_sagemaker::Client::new(&s3.sdk_config());
    let work = tempfile::tempdir().unwrap();
    // 2026-12-03T02:00Z
    let now_ms = 20_790 * 86_400_000 + 7_200_000;
    let out = scheduled_retrain::run(&config(&bucket), &store, Some(&sm), now_ms, work.path())
        .await
        .unwrap();
    assert_eq!(out["action"], "sagemaker_training_started", "{out:#}");
    assert_eq!(out["source"]["kind"], "tuples", "{out:#}");
    let channel = format!("s3://{bucket}/sagemaker/train/dt=2026-12-03/");
    assert_eq!(out["train"], channel.as_str(), "{out:#}");
    let c = &out["channel"];
    assert_eq!(c["tuples"], 3, "{c:#}");
    assert_eq!(c["ipv6_left_out"], 3, "{c:#}");
    assert_eq!(c["skipped_lines"], 2, "{c:#}");
    assert_eq!(out["read"]["skipped_lines"], 2, "{out:#}");
    let mut written = Vec::new();
    for k in c["objects"].as_array().unwrap() {
        let k = k.as_str().unwrap();
        assert!(k.starts_with("sagemaker/train/dt=2026-12-03/part-"), "{k}");
        let body = String::from_utf8(s3.get(&bucket, k).await.unwrap()).unwrap();
        written.extend(body.lines().map(str::to_owned));
    }
    written.sort();
    assert_eq!(
        written,
        [
            "\"AROAX:session,x\",192.0.2.9",
            "AIDAALICE,203.0.113.7",
            "AIDABOB,198.51.100.1",
        ]
    );
    // The job reads the copy, not train/cloudtrail/.
    let job = sm
        .describe_training_job()
        .training_job_name(out["training_job"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let uri = job.input_data_config()[0]
        .data_source()
        .and_then(|d| d.s3_data_source())
        .and_then(|s| s.s3_uri())
        .map(str::to_owned);
    assert_eq!(uri.as_deref(), Some(channel.as_str()));

    // `ipsight sagemaker train`'s copy of a prefix: the same channel rule and counts.
    let (uri, c) = ipsight_retrain::run::copy_prefix_to_channel(
        &store,
        &bucket,
        "train/cloudtrail/",
        "manual/",
        now_ms,
        work.path(),
    )
    .await
    .unwrap();
    assert_eq!(uri, format!("s3://{bucket}/manual/dt=2026-12-03/"));
    assert_eq!(
        (&c["tuples"], &c["ipv6_left_out"], &c["skipped_lines"]),
        (&json!(3), &json!(3), &json!(2)),
        "{c:#}"
    );

    // Only IPv6 tuples: refused, naming the channel and the reason; no job, nothing written.
    let v6_only = s3.unique_bucket("ipsight-tuples-v6");
    s3.create_bucket(&v6_only).await;
    for (k, body) in [
        ("train/cloudtrail/a.csv", "AIDAALICE,2a02:1234:ab:cd01::7\n"),
        ("train/cloudtrail/b.csv", "AIDABOB,2a02:1234:ab:cd01::99\n"),
    ] {
        s3.put(&v6_only, k, body.as_bytes().to_vec()).await;
    }
    let e = scheduled_retrain::run(&config(&v6_only), &store, Some(&sm), now_ms, work.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no IPv4 tuple") && e.contains("2 IPv6 tuples left out"),
        "{e}"
    );
    let keys = s3.keys(&v6_only).await;
    assert!(
        !keys.iter().any(|k| k.starts_with("sagemaker/")),
        "{keys:?}"
    );
}
