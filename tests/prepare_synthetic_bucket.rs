//! A whole synthetic CloudTrail bucket (organization trail, digests, Insights, folder objects) is
//! uploaded to a real S3 server; the preparer handler, driven by the S3 notifications S3 would send,
//! must produce exactly the tuples the synthetic world says its users generated.
use std::collections::BTreeMap;

use ipsight_aws::S3Store;
use ipsight_synth::{write_cloudtrail, CloudTrailOptions, SynthConfig, World};
use ipsight_testkit::S3Server;
use prepare_cloudtrail::{handle, Config};
use serde_json::json;

fn form_encode(key: &str) -> String {
    key.split('/')
        .map(|s| s.replace('%', "%25").replace('+', "%2B").replace(' ', "+"))
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthetic_bucket_yields_exactly_the_expected_tuples() {
    let world = World::new(SynthConfig::new(11, 12, 3));
    let dir = tempfile::tempdir().unwrap();
    let opts = CloudTrailOptions {
        organization_trail: true,
        folder_markers: true,
        ..Default::default()
    };
    let summary = write_cloudtrail(&world, dir.path(), &opts).unwrap();
    assert!(summary.digest_files > 0 && summary.insight_files > 0);

    let s3 = S3Server::start().await;
    let trail = s3.unique_bucket("org-trail");
    let data = s3.unique_bucket("ipsight-data");
    s3.create_bucket(&trail).await;
    s3.create_bucket(&data).await;
    let mut keys: Vec<String> = summary
        .keys
        .iter()
        .chain(summary.other_keys.iter())
        .cloned()
        .collect();
    for k in &keys {
        s3.put(&trail, k, std::fs::read(dir.path().join(k)).unwrap())
            .await;
    }
    for k in &summary.folder_keys {
        s3.put(&trail, k, Vec::new()).await;
        keys.push(k.clone());
    }

    let cfg = Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some(data.clone()),
        "INPUT_BUCKET" => Some(trail.clone()),
        _ => None,
    })
    .unwrap();
    let store = S3Store::from_conf(&s3.sdk_config());
    // One notification per object, in batches of 10 as SQS would deliver them.
    for chunk in keys.chunks(10) {
        let records: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let size = std::fs::metadata(dir.path().join(k)).map(|m| m.len()).unwrap_or(0);
                let note = json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":trail},"object":{"key":form_encode(k),"size":size}}}]});
                json!({"messageId": format!("m{i}"), "eventSource": "aws:sqs", "body": note.to_string()})
            })
            .collect();
        let resp = handle(&cfg, &store, json!({ "Records": records }))
            .await
            .unwrap();
        assert_eq!(resp["batchItemFailures"], json!([]), "{resp}");
    }
    let outputs = s3.keys(&data).await;
    assert_eq!(
        outputs.len() as u64,
        summary.log_files,
        "one CSV per log object, none for digests/Insights/folders"
    );
    assert!(outputs
        .iter()
        .all(|k| k.starts_with("train/cloudtrail/AWSLogs/o-")));

    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for k in &outputs {
        let csv = String::from_utf8(s3.get(&data, k).await.unwrap()).unwrap();
        for line in csv.lines() {
            *got.entry(line.to_owned()).or_default() += 1;
        }
    }
    // The Lambda keeps IPv6 by default (`IPV6=keep`): the world's IPv4 tuples and its IPv6 ones,
    // which the writer's summary counts among the records `prepare cloudtrail` sets aside.
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (e, ip) in world.normal_pairs_dual_in_time_order(0..3) {
        *want.entry(format!("{e},{ip}")).or_default() += 1;
    }
    assert!(summary.skipped.ipv6 > 0, "the world has IPv6 records");
    assert_eq!(
        got.values().sum::<u64>(),
        summary.expected_tuples + summary.skipped.ipv6
    );
    assert_eq!(got, want);
}
