//! Lookups in databases the test builds itself with `mmdb-writer`, in each supported layout, read
//! back by the real `maxminddb` reader.
use std::net::IpAddr;
use std::path::Path;

use ipsight_enrich::{AwsRanges, EnrichError, Enricher, IpDb, Network};
use ipsight_testkit::mmdb::write_mmdb;
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn geolite2_asn(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("GeoLite2-ASN.mmdb");
    write_mmdb(
        &p,
        "GeoLite2-ASN",
        6,
        &[
            (
                "203.0.113.0/24",
                json!({"autonomous_system_number": 64500, "autonomous_system_organization": "Example Transit"}),
            ),
            (
                "2001:db8:100::/48",
                json!({"autonomous_system_number": 64501, "autonomous_system_organization": "Example Six"}),
            ),
        ],
    );
    p
}

fn geolite2_city(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("GeoLite2-City.mmdb");
    let city = |iso: &str, name: &str| {
        json!({
            "continent": {"code": "EU", "geoname_id": 6255148, "names": {"en": "Europe"}},
            "country": {"geoname_id": 2921044, "iso_code": iso, "names": {"en": "Germany", "de": "Deutschland"}},
            "registered_country": {"geoname_id": 2921044, "iso_code": iso, "names": {"en": "Germany"}},
            "city": {"geoname_id": 2950159, "names": {"en": name, "de": name}},
            "location": {"accuracy_radius": 20, "latitude": 52.5, "longitude": 13.4, "time_zone": "Europe/Berlin"},
            "subdivisions": [{"iso_code": "BE", "names": {"en": "Land Berlin"}}],
        })
    };
    let mut anon = city("NL", "Amsterdam");
    anon["traits"] = json!({"is_anonymous_proxy": true});
    write_mmdb(
        &p,
        "GeoLite2-City",
        6,
        &[
            ("203.0.113.0/25", city("DE", "Berlin")),
            ("198.51.100.0/24", anon),
        ],
    );
    p
}

#[test]
fn geolite2_layouts_give_the_values_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let e = Enricher::open(&[geolite2_asn(dir.path()), geolite2_city(dir.path())], None).unwrap();
    let n = e.lookup(ip("203.0.113.7"), Network::default()).unwrap();
    assert_eq!(n.asn, Some(64500));
    assert_eq!(n.as_org.as_deref(), Some("Example Transit"));
    assert_eq!(n.country.as_deref(), Some("DE"));
    assert_eq!(n.city.as_deref(), Some("Berlin"));
    assert!(n.flags.is_empty());
    assert_eq!(n.sources, ["GeoLite2-ASN", "GeoLite2-City"]);
    // In the ASN database but outside the city one's /25.
    let n = e.lookup(ip("203.0.113.200"), Network::default()).unwrap();
    assert_eq!((n.asn, n.country), (Some(64500), None));
    assert_eq!(n.sources, ["GeoLite2-ASN"]);
    // `traits.is_anonymous_proxy`.
    let n = e.lookup(ip("198.51.100.1"), Network::default()).unwrap();
    assert_eq!(n.flags, ["proxy"]);
    assert_eq!(n.country.as_deref(), Some("NL"));
    // IPv6, and an address no database knows.
    let n = e.lookup(ip("2001:db8:100::5"), Network::default()).unwrap();
    assert_eq!(n.asn, Some(64501));
    let n = e.lookup(ip("192.0.2.1"), Network::default()).unwrap();
    assert!(n.is_empty() && n.sources.is_empty());
    // The JSON always has the three contract keys.
    let v = serde_json::to_value(&n).unwrap();
    assert_eq!(v, json!({"asn": null, "as_org": null, "country": null}));
}

#[test]
fn dbip_and_ipinfo_lite_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let dbip_asn = dir.path().join("dbip-asn-lite.mmdb");
    write_mmdb(
        &dbip_asn,
        "DBIP-ASN-Lite (compat=GeoLite2-ASN)",
        6,
        &[(
            "192.0.2.0/24",
            json!({"autonomous_system_number": 64510, "autonomous_system_organization": "DB-IP Org"}),
        )],
    );
    let dbip_country = dir.path().join("dbip-country-lite.mmdb");
    write_mmdb(
        &dbip_country,
        "DBIP-Country-Lite",
        6,
        &[(
            "192.0.2.0/24",
            json!({"continent": {"code": "OC", "geoname_id": 6255151, "names": {"en": "Oceania"}},
                   "country": {"geoname_id": 2077456, "is_in_european_union": false, "iso_code": "AU", "names": {"en": "Australia"}}}),
        )],
    );
    let ipinfo = dir.path().join("ipinfo_lite.mmdb");
    write_mmdb(
        &ipinfo,
        "ipinfo lite.mmdb",
        6,
        &[(
            "198.51.100.0/24",
            json!({"asn": "AS64520", "as_name": "IPinfo Example", "as_domain": "example.net",
                   "country": "Japan", "country_code": "JP", "continent": "Asia", "continent_code": "AS"}),
        )],
    );
    let e = Enricher::open(&[&dbip_asn, &dbip_country, &ipinfo], None).unwrap();
    let n = e.lookup(ip("192.0.2.9"), Network::default()).unwrap();
    assert_eq!(
        (n.asn, n.as_org.as_deref(), n.country.as_deref()),
        (Some(64510), Some("DB-IP Org"), Some("AU"))
    );
    let n = e.lookup(ip("198.51.100.9"), Network::default()).unwrap();
    assert_eq!(
        (n.asn, n.as_org.as_deref(), n.country.as_deref()),
        (Some(64520), Some("IPinfo Example"), Some("JP"))
    );
    assert_eq!(n.sources, ["ipinfo lite.mmdb"]);
}

#[test]
fn anonymiser_flags_and_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let anon = dir.path().join("GeoIP2-Anonymous-IP.mmdb");
    write_mmdb(
        &anon,
        "GeoIP2-Anonymous-IP",
        4,
        &[
            (
                "203.0.113.0/24",
                json!({"is_anonymous": true, "is_anonymous_vpn": true, "is_hosting_provider": true}),
            ),
            (
                "198.51.100.0/24",
                json!({"is_anonymous": true, "is_tor_exit_node": true}),
            ),
        ],
    );
    let privacy = dir.path().join("ipinfo-privacy.mmdb");
    write_mmdb(
        &privacy,
        "ipinfo standard_privacy.mmdb",
        4,
        &[(
            "192.0.2.0/24",
            json!({"vpn": "true", "proxy": "false", "tor": "false", "relay": "false", "hosting": "true", "service": "ExampleVPN"}),
        )],
    );
    let asn = geolite2_asn(dir.path());
    let e = Enricher::open(&[&anon, &privacy, &asn], None).unwrap();
    let n = e.lookup(ip("203.0.113.1"), Network::default()).unwrap();
    assert_eq!(n.flags, ["anonymous", "vpn", "hosting"]);
    let n = e.lookup(ip("198.51.100.1"), Network::default()).unwrap();
    assert_eq!(n.flags, ["anonymous", "tor"]);
    let n = e.lookup(ip("192.0.2.1"), Network::default()).unwrap();
    assert_eq!(n.flags, ["vpn", "hosting"]);
    // An IPv4-only database has no answer for IPv6 (not an error); the IPv6 one still answers.
    let n = e.lookup(ip("2001:db8:100::1"), Network::default()).unwrap();
    assert_eq!(n.asn, Some(64501));
    // What the caller already knows (GuardDuty's remoteIpDetails) wins over the databases.
    let known = Network {
        asn: Some(1),
        as_org: Some("From GuardDuty".into()),
        sources: vec!["guardduty".into()],
        ..Network::default()
    };
    let n = e.lookup(ip("203.0.113.1"), known).unwrap();
    assert_eq!(
        (n.asn, n.as_org.as_deref()),
        (Some(1), Some("From GuardDuty"))
    );
    assert_eq!(
        n.sources,
        ["guardduty", "GeoIP2-Anonymous-IP", "GeoLite2-ASN"]
    );
}

#[test]
fn bad_databases_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.mmdb");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let err = Enricher::open(&[&junk], None).unwrap_err();
    assert!(matches!(err, EnrichError::Database { .. }), "{err}");
    assert!(err.to_string().contains("junk.mmdb"), "{err}");
    let err = IpDb::open(&dir.path().join("missing.mmdb")).unwrap_err();
    assert!(err.to_string().contains("missing.mmdb"), "{err}");
    // A truncated real database.
    let good = geolite2_asn(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let err = IpDb::from_bytes(
        "s3://cfg/GeoLite2-ASN.mmdb",
        bytes[..bytes.len() / 2].to_vec(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("s3://cfg/GeoLite2-ASN.mmdb"),
        "{err}"
    );
}

const RANGES: &str = r#"{
  "syncToken": "1764633600",
  "createDate": "2026-12-01-12-00-00",
  "prefixes": [
    {"ip_prefix": "52.94.0.0/16", "region": "us-east-1", "service": "AMAZON", "network_border_group": "us-east-1"},
    {"ip_prefix": "52.94.76.0/22", "region": "us-west-2", "service": "AMAZON", "network_border_group": "us-west-2"},
    {"ip_prefix": "52.94.76.0/22", "region": "us-west-2", "service": "DYNAMODB", "network_border_group": "us-west-2"},
    {"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "S3", "network_border_group": "ap-northeast-2"},
    {"ip_prefix": "3.0.0.0/15", "region": "ap-southeast-1", "service": "EC2", "network_border_group": "ap-southeast-1"},
    {"ip_prefix": "3.0.0.0/15", "region": "ap-southeast-1", "service": "AMAZON", "network_border_group": "ap-southeast-1"}
  ],
  "ipv6_prefixes": [
    {"ipv6_prefix": "2600:1f14::/35", "region": "us-west-2", "service": "EC2", "network_border_group": "us-west-2"}
  ]
}"#;

#[test]
fn aws_ranges_most_specific_prefix_and_every_service() {
    let r = AwsRanges::parse("ip-ranges.json", RANGES.as_bytes()).unwrap();
    assert_eq!(r.len(), 7);
    assert_eq!(r.create_date, "2026-12-01-12-00-00");
    let p = r.lookup(ip("52.94.77.1")).unwrap();
    assert_eq!(p.prefix, "52.94.76.0/22");
    assert_eq!(p.region, "us-west-2");
    assert_eq!(p.services, ["AMAZON", "DYNAMODB"]);
    let p = r.lookup(ip("52.94.1.1")).unwrap();
    assert_eq!(
        (p.prefix.as_str(), p.region.as_str()),
        ("52.94.0.0/16", "us-east-1")
    );
    assert_eq!(r.lookup(ip("::ffff:3.5.141.9")).unwrap().services, ["S3"]);
    assert_eq!(
        r.lookup(ip("2600:1f14:1fff::1")).unwrap().prefix,
        "2600:1f14::/35"
    );
    assert!(r.lookup(ip("203.0.113.1")).is_none());
    assert!(r.lookup(ip("2600:1f14:2000::1")).is_none());

    // Through the enricher: EC2 space is hosting.
    let e = Enricher::new(vec![], Some(r));
    let n = e.lookup(ip("3.1.2.3"), Network::default()).unwrap();
    assert_eq!(n.aws.as_ref().unwrap().services, ["AMAZON", "EC2"]);
    assert_eq!(n.flags, ["hosting"]);
    assert_eq!(n.sources, ["aws-ip-ranges"]);
}

#[test]
fn bad_ranges_name_the_prefix() {
    let bad = RANGES.replace("3.5.140.0/22", "3.5.140.0/33");
    let err = AwsRanges::parse("s3://cfg/ip-ranges.json", bad.as_bytes()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("s3://cfg/ip-ranges.json") && msg.contains("3.5.140.0/33"),
        "{msg}"
    );
    let bad = RANGES.replace("\"52.94.0.0/16\"", "\"2600::/16\"");
    assert!(AwsRanges::parse("x", bad.as_bytes()).is_err());
    let err = AwsRanges::parse("x", b"{\"prefixes\": []}").unwrap_err();
    assert!(err.to_string().contains("syncToken"), "{err}");
}
