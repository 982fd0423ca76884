//! The extractor's GuardDuty finding records: pairs with the finding's context.
use std::io::{BufRead, Read};
use std::net::IpAddr;

use ipsight_formats::guardduty::FindingRecord;

use super::ReadContext;
use crate::pairs::{Collected, PairKey};

pub(super) fn read(input: impl BufRead, ctx: &ReadContext) -> Result<Collected, String> {
    let entity = ctx.entity;
    let mut buf = Vec::new();
    input
        .take(16 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| format!("reading: {e}"))?;
    let rec: FindingRecord =
        serde_json::from_slice(&buf).map_err(|e| format!("not a GuardDuty finding record: {e}"))?;
    if rec.entity_kind != entity {
        return Err(format!(
            "the record's entities are {} but ENTITY={entity}: the extractor, ipcheck \
             and the model must use one definition",
            rec.entity_kind
        ));
    }
    let mut c = Collected {
        events: 1,
        ..Collected::default()
    };
    // IPv6 remote addresses (`ipAddressV6`) are scored beside the IPv4 ones.
    let v4 = rec.pairs.iter().map(|p| (&p.entity, IpAddr::V4(p.ip)));
    let v6 = rec.ipv6.iter().map(|p| (&p.entity, IpAddr::V6(p.ip)));
    for (entity, ip) in v4.chain(v6) {
        let key = PairKey {
            entity: entity.clone(),
            ip,
            class_uid: None,
            finding_id: Some(rec.finding_id.clone()),
        };
        c.add(key, ctx.max, |s| {
            s.time(rec.event_first_seen.as_deref());
            s.time(rec.event_last_seen.as_deref());
            s.account = Some(rec.account_id.clone());
            s.region = Some(rec.region.clone());
            s.finding_type = Some(rec.finding_type.clone());
            s.severity = Some(rec.severity);
        })
        .map_err(|e| ctx.too_many(e))?;
    }
    c.skipped = u64::from(rec.pairs.is_empty() && rec.ipv6.is_empty());
    Ok(c)
}
