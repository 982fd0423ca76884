//! `ipsight fuse`: the fuse Lambda's report on local files, printed as a ranked table.
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fuse::{fuse, FuseOptions, IpList, ScoreTable};
use ipsight_aws::EmbeddedScorer;
use ipsight_formats::guardduty::{extract_all, FindingRecord, ReadOptions};

use super::extract::{collect_finding_files, write_atomically};

#[derive(clap::Args)]
pub struct Args {
    /// Finding records written by `ipsight extract guardduty -o` / the extract-guardduty Lambda, or
    /// raw GuardDuty findings in any shape `extract` reads; files or directories.
    #[arg(long, required = true, num_args = 1..)]
    findings: Vec<PathBuf>,
    /// IP Insights scores (`.jsonl`: entity, ip, dot_product, percentile or unusual_percentile),
    /// files or directories.
    #[arg(long, num_args = 1..)]
    scores: Vec<PathBuf>,
    /// Model (from `ipsight train`) to score pairs that have no score in `--scores`.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Trusted IP list (GuardDuty plain-text format): matching rows are suppressed, still reported.
    #[arg(long)]
    trusted: Option<PathBuf>,
    /// Threat IP list (GuardDuty plain-text format): matching rows are escalated.
    #[arg(long)]
    threats: Option<PathBuf>,
    /// Write `DIR/reports/<date>/suspicious.{json,csv}` (the Lambda's layout under a bucket directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Report date, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    date: Option<String>,
    /// Only findings last seen within this many days up to --date (default: all findings given).
    #[arg(long)]
    lookback_days: Option<u32>,
    /// Rank GuardDuty sample findings like real ones (default: suppressed).
    #[arg(long)]
    include_samples: bool,
    /// Analyst labels (`ipsight label add`): a JSON lines file or s3://bucket/prefix/. Confirmed
    /// false positives are suppressed (still listed), confirmed true positives escalated on top.
    #[arg(long)]
    labels: Option<String>,
    /// Rows to print.
    #[arg(long, default_value_t = 20)]
    top: usize,
}

fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = ipsight_synth::time::civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A file of finding records (what the extractor writes) or, failing that, raw findings.
fn read_findings_file(path: &Path) -> anyhow::Result<Vec<FindingRecord>> {
    let name = path.to_string_lossy();
    if name.ends_with(".json") {
        let mut text = Vec::new();
        File::open(path)?.take(64 << 20).read_to_end(&mut text)?;
        if let Ok(r) = serde_json::from_slice::<FindingRecord>(&text) {
            return Ok(vec![r]);
        }
    }
    let f = File::open(path)?;
    Ok(extract_all(BufReader::new(f), &ReadOptions::default())?.0)
}

fn read_list(path: &Path) -> anyhow::Result<IpList> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(IpList::parse(&path.display().to_string(), &text)?)
}

fn collect_score_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
            continue;
        }
        let mut stack = vec![p.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
                let e = e?;
                if e.file_type()?.is_dir() {
                    stack.push(e.path());
                } else if e.file_name().to_string_lossy().ends_with(".jsonl") {
                    out.push(e.path());
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let date = a.date.clone().unwrap_or_else(today_utc);
    if fuse::report::day_number(&date).is_none() || date.len() != 10 {
        anyhow::bail!("--date {date:?}: expected YYYY-MM-DD");
    }
    let mut records = Vec::new();
    for f in collect_finding_files(&a.findings)? {
        records.extend(read_findings_file(&f).with_context(|| format!("{}", f.display()))?);
    }
    let pairs = fuse::report::finding_pairs(&records);
    let wanted = pairs.iter().cloned().collect();
    let mut table = ScoreTable::default();
    for f in collect_score_files(&a.scores)? {
        let h = File::open(&f).with_context(|| format!("{}", f.display()))?;
        table.read_jsonl(
            BufReader::with_capacity(256 << 10, h),
            &f.display().to_string(),
            Some(&wanted),
        )?;
    }
    let mut scored_now = 0;
    if let Some(m) = &a.model {
        let scorer = EmbeddedScorer::load(m)?;
        // The same scorer port the Lambdas use; the embedded model needs no I/O, so a
        // current-thread runtime is enough.
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        scored_now = rt.block_on(table.score_missing(pairs.iter().cloned(), &scorer))?;
    }
    let opts = FuseOptions {
        date: date.clone(),
        lookback_days: a.lookback_days,
        trusted: a.trusted.as_deref().map(read_list).transpose()?,
        threats: a.threats.as_deref().map(read_list).transpose()?,
        include_samples: a.include_samples,
        labels: a.labels.as_deref().map(super::label::load).transpose()?,
    };
    let report = fuse(&records, &table, &opts);
    if let Some(dir) = &a.out {
        let base = dir.join("reports").join(&date);
        write_atomically(&base.join("suspicious.csv"), &report.to_csv())?;
        write_atomically(&base.join("suspicious.json"), &report.to_json())?;
        eprintln!("wrote {}", base.join("suspicious.{json,csv}").display());
    }
    print_table(&report, a.top);
    eprintln!(
        "{}",
        serde_json::json!({"date": date, "summary": report.summary, "scored_on_the_fly": scored_now})
    );
    Ok(())
}

fn print_table(report: &fuse::Report, top: usize) {
    println!(
        "{:>4}  {:>7}  {:<10}  {:<32}  {:<15}  {:>4}  {:>8}  types",
        "rank", "risk", "status", "entity", "ip", "sev", "unusual%"
    );
    for r in report.rows.iter().take(top) {
        let rank = r.rank.map_or("-".to_owned(), |x| x.to_string());
        let unusual = r
            .unusual_percentile
            .map_or("-".to_owned(), |u| format!("{u:.2}"));
        let mut entity = r.entity.clone();
        if entity.chars().count() > 32 {
            entity = entity.chars().take(31).collect::<String>() + "…";
        }
        println!(
            "{rank:>4}  {:>7.3}  {:<10}  {entity:<32}  {:<15}  {:>4.1}  {unusual:>8}  {}",
            r.risk,
            r.status,
            r.ip.to_string(),
            r.max_severity,
            r.finding_types.join(", ")
        );
    }
    let hidden = report.rows.len().saturating_sub(top);
    if hidden > 0 {
        println!("… {hidden} more rows (see --out for the full report)");
    }
}
