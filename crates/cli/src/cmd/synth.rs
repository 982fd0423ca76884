//! `ipsight synth ...`: write the project's deterministic synthetic data (demo, tests, benchmarks).
use std::path::PathBuf;

use anyhow::Context;
use ipsight_synth::{
    write_benchmark_trail, write_cloudtrail, write_large_object, CloudTrailOptions, SynthConfig,
    World,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// A CloudTrail bucket tree (logs, digests, Insights) of a synthetic organisation
    Cloudtrail {
        /// Directory to write the bucket tree into
        #[arg(short, long)]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 40)]
        users: u32,
        #[arg(long, default_value_t = 14)]
        days: u32,
        /// Organization trail layout (`AWSLogs/o-…/<acct>/CloudTrail/…`)
        #[arg(long)]
        organization: bool,
        /// A dual-stack organisation: most homes, offices and some hotels call AWS over IPv6
        /// (delegated /56s, office /48s, daily privacy addresses); `prepare cloudtrail --ipv6` keeps them
        #[arg(long)]
        dual_stack: bool,
    },
    /// A multi-file trail of about BYTES of uncompressed JSON (throughput benchmarks)
    BenchTrail {
        #[arg(short, long)]
        out: PathBuf,
        #[arg(long, default_value_t = 400_000_000)]
        bytes: u64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// One CloudTrail object of at least BYTES uncompressed (memory benchmarks); gzip if OUT ends in .gz
    LargeObject {
        #[arg(short, long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1 << 30)]
        bytes: u64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Pairs of the synthetic world as tuple CSV: normal pairs of days [FROM, TO), or anomalous ones
    Pairs {
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 40)]
        users: u32,
        #[arg(long, default_value_t = 14)]
        days: u32,
        #[arg(long, default_value_t = 0)]
        from: u32,
        #[arg(long)]
        to: Option<u32>,
        /// Instead of normal pairs, N pairs of known entities from IP ranges they never use
        #[arg(long)]
        anomalous: Option<usize>,
        /// A dual-stack organisation: normal pairs include IPv6 (as `prepare cloudtrail --ipv6`
        /// gives, in time order), and --anomalous draws IPv6 anomalies for IPv6 users too (half from
        /// random addresses, half from their own ISP's /32 but another customer's prefix)
        #[arg(long)]
        dual_stack: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Cloudtrail {
            out,
            seed,
            users,
            days,
            organization,
            dual_stack,
        } => {
            let world = World::new(config(dual_stack, seed, users, days));
            let opts = CloudTrailOptions {
                organization_trail: organization,
                ..Default::default()
            };
            let s = write_cloudtrail(&world, &out, &opts)
                .with_context(|| format!("writing {}", out.display()))?;
            report(&s);
        }
        What::BenchTrail { out, bytes, seed } => {
            let s = write_benchmark_trail(&out, bytes, seed)?;
            report(&s);
        }
        What::LargeObject { out, bytes, seed } => {
            let s = write_large_object(&out, bytes, seed)?;
            report(&s);
        }
        What::Pairs {
            seed,
            users,
            days,
            from,
            to,
            anomalous,
            dual_stack,
        } => {
            use std::io::Write;
            use std::net::IpAddr;
            let world = World::new(config(dual_stack, seed, users, days));
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            let v4 = |v: Vec<(String, std::net::Ipv4Addr)>| {
                v.into_iter()
                    .map(|(e, ip)| (e, IpAddr::from(ip)))
                    .collect::<Vec<_>>()
            };
            let v6 = |v: Vec<(String, std::net::Ipv6Addr)>| {
                v.into_iter()
                    .map(|(e, ip)| (e, IpAddr::from(ip)))
                    .collect::<Vec<_>>()
            };
            let pairs: Box<dyn Iterator<Item = (String, IpAddr)>> = match (anomalous, dual_stack) {
                (Some(n), false) => {
                    Box::new(v4(world.anomalous_pairs(n, seed ^ 0xa5a5)).into_iter())
                }
                (Some(n), true) => {
                    // Half IPv4, a quarter random IPv6, a quarter the same-ISP hard case.
                    let mut all = v4(world.anomalous_pairs(n - n / 2, seed ^ 0xa5a5));
                    all.extend(v6(world.ipv6_random_pairs(n / 4, seed ^ 0xa5a5)));
                    all.extend(v6(world.ipv6_same_isp_pairs(n / 2 - n / 4, seed ^ 0xa5a5)));
                    Box::new(all.into_iter())
                }
                (None, false) => Box::new(
                    world
                        .normal_pairs(from..to.unwrap_or(days))
                        .map(|(e, ip)| (e, ip.into())),
                ),
                (None, true) => Box::new(
                    world
                        .normal_pairs_dual_in_time_order(from..to.unwrap_or(days))
                        .into_iter(),
                ),
            };
            for (e, ip) in pairs {
                ipsight_formats::tuples::write_tuple(&mut w, &e, ip)?;
            }
            w.flush()?;
        }
    }
    Ok(())
}

fn config(dual_stack: bool, seed: u64, users: u32, days: u32) -> SynthConfig {
    if dual_stack {
        SynthConfig::dual_stack(seed, users, days)
    } else {
        SynthConfig::new(seed, users, days)
    }
}

fn report(s: &ipsight_synth::Summary) {
    eprintln!(
        "{}",
        serde_json::json!({
            "log_files": s.log_files,
            "digest_files": s.digest_files,
            "insight_files": s.insight_files,
            "records": s.records,
            "expected_tuples": s.expected_tuples,
            "ipv6_records": s.skipped.ipv6,
            "uncompressed_bytes": s.uncompressed_bytes,
            "compressed_bytes": s.compressed_bytes,
        })
    );
}
