use ipsight_model::{Hyperparameters, ModelError, HYPERPARAMETER_NAMES};

fn err_of(f: impl FnOnce(&mut Hyperparameters)) -> String {
    let mut h = Hyperparameters::new(1000, 32);
    f(&mut h);
    h.validate().unwrap_err().to_string()
}

#[test]
fn defaults_are_sagemakers() {
    let h = Hyperparameters::new(20_000, 128);
    h.validate().unwrap();
    assert_eq!(h.batch_metrics_publish_interval, 1000);
    assert_eq!(h.epochs, 10);
    assert_eq!(h.learning_rate, 0.001);
    assert_eq!(h.mini_batch_size, 10_000);
    assert_eq!(h.num_ip_encoder_layers, 1);
    assert_eq!(h.random_negative_sampling_rate, 1);
    assert_eq!(h.shuffled_negative_sampling_rate, 1);
    assert_eq!(h.weight_decay, 0.00001);
    Hyperparameters::sagemaker_tutorial().validate().unwrap();
}

#[test]
fn out_of_range_values_name_the_parameter_and_range() {
    type Case = (
        Box<dyn FnOnce(&mut Hyperparameters)>,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            Box::new(|h| h.num_entity_vectors = 0),
            "num_entity_vectors",
            "1–250,000,000",
        ),
        (
            Box::new(|h| h.num_entity_vectors = 250_000_001),
            "num_entity_vectors",
            "1–250,000,000",
        ),
        (Box::new(|h| h.vector_dim = 3), "vector_dim", "4–4096"),
        (Box::new(|h| h.vector_dim = 4097), "vector_dim", "4–4096"),
        (
            Box::new(|h| h.batch_metrics_publish_interval = 0),
            "batch_metrics_publish_interval",
            "≥ 1",
        ),
        (Box::new(|h| h.epochs = 0), "epochs", "≥ 1"),
        (
            Box::new(|h| h.learning_rate = 1e-7),
            "learning_rate",
            "1e-6–10.0",
        ),
        (
            Box::new(|h| h.learning_rate = 10.5),
            "learning_rate",
            "1e-6–10.0",
        ),
        (
            Box::new(|h| h.learning_rate = f64::NAN),
            "learning_rate",
            "1e-6–10.0",
        ),
        (
            Box::new(|h| h.mini_batch_size = 0),
            "mini_batch_size",
            "1–500,000",
        ),
        (
            Box::new(|h| h.mini_batch_size = 500_001),
            "mini_batch_size",
            "1–500,000",
        ),
        (
            Box::new(|h| h.num_ip_encoder_layers = 101),
            "num_ip_encoder_layers",
            "0–100",
        ),
        (
            Box::new(|h| h.random_negative_sampling_rate = 501),
            "random_negative_sampling_rate",
            "0–500",
        ),
        (
            Box::new(|h| h.shuffled_negative_sampling_rate = 501),
            "shuffled_negative_sampling_rate",
            "0–500",
        ),
        (
            Box::new(|h| h.weight_decay = -0.1),
            "weight_decay",
            "0.0–10.0",
        ),
        (
            Box::new(|h| h.weight_decay = 11.0),
            "weight_decay",
            "0.0–10.0",
        ),
        (
            Box::new(|h| {
                h.random_negative_sampling_rate = 0;
                h.shuffled_negative_sampling_rate = 0;
            }),
            "random_negative_sampling_rate + shuffled_negative_sampling_rate",
            "1–500",
        ),
        (
            Box::new(|h| {
                h.random_negative_sampling_rate = 300;
                h.shuffled_negative_sampling_rate = 201;
            }),
            "random_negative_sampling_rate + shuffled_negative_sampling_rate",
            "1–500",
        ),
    ];
    for (f, name, range) in cases {
        let msg = err_of(f);
        assert!(msg.contains(name) && msg.contains(range), "{msg}");
    }
    // Boundaries are inclusive.
    let mut h = Hyperparameters::new(250_000_000, 4096);
    h.learning_rate = 10.0;
    h.mini_batch_size = 500_000;
    h.num_ip_encoder_layers = 0;
    h.random_negative_sampling_rate = 500;
    h.shuffled_negative_sampling_rate = 0;
    h.weight_decay = 0.0;
    h.validate().unwrap();
}

#[test]
fn set_by_sagemaker_name_with_dashes_or_underscores() {
    let mut h = Hyperparameters::new(1, 4);
    for (i, name) in HYPERPARAMETER_NAMES.iter().enumerate() {
        let v = if name.contains("rate") && *name == "learning_rate" || *name == "weight_decay" {
            "0.5".to_string()
        } else {
            (i + 5).to_string()
        };
        h.set(name, &v).unwrap();
        h.set(&name.replace('_', "-"), &v).unwrap();
    }
    assert_eq!(h.vector_dim, 6);
    assert_eq!(h.learning_rate, 0.5);
    assert!(matches!(
        h.set("vector_dims", "1"),
        Err(ModelError::UnknownHyperparameter(_))
    ));
    let e = h.set("epochs", "ten").unwrap_err().to_string();
    assert!(e.contains("epochs") && e.contains("ten"), "{e}");
}
