//! `ipsight extract guardduty PATH...`: the extract-guardduty Lambda's rules on local files.
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use ipsight_formats::guardduty::{extract_all, keep_latest, ExtractStats, ReadOptions};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    source: Source,
}

#[derive(clap::Subcommand)]
enum Source {
    /// GuardDuty findings: single findings, EventBridge events, JSON arrays, `get-findings` output,
    /// S3 export `.jsonl(.gz)` files, Security Hub (ASFF) `get-findings` output and "Security Hub
    /// Findings - Imported" events, or directories holding any of them
    Guardduty(GuardDutyArgs),
}

#[derive(clap::Args)]
pub struct GuardDutyArgs {
    /// Files are always read; directories are walked for `.json`, `.jsonl` (optionally `.gz`).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Write one record and one tuple CSV per finding, as the Lambda does:
    /// `DIR/findings/<account>/<region>/<id>.json` and `DIR/tuples/<account>/<region>/<id>.csv`.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write all tuples (`entity,ip`) into this one CSV. With neither option, tuples go to stdout.
    #[arg(long)]
    tuples: Option<PathBuf>,
    /// Cap on the uncompressed bytes of one file (gzip-bomb guard).
    #[arg(long, default_value_t = ReadOptions::default().max_uncompressed_bytes)]
    max_uncompressed_bytes: u64,
    /// What the entities are: principal, principal+event_source, user_agent_family, arn (none in
    /// GuardDuty findings), instance_id. Must match the model's (`ipsight train --entity`).
    #[arg(long, env = "ENTITY", default_value = "principal")]
    entity: ipsight_formats::EntityKind,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.source {
        Source::Guardduty(a) => guardduty(a),
    }
}

/// Files to read, sorted: given files as is, directories walked for finding-like names.
pub fn collect_finding_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        if meta.is_file() {
            files.push(p.clone());
            continue;
        }
        let mut stack = vec![p.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
                let e = e?;
                let path = e.path();
                let ft = e.file_type()?;
                let name = e.file_name().to_string_lossy().into_owned();
                if ft.is_dir() {
                    stack.push(path);
                } else if ft.is_file()
                    && !name.starts_with('.')
                    && [".json", ".jsonl", ".json.gz", ".jsonl.gz"]
                        .iter()
                        .any(|s| name.ends_with(s))
                {
                    files.push(path);
                }
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Write `body` to `dest` through a temporary file in the same directory (no half files).
pub fn write_atomically(dest: &Path, body: &[u8]) -> anyhow::Result<()> {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut t = tempfile::NamedTempFile::new_in(dir)?;
    t.write_all(body)?;
    t.persist(dest)
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}

fn guardduty(a: GuardDutyArgs) -> anyhow::Result<()> {
    let files = collect_finding_files(&a.paths)?;
    let opts = ReadOptions {
        max_uncompressed_bytes: a.max_uncompressed_bytes,
        entity: a.entity,
        ..Default::default()
    };
    let mut records = Vec::new();
    let mut total = ExtractStats::default();
    let mut failed = Vec::new();
    for f in &files {
        let r = File::open(f)
            .map_err(|e| e.to_string())
            .and_then(|h| extract_all(BufReader::new(h), &opts).map_err(|e| e.to_string()));
        match r {
            Ok((recs, st)) => {
                records.extend(recs);
                total.add(&st);
            }
            Err(e) => failed.push(format!("{}: {e}", f.display())),
        }
    }
    for f in &failed {
        eprintln!("FAILED {f}");
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} files failed; no output written",
            failed.len(),
            files.len()
        );
    }
    // Updated findings (same id, higher count) appear once, newest version.
    let records = keep_latest(records);
    let mut csv = Vec::new();
    for r in &records {
        csv.extend(r.tuples_csv());
    }
    if let Some(dir) = &a.output {
        for r in &records {
            let (rec_key, tuples_key) = ipsight_core::keys::finding_output_keys(
                "",
                &r.account_id,
                &r.region,
                &r.finding_id,
            );
            let mut body = serde_json::to_vec(r)?;
            body.push(b'\n');
            write_atomically(&dir.join(rec_key), &body)?;
            if !r.pairs.is_empty() {
                write_atomically(&dir.join(tuples_key), &r.tuples_csv())?;
            }
        }
    }
    if let Some(p) = &a.tuples {
        write_atomically(p, &csv)?;
    }
    if a.output.is_none() && a.tuples.is_none() {
        std::io::stdout().lock().write_all(&csv)?;
    }
    eprintln!(
        "{}",
        serde_json::json!({"files": files.len(), "distinct_findings": records.len(), "stats": total})
    );
    Ok(())
}
