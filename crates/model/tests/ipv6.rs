//! IPv6 in the embedded model: one model scores both families through the prefix hierarchy, the
//! model file round-trips them, and format-1 files (IPv4-only) still load and say so when asked to
//! score IPv6.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipsight_model::hashing::{HASH_SCHEME, HASH_SCHEME_V1};
use ipsight_model::{
    eval, train, wire, Hyperparameters, IpEncoderLayout, Model, ModelError, TrainOptions,
    TrainingData,
};

fn v6(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Each user: a home /56 at one of two ISPs (/32s), privacy addresses rotating in two /64s of it,
/// and an IPv4 office address.
fn user_home(u: u32) -> (u16, u16) {
    let isp = if u.is_multiple_of(2) { 0x2a01 } else { 0x2003 };
    (isp, 0x1000 + u as u16)
}

fn data() -> TrainingData {
    let mut d = TrainingData::new();
    for u in 0..40u32 {
        let (isp, site) = user_home(u);
        for k in 0..30u32 {
            let subnet = (k % 2) as u16;
            let iid = 0x1000_0000u64 * (k as u64 + 1) + u as u64;
            let ip = Ipv6Addr::new(
                isp,
                0xe0a,
                site,
                0x7b00 | subnet,
                (iid >> 48) as u16,
                (iid >> 32) as u16,
                (iid >> 16) as u16,
                iid as u16,
            );
            d.push(&format!("user{u}"), ip);
            d.push(&format!("user{u}"), Ipv4Addr::new(198, 51, 100, u as u8));
        }
    }
    d
}

fn layout(ipv6_buckets: u32) -> IpEncoderLayout {
    IpEncoderLayout {
        prefix24_buckets: 512,
        address_buckets: 512,
        ipv6_buckets,
    }
}

fn model(ipv6_buckets: u32, d: &TrainingData) -> Result<Model, ModelError> {
    let mut hp = Hyperparameters::new(256, 16);
    hp.epochs = 40;
    hp.mini_batch_size = 100;
    hp.learning_rate = 0.02;
    hp.random_negative_sampling_rate = 4;
    let opts = TrainOptions {
        seed: 5,
        threads: Some(2),
        layout: layout(ipv6_buckets),
        ..TrainOptions::default()
    };
    train(&hp, &opts, d, None, &mut |_| {})
}

#[test]
fn one_model_learns_ipv6_prefixes_beside_ipv4() {
    let m = model(1 << 10, &data()).unwrap();
    assert!(m.scores_ipv6());
    let (mut own, mut other_customer, mut random) = (Vec::new(), Vec::new(), Vec::new());
    for u in 0..40u32 {
        let e = format!("user{u}");
        let (isp, site) = user_home(u);
        // A new privacy address in the user's own /64: a normal pair.
        own.push(
            m.score_ip(
                &e,
                v6(&format!("{isp:x}:e0a:{site:x}:7b00:dead:beef:0:{u:x}")),
            )
            .unwrap(),
        );
        // The same ISP, another customer's /48 (the hard case) and a random network.
        other_customer.push(
            m.score_ip(&e, v6(&format!("{isp:x}:e0a:{:x}:7b00::1", 0x9000 + u)))
                .unwrap(),
        );
        random.push(
            m.score_ip(&e, v6(&format!("2c0f:{:x}:1:2::3", 0x100 + u)))
                .unwrap(),
        );
    }
    let hard = eval::auc(&own, &other_customer);
    let easy = eval::auc(&own, &random);
    assert!(hard > 0.9, "own /64 vs same-ISP other customer: AUC {hard}");
    assert!(easy > 0.9, "own /64 vs random network: AUC {easy}");
    // IPv4 is still scored by the same model, with the same call.
    let v4 = m
        .score_ip("user3", IpAddr::V4(Ipv4Addr::new(198, 51, 100, 3)))
        .unwrap();
    assert_eq!(v4, m.score("user3", Ipv4Addr::new(198, 51, 100, 3)));
    // Round trip keeps every IPv6 score bit for bit.
    let mut bytes = Vec::new();
    m.write_to(&mut bytes).unwrap();
    let loaded = Model::read_from(&mut bytes.as_slice()).unwrap();
    assert_eq!(loaded.format_version(), 2);
    let pairs: Vec<(String, IpAddr)> = (0..40)
        .map(|u| {
            (
                format!("user{u}"),
                v6(&format!("2a01:e0a:{:x}::{u:x}", 0x1000 + u)),
            )
        })
        .collect();
    assert_eq!(
        m.score_ip_pairs(&pairs).unwrap(),
        loaded.score_ip_pairs(&pairs).unwrap()
    );
}

#[test]
fn an_ipv4_only_layout_refuses_ipv6_training_pairs() {
    let err = model(0, &data()).unwrap_err();
    assert!(matches!(err, ModelError::Ipv4Only { .. }), "{err}");
    assert!(err.to_string().contains("ipv6_buckets = 0"), "{err}");
}

/// The bytes a format-1 build wrote for the same tables: version 1, the IPv4-only hash scheme, no
/// `ipv6_buckets` in the layout (the tables are identical when the model has no IPv6 rows).
fn as_format_1(model: &Model) -> Vec<u8> {
    assert!(!model.scores_ipv6());
    let mut v2 = Vec::new();
    model.write_to(&mut v2).unwrap();
    let header_len = u32::from_le_bytes(v2[12..16].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&v2[16..16 + header_len]).unwrap();
    assert_eq!(header["hash_scheme"], HASH_SCHEME);
    header["hash_scheme"] = HASH_SCHEME_V1.into();
    header["layout"]
        .as_object_mut()
        .unwrap()
        .remove("ipv6_buckets");
    let header = serde_json::to_vec(&header).unwrap();
    let tables_at = 16 + header_len + (8 - (16 + header_len) % 8) % 8;
    let mut v1 = Vec::new();
    v1.extend_from_slice(b"IPSIGHT\0");
    v1.extend_from_slice(&1u32.to_le_bytes());
    v1.extend_from_slice(&(header.len() as u32).to_le_bytes());
    v1.extend_from_slice(&header);
    v1.resize(v1.len() + (8 - v1.len() % 8) % 8, 0);
    v1.extend_from_slice(&v2[tables_at..v2.len() - 4]);
    let crc = crc32fast::hash(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    v1
}

#[test]
fn format_1_files_load_ipv4_only_and_say_so_for_ipv6() {
    let mut d = TrainingData::new();
    for u in 0..20u8 {
        d.push(&format!("user{u}"), Ipv4Addr::new(10, u, 0, 1));
    }
    let mut hp = Hyperparameters::new(64, 8);
    hp.epochs = 2;
    let opts = TrainOptions {
        threads: Some(1),
        layout: layout(0),
        ..TrainOptions::default()
    };
    let m = train(&hp, &opts, &d, None, &mut |_| {}).unwrap();
    let old = Model::read_from(&mut as_format_1(&m).as_slice()).unwrap();
    assert_eq!(old.format_version(), 1);
    assert!(!old.scores_ipv6());
    let ip = Ipv4Addr::new(10, 3, 0, 1);
    assert_eq!(
        old.score("user3", ip).to_bits(),
        m.score("user3", ip).to_bits()
    );
    let err = old.score_ip("user3", v6("2001:db8::1")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("2001:db8::1")
            && msg.contains("format version 1")
            && msg.contains("IPv4-only"),
        "{msg}"
    );
    // Through the wire format: the request fails naming the record; IPv4-only requests still work.
    let body = b"user3,10.3.0.1\nuser3,2001:db8::1\n";
    let err = wire::invoke(&old, body, "text/csv", "application/json").unwrap_err();
    assert!(
        matches!(&err, wire::WireError::Record { record: 2, message } if message.contains("IPv4-only")),
        "{err}"
    );
    assert!(wire::invoke(&old, &body[..15], "text/csv", "application/json").is_ok());
    // score_ip_pairs names the first IPv6 pair.
    let pairs = vec![("user3", IpAddr::V4(ip)), ("user3", v6("2001:db8::7"))];
    let err = old.score_ip_pairs(&pairs).unwrap_err();
    assert!(err.to_string().contains("2001:db8::7"), "{err}");
    // A format-1 file claiming IPv6 rows is corrupt, not silently accepted.
    let mut bad = as_format_1(&m);
    let at = bad.windows(9).position(|w| w == b"\"layout\":").unwrap();
    bad.splice(at + 10..at + 10, *b"\"ipv6_buckets\":8,");
    let err = Model::read_from(&mut bad.as_slice()).unwrap_err();
    assert!(
        matches!(err, ModelError::Corrupt(_) | ModelError::Checksum { .. }),
        "{err}"
    );
}

#[test]
fn wire_requests_carry_ipv6_and_refuse_non_sources() {
    let m = model(1 << 10, &data()).unwrap();
    let body = b"user1,2003:e0a:1001:7b00::5\nuser1,198.51.100.1\n";
    let out = wire::invoke(&m, body, "text/csv", "application/json").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["predictions"].as_array().unwrap().len(), 2);
    for (text, why) in [
        ("::ffff:198.51.100.1", "send the IPv4 address 198.51.100.1"),
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
        ("fe80::1%eth0", "not an IPv4 or IPv6 address"),
        ("[2001:db8::1]", "not an IPv4 or IPv6 address"),
        ("2001:db8:::1", "not an IPv4 or IPv6 address"),
        ("2001:db8:12345::1", "not an IPv4 or IPv6 address"),
    ] {
        let err = wire::parse_ip(text).unwrap_err();
        assert!(err.contains(why), "{text}: {err}");
    }
}
