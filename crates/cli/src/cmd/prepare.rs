//! `ipsight prepare cloudtrail PATH...`: the preparer Lambda's rules on local files.
use std::cell::RefCell;
use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use ipsight_core::keys::{cloudtrail_key, SkipReason};
use ipsight_formats::cloudtrail::{prepare_cloudtrail_to, Outputs, Workspace};
use ipsight_formats::pairs::PairAggregate;
use ipsight_formats::{Ipv6Tuples, PrepareOptions, PrepareStats};
use rayon::prelude::*;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    source: Source,
}

#[derive(clap::Subcommand)]
enum Source {
    /// CloudTrail log files (.json.gz or .json) or directories holding a CloudTrail bucket tree
    Cloudtrail(CloudTrailArgs),
    /// OCSF events: Amazon Security Lake Parquet objects (.gz.parquet), OCSF JSON lines or JSON
    /// documents (one event or an array, pretty-printed or not; .jsonl[.gz], .json[.gz]), files or
    /// directories; same readers and mapping as ipcheck
    Ocsf(OcsfArgs),
}

#[derive(clap::Args)]
pub struct OcsfArgs {
    /// Files (Parquet recognised by its magic bytes, anything else read as OCSF JSON) or directories
    /// (walked for .parquet, .jsonl, .jsonl.gz, .json, .json.gz).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Write the tuple CSV here instead of stdout (written to a temporary file, renamed on success).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write the pair file here (`entity,ip,events,first_seen,last_seen`: one line per distinct
    /// pair over all inputs). Without -o, no tuple CSV is written.
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Entity field paths for non-actor classes, comma-separated, first present wins
    /// (default src_endpoint.instance_uid).
    #[arg(long, env = "OCSF_ENTITY")]
    entity: Option<String>,
    /// Entity for API Activity / IAM classes: `actor` (the principal, normalised like CloudTrail) or
    /// field paths (default actor).
    #[arg(long, env = "OCSF_ACTOR_ENTITY")]
    actor_entity: Option<String>,
    /// IP field paths (default src_endpoint.ip).
    #[arg(long, env = "OCSF_IP")]
    ip: Option<String>,
    /// Classes that use the actor entity (default 3001-3006,6003).
    #[arg(long, env = "OCSF_ACTOR_CLASSES")]
    actor_classes: Option<String>,
    /// Only these classes yield tuples, e.g. 4001,4003 (default all).
    #[arg(long, env = "OCSF_CLASSES")]
    classes: Option<String>,
    /// What the actor entity is: principal, principal+event_source, user_agent_family, arn,
    /// instance_id (the definition `prepare cloudtrail --entity` and the model use; default
    /// principal).
    #[arg(long, env = "ENTITY")]
    entity_kind: Option<String>,
    /// Keep IPv6 tuples and pairs (canonical RFC 5952 text) beside the IPv4 ones. Without it they
    /// are set aside and counted (`ipv6`), so the output stays fit for SageMaker's IPv4-only
    /// training channel; ipsight's own model (`ipsight train`) takes them.
    #[arg(long)]
    ipv6: bool,
    /// Cap on the uncompressed bytes of one JSON file (gzip-bomb guard).
    #[arg(long, default_value_t = ipsight_formats::ocsf::JsonLimits::default().max_uncompressed_bytes)]
    max_uncompressed_bytes: u64,
}

#[derive(clap::Args)]
pub struct CloudTrailArgs {
    /// Files are always read; directories are walked and filtered like the Lambda filters S3 keys
    /// (CloudTrail logs only: digest, Insight and empty files are skipped).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Write the tuple CSV here instead of stdout (written to a temporary file, renamed on success).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write the pair file here (`entity,ip,events,first_seen,last_seen`: one line per distinct
    /// pair over all inputs, first/last = the records' eventTime). Without -o, no tuple CSV is written.
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Keep IPv6 tuples and pairs (canonical RFC 5952 text) beside the IPv4 ones. Without it they
    /// are set aside and counted (`ipv6`), so the output stays fit for SageMaker's IPv4-only
    /// training channel; ipsight's own model (`ipsight train`) takes them.
    #[arg(long)]
    ipv6: bool,
    /// Cap on the uncompressed bytes of one file (gzip-bomb guard).
    #[arg(long, default_value_t = PrepareOptions::default().max_uncompressed_bytes)]
    max_uncompressed_bytes: u64,
    /// What the tuples' entities are: principal, principal+event_source, user_agent_family, arn.
    /// The model records it (`ipsight train --entity`), and scoring must use the same.
    #[arg(long, env = "ENTITY", default_value = "principal")]
    entity: ipsight_formats::EntityKind,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// In directories, also read `.json`/`.json.gz` files not named like CloudTrail logs (exports,
    /// samples). Digest, Insight and empty files are still skipped.
    #[arg(long)]
    any_name: bool,
    /// List every skipped file (default: counts by reason).
    #[arg(short, long)]
    verbose: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.source {
        Source::Cloudtrail(a) => cloudtrail(a),
        Source::Ocsf(a) => ocsf(a),
    }
}

/// A file the key filter skipped, and why.
pub type Skipped = (PathBuf, &'static str);

/// A file to read and its size in bytes.
pub type SizedFile = (PathBuf, u64);

/// Files to read with their sizes, in a stable order, and what was skipped by the key filter. The
/// size is the one found while walking, so no file is looked up again (on a trail of small files the
/// extra `stat` calls were a visible cost).
pub fn collect_cloudtrail_files(
    paths: &[PathBuf],
    any_name: bool,
) -> anyhow::Result<(Vec<SizedFile>, Vec<Skipped>)> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_file() {
            files.push((p.clone(), meta.len()));
            continue;
        }
        let mut stack = vec![p.clone()];
        while let Some(dir) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&dir)
                .with_context(|| format!("{}", dir.display()))?
                .map(|e| e.map(|e| (e.file_name(), e)))
                .collect::<Result<_, _>>()?;
            // Siblings in path order: their paths differ only in the last component, which `Path`
            // compares as bytes, as this does (without building and splitting paths per comparison).
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, e) in entries {
                let path = e.path();
                let ft = e.file_type()?;
                if ft.is_dir() {
                    stack.push(path);
                } else if ft.is_file() {
                    let key = path.to_string_lossy().replace('\\', "/");
                    let size = e.metadata().map(|m| m.len()).ok();
                    match cloudtrail_key(&key, size) {
                        Ok(()) => files.push((path, size.unwrap_or(0))),
                        Err(SkipReason::NotCloudTrail)
                            if any_name
                                && (key.ends_with(".json") || key.ends_with(".json.gz")) =>
                        {
                            files.push((path, size.unwrap_or(0)))
                        }
                        Err(r) => skipped.push((path, r.as_str())),
                    }
                }
            }
        }
    }
    sort_paths(&mut files);
    Ok((files, skipped))
}

/// Sort by path (`Path`'s order: component by component), comparing precomputed byte keys.
fn sort_paths(files: &mut [SizedFile]) {
    use std::path::Component;
    if files
        .iter()
        .any(|(p, _)| matches!(p.components().next(), Some(Component::Prefix(_))))
    {
        // Windows drive prefixes do not compare as bytes.
        files.sort_by(|a, b| a.0.cmp(&b.0));
        return;
    }
    // Each component as (kind, bytes) ended by a NUL, which no component holds: the byte order of
    // the keys is the order of the component sequences (`Component`'s variant order, then bytes).
    files.sort_by_cached_key(|(p, _)| {
        let mut key = Vec::with_capacity(p.as_os_str().len() + 8);
        for c in p.components() {
            let tag = match c {
                Component::Prefix(_) => 0,
                Component::RootDir => 1,
                Component::CurDir => 2,
                Component::ParentDir => 3,
                Component::Normal(_) => 4,
            };
            key.push(tag);
            if let Component::Normal(n) = c {
                key.extend_from_slice(n.as_encoded_bytes());
            }
            key.push(0);
        }
        key
    });
}

/// Files up to this size are read whole into a per-thread buffer and decoded with reused state
/// ([`Workspace`]); larger ones are streamed.
const WHOLE_FILE_MAX: u64 = 8 << 20;

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::new());
}

/// One file's tuple CSV (when `tuples`) and pairs (when `pairs`).
type FileOutput = (Vec<u8>, Option<PairAggregate>, PrepareStats);

fn prepare_file(
    path: &Path,
    size: u64,
    opts: &PrepareOptions,
    tuples: bool,
    pairs: bool,
) -> Result<FileOutput, String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut agg = pairs.then(PairAggregate::new);
    let outputs = Outputs {
        tuples: tuples.then_some(&mut out),
        pairs: agg.as_mut(),
    };
    let st = if size <= WHOLE_FILE_MAX {
        WORKSPACE.with_borrow_mut(|ws| ws.prepare_whole_to(f, size, outputs, opts))
    } else {
        prepare_cloudtrail_to(BufReader::with_capacity(64 << 10, f), outputs, opts)
    }
    .map_err(|e| e.to_string())?;
    Ok((out, agg, st))
}

/// What a prepare run did.
pub struct PrepareReport {
    pub files: usize,
    pub skipped: Vec<Skipped>,
    pub failed: Vec<String>,
    pub stats: PrepareStats,
    pub seconds: f64,
}

/// Prepare every CloudTrail file under `paths` into `outputs`, in a deterministic order, using all
/// `threads` (0 = all cores). Failed files are reported, and neither written nor aggregated.
pub fn prepare_cloudtrail_paths<W: Write>(
    paths: &[PathBuf],
    any_name: bool,
    opts: &PrepareOptions,
    threads: usize,
    mut outputs: Outputs<'_, W>,
) -> anyhow::Result<PrepareReport> {
    let started = Instant::now();
    let (files, skipped) = collect_cloudtrail_files(paths, any_name)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let total_bytes: u64 = files.iter().map(|(_, size)| size).sum();
    let bar = if std::io::stderr().is_terminal() && total_bytes > 32 << 20 {
        let b = indicatif::ProgressBar::new(total_bytes);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} compressed · {bytes_per_sec} · eta {eta}",
            )
            .unwrap(),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut total = PrepareStats::default();
    let mut failed = Vec::new();
    if files.len() == 1 {
        // One (possibly huge) file: stream straight to the output, memory stays flat.
        // (A failed file fails the whole run, so what it left in the outputs is never published.)
        let f = &files[0].0;
        let r = File::open(f).map_err(|e| e.to_string()).and_then(|fh| {
            prepare_cloudtrail_to(BufReader::with_capacity(64 << 10, fh), outputs, opts)
                .map_err(|e| e.to_string())
        });
        match r {
            Ok(st) => total.add(&st),
            Err(e) => failed.push(format!("{}: {e}", f.display())),
        }
    } else {
        // Files are processed in parallel in windows and written in order, so the output is
        // deterministic and only a window's worth of tuples is held in memory.
        let (tuples, pairs) = (outputs.tuples.is_some(), outputs.pairs.is_some());
        for window in files.chunks(pool.current_num_threads() * 64) {
            let results: Vec<_> = pool.install(|| {
                window
                    .par_iter()
                    .map(|(f, size)| (f, *size, prepare_file(f, *size, opts, tuples, pairs)))
                    .collect()
            });
            for (f, size, r) in results {
                bar.inc(size);
                match r {
                    Ok((csv, agg, st)) => {
                        if let Some(out) = outputs.tuples.as_deref_mut() {
                            out.write_all(&csv)?;
                        }
                        if let (Some(into), Some(agg)) = (outputs.pairs.as_deref_mut(), agg) {
                            into.merge(&agg);
                        }
                        total.add(&st);
                    }
                    Err(e) => failed.push(format!("{}: {e}", f.display())),
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok(PrepareReport {
        files: files.len(),
        skipped,
        failed,
        stats: total,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// An output file written to a temporary file beside it and renamed only on success (no half
/// outputs); without a path, stdout.
struct Destination {
    tmp: Option<(tempfile::NamedTempFile, PathBuf)>,
}

impl Destination {
    /// The destination and a buffered writer into it.
    fn create(path: Option<&Path>) -> anyhow::Result<OpenDestination> {
        let (sink, tmp): (Box<dyn Write>, _) = match path {
            None => (Box::new(std::io::stdout().lock()), None),
            Some(p) => {
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let t = tempfile::NamedTempFile::new_in(dir)
                    .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
                let w = t.reopen()?;
                (Box::new(w), Some((t, p.to_path_buf())))
            }
        };
        Ok((Self { tmp }, BufWriter::with_capacity(1 << 20, sink)))
    }

    fn publish(self) -> anyhow::Result<()> {
        if let Some((t, dest)) = self.tmp {
            t.persist(&dest)
                .with_context(|| format!("writing {}", dest.display()))?;
        }
        Ok(())
    }
}

/// A destination and the buffered writer into it.
type OpenDestination = (Destination, BufWriter<Box<dyn Write>>);

/// The tuple CSV writer of a run: `-o FILE`, stdout when neither `-o` nor `--pairs` is given, or
/// none (`--pairs` alone).
fn tuple_destination(
    output: Option<&Path>,
    pairs: Option<&Path>,
) -> anyhow::Result<Option<OpenDestination>> {
    match (output, pairs) {
        (None, Some(_)) => Ok(None),
        (o, _) => Destination::create(o).map(Some),
    }
}

/// Finish a run: flush and publish the tuple CSV, write and publish the pair file, and return
/// what the pair file holds (pairs, bytes) for the summary. Nothing is published if `failed`.
fn finish_outputs(
    tuples: Option<OpenDestination>,
    pairs: Option<(&Path, &PairAggregate)>,
    failed: usize,
    files: usize,
) -> anyhow::Result<Option<serde_json::Value>> {
    let tuples = match tuples {
        Some((dest, mut w)) => {
            w.flush()?;
            drop(w);
            Some(dest)
        }
        None => None,
    };
    if failed > 0 {
        // No half output: the temporary files are dropped, the targets left untouched.
        anyhow::bail!("{failed} of {files} files failed; no output written");
    }
    let mut summary = None;
    if let Some((path, agg)) = pairs {
        let (dest, mut w) = Destination::create(Some(path))?;
        let bytes = agg.write(&mut w)?;
        drop(w);
        dest.publish()?;
        summary = Some(serde_json::json!({
            "pairs": agg.len(),
            "events": agg.events(),
            "bytes": bytes,
        }));
    }
    if let Some(dest) = tuples {
        dest.publish()?;
    }
    Ok(summary)
}

fn cloudtrail(a: CloudTrailArgs) -> anyhow::Result<()> {
    let opts = PrepareOptions {
        max_uncompressed_bytes: a.max_uncompressed_bytes,
        entity: a.entity,
        ipv6: if a.ipv6 {
            Ipv6Tuples::Keep
        } else {
            Ipv6Tuples::SetAside
        },
        ..Default::default()
    };
    let mut tuples = tuple_destination(a.output.as_deref(), a.pairs.as_deref())?;
    let mut agg = a.pairs.as_ref().map(|_| PairAggregate::new());
    let report = prepare_cloudtrail_paths(
        &a.paths,
        a.any_name,
        &opts,
        a.threads.unwrap_or(0),
        Outputs {
            tuples: tuples.as_mut().map(|(_, w)| w),
            pairs: agg.as_mut(),
        },
    )?;
    let mut by_reason = std::collections::BTreeMap::<&str, usize>::new();
    for (p, why) in &report.skipped {
        *by_reason.entry(why).or_default() += 1;
        if a.verbose {
            eprintln!("skipped {}: {why}", p.display());
        }
    }
    for f in &report.failed {
        eprintln!("FAILED {f}");
    }
    let secs = report.seconds;
    let mut summary = serde_json::json!({
        "files": report.files,
        "files_failed": report.failed.len(),
        "files_skipped": by_reason,
        "stats": report.stats,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "uncompressed_mb_per_s": ((report.stats.bytes_in as f64 / 1e6 / secs) * 10.0).round() / 10.0,
    });
    let result = finish_outputs(
        tuples,
        a.pairs.as_deref().zip(agg.as_ref()),
        report.failed.len(),
        report.files,
    );
    if let Ok(Some(p)) = &result {
        summary["pair_file"] = p.clone();
    }
    eprintln!("{summary}");
    result.map(|_| ())
}

/// OCSF files under `paths`, in a stable order.
fn collect_ocsf_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if std::fs::metadata(p)
            .with_context(|| format!("{}", p.display()))?
            .is_file()
        {
            files.push(p.clone());
            continue;
        }
        let mut stack = vec![p.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
                let path = e?.path();
                let name = path.to_string_lossy().to_ascii_lowercase();
                if path.is_dir() {
                    stack.push(path);
                } else if [".parquet", ".jsonl", ".jsonl.gz", ".json", ".json.gz"]
                    .iter()
                    .any(|x| name.ends_with(x))
                {
                    files.push(path);
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

/// One OCSF file's tuples: Parquet when it starts with `PAR1`, OCSF JSON otherwise.
fn prepare_ocsf_file(
    path: &Path,
    mapping: &ipsight_formats::ocsf::OcsfMapping,
    limits: &ipsight_formats::ocsf::JsonLimits,
    tuples: bool,
    pairs: bool,
    ipv6: Ipv6Tuples,
) -> Result<
    (
        Vec<u8>,
        Option<PairAggregate>,
        ipsight_formats::ocsf::OcsfStats,
    ),
    String,
> {
    use ipsight_formats::ocsf::{read_json, read_parquet};
    use std::io::Read;
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut agg = pairs.then(PairAggregate::new);
    // IPv6 pairs set aside are counted by the reader's `ipv6` (reported as `ipv6_set_aside`).
    let mut write = |p: ipsight_formats::ocsf::OcsfPair| {
        if p.ip.is_ipv6() && ipv6 == Ipv6Tuples::SetAside {
            return;
        }
        if tuples {
            ipsight_formats::tuples::write_tuple(&mut out, &p.entity, p.ip)
                .expect("writing to a Vec");
        }
        if let Some(agg) = agg.as_mut() {
            let time = p.time_ms.map(ipsight_formats::ocsf::format_time_ms);
            agg.add_event(&p.entity, p.ip, time.as_deref());
        }
    };
    let stats = if n == 4 && &magic == b"PAR1" {
        read_parquet(f, mapping, &mut write)
    } else {
        let f = File::open(path).map_err(|e| e.to_string())?;
        read_json(
            BufReader::with_capacity(64 << 10, f),
            mapping,
            limits,
            &mut write,
        )
    }
    .map_err(|e| e.to_string())?;
    Ok((out, agg, stats))
}

fn ocsf(a: OcsfArgs) -> anyhow::Result<()> {
    let mapping = ipsight_formats::ocsf::OcsfMapping::from_lookup(|k| match k {
        "OCSF_ENTITY" => a.entity.clone(),
        "OCSF_ACTOR_ENTITY" => a.actor_entity.clone(),
        "OCSF_IP" => a.ip.clone(),
        "OCSF_ACTOR_CLASSES" => a.actor_classes.clone(),
        "OCSF_CLASSES" => a.classes.clone(),
        "ENTITY" => a.entity_kind.clone(),
        _ => None,
    })?;
    let limits = ipsight_formats::ocsf::JsonLimits {
        max_uncompressed_bytes: a.max_uncompressed_bytes,
        ..Default::default()
    };
    let ipv6 = if a.ipv6 {
        Ipv6Tuples::Keep
    } else {
        Ipv6Tuples::SetAside
    };
    let started = Instant::now();
    let files = collect_ocsf_files(&a.paths)?;
    let mut tuples = tuple_destination(a.output.as_deref(), a.pairs.as_deref())?;
    let mut agg = a.pairs.as_ref().map(|_| PairAggregate::new());
    let mut total = ipsight_formats::ocsf::OcsfStats::default();
    let mut failed = Vec::new();
    let (want_tuples, want_pairs) = (tuples.is_some(), agg.is_some());
    // Parallel in windows, written in file order: deterministic output, bounded memory.
    for window in files.chunks(rayon::current_num_threads() * 4) {
        let results: Vec<_> = window
            .par_iter()
            .map(|f| prepare_ocsf_file(f, &mapping, &limits, want_tuples, want_pairs, ipv6))
            .collect();
        for (f, r) in window.iter().zip(results) {
            match r {
                Ok((bytes, file_pairs, st)) => {
                    if let Some((_, w)) = tuples.as_mut() {
                        w.write_all(&bytes)?;
                    }
                    if let (Some(into), Some(p)) = (agg.as_mut(), file_pairs) {
                        into.merge(&p);
                    }
                    total.add(&st);
                }
                Err(e) => failed.push(format!("{}: {e}", f.display())),
            }
        }
    }
    for f in &failed {
        eprintln!("FAILED {f}");
    }
    let mut summary = serde_json::json!({
        "files": files.len(),
        "files_failed": failed.len(),
        "stats": total,
        "ipv6_set_aside": if a.ipv6 { 0 } else { total.ipv6 },
        "seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    });
    let result = finish_outputs(
        tuples,
        a.pairs.as_deref().zip(agg.as_ref()),
        failed.len(),
        files.len(),
    );
    if let Ok(Some(p)) = &result {
        summary["pair_file"] = p.clone();
    }
    eprintln!("{summary}");
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_paths_is_path_order() {
        let names = [
            "a/b", "a-b", "a.b/c", "a/b/c", "a", "ab", "a/.b", "a//b", "/x", "/x/y", "/", "./y",
            "y", "../z", "..", "a/b-c", "a/b/", "A/b", "é/x", "e/x", "a/./b", "b/a", "a0/b", "a/0",
        ];
        let mut files: Vec<SizedFile> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (PathBuf::from(n), i as u64))
            .collect();
        let mut want = files.clone();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        sort_paths(&mut files);
        assert_eq!(files, want);
    }
}
