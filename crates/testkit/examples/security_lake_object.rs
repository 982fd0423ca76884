//! Writes a Security Lake CloudTrail object (OCSF 1.0.0-rc.2 Parquet, source version 1) of our own:
//! `cargo run -p ipsight-testkit --example security_lake_object -- OUT.gz.parquet`.
//! `scripts/local-invoke.sh` uploads it where its Security Lake notification points.
use ipsight_testkit::security_lake::{from_cloudtrail, CLOUDTRAIL_RC2};
use serde_json::json;

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: security_lake_object OUT.gz.parquet");
    let records = [
        json!({"eventTime": "2026-01-06T12:00:00Z", "eventSource": "directconnect.amazonaws.com",
            "eventName": "DescribeDirectConnectGateways", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.61",
            "userAgent": "aws-cli/2.15.0", "userIdentity": {"type": "IAMUser", "principalId": "AIDAOXK2PAZ8WS4AJ47NC",
                "accountId": "111122223333", "userName": "build-bot"}}),
        json!({"eventTime": "2026-01-06T12:00:05Z", "eventSource": "iam.amazonaws.com", "eventName": "ListRoles",
            "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.12", "userIdentity": {"type": "AssumedRole",
                "principalId": "AROA178PNWQPXUPS3B4C2:i-08ec6375474832cd9", "accountId": "111122223333"}}),
    ];
    let events: Vec<_> = records
        .iter()
        .zip([1_767_700_800_000i64, 1_767_700_805_000])
        .map(|(r, ms)| from_cloudtrail(r, ms))
        .collect();
    std::fs::write(&out, ipsight_testkit::ocsf_parquet(CLOUDTRAIL_RC2, &events))
        .unwrap_or_else(|e| panic!("{out}: {e}"));
}
