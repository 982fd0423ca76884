//! Save/load round trips and refusal of foreign, other-version, truncated and corrupt files.
use std::net::Ipv4Addr;

use ipsight_model::{
    train, Hyperparameters, IpEncoderLayout, Model, ModelError, TrainOptions, TrainingData,
};

fn tiny_data() -> TrainingData {
    let mut d = TrainingData::new();
    for u in 0..20 {
        for k in 0..10 {
            d.push(&format!("user{u}"), Ipv4Addr::new(10, u as u8, 0, k));
            d.push(&format!("user{u}"), Ipv4Addr::new(198, 51, 100, u as u8));
        }
    }
    d
}

fn tiny_model(layers: u32, threads: usize, seed: u64) -> Model {
    let mut hp = Hyperparameters::new(64, 8);
    hp.num_ip_encoder_layers = layers;
    hp.epochs = 2;
    hp.mini_batch_size = 50;
    hp.learning_rate = 0.01;
    let opts = TrainOptions {
        seed,
        threads: Some(threads),
        layout: IpEncoderLayout {
            prefix24_buckets: 128,
            address_buckets: 128,
            ipv6_buckets: 64,
        },
        ..TrainOptions::default()
    };
    train(&hp, &opts, &tiny_data(), None, &mut |_| {}).unwrap()
}

fn probe_pairs() -> Vec<(String, Ipv4Addr)> {
    (0..50)
        .map(|i| {
            (
                format!("user{}", i % 25),
                Ipv4Addr::from(0x0a00_0000u32.wrapping_mul(i + 1) ^ (i * 7919)),
            )
        })
        .collect()
}

#[test]
fn round_trip_gives_identical_scores_for_every_encoder_depth() {
    for layers in [0, 1, 3] {
        let model = tiny_model(layers, 2, 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ipsight");
        model.save(&path).unwrap();
        let loaded = Model::load(&path).unwrap();
        assert_eq!(loaded, model, "layers={layers}");
        let pairs = probe_pairs();
        let a = model.score_pairs(&pairs);
        let b = loaded.score_pairs(&pairs);
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(loaded.percentile(a[0]), model.percentile(a[0]));
        assert!(!loaded.calibration().is_empty());
    }
}

#[test]
fn single_threaded_training_is_reproducible() {
    let a = tiny_model(1, 1, 42);
    let b = tiny_model(1, 1, 42);
    assert_eq!(a.score_pairs(&probe_pairs()), b.score_pairs(&probe_pairs()));
    let c = tiny_model(1, 1, 43);
    assert_ne!(a.score_pairs(&probe_pairs()), c.score_pairs(&probe_pairs()));
}

fn bytes_of(model: &Model) -> Vec<u8> {
    let mut v = Vec::new();
    model.write_to(&mut v).unwrap();
    v
}

#[test]
fn other_version_is_refused() {
    let mut bytes = bytes_of(&tiny_model(1, 2, 1));
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    let err = Model::read_from(&mut bytes.as_slice()).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::UnsupportedVersion {
                found: 3,
                supported: 2
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("version 3"));
}

#[test]
fn foreign_file_is_refused() {
    let err = Model::read_from(&mut &b"{\"not\": \"a model\"}"[..]).unwrap_err();
    assert!(matches!(err, ModelError::BadMagic), "{err}");
}

#[test]
fn truncated_file_is_refused() {
    let bytes = bytes_of(&tiny_model(1, 2, 1));
    for cut in [5, 20, bytes.len() / 2, bytes.len() - 1] {
        let err = Model::read_from(&mut &bytes[..cut]).unwrap_err();
        assert!(
            matches!(err, ModelError::Truncated(_)),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().contains("truncated"));
    }
}

#[test]
fn flipped_bit_in_a_table_is_refused() {
    let mut bytes = bytes_of(&tiny_model(1, 2, 1));
    let n = bytes.len();
    bytes[n - 1000] ^= 0x10;
    let err = Model::read_from(&mut bytes.as_slice()).unwrap_err();
    assert!(matches!(err, ModelError::Checksum { .. }), "{err}");
}

#[test]
fn trailing_garbage_is_refused() {
    let mut bytes = bytes_of(&tiny_model(1, 2, 1));
    bytes.push(0);
    let err = Model::read_from(&mut bytes.as_slice()).unwrap_err();
    assert!(matches!(err, ModelError::Corrupt(_)), "{err}");
}

#[test]
fn unseen_entities_score_through_their_bucket() {
    let model = tiny_model(1, 2, 1);
    let s = model.score("never-seen-principal", Ipv4Addr::new(10, 3, 0, 1));
    assert!(s.is_finite());
    assert_eq!(
        model.entity_vector("never-seen-principal"),
        model.entity_vector("never-seen-principal")
    );
}

#[test]
fn impossible_table_size_is_an_error_not_an_abort() {
    let hp = Hyperparameters::new(250_000_000, 4096);
    let err = train(
        &hp,
        &TrainOptions::default(),
        &tiny_data(),
        None,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::OutOfMemory { .. }), "{err}");
}

/// Regression (model_file fuzz target): a header that claims the largest legal shapes (250M entities × 4096
/// dimensions, 4 TB of tables) followed by no data used to allocate the tables up front and abort
/// the process. It must be a `Truncated` error, after allocating no more than the file holds.
#[test]
fn huge_claimed_tables_in_a_short_file_are_truncated_not_an_abort() {
    let bytes = bytes_of(&tiny_model(1, 1, 1));
    let hlen = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[16..16 + hlen]).unwrap();
    let (n, d) = (250_000_000u64, 4096u64);
    header["hyperparameters"]["num_entity_vectors"] = n.into();
    header["hyperparameters"]["vector_dim"] = d.into();
    for t in header["tables"].as_array_mut().unwrap() {
        t["cols"] = d.into();
    }
    header["tables"][0]["rows"] = n.into();
    let h = serde_json::to_vec(&header).unwrap();
    let mut file = bytes[..12].to_vec();
    file.extend_from_slice(&(h.len() as u32).to_le_bytes());
    file.extend_from_slice(&h);
    file.resize(file.len() + (8 - file.len() % 8) % 8, 0);
    file.extend_from_slice(&[0u8; 1000]);
    let err = Model::read_from(&mut std::io::Cursor::new(&file)).unwrap_err();
    assert!(matches!(err, ModelError::Truncated("tables")), "{err}");
}

#[test]
fn the_entity_definition_is_recorded_and_defaults_to_principal() {
    let mut model = tiny_model(1, 1, 5);
    assert_eq!(model.entity_definition(), "principal");
    let mut v = Vec::new();
    model.write_to(&mut v).unwrap();
    // A file without the field (every file written before it existed) reads as `principal`.
    assert!(!String::from_utf8_lossy(&v).contains("\"entity\":"));
    assert_eq!(
        Model::read_from(&mut v.as_slice())
            .unwrap()
            .entity_definition(),
        "principal"
    );
    model.set_entity_definition("principal+event_source");
    let mut v = Vec::new();
    model.write_to(&mut v).unwrap();
    let loaded = Model::read_from(&mut v.as_slice()).unwrap();
    assert_eq!(loaded.entity_definition(), "principal+event_source");
    // Through the trainer's option too.
    let mut hp = Hyperparameters::new(64, 8);
    hp.epochs = 1;
    let opts = TrainOptions {
        threads: Some(1),
        entity: Some("user_agent_family".into()),
        layout: IpEncoderLayout {
            prefix24_buckets: 128,
            address_buckets: 128,
            ipv6_buckets: 64,
        },
        ..TrainOptions::default()
    };
    let m = train(&hp, &opts, &tiny_data(), None, &mut |_| {}).unwrap();
    assert_eq!(m.entity_definition(), "user_agent_family");
}
