//! CloudTrail log objects, with the preparer's entity and IP rules.
use std::io::BufRead;

use ipsight_formats::cloudtrail::{for_each_record, record_tuple_as};
use ipsight_formats::PrepareOptions;

use super::ReadContext;
use crate::pairs::{Collected, PairKey};

pub(super) fn read(input: impl BufRead, ctx: &ReadContext) -> Result<Collected, String> {
    let entity = ctx.entity;
    let opts = PrepareOptions {
        max_uncompressed_bytes: ctx.cap,
        entity,
        ..PrepareOptions::default()
    };
    let mut c = Collected::default();
    let mut over = None;
    let mut events = 0u64;
    let mut skipped = 0u64;
    for_each_record(input, &opts, |rec| {
        events += 1;
        match record_tuple_as(rec, entity) {
            Ok((entity, ip)) => {
                let account = rec
                    .user_identity
                    .as_ref()
                    .and_then(|u| u.account_id.as_deref())
                    .map(str::to_owned);
                let t = rec.event_time.as_deref().map(str::to_owned);
                let by = rec
                    .user_identity
                    .as_ref()
                    .and_then(|u| u.invoked_by.as_deref());
                let key = PairKey {
                    entity,
                    ip,
                    class_uid: None,
                    finding_id: None,
                };
                if let Err(e) = c.add(key, ctx.max, |s| {
                    s.time(t.as_deref());
                    s.invoked(by);
                    if s.account.is_none() {
                        s.account = account;
                    }
                }) {
                    over = Some(e);
                    return false;
                }
            }
            Err(_) => skipped += 1,
        }
        true
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = over {
        return Err(ctx.too_many(e));
    }
    c.events = events;
    c.skipped = skipped;
    Ok(c)
}
