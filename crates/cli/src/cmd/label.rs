//! `ipsight label add|list`: analyst decisions on `<entity, ip>` pairs (or entity + CIDR), read by
//! `ipsight fuse`, the fuse and ipcheck Lambdas and `ipsight retrain`.
//!
//! Where labels live (`--labels`, or `IPSIGHT_LABELS`):
//! * a local JSON lines file, appended to (default `labels.jsonl`);
//! * `s3://bucket/prefix/`: one object per decision (`<prefix>YYYY/MM/DD/<time>-<hash>.jsonl`), the
//!   Lambdas' `LABELS_PREFIX` layout: append-only without read-modify-write, so concurrent analysts
//!   never lose each other's decision, and a retried `add` rewrites the same key.
use std::io::{BufReader, Write};
use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context};
use ipsight_aws::S3Store;
use ipsight_core::labels::{Cidr, Label, LabelSet, Verdict};
use ipsight_core::time::epoch_seconds;
use ipsight_formats::labels::read_labels;
use ipsight_ports::object_key;
use ipsight_ports::{load_labels, LabelSource, ObjectRef, ObjectStore};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Record one decision (appended; a later decision on the same pair or range overrides it)
    Add(AddArgs),
    /// Show the decisions in force (latest per pair or range), with their expiry state
    List(ListArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["ip", "cidr"])))]
struct AddArgs {
    /// The principal as ipsight scores it (AssumedRole sessions are cut, as in the tuples)
    #[arg(long)]
    entity: String,
    /// One address, IPv4 or IPv6 (kept in RFC 5952 text; `::ffff:a.b.c.d` is the IPv4 host)
    #[arg(long, value_parser = source_ip)]
    ip: Option<IpAddr>,
    /// A range of addresses (e.g. a user's home ISP /24, or its IPv6 /56)
    #[arg(long)]
    cidr: Option<String>,
    /// false-positive (normal: suppress, and teach the model) or true-positive (keep on top)
    #[arg(long)]
    verdict: Verdict,
    /// Who decided
    #[arg(long)]
    who: String,
    /// Why (shown in the report)
    #[arg(long)]
    why: String,
    /// The decision no longer applies from this date (YYYY-MM-DD, midnight UTC) or RFC 3339 time
    #[arg(long)]
    expires: Option<String>,
    /// When the decision was made (RFC 3339; default: now)
    #[arg(long)]
    when: Option<String>,
    /// Labels file (JSON lines) or s3://bucket/prefix/
    #[arg(long, env = "IPSIGHT_LABELS", default_value = "labels.jsonl")]
    labels: String,
}

#[derive(clap::Args)]
struct ListArgs {
    /// Labels file (JSON lines) or s3://bucket/prefix/ or s3://bucket/key
    #[arg(long, env = "IPSIGHT_LABELS", default_value = "labels.jsonl")]
    labels: String,
    /// Judge expiry at this date or time (default: now)
    #[arg(long)]
    at: Option<String>,
    /// JSON lines instead of a table
    #[arg(long)]
    json: bool,
}

/// Now, RFC 3339 UTC, second precision.
pub fn now_rfc3339() -> String {
    ipsight_core::time::rfc3339(ipsight_core::time::now_secs())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn s3_store() -> S3Store {
    S3Store::from_conf(&aws_config::load_from_env().await)
}

/// Every decision at `location` (a missing file is an empty set: no decision yet).
pub fn load(location: &str) -> anyhow::Result<LabelSet> {
    if location.starts_with("s3://") {
        let src = LabelSource::from_vars(Some(location), None, "")?
            .context("labels location is empty")?;
        let rt = runtime()?;
        return rt.block_on(async {
            let store = s3_store().await;
            Ok(load_labels(&store, &src).await?)
        });
    }
    let path = Path::new(location);
    match std::fs::File::open(path) {
        Ok(f) => Ok(LabelSet::new(read_labels(
            BufReader::new(f),
            &path.display().to_string(),
        )?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LabelSet::default()),
        Err(e) => Err(e).with_context(|| format!("opening labels {}", path.display())),
    }
}

/// Append one decision at `location`.
pub fn append(location: &str, label: &Label) -> anyhow::Result<String> {
    if location.starts_with("s3://") {
        match LabelSource::from_vars(Some(location), None, "")? {
            Some(LabelSource::Prefix { bucket, prefix }) => {
                let obj = ObjectRef::new(bucket, object_key(&prefix, label));
                let body = format!("{}\n", ipsight_formats::labels::to_line(label));
                runtime()?.block_on(async {
                    s3_store()
                        .await
                        .put_bytes(&obj, body.into(), "application/x-ndjson")
                        .await
                })?;
                return Ok(obj.to_string());
            }
            _ => bail!(
                "{location}: adding to a single S3 object would be a read-modify-write that loses \
                 concurrent decisions; give a prefix ending in '/' (s3://bucket/labels/), one \
                 object per decision"
            ),
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(location)
        .with_context(|| format!("opening labels {location}"))?;
    // One write of the whole line: O_APPEND keeps concurrent appenders' lines whole.
    f.write_all(format!("{}\n", ipsight_formats::labels::to_line(label)).as_bytes())?;
    f.sync_all()?;
    Ok(location.to_owned())
}

/// `--ip` as the tuple contract reads a source address (one rule: zones, brackets, multicast refused).
fn source_ip(s: &str) -> Result<IpAddr, String> {
    ipsight_formats::ip::classify_ip(s)
        .address()
        .ok_or_else(|| format!("{s:?} is not an IPv4 or IPv6 address a request can come from"))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.command {
        Command::Add(a) => {
            let cidr: Option<Cidr> = a.cidr.as_deref().map(str::parse).transpose()?;
            let label = ipsight_formats::labels::validated(Label {
                entity: a.entity,
                ip: a.ip,
                cidr,
                verdict: a.verdict,
                who: a.who,
                when: a.when.unwrap_or_else(now_rfc3339),
                why: a.why,
                expires: a.expires,
            })?;
            let at = append(&a.labels, &label)?;
            eprintln!("{} → {at}", label.describe());
            println!("{}", ipsight_formats::labels::to_line(&label));
        }
        Command::List(a) => {
            let set = load(&a.labels)?;
            let at_text = a.at.unwrap_or_else(now_rfc3339);
            let at = epoch_seconds(&at_text)
                .with_context(|| format!("--at {at_text:?}: expected YYYY-MM-DD or RFC 3339"))?;
            let current = set.current();
            if a.json {
                for l in current {
                    println!("{}", ipsight_formats::labels::to_line(l));
                }
                return Ok(());
            }
            println!(
                "{:<24} {:<18} {:<15} {:<8} {:<20} {:<12} why",
                "entity", "target", "verdict", "state", "when", "who"
            );
            for l in &current {
                println!(
                    "{:<24} {:<18} {:<15} {:<8} {:<20} {:<12} {}",
                    l.entity,
                    l.target(),
                    l.verdict.as_str(),
                    if l.is_expired_at(at) {
                        "expired"
                    } else {
                        "active"
                    },
                    l.when,
                    l.who,
                    l.why
                );
            }
            eprintln!(
                "{} decision(s) read, {} in force as of {at_text}",
                set.decisions,
                current.iter().filter(|l| !l.is_expired_at(at)).count()
            );
        }
    }
    Ok(())
}
