//! OCSF JSON, lines or one document (`*.jsonl[.gz]`, and `*.json[.gz]` under `OCSF_JSON_PREFIX`).
use std::io::BufRead;

use ipsight_formats::ocsf::{read_json, JsonLimits};

use super::ReadContext;
use crate::pairs::Collected;

pub(super) fn read(input: impl BufRead, ctx: &ReadContext) -> Result<Collected, String> {
    let mut c = Collected::default();
    let mut over = None;
    let limits = JsonLimits {
        max_uncompressed_bytes: ctx.cap,
        ..JsonLimits::default()
    };
    let stats = read_json(input, &ctx.mapping, &limits, |p| {
        if over.is_none() {
            if let Err(e) = c.add_ocsf(p, ctx.max) {
                over = Some(e);
            }
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = over {
        return Err(ctx.too_many(e));
    }
    c.events = stats.events;
    c.skipped = stats.events - stats.pairs;
    Ok(c)
}
