//! The network-enrichment options `score` and `fuse` share.
use std::path::PathBuf;

use ipsight_enrich::Enricher;

#[derive(clap::Args, Debug, Default)]
pub struct NetworkArgs {
    /// MaxMind-format database (GeoLite2 / DB-IP Lite / IPinfo Lite ASN, country or city layout);
    /// repeat for several. Adds `network` (asn, as_org, country, ...) to each row; the first
    /// database that knows a field wins.
    #[arg(long = "ip-db", value_name = "FILE")]
    pub ip_db: Vec<PathBuf>,
    /// AWS's ip-ranges.json (download https://ip-ranges.amazonaws.com/ip-ranges.json; refresh it
    /// weekly): adds `network.aws` (prefix, region, services) for AWS addresses.
    #[arg(long, value_name = "FILE")]
    pub aws_ranges: Option<PathBuf>,
}

impl NetworkArgs {
    pub fn is_set(&self) -> bool {
        !self.ip_db.is_empty() || self.aws_ranges.is_some()
    }

    /// `None` when no database is given: rows carry no `network` at all.
    pub fn enricher(&self) -> anyhow::Result<Option<Enricher>> {
        let e = Enricher::open(&self.ip_db, self.aws_ranges.as_deref())?;
        Ok((!e.is_empty()).then_some(e))
    }
}
