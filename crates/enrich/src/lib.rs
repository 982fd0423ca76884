//! Network context for an address: who announces it (ASN, AS organisation), where (country, city),
//! whether it is AWS's own (service, region) and whether it is a hosting, VPN, proxy or Tor address.
//!
//! Sources, in the order they fill a [`Network`] (the first to know a field wins):
//! 1. what GuardDuty already said about the address (`remoteIpDetails`), when the caller has it;
//! 2. MaxMind-format databases the user supplies, in the order given ([`IpDb`]);
//! 3. AWS's `ip-ranges.json` for the `aws` field ([`AwsRanges`]).
//!
//! Values are kept exactly as the databases hold them: `asn` is
//! `autonomous_system_number`, `as_org` is `autonomous_system_organization`, `country` is
//! `country.iso_code` (IPinfo Lite's `AS15169` / `as_name` / `country_code` fill the same fields).
//! Pure and synchronous: the Lambdas and the CLI load the bytes, this crate looks them up.
pub mod aws_ranges;
pub mod history;
pub mod mmdb;

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use aws_ranges::{AwsPlace, AwsRanges};
pub use history::{first_time_sentence, network_history, KnownNetworks, NetworkHistory};
pub use mmdb::IpDb;

#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("IP database {name}: cannot read: {why}")]
    Read { name: String, why: String },
    #[error("IP database {name}: not a MaxMind-format database: {why}")]
    Database { name: String, why: String },
    #[error("IP database {name}: looking up {ip}: {why}")]
    Lookup {
        name: String,
        ip: IpAddr,
        why: String,
    },
    #[error("AWS ip-ranges {name}: {why}")]
    Ranges { name: String, why: String },
}

/// What is known about an address's network. `asn`, `as_org` and `country` are always written
/// (`null` when unknown) so consumers can rely on the keys; the rest only when known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub asn: Option<u32>,
    pub as_org: Option<String>,
    /// ISO 3166-1 alpha-2 code.
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsPlace>,
    /// `anonymous`, `vpn`, `proxy`, `residential_proxy`, `tor`, `relay`, `hosting`, as the
    /// databases flag the address (AWS EC2 addresses are `hosting` too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Which sources contributed (`guardduty`, database names, `aws-ip-ranges`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

impl Network {
    pub fn add_flag(&mut self, flag: &str) {
        if !self.flags.iter().any(|f| f == flag) {
            self.flags.push(flag.to_owned());
        }
    }

    /// Nothing is known.
    pub fn is_empty(&self) -> bool {
        self.asn.is_none()
            && self.as_org.is_none()
            && self.country.is_none()
            && self.city.is_none()
            && self.aws.is_none()
            && self.flags.is_empty()
    }
}

/// The databases and ranges, loaded once (CLI start, Lambda cold start) and shared by lookups.
#[derive(Debug, Default)]
pub struct Enricher {
    dbs: Vec<IpDb>,
    aws: Option<AwsRanges>,
}

impl Enricher {
    pub fn new(dbs: Vec<IpDb>, aws: Option<AwsRanges>) -> Self {
        Self { dbs, aws }
    }

    /// Open database files (`--ip-db`, in the order given) and an optional `ip-ranges.json`.
    pub fn open(db_paths: &[impl AsRef<Path>], aws: Option<&Path>) -> Result<Self, EnrichError> {
        let dbs = db_paths
            .iter()
            .map(|p| IpDb::open(p.as_ref()))
            .collect::<Result<_, _>>()?;
        let aws = aws
            .map(|p| {
                let name = p.display().to_string();
                let bytes = std::fs::read(p).map_err(|e| EnrichError::Ranges {
                    name: name.clone(),
                    why: e.to_string(),
                })?;
                AwsRanges::parse(name, &bytes)
            })
            .transpose()?;
        Ok(Self { dbs, aws })
    }

    /// No database and no ranges: enrichment is off.
    pub fn is_empty(&self) -> bool {
        self.dbs.is_empty() && self.aws.is_none()
    }

    pub fn databases(&self) -> &[IpDb] {
        &self.dbs
    }

    pub fn aws_ranges(&self) -> Option<&AwsRanges> {
        self.aws.as_ref()
    }

    /// The network of `ip`, starting from what the caller already knows (GuardDuty's
    /// `remoteIpDetails`, or [`Network::default`]). A database whose record for the address
    /// cannot be decoded fails the lookup, naming the database and the address.
    pub fn lookup(&self, ip: IpAddr, known: Network) -> Result<Network, EnrichError> {
        let mut net = known;
        for db in &self.dbs {
            if db.fill(ip, &mut net)? {
                net.sources.push(db.database_type().to_owned());
            }
        }
        if let Some(place) = self.aws.as_ref().and_then(|r| r.lookup(ip)) {
            if place.services.iter().any(|s| s == "EC2") {
                net.add_flag("hosting");
            }
            net.aws = Some(place);
            net.sources.push("aws-ip-ranges".to_owned());
        }
        Ok(net)
    }
}
