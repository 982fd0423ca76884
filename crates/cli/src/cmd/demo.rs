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
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ipsight_formats::{Ipv6Tuples, PrepareOptions};
use ipsight_model::hybrid::model_dot;
use ipsight_model::tuples::read_pair_log;
use ipsight_model::{
    eval, sidecar_path, train_hybrid, HybridOptions, Hyperparameters, IpEncoderLayout, Malformed,
    NewPrincipals, TrainOptions,
};
use ipsight_synth::guardduty::{generate_findings, write_guardduty_export, FindingsOptions};
use ipsight_synth::{write_cloudtrail, CloudTrailOptions, SynthConfig, World};

use super::prepare::prepare_cloudtrail_paths;
use ipsight_formats::cloudtrail::Outputs;

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
            &keep_ipv6(),
            0,
            Outputs::tuples(&mut w),
        )?;
        w.flush()?;
        anyhow::ensure!(r.failed.is_empty(), "prepare failed: {:?}", r.failed);
        let st = &r.stats;
        eprintln!(
            "    {} files ({} skipped: digests/Insights) → {} tuples ({} IPv6, kept as the preparer Lambda's IPV6=keep) from {} records; no tuple: {} AWS-internal, {} service host, {} no principal, {} no IP",
            r.files,
            r.skipped.len(),
            st.tuples,
            st.ipv6_tuples,
            st.records,
            st.aws_internal,
            st.service_host,
            st.no_principal,
            st.missing_ip
        );
        Ok(csv)
    };
    // The tuple CSV (SageMaker's channel format) is written for the built-in algorithm; the local
    // trainer takes the per-day pair file below, whose time order the hold-back needs.
    prep(&history, a.out.join("train.csv"))?;
    let recent_csv = prep(&recent, a.out.join("recent.csv"))?;

    step(
        3,
        "training the embedded IP Insights model on the history (ipsight train)",
    );
    let pairs_path = daily_pair_file(&history, &a.out.join("train-pairs.csv"))?;
    let (log, _) = read_pair_log(
        BufReader::new(std::fs::File::open(&pairs_path)?),
        Malformed::Fail,
    )?;
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
            ipv6_buckets: 4096,
        },
        ..TrainOptions::default()
    };
    let tt = Instant::now();
    let (model, detector, summary) = train_hybrid(
        &hp,
        &opts,
        &HybridOptions::default(),
        &log,
        None,
        &mut |_| {},
    )?;
    let model_path = a.out.join("model.ipsm");
    model.save(&model_path)?;
    detector.save(sidecar_path(&model_path))?;
    eprintln!(
        "    {} pairs, {} entities, trained in {:.1} s → {} (+ baseline sidecar: the newest {} pairs held back to fit the combined score and calibrate it)",
        log.len(),
        world.entities().len(),
        tt.elapsed().as_secs_f64(),
        model_path.display(),
        summary.held_back_pairs
    );

    step(
        4,
        "scoring the last 7 days, and the same principals from IP ranges they never use",
    );
    let recent_pairs: Vec<(String, IpAddr)> = {
        let text = std::fs::read_to_string(&recent_csv)?;
        text.lines()
            .filter_map(|l| {
                ipsight_formats::tuples::split_tuple(l)
                    .and_then(|(e, ip)| Some((e.into_owned(), ip.parse().ok()?)))
            })
            .collect()
    };
    let recent_v6 = recent_pairs.iter().filter(|(_, ip)| ip.is_ipv6()).count();
    // As many anomalies as recent pairs (at most 20,000), each family in its share: IPv4 ranges
    // the principals never use, and random public IPv6 addresses for those that use IPv6.
    let n_attacks = recent_pairs.len().min(20_000);
    let n_v6 = n_attacks * recent_v6 / recent_pairs.len().max(1);
    let attacks: Vec<(String, IpAddr)> = world
        .anomalous_pairs(n_attacks - n_v6, a.seed ^ 0xa77ac)
        .into_iter()
        .map(|(e, ip)| (e, IpAddr::V4(ip)))
        .chain(
            world
                .ipv6_random_pairs(n_v6, a.seed ^ 0xa77ac)
                .into_iter()
                .map(|(e, ip)| (e, IpAddr::V6(ip))),
        )
        .collect();
    let judge = |pairs: &[(String, IpAddr)]| -> Vec<ipsight_model::Verdict> {
        pairs
            .iter()
            .map(|(e, ip)| {
                let dot = model_dot(&model, e, *ip).expect("the model has IPv6 rows");
                detector.judge(e, *ip, dot, NewPrincipals::Alert)
            })
            .collect()
    };
    let (nv, av) = (judge(&recent_pairs), judge(&attacks));
    let ns: Vec<f32> = nv.iter().map(|v| v.dot_product).collect();
    let an: Vec<f32> = av.iter().map(|v| v.dot_product).collect();
    // The combined score's AUC; a new principal (alerting by default) is the least normal.
    let combined = |v: &[ipsight_model::Verdict]| -> Vec<f32> {
        v.iter()
            .map(|v| {
                if v.history == ipsight_model::History::NewPrincipal {
                    f32::NEG_INFINITY
                } else {
                    v.combined as f32
                }
            })
            .collect()
    };
    let auc = eval::auc(&ns, &an);
    let auc_combined = eval::auc(&combined(&nv), &combined(&av));
    // The plot's line: the dot product below which 1% of held-back recent activity falls.
    let threshold = detector.embedding_calibration.threshold_for_fpr(0.01);
    let unusual = |v: &[ipsight_model::Verdict]| -> Vec<f64> {
        v.iter().map(|v| v.unusual_percentile).collect()
    };
    let old: Vec<f64> = ns.iter().map(|&s| 100.0 - model.percentile(s)).collect();
    let flagged = eval::flagged_share(&unusual(&nv), 0.01);
    let recall = eval::flagged_share(&unusual(&av), 0.01);
    println!();
    println!(
        "ipsight demo — {} principals, {} days of history, 7 recent days",
        world.entities().len(),
        train_days
    );
    println!(
        "  recent normal activity scored : {} ({recent_v6} IPv6)",
        ns.len()
    );
    println!(
        "  anomalous <principal, IP> pairs: {} ({n_v6} IPv6)",
        an.len()
    );
    println!(
        "  AUC (normal vs anomalous)      : {auc_combined:.4} combined (embedding alone {auc:.4})"
    );
    if recent_v6 > 0 && n_v6 > 0 {
        let v6 = |pairs: &[(String, IpAddr)],
                  v: &[ipsight_model::Verdict]|
         -> Vec<ipsight_model::Verdict> {
            pairs
                .iter()
                .zip(v)
                .filter(|((_, ip), _)| ip.is_ipv6())
                .map(|(_, v)| *v)
                .collect()
        };
        let (n6, a6) = (v6(&recent_pairs, &nv), v6(&attacks, &av));
        let dots = |v: &[ipsight_model::Verdict]| -> Vec<f32> {
            v.iter().map(|v| v.dot_product).collect()
        };
        println!(
            "  IPv6 pairs alone               : AUC {:.4} combined (embedding alone {:.4}); a 1% budget flags {:.2}% of them and {:.1}% of the IPv6 anomalies",
            eval::auc(&combined(&n6), &combined(&a6)),
            eval::auc(&dots(&n6), &dots(&a6)),
            eval::flagged_share(&unusual(&n6), 0.01) * 100.0,
            eval::flagged_share(&unusual(&a6), 0.01) * 100.0
        );
    }
    println!(
        "  alert budget 1% (unusual_percentile ≥ 99): flags {:.2}% of the recent normal activity and {:.1}% of the anomalous pairs; \
         percentiles calibrated on held-back recent pairs (the old calibration on training pairs would flag {:.2}%)",
        flagged * 100.0,
        recall * 100.0,
        eval::flagged_share(&old, 0.01) * 100.0
    );
    let mut worst: Vec<usize> = (0..attacks.len()).collect();
    worst.sort_by(|&x, &y| {
        av[y]
            .unusual_percentile
            .total_cmp(&av[x].unusual_percentile)
            .then(av[x].combined.total_cmp(&av[y].combined))
    });
    println!("  most unusual pairs, and why:");
    // The five least normal, and the least normal IPv6 one if none of those is.
    let mut shown: Vec<usize> = worst.iter().take(5).copied().collect();
    if !shown.iter().any(|&i| attacks[i].1.is_ipv6()) {
        shown.extend(worst.iter().find(|&&i| attacks[i].1.is_ipv6()));
    }
    for i in shown {
        let (e, ip) = &attacks[i];
        println!(
            "    {e:<24} {:<16} {}",
            ip.to_string(),
            detector.explain(e, *ip, &av[i])
        );
    }
    if let Some(i) =
        (0..recent_pairs.len()).find(|&i| nv[i].history == ipsight_model::History::Prefix24)
    {
        let (e, ip) = &recent_pairs[i];
        println!("  and a normal pair from a known /24:");
        println!(
            "    {e:<24} {:<16} {}",
            ip.to_string(),
            detector.explain(e, *ip, &nv[i])
        );
    }
    if let Some(i) =
        (0..recent_pairs.len()).find(|&i| nv[i].history == ipsight_model::History::Prefix64)
    {
        let (e, ip) = &recent_pairs[i];
        println!("  and a normal IPv6 pair from a known /64 (a new privacy address at home):");
        println!("    {e:<24} {ip} {}", detector.explain(e, *ip, &nv[i]));
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
The line is the dot product below which 1% of held-back recent activity falls (the embedding's alert budget of 1%).</p>
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

/// The preparer's rules as the Lambda runs them by default (`IPV6=keep`, as `--ipv6`): IPv6
/// callers become tuples and pairs, trained and scored by ipsight's own model.
fn keep_ipv6() -> PrepareOptions {
    PrepareOptions {
        ipv6: Ipv6Tuples::Keep,
        ..PrepareOptions::default()
    }
}

/// The history as a per-day pair file (one line per pair and day, as `ipsight prepare --pairs` run
/// once a day writes), oldest day first. The trainer holds back the newest part in time order: the
/// tuple CSV is in file order (account, region, then date), where "newest" would mean "the last
/// account's principals".
fn daily_pair_file(bucket: &std::path::Path, out: &std::path::Path) -> anyhow::Result<PathBuf> {
    fn day_dirs(
        dir: &std::path::Path,
        into: &mut std::collections::BTreeMap<String, Vec<PathBuf>>,
    ) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if !p.is_dir() {
                continue;
            }
            let parts: Vec<String> = p
                .components()
                .rev()
                .take(3)
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let numeric = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
            if parts.len() == 3
                && numeric(&parts[0], 2)
                && numeric(&parts[1], 2)
                && numeric(&parts[2], 4)
            {
                let date = format!("{}/{}/{}", parts[2], parts[1], parts[0]);
                into.entry(date).or_default().push(p);
            } else {
                day_dirs(&p, into)?;
            }
        }
        Ok(())
    }
    let mut days = std::collections::BTreeMap::new();
    day_dirs(bucket, &mut days)?;
    let mut w = BufWriter::new(std::fs::File::create(out)?);
    writeln!(w, "{}", ipsight_formats::pairs::PAIR_HEADER)?;
    for dirs in days.values() {
        let mut agg = ipsight_formats::pairs::PairAggregate::new();
        let r = prepare_cloudtrail_paths(dirs, false, &keep_ipv6(), 0, Outputs::pairs(&mut agg))?;
        anyhow::ensure!(r.failed.is_empty(), "prepare failed: {:?}", r.failed);
        for (e, ip, h) in agg.sorted() {
            ipsight_formats::pairs::write_pair_line(&mut w, e, ip, h)?;
        }
    }
    w.flush()?;
    Ok(out.to_owned())
}
