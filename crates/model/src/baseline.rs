//! The per-principal baseline: for every entity, the addresses and prefixes it used, with event
//! counts and — when the input has times — first/last seen day and active days.
//!
//! Levels (most specific first): IPv4 the address (`ip`), its /24 and /16; IPv6 the address (`ip`),
//! its /64, /56, /48 and /32. `::ffff:a.b.c.d` is the IPv4 host. The baseline answers "which is the
//! longest prefix of this address the principal used before", which is both the analyst's lookup and
//! the history half of the combined score ([`crate::combine`]).
//!
//! It is built one observation at a time ([`BaselineBuilder::add`]), so tuple CSV lines (one event, no
//! time) and aggregated pair-file lines (events, first and last seen) feed the same builder, and it is
//! stored as a sidecar file next to the model ([`sidecar_path`]): SageMaker-endpoint users load it
//! without any embedded model.
//!
//! Memory: one entry per (entity, level, prefix), 33 bytes each, struct-of-arrays; entity names in
//! one blob with an open-addressing index built at load (no per-entity allocation).
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::hashing::{fnv1a64, splitmix64};

/// An `<entity, address>` pair as the batch functions take it ([`Baseline::prefetch`],
/// [`crate::Detector::judge_many`], [`crate::Detector::report_all`]): tuples, wire records, the
/// scorer port's pairs — so callers batch without copying their pairs into tuples.
pub trait PairKey {
    fn entity(&self) -> &str;
    fn ip(&self) -> IpAddr;
}

impl<S: AsRef<str>> PairKey for (S, IpAddr) {
    #[inline]
    fn entity(&self) -> &str {
        self.0.as_ref()
    }
    #[inline]
    fn ip(&self) -> IpAddr {
        self.1
    }
}

/// Days since 1970-01-01 (UTC).
pub type Day = u32;

/// "No day known" in the stored arrays.
const NO_DAY: u32 = u32::MAX;

/// Where a pair's address sits in its entity's history: the most specific level the entity used
/// before, `none`, or `new_principal` when the entity is not in the baseline at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum History {
    #[serde(rename = "ip")]
    Ip,
    #[serde(rename = "/24")]
    Prefix24,
    #[serde(rename = "/16")]
    Prefix16,
    #[serde(rename = "/64")]
    Prefix64,
    #[serde(rename = "/56")]
    Prefix56,
    #[serde(rename = "/48")]
    Prefix48,
    #[serde(rename = "/32")]
    Prefix32,
    #[serde(rename = "none")]
    None,
    #[serde(rename = "new_principal")]
    NewPrincipal,
}

impl History {
    pub fn as_str(self) -> &'static str {
        match self {
            History::Ip => "ip",
            History::Prefix24 => "/24",
            History::Prefix16 => "/16",
            History::Prefix64 => "/64",
            History::Prefix56 => "/56",
            History::Prefix48 => "/48",
            History::Prefix32 => "/32",
            History::None => "none",
            History::NewPrincipal => "new_principal",
        }
    }

    /// The analyst's lookup as a score: how long a prefix of this address the principal used
    /// before, on one scale for both families (higher = more normal; `none` and `new_principal` 0).
    pub fn lookup_score(self) -> f32 {
        match self {
            History::Ip => 1.0,
            History::Prefix24 | History::Prefix64 => 0.75,
            History::Prefix56 => 0.625,
            History::Prefix16 | History::Prefix48 => 0.5,
            History::Prefix32 => 0.25,
            History::None | History::NewPrincipal => 0.0,
        }
    }
}

impl std::fmt::Display for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One level of an address family: its code in the stored arrays, prefix length and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub code: u8,
    pub bits: u8,
    pub history: History,
}

/// IPv4 levels, most specific first.
pub const V4_LEVELS: [Level; 3] = [
    Level {
        code: 0,
        bits: 32,
        history: History::Ip,
    },
    Level {
        code: 1,
        bits: 24,
        history: History::Prefix24,
    },
    Level {
        code: 2,
        bits: 16,
        history: History::Prefix16,
    },
];

/// IPv6 levels, most specific first.
pub const V6_LEVELS: [Level; 5] = [
    Level {
        code: 3,
        bits: 128,
        history: History::Ip,
    },
    Level {
        code: 4,
        bits: 64,
        history: History::Prefix64,
    },
    Level {
        code: 5,
        bits: 56,
        history: History::Prefix56,
    },
    Level {
        code: 6,
        bits: 48,
        history: History::Prefix48,
    },
    Level {
        code: 7,
        bits: 32,
        history: History::Prefix32,
    },
];

/// Number of level codes (IPv4 and IPv6 together).
pub const LEVEL_CODES: usize = 8;

/// Most levels of one family (IPv6).
pub const MAX_LEVELS: usize = 5;

/// The family's levels for an address (IPv4-mapped IPv6 is IPv4).
pub fn levels_of(ip: IpAddr) -> &'static [Level] {
    match ip.to_canonical() {
        IpAddr::V4(_) => &V4_LEVELS,
        IpAddr::V6(_) => &V6_LEVELS,
    }
}

/// The 64-bit keys of an address at each of its family's levels. IPv4 prefixes are the masked
/// address; IPv6 prefixes up to /64 are the masked top half; the whole IPv6 address is folded into
/// 64 bits by a hash (a false match needs a 64-bit collision within one entity's own addresses).
fn level_keys(ip: IpAddr) -> (&'static [Level], [u64; MAX_LEVELS]) {
    let mut keys = [0u64; MAX_LEVELS];
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let a = u32::from(v4);
            for (k, l) in keys.iter_mut().zip(&V4_LEVELS) {
                *k = (a & (u32::MAX << (32 - l.bits as u32))) as u64;
            }
            (&V4_LEVELS, keys)
        }
        IpAddr::V6(v6) => {
            let a = u128::from(v6);
            let hi = (a >> 64) as u64;
            keys[0] = splitmix64(hi ^ splitmix64(a as u64));
            for (k, l) in keys.iter_mut().zip(&V6_LEVELS).skip(1) {
                *k = hi & (u64::MAX << (64 - l.bits as u32));
            }
            (&V6_LEVELS, keys)
        }
    }
}

/// The key of the entities-per-network table ([`Baseline::build_address_users`]) for the entries
/// it counts — the IPv4 address, the IPv6 /64 and /32 — and `None` for the other levels. IPv6
/// keys are hashed with a per-level tag, so they never meet an IPv4 address (a key below 2^32).
#[inline]
fn users_key(code: u8, key: u64) -> Option<u64> {
    match code {
        c if c == V4_LEVELS[0].code => Some(key),
        c if c == V6_LEVELS[1].code => Some(splitmix64(key ^ 0x6464_6464_6464_6464)),
        c if c == V6_LEVELS[4].code => Some(splitmix64(key ^ 0x3232_3232_3232_3232)),
        _ => None,
    }
}

/// The table keys of an address's "others" unit and (IPv6) its /32.
#[inline]
fn unit_keys(levels: &[Level], keys: &[u64; MAX_LEVELS]) -> (u64, Option<u64>) {
    if levels[0].code == V6_LEVELS[0].code {
        (
            users_key(V6_LEVELS[1].code, keys[1]).expect("a counted level"),
            users_key(V6_LEVELS[4].code, keys[4]),
        )
    } else {
        (keys[0], None)
    }
}

/// What the baseline knows about one (entity, level, prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub first_seen: Option<Day>,
    pub last_seen: Option<Day>,
    /// Distinct days on which an observation started or ended: exact for per-event input, a lower
    /// bound for aggregated pair-file lines (only their first and last days are known). 0 without times.
    pub active_days: u32,
}

/// The history of one pair: whether the entity is known and its stats at each level of the
/// address's family (most specific first).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lookup {
    pub known_entity: bool,
    pub levels: &'static [Level],
    pub stats: [Option<Stats>; MAX_LEVELS],
    /// How many *other* entities used this exact address — for IPv6 this /64, the unit a home or
    /// subnet holds while interface ids rotate daily (for a new principal: how many entities).
    pub others: u32,
    /// IPv6: how many *other* entities used this address's /32 (its ISP or cloud); 0 for IPv4,
    /// whose embedding has exact /8 and /16 rows for what the organisation uses.
    pub network_others: u32,
    /// The entity's breadth: distinct networks it used at its family's widest level (/16, IPv6 /32).
    pub networks: u32,
}

impl Lookup {
    /// Whether the entity used the unit [`Lookup::others`] counts: the exact IPv4 address, the
    /// IPv6 /64.
    #[inline]
    pub fn used_unit(&self) -> bool {
        self.stats[usize::from(self.levels[0].code == V6_LEVELS[0].code)].is_some()
    }

    /// The most specific level the entity used before, `none` or `new_principal`.
    pub fn history(&self) -> History {
        self.best().map_or(
            if self.known_entity {
                History::None
            } else {
                History::NewPrincipal
            },
            |(l, _)| l.history,
        )
    }

    /// The most specific matched level and its stats.
    pub fn best(&self) -> Option<(Level, Stats)> {
        self.levels
            .iter()
            .zip(&self.stats)
            .find_map(|(l, s)| s.map(|s| (*l, s)))
    }

    /// The widest level of the family (`/16`, IPv6 `/32`): the one named in "never seen from this …".
    pub fn widest(&self) -> Level {
        *self.levels.last().expect("every family has levels")
    }
}

/// A prefix the entity used, for the "why" ("nearest known prefixes").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nearest {
    pub prefix: String,
    pub events: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

/// `10.1.0.0/24 (12 events, last 2026-11-07)`: how every "why" names a known prefix.
impl std::fmt::Display for Nearest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.events == 1 { "" } else { "s" };
        write!(f, "{} ({} event{s}", self.prefix, self.events)?;
        if let Some(d) = &self.last_seen {
            write!(f, ", last {d}")?;
        }
        f.write_str(")")
    }
}

#[derive(Debug, Clone, Default)]
struct Acc {
    events: u64,
    first: u32,
    last: u32,
    days: Vec<u32>,
}

/// Builds a [`Baseline`] one observation at a time.
#[derive(Debug, Clone, Default)]
pub struct BaselineBuilder {
    index: HashMap<String, u32>,
    names: Vec<String>,
    entries: HashMap<(u32, u8, u64), Acc>,
    observations: u64,
    events: u64,
    has_times: bool,
    first_day: u32,
    last_day: u32,
}

impl BaselineBuilder {
    pub fn new() -> Self {
        Self {
            first_day: NO_DAY,
            last_day: 0,
            ..Self::default()
        }
    }

    /// Adds one observation: `entity` used `ip` for `events` events, between `first_seen` and
    /// `last_seen` when the input has times (one of them alone counts as both). A tuple CSV line is
    /// `add(e, ip, 1, None, None)`.
    pub fn add(
        &mut self,
        entity: &str,
        ip: IpAddr,
        events: u64,
        first_seen: Option<Day>,
        last_seen: Option<Day>,
    ) {
        let e = match self.index.get(entity) {
            Some(&i) => i,
            None => {
                let i = self.names.len() as u32;
                self.index.insert(entity.to_owned(), i);
                self.names.push(entity.to_owned());
                i
            }
        };
        let span = match (first_seen, last_seen) {
            (Some(a), Some(b)) => Some((a.min(b), a.max(b))),
            (Some(a), None) | (None, Some(a)) => Some((a, a)),
            (None, None) => None,
        };
        self.observations += 1;
        self.events += events;
        if let Some((a, b)) = span {
            self.has_times = true;
            self.first_day = self.first_day.min(a);
            self.last_day = self.last_day.max(b);
        }
        let (levels, keys) = level_keys(ip);
        for (l, &k) in levels.iter().zip(&keys) {
            let acc = self.entries.entry((e, l.code, k)).or_insert(Acc {
                first: NO_DAY,
                last: NO_DAY,
                ..Acc::default()
            });
            acc.events += events;
            if let Some((a, b)) = span {
                acc.first = acc.first.min(a);
                acc.last = if acc.last == NO_DAY {
                    b
                } else {
                    acc.last.max(b)
                };
                // Consecutive duplicates are the common case (logs in time order): skip them here,
                // the rest are removed when building.
                for d in [a, b] {
                    if acc.days.last() != Some(&d) {
                        acc.days.push(d);
                    }
                }
            }
        }
    }

    pub fn entities(&self) -> usize {
        self.names.len()
    }

    /// The baseline as observed so far (the builder stays usable: the trainer snapshots the older
    /// part, then adds the held-back recent pairs).
    pub fn build(&self, entity_definition: &str) -> Baseline {
        let mut order: Vec<u32> = (0..self.names.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.names[a as usize].cmp(&self.names[b as usize]));
        let mut rank = vec![0u32; order.len()];
        for (r, &e) in order.iter().enumerate() {
            rank[e as usize] = r as u32;
        }
        let mut keys: Vec<(u32, u8, u64)> = self
            .entries
            .keys()
            .map(|&(e, c, k)| (rank[e as usize], c, k))
            .collect();
        keys.sort_unstable();
        let m = keys.len();
        let mut b = Baseline {
            entity_definition: entity_definition.to_owned(),
            has_times: self.has_times,
            first_day: (self.first_day != NO_DAY).then_some(self.first_day),
            last_day: self.has_times.then_some(self.last_day),
            observations: self.observations,
            events: self.events,
            names: Vec::new(),
            name_ends: Vec::with_capacity(order.len()),
            entry_ends: Vec::with_capacity(order.len()),
            codes: Vec::with_capacity(m),
            keys: Vec::with_capacity(m),
            counts: Vec::with_capacity(m),
            first: Vec::with_capacity(m),
            last: Vec::with_capacity(m),
            days: Vec::with_capacity(m),
            address_keys: Vec::new(),
            address_entities: Vec::new(),
            slots: Vec::new(),
        };
        for &e in &order {
            b.names.extend_from_slice(self.names[e as usize].as_bytes());
            b.name_ends.push(b.names.len() as u64);
        }
        let mut next = 0usize;
        for r in 0..order.len() as u32 {
            while next < m && keys[next].0 == r {
                let (_, c, k) = keys[next];
                let acc = &self.entries[&(order[r as usize], c, k)];
                let mut days = acc.days.clone();
                days.sort_unstable();
                days.dedup();
                b.codes.push(c);
                b.keys.push(k);
                b.counts.push(acc.events);
                b.first.push(acc.first);
                b.last.push(acc.last);
                b.days.push(days.len() as u32);
                next += 1;
            }
            b.entry_ends.push(next as u64);
        }
        b.build_index();
        b.build_address_users();
        b
    }
}

/// The per-entity history, ready to look pairs up. Build with [`BaselineBuilder`], store with
/// [`crate::sidecar`].
#[derive(Clone, PartialEq)]
pub struct Baseline {
    pub(crate) entity_definition: String,
    pub(crate) has_times: bool,
    pub(crate) first_day: Option<Day>,
    pub(crate) last_day: Option<Day>,
    pub(crate) observations: u64,
    pub(crate) events: u64,
    /// Entity names, sorted, concatenated; `name_ends[i]` is the end of name i.
    pub(crate) names: Vec<u8>,
    pub(crate) name_ends: Vec<u64>,
    /// Entries of entity i are `entry_ends[i-1]..entry_ends[i]`, sorted by (code, key).
    pub(crate) entry_ends: Vec<u64>,
    pub(crate) codes: Vec<u8>,
    pub(crate) keys: Vec<u64>,
    pub(crate) counts: Vec<u64>,
    pub(crate) first: Vec<u32>,
    pub(crate) last: Vec<u32>,
    pub(crate) days: Vec<u32>,
    /// Every exact address any entity used (IPv4 and IPv6 address-level keys) and how many entities
    /// used it, as a hash table (count 0 = empty slot): "an address other principals use" for the
    /// combined score and the why. Rebuilt at load from the entries, not stored.
    pub(crate) address_keys: Vec<u64>,
    pub(crate) address_entities: Vec<u32>,
    /// Open-addressing index over the names (u32::MAX = empty), power-of-two length.
    pub(crate) slots: Vec<u32>,
}

impl std::fmt::Debug for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baseline")
            .field("entity_definition", &self.entity_definition)
            .field("entities", &self.entities())
            .field("entries", &self.codes.len())
            .field("observations", &self.observations)
            .field("has_times", &self.has_times)
            .finish_non_exhaustive()
    }
}

impl Baseline {
    /// The entity definition the baseline was built for (`principal`, …, as the model records it).
    pub fn entity_definition(&self) -> &str {
        &self.entity_definition
    }
    pub fn entities(&self) -> usize {
        self.name_ends.len()
    }
    /// Stored (entity, level, prefix) entries.
    pub fn entries(&self) -> usize {
        self.codes.len()
    }
    pub fn observations(&self) -> u64 {
        self.observations
    }
    pub fn events(&self) -> u64 {
        self.events
    }
    pub fn has_times(&self) -> bool {
        self.has_times
    }
    /// The last day any observation covers (None without times).
    pub fn last_day(&self) -> Option<Day> {
        self.last_day
    }
    pub fn first_day(&self) -> Option<Day> {
        self.first_day
    }

    fn name(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.name_ends[i - 1] as usize
        };
        &self.names[start..self.name_ends[i] as usize]
    }

    fn entry_range(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 {
            0
        } else {
            self.entry_ends[i - 1] as usize
        };
        start..self.entry_ends[i] as usize
    }

    pub(crate) fn build_index(&mut self) {
        let n = self.entities();
        let cap = (n * 2).max(2).next_power_of_two();
        let mut slots = vec![u32::MAX; cap];
        let mask = cap - 1;
        for i in 0..n {
            let mut s = fnv1a64(self.name(i)) as usize & mask;
            while slots[s] != u32::MAX {
                s = (s + 1) & mask;
            }
            slots[s] = i as u32;
        }
        self.slots = slots;
    }

    /// Counts, per exact IPv4 address, IPv6 /64 and IPv6 /32, the entities that used it (from their
    /// entries; see [`users_key`]), in an open-addressing table: a sorted array's binary search cost
    /// a cache miss per step at 10^6 addresses and halved scoring throughput.
    pub(crate) fn build_address_users(&mut self) {
        let n = self
            .codes
            .iter()
            .filter(|&&c| users_key(c, 0).is_some())
            .count();
        let cap = (n * 2).max(2).next_power_of_two();
        self.address_keys = vec![0; cap];
        self.address_entities = vec![0; cap];
        let mask = cap - 1;
        for (&c, &k) in self.codes.iter().zip(&self.keys) {
            let Some(k) = users_key(c, k) else {
                continue;
            };
            let mut i = splitmix64(k) as usize & mask;
            while self.address_entities[i] != 0 && self.address_keys[i] != k {
                i = (i + 1) & mask;
            }
            self.address_keys[i] = k;
            self.address_entities[i] += 1;
        }
    }

    /// How many entities used the network with this [`users_key`].
    #[inline]
    fn address_users(&self, key: u64) -> u32 {
        let mask = self.address_keys.len() - 1;
        let mut i = splitmix64(key) as usize & mask;
        loop {
            match self.address_entities[i] {
                0 => return 0,
                n if self.address_keys[i] == key => return n,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// The entity's index, or None for a principal the baseline never saw.
    fn entity_index(&self, entity: &str) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut s = fnv1a64(entity.as_bytes()) as usize & mask;
        loop {
            let i = self.slots[s];
            if i == u32::MAX {
                return None;
            }
            if self.name(i as usize) == entity.as_bytes() {
                return Some(i as usize);
            }
            s = (s + 1) & mask;
        }
    }

    pub fn contains_entity(&self, entity: &str) -> bool {
        self.entity_index(entity).is_some()
    }

    /// The first day the baseline saw the entity (the earliest over its entries); `None` for an
    /// entity it never saw, or one seen without times.
    pub fn entity_first_seen(&self, entity: &str) -> Option<Day> {
        let i = self.entity_index(entity)?;
        self.entry_range(i)
            .map(|j| self.first[j])
            .filter(|&d| d != NO_DAY)
            .min()
    }

    /// Every prefix the entity used (IPv4 /24, IPv6 /64), as the network's first address: what
    /// network history places with the IP databases.
    pub fn entity_prefixes(&self, entity: &str) -> Vec<IpAddr> {
        let probes = [
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        ];
        probes
            .iter()
            .flat_map(|&p| self.nearest(entity, p, usize::MAX))
            .filter_map(|n| n.prefix.split('/').next()?.parse().ok())
            .collect()
    }

    fn stats_at(&self, j: usize) -> Stats {
        let day = |d: u32| (d != NO_DAY).then_some(d);
        Stats {
            events: self.counts[j],
            first_seen: day(self.first[j]),
            last_seen: day(self.last[j]),
            active_days: self.days[j],
        }
    }

    /// The pair's history at every level of its address family. Allocation-free (the scoring hot path).
    pub fn lookup(&self, entity: &str, ip: IpAddr) -> Lookup {
        let (levels, keys) = level_keys(ip);
        let (unit, net) = unit_keys(levels, &keys);
        let users = self.address_users(unit);
        let net_users = net.map_or(0, |k| self.address_users(k));
        let mut out = Lookup {
            known_entity: false,
            levels,
            stats: [None; MAX_LEVELS],
            others: users,
            network_others: net_users,
            networks: 0,
        };
        let Some(i) = self.entity_index(entity) else {
            return out;
        };
        out.known_entity = true;
        let r = self.entry_range(i);
        let (codes, ks) = (&self.codes[r.clone()], &self.keys[r.clone()]);
        for ((l, &k), slot) in levels.iter().zip(&keys).zip(out.stats.iter_mut()) {
            // Entries are sorted by (code, key): binary search on the pair.
            let pos = partition(codes, ks, l.code, k);
            if pos < codes.len() && codes[pos] == l.code && ks[pos] == k {
                *slot = Some(self.stats_at(r.start + pos));
            }
        }
        if out.used_unit() {
            out.others = users.saturating_sub(1);
        }
        if net.is_some() && out.stats[levels.len() - 1].is_some() {
            out.network_others = net_users.saturating_sub(1);
        }
        let widest = levels[levels.len() - 1].code;
        out.networks =
            (partition(codes, ks, widest + 1, 0) - partition(codes, ks, widest, 0)) as u32;
        out
    }

    /// Warms the cache for the lookups of `pairs`, in three passes over the batch: each pass issues the
    /// loads the next one depends on for every pair before any of them is needed, so a batch's cache
    /// misses overlap instead of queueing one after another (a lookup in a large baseline is a chain
    /// of about a dozen dependent misses: entity slot, name offsets, name, entry range, prefixes and
    /// their stats, the address table). A hint only: results do not depend on it.
    pub fn prefetch<P: PairKey>(&self, pairs: &[P]) {
        const MAX: usize = 32;
        debug_assert!(pairs.len() <= MAX, "prefetch batches of at most {MAX}");
        let pairs = &pairs[..pairs.len().min(MAX)];
        let mask = self.slots.len() - 1;
        let amask = self.address_keys.len() - 1;
        let mut slot = [0usize; MAX];
        for (k, p) in pairs.iter().enumerate() {
            slot[k] = fnv1a64(p.entity().as_bytes()) as usize & mask;
            prefetch(&self.slots[slot[k]]);
            let (levels, keys) = level_keys(p.ip());
            let a = splitmix64(unit_keys(levels, &keys).0) as usize & amask;
            prefetch(&self.address_keys[a]);
            prefetch(&self.address_entities[a]);
        }
        let mut index = [u32::MAX; MAX];
        for k in 0..pairs.len() {
            let i = self.slots[slot[k]];
            index[k] = i;
            if i != u32::MAX {
                let i = i as usize;
                prefetch(&self.name_ends[i.saturating_sub(1)]);
                prefetch(&self.entry_ends[i.saturating_sub(1)]);
            }
        }
        for &i in index.iter().take(pairs.len()) {
            if i == u32::MAX {
                continue;
            }
            let i = i as usize;
            let start = if i == 0 {
                0
            } else {
                self.name_ends[i - 1] as usize
            };
            prefetch(self.names.as_ptr().wrapping_add(start));
            let r = self.entry_range(i);
            if r.start < r.end {
                prefetch(&self.codes[r.start]);
                prefetch(&self.keys[r.start]);
                prefetch(&self.counts[r.start]);
                prefetch(&self.first[r.start]);
                prefetch(&self.last[r.start]);
                prefetch(&self.days[r.start]);
            }
        }
    }

    /// Up to `k` prefixes the entity used nearest to `ip` (same family, at /24 for IPv4 and /64 for
    /// IPv6; nearest = longest common prefix, then most events).
    pub fn nearest(&self, entity: &str, ip: IpAddr, k: usize) -> Vec<Nearest> {
        let Some(i) = self.entity_index(entity) else {
            return Vec::new();
        };
        let (levels, keys) = level_keys(ip);
        let net = levels[1];
        let mine = keys[1];
        let mut found: Vec<(u32, u64, usize)> = self
            .entry_range(i)
            .filter(|&j| self.codes[j] == net.code)
            .map(|j| ((self.keys[j] ^ mine).leading_zeros(), self.counts[j], j))
            .collect();
        found.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        found
            .into_iter()
            .take(k)
            .map(|(_, events, j)| Nearest {
                prefix: prefix_text(net, self.keys[j]),
                events,
                last_seen: self.stats_at(j).last_seen.map(day_text),
            })
            .collect()
    }

    /// The history half of the "why": one clause, e.g. "seen from this /24 on 9 days, last
    /// 2026-11-07 (31 events)" or "never seen from this /16".
    pub fn describe(&self, lookup: &Lookup) -> String {
        let Some((level, s)) = lookup.best() else {
            return if lookup.known_entity {
                let mut s = format!("never seen from this {}", level_noun(lookup.widest()));
                if lookup.others > 0 {
                    let unit = if lookup.levels[0].code == V6_LEVELS[0].code {
                        "a /64"
                    } else {
                        "an address"
                    };
                    let _ = write!(
                        s,
                        ", {unit} {} other principal{} used",
                        lookup.others,
                        if lookup.others == 1 { "" } else { "s" }
                    );
                }
                s
            } else {
                "a new principal: not in the baseline, so it has no history to compare with".into()
            };
        };
        let mut out = format!("seen from this {}", level_noun(level));
        if s.active_days > 0 {
            let _ = write!(
                out,
                " on {} day{}",
                s.active_days,
                if s.active_days == 1 { "" } else { "s" }
            );
        }
        if let Some(d) = s.last_seen {
            let _ = write!(out, ", last {}", day_text(d));
        }
        let _ = write!(
            out,
            " ({} event{})",
            s.events,
            if s.events == 1 { "" } else { "s" }
        );
        out
    }
}

/// A cache hint for the line holding `p`; never dereferenced, cannot fault.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint with no architectural effect and cannot fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// First index whose (code, key) is not less than (code, key): entries are sorted by both.
#[inline]
fn partition(codes: &[u8], keys: &[u64], code: u8, key: u64) -> usize {
    let (mut lo, mut hi) = (0usize, codes.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if (codes[mid], keys[mid]) < (code, key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

fn level_noun(l: Level) -> String {
    if l.history == History::Ip {
        "address".into()
    } else {
        l.history.as_str().into()
    }
}

/// The prefix a stored key stands for, in CIDR notation.
fn prefix_text(l: Level, key: u64) -> String {
    if l.code < V6_LEVELS[0].code {
        format!("{}/{}", Ipv4Addr::from(key as u32), l.bits)
    } else {
        format!("{}/{}", Ipv6Addr::from((key as u128) << 64), l.bits)
    }
}

/// Days since 1970-01-01 → `YYYY-MM-DD` (proleptic Gregorian; Hinnant's civil-from-days).
pub fn day_text(day: Day) -> String {
    let z = day as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day of a `YYYY-MM-DD…` text (CloudTrail's `eventTime`, `2026-11-07T12:34:56Z`); None when the
/// text does not start with a valid date on or after 1970-01-01.
pub fn parse_day(text: &str) -> Option<Day> {
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as i64)
        })
    };
    let (y, m, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // Reject dates like 02-31 that the arithmetic would roll over.
    if day_text(u32::try_from(days).ok()?) != text[..10] {
        return None;
    }
    u32::try_from(days).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn days_round_trip() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2026-11-07T12:00:00Z"), Some(20_764));
        assert_eq!(day_text(20_764), "2026-11-07");
        assert_eq!(parse_day("2026-02-31"), None);
        assert_eq!(parse_day("yesterday"), None);
        for d in [0, 59, 60, 365, 10_000, 20_454, 40_000] {
            assert_eq!(parse_day(&day_text(d)), Some(d));
        }
    }

    #[test]
    fn ipv6_others_count_the_64_and_the_32() {
        let mut b = BaselineBuilder::new();
        // Two people's privacy addresses in one home /64, a third on the same ISP elsewhere.
        b.add("alice", ip("2a02:1234:ab:cd01::7"), 3, None, None);
        b.add("bob", ip("2a02:1234:ab:cd01::99"), 2, None, None);
        b.add("carol", ip("2a02:1234:ff:1::1"), 1, None, None);
        b.add("carol", ip("203.0.113.7"), 1, None, None);
        b.add("dave", ip("203.0.113.7"), 1, None, None);
        let base = b.build("principal");
        // Alice's own /64 with a new interface id: she used the unit, one other did.
        let own = base.lookup("alice", ip("2a02:1234:ab:cd01::1234"));
        assert!(own.used_unit());
        assert_eq!((own.others, own.network_others), (1, 2));
        // Carol at that /64: never used it, two others did; the /32 she used too.
        let theirs = base.lookup("carol", ip("2a02:1234:ab:cd01::5"));
        assert!(!theirs.used_unit());
        assert_eq!((theirs.others, theirs.network_others), (2, 2));
        // Nobody's /32.
        let far = base.lookup("carol", ip("2a03:1::1"));
        assert_eq!((far.others, far.network_others), (0, 0));
        let dave = base.lookup("dave", ip("2a02:1234:ab:cd01::5"));
        assert_eq!(
            base.describe(&dave),
            "never seen from this /32, a /64 2 other principals used"
        );
        // IPv4 as before: the exact address.
        let v4 = base.lookup("carol", ip("203.0.113.7"));
        assert!(v4.used_unit());
        assert_eq!((v4.others, v4.network_others), (1, 0));
        assert_eq!(base.lookup("alice", ip("203.0.113.7")).others, 2);
    }

    #[test]
    fn levels_and_history() {
        let mut b = BaselineBuilder::new();
        b.add("alice", ip("203.0.113.7"), 3, Some(100), Some(102));
        b.add("alice", ip("203.0.113.7"), 1, Some(105), None);
        b.add("alice", ip("198.51.100.1"), 1, None, None);
        b.add("bob", ip("2001:db8:1:2::5"), 2, None, None);
        let base = b.build("principal");
        assert_eq!(base.entities(), 2);
        let h = |e: &str, a: &str| base.lookup(e, ip(a)).history();
        assert_eq!(h("alice", "203.0.113.7"), History::Ip);
        assert_eq!(h("alice", "::ffff:203.0.113.7"), History::Ip);
        assert_eq!(h("alice", "203.0.113.8"), History::Prefix24);
        assert_eq!(h("alice", "203.0.5.8"), History::Prefix16);
        assert_eq!(h("alice", "192.0.2.1"), History::None);
        assert_eq!(h("alice", "2001:db8::1"), History::None);
        assert_eq!(h("carol", "203.0.113.7"), History::NewPrincipal);
        assert_eq!(h("bob", "2001:db8:1:2::5"), History::Ip);
        assert_eq!(h("bob", "2001:db8:1:2::6"), History::Prefix64);
        assert_eq!(h("bob", "2001:db8:1:3::6"), History::Prefix56);
        assert_eq!(h("bob", "2001:db8:1:100::6"), History::Prefix48);
        assert_eq!(h("bob", "2001:db8:2::6"), History::Prefix32);
        assert_eq!(h("bob", "2001:db9::6"), History::None);

        let l = base.lookup("alice", ip("203.0.113.9"));
        let (_, s) = l.best().unwrap();
        assert_eq!(
            s,
            Stats {
                events: 4,
                first_seen: Some(100),
                last_seen: Some(105),
                active_days: 3
            }
        );
        assert_eq!(
            base.describe(&l),
            "seen from this /24 on 3 days, last 1970-04-16 (4 events)"
        );
        assert_eq!(
            base.describe(&base.lookup("alice", ip("192.0.2.1"))),
            "never seen from this /16"
        );
        let n = base.nearest("alice", ip("203.0.114.1"), 3);
        assert_eq!(n[0].prefix, "203.0.113.0/24");
        assert_eq!(n[0].events, 4);
        assert_eq!(n[1].prefix, "198.51.100.0/24");
        assert_eq!(
            base.nearest("bob", ip("2001:db8:1:3::1"), 3)[0].prefix,
            "2001:db8:1:2::/64"
        );
    }
}
