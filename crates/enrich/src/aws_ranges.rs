//! AWS's published address ranges (`https://ip-ranges.amazonaws.com/ip-ranges.json`), loaded from
//! a file or S3 object the user refreshes. Not compiled in: the ranges change several times a
//! week, and the crate that used to ship them (`aws-ip-ranges`) is deprecated. The loaded file's
//! `syncToken`/`createDate` are kept so a report can say how old its AWS view is.
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::EnrichError;

/// Where in AWS an address is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsPlace {
    /// The most specific published prefix holding the address.
    pub prefix: String,
    /// Its region (`us-east-1`, `GLOBAL`).
    pub region: String,
    /// Every service whose prefixes hold the address (`AMAZON` is the superset), sorted.
    pub services: Vec<String>,
}

/// The published file mixes camelCase (`syncToken`) and snake_case (`ipv6_prefixes`) keys.
#[derive(Deserialize)]
struct File {
    #[serde(rename = "syncToken")]
    sync_token: String,
    #[serde(rename = "createDate")]
    create_date: String,
    prefixes: Vec<V4Entry>,
    #[serde(default)]
    ipv6_prefixes: Vec<V6Entry>,
}

#[derive(Deserialize)]
struct V4Entry {
    ip_prefix: String,
    region: String,
    service: String,
}

#[derive(Deserialize)]
struct V6Entry {
    ipv6_prefix: String,
    region: String,
    service: String,
}

struct Entry {
    region: String,
    service: String,
}

/// Prefixes by length: a lookup masks the address once per distinct length (a few dozen) and asks
/// a hash map, instead of scanning thousands of prefixes.
#[derive(Default)]
struct Index {
    /// Distinct lengths, longest first.
    lengths: Vec<u8>,
    /// `(length, masked network as u128)` → entries (several services share prefixes).
    by_prefix: HashMap<(u8, u128), Vec<u32>>,
}

impl Index {
    fn insert(&mut self, len: u8, net: u128, entry: u32) {
        self.by_prefix.entry((len, net)).or_default().push(entry);
        if !self.lengths.contains(&len) {
            self.lengths.push(len);
            self.lengths.sort_unstable_by(|a, b| b.cmp(a));
        }
    }

    /// Matching `(length, network, entries)`, most specific first.
    fn matches(&self, addr: u128, width: u8) -> impl Iterator<Item = (u8, u128, &[u32])> {
        self.lengths.iter().filter_map(move |&len| {
            let net = mask(addr, len, width);
            self.by_prefix
                .get(&(len, net))
                .map(|e| (len, net, e.as_slice()))
        })
    }
}

fn mask(addr: u128, len: u8, width: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (width - len))
    }
}

pub struct AwsRanges {
    name: String,
    pub sync_token: String,
    pub create_date: String,
    entries: Vec<Entry>,
    v4: Index,
    v6: Index,
}

impl std::fmt::Debug for AwsRanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsRanges")
            .field("name", &self.name)
            .field("create_date", &self.create_date)
            .field("prefixes", &self.entries.len())
            .finish()
    }
}

fn parse_prefix(name: &str, text: &str, v6: bool) -> Result<(u128, u8), EnrichError> {
    let bad = |why: &str| EnrichError::Ranges {
        name: name.to_owned(),
        why: format!("prefix {text:?}: {why}"),
    };
    let (addr, len) = text.split_once('/').ok_or_else(|| bad("no /length"))?;
    let len: u8 = len.parse().map_err(|_| bad("bad length"))?;
    let addr: IpAddr = addr.parse().map_err(|_| bad("bad address"))?;
    let (bits, width) = match addr {
        IpAddr::V4(a) if !v6 => (u32::from(a) as u128, 32),
        IpAddr::V6(a) if v6 => (u128::from(a), 128),
        _ => return Err(bad("wrong address family for its list")),
    };
    if len > width {
        return Err(bad("length longer than the address"));
    }
    Ok((mask(bits, len, width), len))
}

impl AwsRanges {
    /// Parse `ip-ranges.json`. `name` (a path or `s3://` URI) is what errors call it.
    pub fn parse(name: impl Into<String>, json: &[u8]) -> Result<Self, EnrichError> {
        let name = name.into();
        let f: File = serde_json::from_slice(json).map_err(|e| EnrichError::Ranges {
            name: name.clone(),
            why: e.to_string(),
        })?;
        let mut r = AwsRanges {
            name,
            sync_token: f.sync_token,
            create_date: f.create_date,
            entries: Vec::with_capacity(f.prefixes.len() + f.ipv6_prefixes.len()),
            v4: Index::default(),
            v6: Index::default(),
        };
        let v4 = f
            .prefixes
            .into_iter()
            .map(|e| (e.ip_prefix, e.region, e.service, false));
        let v6 = f
            .ipv6_prefixes
            .into_iter()
            .map(|e| (e.ipv6_prefix, e.region, e.service, true));
        for (prefix, region, service, is_v6) in v4.chain(v6) {
            let (net, len) = parse_prefix(&r.name, &prefix, is_v6)?;
            let i = r.entries.len() as u32;
            r.entries.push(Entry { region, service });
            if is_v6 {
                r.v6.insert(len, net, i);
            } else {
                r.v4.insert(len, net, i);
            }
        }
        Ok(r)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of prefixes loaded (IPv4 and IPv6).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<AwsPlace> {
        // `::ffff:a.b.c.d` is the IPv4 host (RFC 5952 text of an IPv4-mapped address).
        let ip = match ip {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (index, addr, width) = match ip {
            IpAddr::V4(a) => (&self.v4, u32::from(a) as u128, 32),
            IpAddr::V6(a) => (&self.v6, u128::from(a), 128),
        };
        let mut services = BTreeSet::new();
        let mut best: Option<(u8, u128, u32)> = None;
        for (len, net, entries) in index.matches(addr, width) {
            best.get_or_insert((len, net, entries[0]));
            for &e in entries {
                services.insert(self.entries[e as usize].service.as_str());
            }
        }
        let (len, net, e) = best?;
        let prefix = match ip {
            IpAddr::V4(_) => format!("{}/{len}", std::net::Ipv4Addr::from(net as u32)),
            IpAddr::V6(_) => format!("{}/{len}", std::net::Ipv6Addr::from(net)),
        };
        Some(AwsPlace {
            prefix,
            region: self.entries[e as usize].region.clone(),
            services: services.into_iter().map(str::to_owned).collect(),
        })
    }
}
