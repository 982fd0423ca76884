//! Pair accumulation: the distinct `<entity, ip>` pairs of one object with how often and when they
//! were seen, bounded by `MAX_DISTINCT_PAIRS`.
use std::collections::BTreeMap;
use std::net::IpAddr;

use ipsight_formats::ocsf::{format_time_ms, OcsfPair};

/// Context of a pair that distinguishes it within an object (kept apart in the scores).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PairKey {
    pub(crate) entity: String,
    pub(crate) ip: IpAddr,
    pub(crate) class_uid: Option<u32>,
    pub(crate) finding_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    pub(crate) count: u64,
    pub(crate) first_seen: Option<String>,
    pub(crate) last_seen: Option<String>,
    pub(crate) account: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) finding_type: Option<String>,
    pub(crate) severity: Option<f64>,
    /// CloudTrail `userIdentity.invokedBy` of the pair's events, and whether any event was made
    /// without one (then the principal acted itself, and the pair is not an AWS service caller).
    pub(crate) invoked_by: Option<String>,
    pub(crate) direct: bool,
}

impl Seen {
    pub(crate) fn invoked(&mut self, by: Option<&str>) {
        match by {
            None => self.direct = true,
            Some(b) if self.invoked_by.is_none() => self.invoked_by = Some(b.to_owned()),
            Some(_) => {}
        }
    }

    /// The service behind every event of the pair, if one was.
    pub(crate) fn only_invoked_by(&self) -> Option<&str> {
        (!self.direct)
            .then_some(self.invoked_by.as_deref())
            .flatten()
    }

    pub(crate) fn time(&mut self, t: Option<&str>) {
        if let Some(t) = t {
            if self.first_seen.as_deref().is_none_or(|f| t < f) {
                self.first_seen = Some(t.to_owned());
            }
            if self.last_seen.as_deref().is_none_or(|l| t > l) {
                self.last_seen = Some(t.to_owned());
            }
        }
    }
}

/// The distinct pairs of one object, in a deterministic (sorted) order.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) pairs: BTreeMap<PairKey, Seen>,
    pub(crate) events: u64,
    pub(crate) skipped: u64,
}

#[derive(Debug)]
pub(crate) struct TooManyPairs;

impl Collected {
    pub(crate) fn add(
        &mut self,
        k: PairKey,
        max: usize,
        f: impl FnOnce(&mut Seen),
    ) -> Result<(), TooManyPairs> {
        let len = self.pairs.len();
        match self.pairs.get_mut(&k) {
            Some(s) => {
                s.count += 1;
                f(s);
            }
            None => {
                if len >= max {
                    return Err(TooManyPairs);
                }
                let mut s = Seen {
                    count: 1,
                    ..Seen::default()
                };
                f(&mut s);
                self.pairs.insert(k, s);
            }
        }
        Ok(())
    }

    pub(crate) fn add_ocsf(&mut self, p: OcsfPair, max: usize) -> Result<(), TooManyPairs> {
        let t = p.time_ms.map(format_time_ms);
        self.add(
            PairKey {
                entity: p.entity,
                ip: p.ip,
                class_uid: p.class_uid,
                finding_id: None,
            },
            max,
            |s| {
                s.time(t.as_deref());
                if s.account.is_none() {
                    s.account = p.account;
                }
                if s.region.is_none() {
                    s.region = p.region;
                }
            },
        )
    }
}
