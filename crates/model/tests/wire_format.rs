//! The request and response examples of the SageMaker IP Insights documentation ("IP Insights
//! Inference Data Formats"), byte for byte where the documentation is exact.
use std::net::Ipv4Addr;

use ipsight_model::wire::{self, Accept, ContentType, Prediction, Record, WireError};

fn rec(e: &str, ip: [u8; 4]) -> Record {
    Record {
        entity: e.into(),
        ip: Ipv4Addr::from(ip).into(),
    }
}

#[test]
fn csv_request_from_the_docs() {
    let body = b"entity_id_1, 192.168.1.2\nentity_id_2, 10.10.1.2\n";
    let got = wire::parse_request(body, ContentType::parse("text/csv").unwrap()).unwrap();
    assert_eq!(
        got,
        vec![
            rec("entity_id_1", [192, 168, 1, 2]),
            rec("entity_id_2", [10, 10, 1, 2])
        ]
    );
}

#[test]
fn json_request_from_the_docs_mixes_both_instance_shapes() {
    let body = br#"{ "instances": [ {"data": {"features": {"values": ["entity_id_1", "192.168.1.2"]}}}, {"features": ["entity_id_2", "10.10.1.2"]} ] }"#;
    let got = wire::parse_request(body, ContentType::parse("application/json").unwrap()).unwrap();
    assert_eq!(
        got,
        vec![
            rec("entity_id_1", [192, 168, 1, 2]),
            rec("entity_id_2", [10, 10, 1, 2])
        ]
    );
}

#[test]
fn jsonlines_request_from_the_docs() {
    let body = b"{\"data\": {\"features\": {\"values\": [\"entity_id_1\", \"192.168.1.2\"]}}}\n{\"features\": [\"entity_id_2\", \"10.10.1.2\"]}\n";
    let got =
        wire::parse_request(body, ContentType::parse("application/jsonlines").unwrap()).unwrap();
    assert_eq!(
        got,
        vec![
            rec("entity_id_1", [192, 168, 1, 2]),
            rec("entity_id_2", [10, 10, 1, 2])
        ]
    );
}

#[test]
fn invalid_ip_names_the_record() {
    let e = wire::parse_request(b"a,1.2.3.4\nb,1.2.3.400\n", ContentType::Csv).unwrap_err();
    assert!(matches!(e, WireError::Record { record: 2, .. }), "{e}");
    assert!(e.to_string().starts_with("record 2: \"1.2.3.400\""), "{e}");
    // IPv6 parses (a format-2 model scores it); a zone id does not.
    let r = wire::parse_request(
        br#"{"instances":[{"features":["a","1.2.3.4"]},{"features":["b","2001:DB8::1"]}]}"#,
        ContentType::Json,
    )
    .unwrap();
    assert_eq!(r[1].ip, "2001:db8::1".parse::<std::net::IpAddr>().unwrap());
    let e = wire::parse_request(
        br#"{"instances":[{"features":["a","1.2.3.4"]},{"features":["b","fe80::1%eth0"]}]}"#,
        ContentType::Json,
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("record 2:")
            && e.to_string().contains("not an IPv4 or IPv6 address"),
        "{e}"
    );
    let e = wire::parse_request(b"{\"features\":[\"a\"]}\n", ContentType::JsonLines).unwrap_err();
    assert!(e.to_string().contains("record 1: expected 2 values"), "{e}");
}

#[test]
fn content_and_accept_types() {
    assert_eq!(
        ContentType::parse("text/csv; charset=utf-8").unwrap(),
        ContentType::Csv
    );
    assert!(matches!(
        ContentType::parse("application/x-recordio-protobuf"),
        Err(WireError::UnsupportedContentType(_))
    ));
    assert_eq!(
        Accept::parse("application/json").unwrap(),
        Accept::default()
    );
    assert_eq!(
        Accept::parse("application/json; verbose=True").unwrap(),
        Accept {
            jsonlines: false,
            verbose: true
        }
    );
    assert_eq!(
        Accept::parse("application/jsonlines; verbose=True").unwrap(),
        Accept {
            jsonlines: true,
            verbose: true
        }
    );
    assert!(matches!(
        Accept::parse("text/csv"),
        Err(WireError::UnsupportedAccept(_))
    ));
}

#[test]
fn responses_match_the_documented_shapes() {
    let preds = [
        Prediction {
            dot_product: 0.0,
            embeddings: None,
        },
        Prediction {
            dot_product: 2.0,
            embeddings: None,
        },
    ];
    assert_eq!(
        String::from_utf8(wire::write_response(&preds, Accept::default())).unwrap(),
        r#"{"predictions":[{"dot_product":0.0},{"dot_product":2.0}]}"#
    );
    assert_eq!(
        String::from_utf8(wire::write_response(
            &preds,
            Accept::parse("application/jsonlines").unwrap()
        ))
        .unwrap(),
        "{\"dot_product\":0.0}\n{\"dot_product\":2.0}\n"
    );
    let verbose = [Prediction {
        dot_product: 0.0,
        embeddings: Some((vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0])),
    }];
    let out = String::from_utf8(wire::write_response(
        &verbose,
        Accept::parse("application/json; verbose=True").unwrap(),
    ))
    .unwrap();
    assert_eq!(
        out,
        r#"{"predictions":[{"dot_product":0.0,"entity_embedding":[1.0,0.0,0.0],"ip_embedding":[0.0,1.0,0.0]}]}"#
    );
    // Valid JSON, with SageMaker's key names.
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["predictions"][0]["ip_embedding"][1], 1.0);
}

#[test]
fn invoke_with_a_trained_model_scores_every_record_in_order() {
    use ipsight_model::{train, Hyperparameters, IpEncoderLayout, TrainOptions, TrainingData};
    let mut data = TrainingData::new();
    for u in 0..10u8 {
        for k in 0..20u8 {
            data.push(&format!("u{u}"), Ipv4Addr::new(10, u, 1, k));
        }
    }
    let mut hp = Hyperparameters::new(64, 8);
    hp.epochs = 2;
    hp.mini_batch_size = 50;
    let opts = TrainOptions {
        threads: Some(1),
        layout: IpEncoderLayout {
            prefix24_buckets: 64,
            address_buckets: 64,
            ipv6_buckets: 64,
        },
        ..TrainOptions::default()
    };
    let model = train(&hp, &opts, &data, None, &mut |_| {}).unwrap();
    let body = b"u1,10.1.1.3\nunseen-entity, 203.0.113.9\n";
    let out = wire::invoke(&model, body, "text/csv", "application/json; verbose=True").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 2);
    for (p, (e, ip)) in preds
        .iter()
        .zip([("u1", [10, 1, 1, 3]), ("unseen-entity", [203, 0, 113, 9])])
    {
        let ip = Ipv4Addr::from(ip);
        let want = model.score(e, ip);
        assert_eq!(p["dot_product"].as_f64().unwrap() as f32, want);
        let ee: Vec<f32> = serde_json::from_value(p["entity_embedding"].clone()).unwrap();
        let ie: Vec<f32> = serde_json::from_value(p["ip_embedding"].clone()).unwrap();
        assert_eq!(ee, model.entity_vector(e));
        assert_eq!(ie, model.ip_vector(ip));
        let dot: f32 = ee.iter().zip(&ie).map(|(a, b)| a * b).sum();
        assert!(
            (dot - want).abs() <= 1e-4 * (1.0 + want.abs()),
            "{dot} vs {want}"
        );
    }
    let plain = wire::invoke(&model, body, "text/csv", "application/json").unwrap();
    let plain: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(
        plain["predictions"][0]["dot_product"],
        preds[0]["dot_product"]
    );
    assert!(plain["predictions"][0].get("ip_embedding").is_none());
}
