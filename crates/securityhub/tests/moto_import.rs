//! BatchImportFindings through the real SDK client against moto's Security Hub: findings land (an
//! IPv6 pair's with `Network.SourceIpV6`), and importing the same report again updates them instead
//! of adding duplicates.
use std::net::IpAddr;

use ipsight_enrich::Network;
use ipsight_securityhub::{asff, publish, Detection, Importer, Skipped};
use ipsight_testkit::S3Server;

/// `n` principals, the last one calling over IPv6.
fn principals(n: usize) -> Vec<(String, IpAddr)> {
    (0..n)
        .map(|i| {
            let ip = if i + 1 == n {
                "2a02:1234:ab:cd01::7".to_owned()
            } else {
                format!("203.0.{}.{}", i / 200, i % 200)
            };
            (format!("AIDAEXAMPLE{i:05}"), ip.parse().unwrap())
        })
        .collect()
}

/// The SDK's ASFF types are large (`ResourceDetails` alone is 31 KB) and its unoptimised
/// serialiser needs more than a test thread's 2 MB of stack; release builds do not.
#[test]
fn imports_then_updates_in_place() {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(import_then_update())
        })
        .unwrap()
        .join()
        .unwrap();
}

async fn import_then_update() {
    let server = S3Server::start().await;
    let client = publish::client(&server.sdk_config());
    let types = vec!["UnauthorizedAccess:IAMUser/ConsoleLoginSuccess.B".to_owned()];
    let ids = vec!["gd-1".to_owned()];
    let network = Network {
        asn: Some(64500),
        as_org: Some("Example Transit".into()),
        country: Some("BR".into()),
        ..Network::default()
    };
    // The moto account: Security Hub keeps findings per calling account.
    let account = "123456789012";
    let pairs = principals(150);
    let build = |date: &str, risk: f64| {
        let importer = Importer::for_date(date, Some(account.into()), Some("us-east-1".into()));
        let findings: Vec<asff::Finding> = pairs
            .iter()
            .map(|(e, ip)| {
                asff::finding(
                    &importer,
                    &Detection {
                        generator: ipsight_securityhub::Generator::Fuse,
                        date,
                        entity: e,
                        ip: *ip,
                        risk,
                        max_severity: 5.0,
                        unusual_percentile: Some(99.0),
                        history: Some("none"),
                        explanation: "never seen from this /16",
                        finding_types: &types,
                        finding_ids: &ids,
                        account: Some(account),
                        region: Some("us-east-1"),
                        first_seen: Some("2026-11-30T08:00:00Z"),
                        last_seen: Some("2026-11-30T09:00:00Z"),
                        network: Some(&network),
                    },
                )
            })
            .collect();
        let mut skipped = Skipped::default();
        asff::request_bodies(&findings, &mut skipped)
    };
    let batches = build("2026-12-01", 75.0);
    assert_eq!(batches.len(), 2);
    let out = publish::publish(&client, &batches).await.unwrap();
    assert_eq!(
        (out.requests, out.imported, out.failed),
        (2, 150, 0),
        "{out:?}"
    );

    // The next day's report: same ids, higher risk.
    let out = publish::publish(&client, &build("2026-12-02", 95.0))
        .await
        .unwrap();
    assert_eq!(out.imported, 150);

    let mut found = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .get_findings()
            .max_results(100)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        found.extend(page.findings().to_vec());
        token = page
            .next_token()
            .map(str::to_owned)
            .filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    let ours: Vec<_> = found
        .iter()
        .filter(|f| f.generator_id() == Some("ipsight-fuse"))
        .collect();
    assert_eq!(ours.len(), 150, "re-import duplicated findings");
    let f = ours
        .iter()
        .find(|f| f.id() == Some("123456789012/ipsight/unusual-ip/AIDAEXAMPLE00000/203.0.0.0"))
        .expect("finding by its deterministic id");
    assert_eq!(f.updated_at(), Some("2026-12-02T00:00:00Z"));
    assert_eq!(
        f.severity().and_then(|s| s.label()).map(|l| l.as_str()),
        Some("CRITICAL")
    );
    assert_eq!(f.network().and_then(|n| n.source_ipv4()), Some("203.0.0.0"));
    assert_eq!(
        f.product_fields()
            .and_then(|p| p.get("ipsight/asn"))
            .map(String::as_str),
        Some("64500")
    );
    assert_eq!(f.resources()[0].id(), Some("AIDAEXAMPLE00000"));
    let v6 = ours
        .iter()
        .find(|f| f.resources()[0].id() == Some("AIDAEXAMPLE00149"))
        .expect("the IPv6 pair's finding");
    let net = v6.network().expect("network");
    assert_eq!(
        (net.source_ipv6(), net.source_ipv4()),
        (Some("2a02:1234:ab:cd01::7"), None)
    );
}
