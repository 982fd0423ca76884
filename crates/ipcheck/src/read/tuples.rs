//! Tuple CSVs (`entity,ip`, plain or gzipped), read by the model crate's tuple reader: the file
//! that trains a model is read the same way when it is scored.
use std::io::{BufRead, BufReader};

use ipsight_formats::limit::{is_cap_error, maybe_gunzip, CappedReader};
use ipsight_model::tuples::{for_each_tuple, Malformed, TupleError};

use super::ReadContext;
use crate::pairs::{Collected, PairKey};

pub(super) fn read(input: impl BufRead, ctx: &ReadContext) -> Result<Collected, String> {
    let cap = ctx.cap;
    let reader = BufReader::new(CappedReader::new(
        maybe_gunzip(input).map_err(|e| format!("reading: {e}"))?,
        cap,
    ));
    let mut c = Collected::default();
    let mut over = None;
    let stats = for_each_tuple(reader, Malformed::Fail, |entity, ip| {
        if over.is_none() {
            let key = PairKey {
                entity: entity.to_owned(),
                ip,
                class_uid: None,
                finding_id: None,
            };
            if let Err(e) = c.add(key, ctx.max, |_| {}) {
                over = Some(e);
            }
        }
    })
    .map_err(|e| match e {
        TupleError::Io(e) if is_cap_error(&e) => {
            format!("uncompressed size exceeds the cap of {cap} bytes")
        }
        e => e.to_string(),
    })?;
    if let Some(e) = over {
        return Err(ctx.too_many(e));
    }
    c.events = stats.pairs;
    Ok(c)
}
