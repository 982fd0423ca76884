//! What ipcheck and fuse both load for triage: the tuning file (`TUNING_URI`) and the network
//! databases (`IP_DB_URIS`). One reader each, so both functions honour them the same way.
use ipsight_core::tuning::Tuning;
use ipsight_enrich::{AwsRanges, Enricher, IpDb};

use crate::config::{parse_s3_uri, ConfigError, Env};
use ipsight_ports::{read_small, ObjectLister, ObjectRef, ObjectStore};

/// A tuning file is a few KB; this bounds a wrong object, not real use.
const MAX_TUNING_BYTES: u64 = 1 << 20;
/// A GeoLite2-City database is ~60 MB; anything far larger is not an IP database.
const MAX_DATABASE_BYTES: u64 = 512 << 20;

/// Read and validate the tuning file. Its errors name the object, the entry and the reason; a
/// missing object is an error too (a tuning file that silently stopped applying would un-silence
/// every known egress at once).
pub async fn load_tuning(store: &impl ObjectStore, obj: &ObjectRef) -> anyhow::Result<Tuning> {
    let body = read_small(store, obj, MAX_TUNING_BYTES).await?;
    let text = String::from_utf8(body)
        .map_err(|_| anyhow::anyhow!("tuning file {obj}: not UTF-8 text"))?;
    Ok(ipsight_formats::tuning::parse(&obj.to_string(), &text)?)
}

/// `SECURITY_HUB=true` (fuse's rows, ipcheck's alerts): publish findings as `AWS_ACCOUNT_ID` (the template sets it) in
/// `AWS_REGION` (Lambda sets it).
pub fn security_hub_target(
    env: &Env<impl Fn(&str) -> Option<String>>,
) -> Result<Option<(String, String)>, ConfigError> {
    if !env
        .get("SECURITY_HUB")
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    {
        return Ok(None);
    }
    Ok(Some((
        env.required("AWS_ACCOUNT_ID")?,
        env.required("AWS_REGION")?,
    )))
}

/// `IP_DB_URIS`: comma-separated `s3://bucket/key` objects or `s3://bucket/prefix/` prefixes.
/// Under a prefix, every `*.mmdb` (in key order) is a database and `ip-ranges.json` is AWS's
/// address ranges; a named object is whichever its name says.
pub fn ip_db_uris(
    env: &Env<impl Fn(&str) -> Option<String>>,
) -> Result<Vec<ObjectRef>, ConfigError> {
    let Some(v) = env.get("IP_DB_URIS") else {
        return Ok(Vec::new());
    };
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|u| match parse_s3_uri(u) {
            Some((b, k)) if !b.is_empty() => Ok(ObjectRef::new(b, k)),
            _ => Err(ConfigError::invalid(
                "IP_DB_URIS",
                u.to_owned(),
                "expected comma-separated s3://bucket/key or s3://bucket/prefix/",
            )),
        })
        .collect()
}

fn is_database(key: &str) -> bool {
    key.ends_with(".mmdb")
}

fn is_ranges(key: &str) -> bool {
    key.rsplit('/').next() == Some("ip-ranges.json")
}

/// Read the databases and ranges `IP_DB_URIS` names. `None` when there are none (enrichment is
/// off); a bad or oversized object fails the cold start, naming it.
pub async fn load_enricher(
    store: &(impl ObjectStore + ObjectLister),
    uris: &[ObjectRef],
) -> anyhow::Result<Option<Enricher>> {
    let mut objects = Vec::new();
    for u in uris {
        if u.key.is_empty() || u.key.ends_with('/') {
            for k in store.list(&u.bucket, &u.key).await? {
                if is_database(&k) || is_ranges(&k) {
                    objects.push(ObjectRef::new(&u.bucket, k));
                }
            }
        } else if is_database(&u.key) || is_ranges(&u.key) {
            objects.push(u.clone());
        } else {
            anyhow::bail!("IP_DB_URIS: {u} is neither a .mmdb database nor ip-ranges.json");
        }
    }
    let mut dbs = Vec::new();
    let mut ranges = None;
    for o in objects {
        let body = read_small(store, &o, MAX_DATABASE_BYTES).await?;
        if is_ranges(&o.key) {
            ranges = Some(AwsRanges::parse(o.to_string(), &body)?);
        } else {
            dbs.push(IpDb::from_bytes(o.to_string(), body)?);
        }
    }
    let e = Enricher::new(dbs, ranges);
    Ok((!e.is_empty()).then_some(e))
}
