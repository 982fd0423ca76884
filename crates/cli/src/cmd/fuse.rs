//! `ipsight fuse`: the fuse Lambda's report on local files, printed as a ranked table.
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fuse::{assemble, Assembled, FuseOptions, IpList, ScoreTable};
use ipsight_formats::guardduty::{extract_all, FindingRecord, ReadOptions};
use ipsight_model::NewPrincipals;
use ipsight_ports::EmbeddedScorer;
use ipsight_securityhub::Importer;

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
    /// Model (from `ipsight train`) to score pairs that have no score in `--scores`; its baseline
    /// sidecar beside it (`M.ipsb`), when there, gives those rows their history and why.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Whether a principal absent from the baseline counts as unusual (`alert`: unusual_percentile
    /// 100) or not (`ignore`: 0). The NEW_PRINCIPALS setting of the Lambdas.
    #[arg(long, env = "NEW_PRINCIPALS", default_value = "alert")]
    new_principals: NewPrincipals,
    /// Trusted IP list (GuardDuty plain-text format): matching rows are suppressed, still reported.
    #[arg(long)]
    trusted: Option<PathBuf>,
    /// Threat IP list (GuardDuty plain-text format): matching rows are escalated.
    #[arg(long)]
    threats: Option<PathBuf>,
    /// Write `DIR/reports/<date>/suspicious.{json,csv,html}` (the Lambda's layout under a bucket
    /// directory); the `.html` is the interactive report page (one file, opens offline).
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
    #[command(flatten)]
    network: super::netdb::NetworkArgs,
    /// Rows a tuning rule covers are suppressed (still listed, with the rule), after `--ip-db`.
    #[command(flatten)]
    tuning: super::tuning::TuningArgs,
    /// Write the Security Hub `BatchImportFindings` request bodies the fuse Lambda would send,
    /// one `{"Findings": [...]}` per line (≤ 100 findings, ≤ 6 MB each). Suppressed rows are not
    /// published. With `--date`, the same inputs give the same bytes.
    #[arg(long, value_name = "OUT")]
    security_hub: Option<PathBuf>,
    /// Write one OCSF 1.1 Detection Finding (class 2004) per unsuppressed row, JSON lines.
    #[arg(long, value_name = "OUT")]
    ocsf: Option<PathBuf>,
    /// Account importing the findings (its default product ARN); default: each row's account.
    #[arg(long)]
    account: Option<String>,
    /// Region importing the findings; default: each row's region.
    #[arg(long)]
    region: Option<String>,
    /// Write the `PutEvents` request bodies the fuse Lambda would send for the report's *new* top
    /// rows (`PUBLISH_TOP_N`), one `{"Entries": [...]}` per line (≤ 10 entries, ≤ 256 KB each).
    /// With `--publish-state`, rows published before at the same or a higher band are left out.
    #[arg(long, value_name = "FILE")]
    events_out: Option<PathBuf>,
    /// The "published before" state (the Lambda's `PUBLISH_STATE_KEY` object): read if it exists,
    /// rewritten with the rows `--events-out` holds.
    #[arg(long, value_name = "FILE", requires = "events_out")]
    publish_state: Option<PathBuf>,
    /// Rows (ranked, unsuppressed) considered for `--events-out`: the first N.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    publish_top: u64,
    /// ... whose risk is at least this (0–100).
    #[arg(long, value_name = "RISK", default_value_t = 0.0)]
    publish_min_risk: f64,
    /// `EventBusName` of the entries (the Lambda's `EVENT_BUS_NAME`).
    #[arg(long, value_name = "NAME", default_value = "default")]
    event_bus: String,
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
    let date = a.date.clone().unwrap_or_else(ipsight_core::time::today_utc);
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
    let scorer = a
        .model
        .as_ref()
        .map(|m| EmbeddedScorer::load_with(m, a.new_principals))
        .transpose()?;
    if let Some(s) = &scorer {
        eprintln!("scoring missing pairs with the {}", s.describe());
    }
    let opts = FuseOptions {
        date: date.clone(),
        lookback_days: a.lookback_days,
        trusted: a.trusted.as_deref().map(read_list).transpose()?,
        threats: a.threats.as_deref().map(read_list).transpose()?,
        include_samples: a.include_samples,
        labels: a.labels.as_deref().map(super::label::load).transpose()?,
        tuning: a.tuning.load()?,
    };
    let enricher = a.network.enricher()?;
    // The same assembly as the fuse Lambda; the embedded model needs no I/O, so a current-thread
    // runtime is enough.
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let Assembled {
        report,
        scored_now,
        scorer_error,
        tuning,
    } = rt.block_on(assemble(
        &records,
        table,
        scorer.as_ref(),
        &opts,
        enricher.as_ref(),
    ))?;
    // The Lambda degrades to "unscored" rows on a scorer outage; here the model was asked for
    // explicitly, so a model that cannot score the pairs is an error.
    if let Some(e) = scorer_error {
        anyhow::bail!("--model could not score the pairs without a score: {e}");
    }
    if let (Some(t), Some(outcome)) = (&opts.tuning, &tuning) {
        eprintln!(
            "{}",
            serde_json::json!({"tuning": t.name, "outcome": outcome})
        );
    }
    let importer = Importer::for_date(&date, a.account.clone(), a.region.clone());
    if let Some(out) = &a.security_hub {
        let (batches, skipped) = fuse::findings::security_hub_batches(&report, &importer);
        let mut body = String::new();
        for b in &batches {
            body.push_str(&ipsight_securityhub::asff::body_json(b));
            body.push('\n');
        }
        write_atomically(out, body.as_bytes())?;
        eprintln!(
            "{}",
            serde_json::json!({"security_hub": out.display().to_string(), "requests": batches.len(),
                               "findings": batches.iter().map(Vec::len).sum::<usize>(), "skipped": skipped})
        );
    }
    if let Some(out) = &a.ocsf {
        let mut body = String::new();
        for f in fuse::findings::ocsf_findings(&report, &importer) {
            body.push_str(&f.to_string());
            body.push('\n');
        }
        write_atomically(out, body.as_bytes())?;
    }
    if let Some(out) = &a.events_out {
        publish_top_rows(&a, &report, out)?;
    }
    if let Some(dir) = &a.out {
        let base = dir.join("reports").join(&date);
        write_atomically(&base.join("suspicious.csv"), &report.to_csv())?;
        write_atomically(&base.join("suspicious.json"), &report.to_json())?;
        write_atomically(&base.join("suspicious.html"), &report.to_html())?;
        eprintln!(
            "wrote {}",
            base.join("suspicious.{json,csv,html}").display()
        );
    }
    print_table(&report, a.top);
    eprintln!(
        "{}",
        serde_json::json!({"date": date, "summary": report.summary, "scored_on_the_fly": scored_now})
    );
    Ok(())
}

/// The fuse Lambda's top-row publishing on files: the same plan, the request bodies written
/// instead of sent, then the state (only after the bodies are written, as the Lambda writes it
/// only after PutEvents accepted them).
fn publish_top_rows(a: &Args, report: &fuse::Report, out: &Path) -> anyhow::Result<()> {
    use fuse::top::{self, PublishedState, TopRows};
    if !(0.0..=100.0).contains(&a.publish_min_risk) {
        anyhow::bail!(
            "--publish-min-risk {}: a risk, 0 to 100",
            a.publish_min_risk
        );
    }
    let before = match &a.publish_state {
        Some(p) if p.exists() => {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            PublishedState::parse(&p.display().to_string(), &bytes)?
        }
        _ => PublishedState::default(),
    };
    let opts = TopRows {
        top_n: usize::try_from(a.publish_top).unwrap_or(usize::MAX),
        min_risk: a.publish_min_risk,
    };
    let plan = top::plan(report, &before, &opts);
    let bodies = top::request_bodies(&a.event_bus, &plan.events);
    let mut text = String::new();
    for b in &bodies {
        text.push_str(&top::body_json(b));
        text.push('\n');
    }
    write_atomically(out, text.as_bytes())?;
    let mut state_written = false;
    if let Some(p) = &a.publish_state {
        if plan.changes(&before) || !p.exists() {
            write_atomically(p, &plan.state.to_json())?;
            state_written = true;
        }
    }
    eprintln!(
        "{}",
        serde_json::json!({"events_out": out.display().to_string(), "requests": bodies.len(),
                           "events": plan.events.len(), "counts": plan.counts,
                           "state_written": state_written})
    );
    Ok(())
}

fn print_table(report: &fuse::Report, top: usize) {
    println!(
        "{:>4}  {:>7}  {:<10}  {:<32}  {:<15}  {:>4}  {:>8}  {:<13}  types",
        "rank", "risk", "status", "entity", "ip", "sev", "unusual%", "history"
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
        let history = r.history.map_or("-", |h| h.as_str());
        println!(
            "{rank:>4}  {:>7.3}  {:<10}  {entity:<32}  {:<15}  {:>4.1}  {unusual:>8}  {history:<13}  {}",
            r.risk,
            r.status,
            r.ip.to_string(),
            r.max_severity,
            r.finding_types.join(", ")
        );
        if let Some(why) = &r.score_explanation {
            println!("      why: {why}");
        }
    }
    let hidden = report.rows.len().saturating_sub(top);
    if hidden > 0 {
        println!("… {hidden} more rows (see --out for the full report)");
    }
}
