//! `ipsight demo`: the main job end to end on built-in synthetic data, no AWS account needed.
//!
//! A synthetic organisation's CloudTrail bucket is written to disk, prepared into tuples with the
//! preparer Lambda's code, an IP Insights-compatible model is trained on the early days, and the
//! later days' real activity is scored against the same principals acting from IP ranges they never
//! use (the situation ipsight exists to catch). GuardDuty findings (some on attack pairs, most on
//! everyday activity) then go through the extractor and the fusion report, exactly as the
//! `ipsight extract` / `ipsight fuse` commands run them, and an HTML report is written.
use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ipsight_formats::PrepareOptions;
use ipsight_model::{
    eval, read_training_data, train, Hyperparameters, IpEncoderLayout, Malformed, TrainOptions,
};
use ipsight_synth::guardduty::{generate_findings, write_guardduty_export, FindingsOptions};
use ipsight_synth::{write_cloudtrail, CloudTrailOptions, SynthConfig, World};

use super::prepare::prepare_cloudtrail_paths;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the synthetic bucket, tuples, model and report
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// People in the synthetic organisation (plus automation roles)
    #[arg(long, default_value_t = 150)]
    users: u32,
    /// Days of CloudTrail; the last 7 are "recent" activity to score
    #[arg(long, default_value_t = 21)]
    days: u32,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.days > 7,
        "--days must be more than 7 (the last 7 days are scored)"
    );
    let t0 = Instant::now();
    let train_days = a.days - 7;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let step = |n: u32, what: &str| eprintln!("[{n}] {what}");

    step(
        1,
        "writing a synthetic CloudTrail bucket (organization trail, digests, Insights)",
    );
    let world = World::new(SynthConfig::new(a.seed, a.users, a.days));
    let history = a.out.join("cloudtrail-history");
    let recent = a.out.join("cloudtrail-recent");
    for (dir, days) in [(&history, 0..train_days), (&recent, train_days..a.days)] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        let s = write_cloudtrail(
            &world,
            dir,
            &CloudTrailOptions {
                days: Some(days),
                organization_trail: true,
                ..Default::default()
            },
        )?;
        eprintln!(
            "    {}: {} log files, {} digests, {} records, {:.1} MB of JSON",
            dir.display(),
            s.log_files,
            s.digest_files,
            s.records,
            s.uncompressed_bytes as f64 / 1e6
        );
    }

    step(
        2,
        "preparing tuples with the preparer's rules (ipsight prepare cloudtrail)",
    );
    let prep = |dir: &PathBuf, csv: PathBuf| -> anyhow::Result<PathBuf> {
        let mut w = BufWriter::new(std::fs::File::create(&csv)?);
        let r = prepare_cloudtrail_paths(
            std::slice::from_ref(dir),
            false,
            &PrepareOptions::default(),
            0,
            &mut w,
        )?;
        w.flush()?;
        anyhow::ensure!(r.failed.is_empty(), "prepare failed: {:?}", r.failed);
        let st = &r.stats;
        eprintln!(
            "    {} files ({} skipped: digests/Insights) → {} tuples from {} records; no tuple: {} AWS-internal, {} service host, {} IPv6, {} no principal, {} no IP",
            r.files,
            r.skipped.len(),
            st.tuples,
            st.records,
            st.aws_internal,
            st.service_host,
            st.ipv6,
            st.no_principal,
            st.missing_ip
        );
        Ok(csv)
    };
    let train_csv = prep(&history, a.out.join("train.csv"))?;
    let recent_csv = prep(&recent, a.out.join("recent.csv"))?;

    step(
        3,
        "training the embedded IP Insights model on the history (ipsight train)",
    );
    let read = |p: &PathBuf| -> anyhow::Result<ipsight_model::TrainingData> {
        Ok(read_training_data(BufReader::new(std::fs::File::open(p)?), Malformed::Fail)?.0)
    };
    let data = read(&train_csv)?;
    let mut hp = Hyperparameters::new((world.entities().len() as u64 * 4).max(64), 32);
    hp.epochs = 4;
    hp.mini_batch_size = 1000;
    hp.learning_rate = 0.01;
    hp.random_negative_sampling_rate = 5;
    let opts = TrainOptions {
        seed: a.seed,
        layout: IpEncoderLayout {
            prefix24_buckets: 8192,
            address_buckets: 8192,
        },
        ..TrainOptions::default()
    };
    let tt = Instant::now();
    let model = train(&hp, &opts, &data, None, &mut |_| {})?;
    let model_path = a.out.join("model.ipsm");
    model.save(&model_path)?;
    eprintln!(
        "    {} pairs, {} entities, trained in {:.1} s → {}",
        data.len(),
        world.entities().len(),
        tt.elapsed().as_secs_f64(),
        model_path.display()
    );

    step(
        4,
        "scoring the last 7 days, and the same principals from IP ranges they never use",
    );
    let recent_pairs: Vec<(String, std::net::Ipv4Addr)> = {
        let text = std::fs::read_to_string(&recent_csv)?;
        text.lines()
            .filter_map(|l| {
                ipsight_formats::tuples::split_tuple(l)
                    .and_then(|(e, ip)| Some((e.into_owned(), ip.parse().ok()?)))
            })
            .collect()
    };
    let attacks = world.anomalous_pairs(recent_pairs.len().min(20_000), a.seed ^ 0xa77ac);
    let ns = model.score_pairs(&recent_pairs);
    let an = model.score_pairs(&attacks);
    let auc = eval::auc(&ns, &an);
    let threshold = model.threshold_for_fpr(0.01);
    let m = eval::metrics_at(&ns, &an, threshold);
    println!();
    println!(
        "ipsight demo — {} principals, {} days of history, 7 recent days",
        world.entities().len(),
        train_days
    );
    println!("  recent normal activity scored : {}", ns.len());
    println!("  anomalous <principal, IP> pairs: {}", an.len());
    println!("  AUC (normal vs anomalous)      : {auc:.4}");
    println!(
        "  alert threshold (1% of known activity is less normal): dot_product < {threshold:.3} → recall {:.3}, false-positive rate on recent normal activity {:.4}",
        m.recall, m.false_positive_rate
    );
    let mut worst: Vec<(f32, &String, &std::net::Ipv4Addr)> = an
        .iter()
        .zip(&attacks)
        .map(|(s, (e, ip))| (*s, e, ip))
        .collect();
    worst.sort_by(|x, y| x.0.total_cmp(&y.0));
    println!("  most unusual pairs:");
    for (s, e, ip) in worst.iter().take(5) {
        println!(
            "    {e:<24} {ip:<16} dot_product {s:>8.3}  less normal than {:.2}% of known activity",
            100.0 - model.percentile(*s)
        );
    }

    step(
        5,
        "GuardDuty findings (S3 export format) → ipsight extract guardduty",
    );
    let labeled = generate_findings(
        &world,
        &FindingsOptions {
            seed: a.seed,
            attacks: 12,
            benign: 120,
            port_probes: 6,
            updates: 8,
        },
    );
    let mut truth: HashMap<(String, Ipv4Addr), bool> = HashMap::new();
    for f in &labeled {
        if let (Some(e), Some(ip)) = (&f.entity, f.ip) {
            *truth.entry((e.clone(), ip)).or_insert(false) |= f.attack;
        }
    }
    let export = a.out.join("guardduty-export");
    if export.exists() {
        std::fs::remove_dir_all(&export)?;
    }
    write_guardduty_export(&export, &labeled)?;
    let data = a.out.join("data");
    let infer = data.join("infer/guardduty");
    run_cli::<super::extract::Args>(
        &["extract", "guardduty", path(&export), "-o", path(&infer)],
        super::extract::run,
    )?;

    step(6, "fusing findings with IP Insights scores → ipsight fuse");
    let date = ipsight_synth::time::rfc3339(world.day_start(a.days - 1))[..10].to_owned();
    let findings_dir = infer.join("findings");
    run_cli::<super::fuse::Args>(
        &[
            "fuse",
            "--findings",
            path(&findings_dir),
            "--model",
            path(&model_path),
            "--out",
            path(&data),
            "--date",
            &date,
            "--top",
            "12",
        ],
        super::fuse::run,
    )?;
    let report_json = data.join("reports").join(&date).join("suspicious.json");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_json)?)?;
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    let ranked: Vec<&serde_json::Value> = rows.iter().filter(|r| !r["rank"].is_null()).collect();
    let is_attack = |r: &serde_json::Value| -> bool {
        let ip: Option<Ipv4Addr> = r["ip"].as_str().and_then(|s| s.parse().ok());
        match (r["entity"].as_str(), ip) {
            (Some(e), Some(ip)) => truth.get(&(e.to_owned(), ip)).copied().unwrap_or(false),
            _ => false,
        }
    };
    let attacks_total = ranked.iter().filter(|r| is_attack(r)).count();
    let top = ranked
        .iter()
        .take(attacks_total)
        .filter(|r| is_attack(r))
        .count();
    println!(
        "  ground truth: {attacks_total} of {} ranked <principal, IP> rows are attacks; {top} of the top {attacks_total} rows are attacks",
        ranked.len()
    );

    step(7, "writing the HTML report");
    let html = a.out.join("report.html");
    std::fs::write(
        &html,
        html_report(&date, &ranked, &is_attack, &ns, &an, threshold, auc),
    )?;
    println!(
        "  report: {} (and {})",
        html.display(),
        report_json.display()
    );
    println!(
        "  outputs in {} ; total {:.1} s",
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("demo paths are UTF-8")
}

#[derive(clap::Parser)]
struct One<A: clap::Args> {
    #[command(flatten)]
    a: A,
}

/// Run a subcommand exactly as the command line would, so the demo shows what users type.
fn run_cli<A: clap::Args>(argv: &[&str], run: fn(A) -> anyhow::Result<()>) -> anyhow::Result<()> {
    eprintln!("    $ ipsight {}", argv.join(" "));
    let parsed = <One<A> as clap::Parser>::try_parse_from(argv)?;
    run(parsed.a)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_report(
    date: &str,
    ranked: &[&serde_json::Value],
    is_attack: &dyn Fn(&serde_json::Value) -> bool,
    normal: &[f32],
    anomalous: &[f32],
    threshold: f32,
    auc: f64,
) -> String {
    let mut rows = String::new();
    for r in ranked.iter().take(50) {
        let f = |k: &str| r[k].as_f64().map_or("–".to_owned(), |v| format!("{v:.2}"));
        let types = r["finding_types"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let attack = is_attack(r);
        rows.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            if attack { "attack" } else { "" },
            r["rank"],
            f("risk"),
            esc(r["entity"].as_str().unwrap_or("")),
            esc(r["ip"].as_str().unwrap_or("")),
            f("max_severity"),
            f("unusual_percentile"),
            esc(&types),
            if attack { "attack" } else { "benign" },
            esc(r["explanation"].as_str().unwrap_or("")),
        ));
    }
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>ipsight demo report {date}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}tr.attack{{background:#fde8e8}}td:last-child{{font-size:12px;color:#555}}</style></head><body>
<h1>ipsight — suspicious activity, {date}</h1>
<p>Synthetic organisation (ipsight demo). Rows are <code>&lt;principal, IP&gt;</code> pairs named by GuardDuty findings,
ranked by the fused risk (GuardDuty severity combined with IP Insights unusualness; formula in crates/fuse/README.md).
Ground truth from the generator: attack rows are shaded.</p>
<h2>Score distributions</h2>
<p>IP Insights <code>dot_product</code> of the last 7 days' real activity ({n} pairs) and of the same principals from IP ranges they never use ({m} pairs); AUC {auc:.4}.
The line is the threshold that flags 1% of known (training) activity.</p>
{svg}
<h2>Ranked rows</h2>
<table><tr><th>rank</th><th>risk</th><th>entity</th><th>ip</th><th>severity</th><th>unusual %</th><th>finding types</th><th>truth</th><th>explanation</th></tr>
{rows}</table></body></html>
"#,
        n = normal.len(),
        m = anomalous.len(),
        svg = super::evaluate::distribution_svg(normal, anomalous, threshold),
    )
}
