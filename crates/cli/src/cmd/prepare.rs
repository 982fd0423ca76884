//! `ipsight prepare cloudtrail PATH...`: the preparer Lambda's rules on local files.
use std::cell::RefCell;
use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use ipsight_formats::cloudtrail::Workspace;
use ipsight_formats::keys::{cloudtrail_key, SkipReason};
use ipsight_formats::{prepare_cloudtrail, PrepareOptions, PrepareStats};
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
    /// OCSF events: Amazon Security Lake Parquet objects (.gz.parquet) or OCSF JSON lines
    /// (.jsonl[.gz], .json[.gz]), files or directories; same readers and mapping as ipcheck
    Ocsf(OcsfArgs),
}

#[derive(clap::Args)]
pub struct OcsfArgs {
    /// Files (Parquet recognised by its magic bytes, anything else read as JSON lines) or directories
    /// (walked for .parquet, .jsonl, .jsonl.gz, .json, .json.gz).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Write the tuple CSV here instead of stdout (written to a temporary file, renamed on success).
    #[arg(short, long)]
    output: Option<PathBuf>,
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
    /// Cap on the uncompressed bytes of one JSON-lines file (gzip-bomb guard).
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

fn prepare_file(
    path: &Path,
    size: u64,
    opts: &PrepareOptions,
) -> Result<(Vec<u8>, PrepareStats), String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let st = if size <= WHOLE_FILE_MAX {
        WORKSPACE.with_borrow_mut(|ws| ws.prepare_whole(f, size, &mut out, opts))
    } else {
        prepare_cloudtrail(BufReader::with_capacity(64 << 10, f), &mut out, opts)
    }
    .map_err(|e| e.to_string())?;
    Ok((out, st))
}

/// What a prepare run did.
pub struct PrepareReport {
    pub files: usize,
    pub skipped: Vec<Skipped>,
    pub failed: Vec<String>,
    pub stats: PrepareStats,
    pub seconds: f64,
}

/// Prepare every CloudTrail file under `paths` into `out`, in a deterministic order, using all
/// `threads` (0 = all cores). Failed files are reported, not written.
pub fn prepare_cloudtrail_paths(
    paths: &[PathBuf],
    any_name: bool,
    opts: &PrepareOptions,
    threads: usize,
    out: &mut impl Write,
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
        let f = &files[0].0;
        let r = File::open(f).map_err(|e| e.to_string()).and_then(|fh| {
            prepare_cloudtrail(BufReader::with_capacity(64 << 10, fh), out, opts)
                .map_err(|e| e.to_string())
        });
        match r {
            Ok(st) => total.add(&st),
            Err(e) => failed.push(format!("{}: {e}", f.display())),
        }
    } else {
        // Files are processed in parallel in windows and written in order, so the output is
        // deterministic and only a window's worth of tuples is held in memory.
        for window in files.chunks(pool.current_num_threads() * 64) {
            let results: Vec<_> = pool.install(|| {
                window
                    .par_iter()
                    .map(|(f, size)| (f, *size, prepare_file(f, *size, opts)))
                    .collect()
            });
            for (f, size, r) in results {
                bar.inc(size);
                match r {
                    Ok((csv, st)) => {
                        out.write_all(&csv)?;
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

fn cloudtrail(a: CloudTrailArgs) -> anyhow::Result<()> {
    let opts = PrepareOptions {
        max_uncompressed_bytes: a.max_uncompressed_bytes,
        entity: a.entity,
        ..Default::default()
    };
    let (sink, tmp): (Box<dyn Write>, Option<(tempfile::NamedTempFile, PathBuf)>) = match &a.output
    {
        None => (Box::new(std::io::stdout().lock()), None),
        Some(p) => {
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let t = tempfile::NamedTempFile::new_in(dir)?;
            (Box::new(t.reopen()?), Some((t, p.clone())))
        }
    };
    let mut w = BufWriter::with_capacity(1 << 20, sink);
    let report =
        prepare_cloudtrail_paths(&a.paths, a.any_name, &opts, a.threads.unwrap_or(0), &mut w)?;
    w.flush()?;
    drop(w);
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
    eprintln!(
        "{}",
        serde_json::json!({
            "files": report.files,
            "files_failed": report.failed.len(),
            "files_skipped": by_reason,
            "stats": report.stats,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "uncompressed_mb_per_s": ((report.stats.bytes_in as f64 / 1e6 / secs) * 10.0).round() / 10.0,
        })
    );
    if !report.failed.is_empty() {
        // No half output: the temporary file is dropped, the target left untouched.
        anyhow::bail!(
            "{} of {} files failed; no output written",
            report.failed.len(),
            report.files
        );
    }
    if let Some((t, dest)) = tmp {
        t.persist(&dest)
            .with_context(|| format!("writing {}", dest.display()))?;
    }
    Ok(())
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

/// One OCSF file's tuples: Parquet when it starts with `PAR1`, JSON lines otherwise.
fn prepare_ocsf_file(
    path: &Path,
    mapping: &ipsight_formats::ocsf::OcsfMapping,
    limits: &ipsight_formats::ocsf::JsonLimits,
) -> Result<(Vec<u8>, ipsight_formats::ocsf::OcsfStats), String> {
    use ipsight_formats::ocsf::{read_json_lines, read_parquet};
    use std::io::Read;
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut write = |p: ipsight_formats::ocsf::OcsfPair| {
        ipsight_formats::tuples::write_tuple(&mut out, &p.entity, p.ip).expect("writing to a Vec")
    };
    let stats = if n == 4 && &magic == b"PAR1" {
        read_parquet(f, mapping, &mut write)
    } else {
        let f = File::open(path).map_err(|e| e.to_string())?;
        read_json_lines(
            BufReader::with_capacity(64 << 10, f),
            mapping,
            limits,
            &mut write,
        )
    }
    .map_err(|e| e.to_string())?;
    Ok((out, stats))
}

fn ocsf(a: OcsfArgs) -> anyhow::Result<()> {
    let mapping = ipsight_formats::ocsf::OcsfMapping::from_lookup(|k| match k {
        "OCSF_ENTITY" => a.entity.clone(),
        "OCSF_ACTOR_ENTITY" => a.actor_entity.clone(),
        "OCSF_IP" => a.ip.clone(),
        "OCSF_ACTOR_CLASSES" => a.actor_classes.clone(),
        "OCSF_CLASSES" => a.classes.clone(),
        _ => None,
    })?;
    let limits = ipsight_formats::ocsf::JsonLimits {
        max_uncompressed_bytes: a.max_uncompressed_bytes,
        ..Default::default()
    };
    let started = Instant::now();
    let files = collect_ocsf_files(&a.paths)?;
    let (sink, tmp): (Box<dyn Write>, Option<(tempfile::NamedTempFile, PathBuf)>) = match &a.output
    {
        None => (Box::new(std::io::stdout().lock()), None),
        Some(p) => {
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let t = tempfile::NamedTempFile::new_in(dir)?;
            (Box::new(t.reopen()?), Some((t, p.clone())))
        }
    };
    let mut w = BufWriter::with_capacity(1 << 20, sink);
    let mut total = ipsight_formats::ocsf::OcsfStats::default();
    let mut failed = Vec::new();
    // Parallel in windows, written in file order: deterministic output, bounded memory.
    for window in files.chunks(rayon::current_num_threads() * 4) {
        let results: Vec<_> = window
            .par_iter()
            .map(|f| prepare_ocsf_file(f, &mapping, &limits))
            .collect();
        for (f, r) in window.iter().zip(results) {
            match r {
                Ok((bytes, st)) => {
                    w.write_all(&bytes)?;
                    total.add(&st);
                }
                Err(e) => failed.push(format!("{}: {e}", f.display())),
            }
        }
    }
    w.flush()?;
    drop(w);
    for f in &failed {
        eprintln!("FAILED {f}");
    }
    eprintln!(
        "{}",
        serde_json::json!({
            "files": files.len(),
            "files_failed": failed.len(),
            "stats": total,
            "seconds": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        })
    );
    if !failed.is_empty() {
        // No half output: the temporary file is dropped, the target left untouched.
        anyhow::bail!(
            "{} of {} files failed; no output written",
            failed.len(),
            files.len()
        );
    }
    if let Some((t, dest)) = tmp {
        t.persist(&dest)
            .with_context(|| format!("writing {}", dest.display()))?;
    }
    Ok(())
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
