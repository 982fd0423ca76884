//! Pairs scored per second through the ipcheck handler, with each scorer backend.
//!
//! `cargo run --release -p ipcheck --example bench -- [DISTINCT_PAIRS] [EVENTS_PER_PAIR]`
//!
//! Builds a model (2,000 entities, vector_dim 32), writes one tuple CSV of DISTINCT_PAIRS distinct
//! pairs and the same DISTINCT_PAIRS × EVENTS_PER_PAIR OCSF events as JSON lines (gzip) and as a
//! Security Lake-shaped GZIP Parquet object to a local directory store, then runs the handler on each object with the embedded model and with
//! `ipsight serve` on loopback reached through the real aws-sdk-sagemakerruntime client (the
//! SageMaker adapter, default request packing). Reports wall time, pairs per second and
//! InvokeEndpoint calls per 100k pairs. Storage is local (DirStore): S3 latency is not included.
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ipcheck::alerts::NoAlerts;
use ipcheck::{handle, Config};
use ipsight_aws::scorers::{SageMakerOptions, SageMakerScorer};
use ipsight_model::{train, Hyperparameters, IpEncoderLayout, TrainOptions, TrainingData};
use ipsight_ports::EmbeddedScorer;
use ipsight_ports::{DirStore, Scorer};
use serde_json::json;

const ENTITIES: u32 = 2000;

fn ip_of(e: u32, k: u32) -> Ipv4Addr {
    Ipv4Addr::new(
        11 + (e % 200) as u8,
        (e / 200) as u8,
        (k / 250) as u8,
        (k % 250) as u8,
    )
}

/// An OCSF 1.0.0-rc.2 Network Activity table as Security Lake writes it (GZIP, the mapped columns
/// plus a wide `unmapped` string column standing for the many columns ipcheck never reads).
fn write_parquet(path: &std::path::Path, rows: &[(u32, u32)], repeat: usize) {
    use parquet::basic::{Compression, GzipLevel};
    use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message ocsf {
              optional int32 class_uid;
              optional int64 time (TIMESTAMP(MILLIS,true));
              optional group cloud { optional binary account_uid (UTF8); optional binary region (UTF8); }
              optional group src_endpoint { optional binary instance_uid (UTF8); optional binary ip (UTF8); }
              optional binary unmapped (UTF8);
            }",
        )
        .unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::GZIP(GzipLevel::default()))
            .build(),
    );
    let mut w =
        SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    let all: Vec<(u32, u32)> = (0..repeat).flat_map(|_| rows.iter().copied()).collect();
    for chunk in all.chunks(200_000) {
        let n = chunk.len();
        let mut rg = w.next_row_group().unwrap();
        let mut col = 0;
        while let Some(mut c) = rg.next_column().unwrap() {
            // Every value present: definition level = the column's nesting depth.
            let def = vec![if (2..=5).contains(&col) { 2 } else { 1 }; n];
            match col {
                0 => {
                    c.typed::<Int32Type>()
                        .write_batch(&vec![4001; n], Some(&def), None)
                        .unwrap();
                }
                1 => {
                    let t: Vec<i64> = chunk
                        .iter()
                        .map(|&(_, k)| 1767571200000 + k as i64)
                        .collect();
                    c.typed::<Int64Type>()
                        .write_batch(&t, Some(&def), None)
                        .unwrap();
                }
                _ => {
                    let v: Vec<ByteArray> = chunk
                        .iter()
                        .map(|&(e, k)| {
                            ByteArray::from(
                                match col {
                                    2 => "123456789012".to_string(),
                                    3 => "us-east-1".to_string(),
                                    4 => format!("i-{e:017x}"),
                                    5 => ip_of(e, k).to_string(),
                                    _ => format!("{{\"sublocation_id\":\"-\",\"flow\":{k}}}"),
                                }
                                .into_bytes(),
                            )
                        })
                        .collect();
                    c.typed::<ByteArrayType>()
                        .write_batch(&v, Some(&def), None)
                        .unwrap();
                }
            }
            c.close().unwrap();
            col += 1;
        }
        rg.close().unwrap();
    }
    w.close().unwrap();
}

fn event(e: u32, k: u32) -> String {
    json!({"class_uid":4001,"time":1767571200000i64 + k as i64,
        "cloud":{"account_uid":"123456789012","region":"us-east-1"},
        "src_endpoint":{"instance_uid":format!("i-{e:017x}"),"ip":ip_of(e, k).to_string()}})
    .to_string()
}

async fn run<S: Scorer>(
    label: &str,
    cfg: &Config,
    store: &DirStore,
    scorer: &S,
    key: &str,
    pairs: usize,
    events: usize,
) -> f64 {
    let ev = json!({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
        "s3":{"bucket":{"name":"input"},"object":{"key":key}}}]});
    let t = Instant::now();
    let out = handle(cfg, store, scorer, &NoAlerts, ev).await.unwrap();
    let s = t.elapsed().as_secs_f64();
    assert_eq!(out["pairs"], pairs, "{out}");
    println!(
        "{label:<34} {key:<22} {events:>9} events {pairs:>8} distinct pairs {s:>7.3} s  {:>9.0} pairs/s  {:>9.0} events/s",
        pairs as f64 / s,
        events as f64 / s
    );
    s
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let pairs: usize = args.next().map_or(200_000, |a| a.parse().unwrap());
    let per_pair: usize = args.next().map_or(5, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::new(dir.path());

    let t = Instant::now();
    let mut d = TrainingData::new();
    for e in 0..ENTITIES {
        for k in 0..20 {
            d.push(&format!("i-{e:017x}"), ip_of(e, k));
        }
    }
    let mut hp = Hyperparameters::new(10_000, 32);
    hp.epochs = 2;
    let opts = TrainOptions {
        layout: IpEncoderLayout {
            prefix24_buckets: 1 << 16,
            address_buckets: 1 << 16,
            ipv6_buckets: 1 << 13,
        },
        ..TrainOptions::default()
    };
    let model = Arc::new(train(&hp, &opts, &d, None, &mut |_| {}).unwrap());
    eprintln!(
        "model: {} training pairs, {:.1} s",
        d.len(),
        t.elapsed().as_secs_f64()
    );

    // Inputs: distinct pairs spread over the entities.
    let in_dir = dir.path().join("input");
    std::fs::create_dir_all(&in_dir).unwrap();
    let per_entity = pairs.div_ceil(ENTITIES as usize) as u32;
    let all: Vec<(u32, u32)> = (0..ENTITIES)
        .flat_map(|e| (0..per_entity).map(move |k| (e, k)))
        .take(pairs)
        .collect();
    let mut csv =
        std::io::BufWriter::new(std::fs::File::create(in_dir.join("tuples.csv")).unwrap());
    for &(e, k) in &all {
        writeln!(csv, "i-{e:017x},{}", ip_of(e, k)).unwrap();
    }
    csv.flush().unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(std::fs::File::create(in_dir.join("events.jsonl.gz")).unwrap()),
        flate2::Compression::fast(),
    );
    for _ in 0..per_pair {
        for &(e, k) in &all {
            writeln!(gz, "{}", event(e, k)).unwrap();
        }
    }
    gz.finish().unwrap().flush().unwrap();
    let events = pairs * per_pair;
    write_parquet(&in_dir.join("events.gz.parquet"), &all, per_pair);

    let cfg = Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some("output".into()),
        "ALERT_MIN_PERCENTILE" => Some("99.5".into()),
        _ => None,
    })
    .unwrap();

    let embedded = EmbeddedScorer::new(model.clone());
    for (key, n_events) in [
        ("tuples.csv", pairs),
        ("events.jsonl.gz", events),
        ("events.gz.parquet", events),
    ] {
        run(
            "embedded model",
            &cfg,
            &store,
            &embedded,
            key,
            pairs,
            n_events,
        )
        .await;
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ipsight_serve::serve_on(
        model.clone(),
        listener,
        std::future::pending(),
    ));
    let conf = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(
            aws_sdk_sagemakerruntime::config::SharedCredentialsProvider::new(
                aws_sdk_sagemakerruntime::config::Credentials::new(
                    "testing", "testing", None, None, "bench",
                ),
            ),
        )
        .build();
    let remote = SageMakerScorer::new(&conf, "ipsight-bench", SageMakerOptions::default())
        .with_calibration(model.calibration().clone());
    for (key, n_events) in [
        ("tuples.csv", pairs),
        ("events.jsonl.gz", events),
        ("events.gz.parquet", events),
    ] {
        let before = remote.calls().load(Ordering::Relaxed);
        run(
            "ipsight serve via sagemakerruntime",
            &cfg,
            &store,
            &remote,
            key,
            pairs,
            n_events,
        )
        .await;
        let calls = remote.calls().load(Ordering::Relaxed) - before;
        println!(
            "{:<34} {key:<22} InvokeEndpoint calls: {calls} ({:.2} per 100k pairs)",
            "",
            calls as f64 * 100_000.0 / pairs as f64
        );
    }
}
