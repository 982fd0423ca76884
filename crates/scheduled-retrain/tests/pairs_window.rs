//! The scheduled retrain on S3 (moto) over the preparer's pair files: the window is read and
//! compacted, the hybrid detector is promoted with its sidecar; input above the embedded limit is
//! expanded to SageMaker's `entity,ip` channel under a dated prefix (IPv4 only, IPv6 counted) and a
//! training job is started on it (moto's SageMaker API).
use std::net::IpAddr;

use ipsight_aws::S3Store;
use ipsight_formats::pairs::{PairAggregate, PairHistory};
use ipsight_synth::{SynthConfig, World};
use ipsight_testkit::S3Server;
use serde_json::json;

/// Day `d` as the preparer writes it (one object), plus one IPv6 pair on every day.
fn day_file(world: &World, d: u32) -> (String, Vec<u8>) {
    let mut agg = PairAggregate::new();
    for ((e, ip), (events, first, last)) in world.expected_pair_history(d..d + 1) {
        let h = PairHistory {
            events,
            first_seen: ipsight_core::time::rfc3339(first),
            last_seen: ipsight_core::time::rfc3339(last),
        };
        agg.add(&e, IpAddr::V4(ip), &h);
    }
    let t = ipsight_core::time::rfc3339(world.day_start(d) + 600);
    agg.add(
        "AIDAIPV6USER",
        "2001:db8::7".parse().unwrap(),
        &PairHistory {
            events: 3,
            first_seen: t.clone(),
            last_seen: t,
        },
    );
    let mut body = Vec::new();
    agg.write(&mut body).unwrap();
    let date = ipsight_core::time::date(world.day_start(d));
    (
        format!("pairs/objects/dt={date}/AWSLogs/111122223333/CloudTrail/x{d}.json.gz.csv"),
        body,
    )
}

fn config(bucket: &str, extra: &[(&str, &str)]) -> scheduled_retrain::Config {
    let mut vars: Vec<(String, String)> = vec![
        ("PAIRS_URI".into(), format!("s3://{bucket}/pairs/objects/")),
        ("TRAINING_DAYS".into(), "8".into()),
        (
            "MODEL_URI".into(),
            format!("s3://{bucket}/models/current/model.ipsm"),
        ),
        ("TRAIN_THREADS".into(), "1".into()),
        ("HOLDOUT_FRACTION".into(), "0.15".into()),
        (
            "HYPERPARAMETERS".into(),
            json!({"num_entity_vectors": 2000, "vector_dim": 16, "epochs": 4,
                   "mini_batch_size": 1000, "learning_rate": 0.01})
            .to_string(),
        ),
    ];
    for (k, v) in extra {
        vars.retain(|(n, _)| n != k);
        vars.push((k.to_string(), v.to_string()));
    }
    scheduled_retrain::Config::from_vars(
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        Some("us-east-1".into()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_of_pair_files_on_s3_trains_promotes_and_expands_for_sagemaker() {
    let world = World::new(SynthConfig::new(11, 30, 10));
    let s3 = S3Server::start().await;
    let bucket = s3.unique_bucket("ipsight-window");
    s3.create_bucket(&bucket).await;
    let store = S3Store::from_conf(&s3.sdk_config());
    let mut v4_lines = 0u64;
    for d in 0..10 {
        let (key, body) = day_file(&world, d);
        v4_lines += world.expected_pair_history(d..d + 1).len() as u64;
        s3.put(&bucket, &key, body).await;
    }
    let work = tempfile::tempdir().unwrap();
    // Today = day 9 of the world: the 8-day window is days 2..=9.
    let now_ms = world.day_start(9) * 1000 + 7_200_000;

    let out = scheduled_retrain::run(&config(&bucket, &[]), &store, None, now_ms, work.path())
        .await
        .unwrap();
    assert_eq!(out["action"], "promoted", "{out:#}");
    assert_eq!(out["source"]["kind"], "pairs");
    assert_eq!(out["source"]["outside_window_objects"], 2);
    assert!(
        out["report"]["candidate"]["auc"].as_f64().unwrap() > 0.9,
        "{out:#}"
    );
    // Days 2..=8 are over: compacted; day 9 (today) is not.
    let compacted = out["read"]["compacted_days"].as_array().unwrap();
    assert_eq!(compacted.len(), 7, "{out:#}");
    let keys = s3.keys(&bucket).await;
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("pairs/daily/dt="))
            .count(),
        7,
        "{keys:?}"
    );
    for k in [
        "models/current/model.ipsm",
        "models/current/model.ipsb",
        "models/current/model.ipsm.metrics.json",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing: {keys:?}");
    }

    // Too large for the Lambda: without SageMaker, a clear refusal naming the variables.
    let small = [("MAX_EMBEDDED_TRAINING_BYTES", "1000")];
    let e = scheduled_retrain::run(&config(&bucket, &small), &store, None, now_ms, work.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("MAX_EMBEDDED_TRAINING_BYTES=1000") && e.contains("SAGEMAKER_TRAINING_ROLE_ARN"),
        "{e}"
    );
    // With SageMaker: the window's pairs become the entity,ip channel under a dated prefix, and
    // the job trains on it.
    let cfg = config(
        &bucket,
        &[
            small[0],
            (
                "SAGEMAKER_TRAINING_ROLE_ARN",
                "arn:aws:iam::123456789012:role/ipsight-sagemaker",
            ),
        ],
    );
    let sm = aws_sdk_sagemaker::Client::new(&s3.sdk_config());
    let out = scheduled_retrain::run(&cfg, &store, Some(&sm), now_ms, work.path())
        .await
        .unwrap();
    assert_eq!(out["action"], "sagemaker_training_started", "{out:#}");
    let today = ipsight_core::time::date(world.day_start(9));
    let channel = format!("s3://{bucket}/sagemaker/train/dt={today}/");
    assert_eq!(out["train"], channel.as_str());
    let c = &out["channel"];
    // Eight days, one IPv6 pair each left out; every IPv4 pair line of the window written.
    assert_eq!(c["objects"].as_array().unwrap().len(), 8, "{c:#}");
    assert_eq!(c["ipv6_pairs_left_out"], 8, "{c:#}");
    let window_lines: u64 = (2..10)
        .map(|d| world.expected_pair_history(d..d + 1).len() as u64)
        .sum();
    assert_eq!(c["pair_lines"].as_u64().unwrap(), window_lines + 8);
    assert!(c["lines"].as_u64().unwrap() >= window_lines, "{c:#}");
    assert!(v4_lines > window_lines);
    let mut lines = 0u64;
    for k in c["objects"].as_array().unwrap() {
        let body = String::from_utf8(s3.get(&bucket, k.as_str().unwrap()).await.unwrap()).unwrap();
        for l in body.lines() {
            let (e, ip) = l.rsplit_once(',').unwrap();
            assert!(
                !e.is_empty() && ip.parse::<std::net::Ipv4Addr>().is_ok(),
                "{l}"
            );
            lines += 1;
        }
    }
    assert_eq!(lines, c["lines"].as_u64().unwrap());
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
}
