//! `ipsight evaluate`: AUC, the threshold for a false-positive budget, precision/recall there, and a
//! plot of both score distributions with the threshold marked.
use std::fs::File;
use std::io::BufReader;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ipsight_model::{eval, read_pairs, History, Malformed, Model, NewPrincipals};

#[derive(clap::Args)]
pub struct Args {
    /// Model file written by `ipsight train`
    #[arg(long, required_unless_present = "worlds")]
    model: Option<PathBuf>,
    /// Instead of a model: train on the project's synthetic worlds (dense = 14 days, sparse = 1 day,
    /// dual-stack = 14 days of IPv4 and IPv6) as `ipsight train` does with no flags, and report
    /// embedding, lookup and combined side by side (AUC, recall at 0.1/1/5% FPR) against
    /// random-address and other-principals'-address anomalies (IPv6 also: the principal's own ISP
    /// /32 but another customer's prefix), and how much of the later days' normal activity each
    /// alert budget flags
    #[arg(long, conflicts_with_all = ["model", "normal", "labels"])]
    worlds: bool,
    /// Only these worlds (with --worlds; default all)
    #[arg(long = "world", value_parser = ["dense", "sparse", "dual-stack"], requires = "worlds")]
    only: Vec<String>,
    /// People in each synthetic world (with --worlds)
    #[arg(long, default_value_t = 200, requires = "worlds")]
    users: u32,
    /// Seed of the synthetic worlds and of training (with --worlds)
    #[arg(long, default_value_t = 11, requires = "worlds")]
    seed: u64,
    /// Worker threads for training (with --worlds; default all cores)
    #[arg(long, requires = "worlds")]
    threads: Option<usize>,
    /// Tuple CSV of known-normal pairs (e.g. later days of real activity)
    #[arg(long, requires = "anomalous", required_unless_present_any = ["labels", "worlds"])]
    normal: Option<PathBuf>,
    /// Tuple CSV of anomalous pairs (e.g. the same entities from random IPs)
    #[arg(long, requires = "normal")]
    anomalous: Option<PathBuf>,
    /// Analyst labels (`ipsight label add`; a JSON lines file or s3://bucket/prefix/): re-calibrate
    /// ipcheck's alert threshold with the confirmed true and false positives on exact pairs
    #[arg(long)]
    labels: Option<String>,
    /// ipcheck's current ALERT_MIN_PERCENTILE, which --labels re-calibrates
    #[arg(long, default_value_t = 99.5)]
    alert_min_percentile: f64,
    /// Labels in force at this date/time are used (default: now)
    #[arg(long)]
    labels_at: Option<String>,
    /// False-positive budget on the normal pairs (0–1)
    #[arg(long, default_value_t = 0.01)]
    target_fpr: f64,
    /// Write a histogram of both score distributions with the threshold: .svg (labelled) or .png
    /// (bars and threshold only: green = normal, red = anomalous, black line = threshold)
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Skip malformed lines instead of failing
    #[arg(long)]
    skip_malformed: bool,
    /// Baseline sidecar (default: the model's path with extension .ipsb). When present, the
    /// embedding, the history lookup and the combined score are reported side by side
    #[arg(long)]
    baseline: Option<PathBuf>,
}

fn read(path: &Path, skip: bool) -> anyhow::Result<Vec<(String, IpAddr)>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mode = if skip {
        Malformed::Skip
    } else {
        Malformed::Fail
    };
    let (pairs, stats) = read_pairs(BufReader::new(file), mode)
        .with_context(|| format!("reading {}", path.display()))?;
    if stats.skipped > 0 {
        eprintln!(
            "{}: skipped {} malformed line(s)",
            path.display(),
            stats.skipped
        );
    }
    if pairs.is_empty() {
        bail!("{} has no pairs", path.display());
    }
    Ok(pairs)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.target_fpr) {
        bail!(
            "--target-fpr must be between 0 and 1, got {}",
            args.target_fpr
        );
    }
    if !(0.0..=100.0).contains(&args.alert_min_percentile) {
        bail!(
            "--alert-min-percentile must be between 0 and 100, got {}",
            args.alert_min_percentile
        );
    }
    if args.worlds {
        let wanted = |name: &str| {
            args.only.is_empty() || args.only.iter().any(|o| name.starts_with(o.as_str()))
        };
        let results: Vec<_> = super::worlds::WORLDS
            .iter()
            .filter(|w| wanted(w.name))
            .map(|w| {
                eprintln!("training and scoring the {} world…", w.name);
                super::worlds::run_world(w, args.users, args.seed, args.threads)
            })
            .collect();
        if !results.is_empty() {
            print!("{}", super::worlds::render(&results));
        }
        if wanted(super::worlds_ipv6::NAME) {
            eprintln!(
                "training and scoring the {} world…",
                super::worlds_ipv6::NAME
            );
            let r = super::worlds_ipv6::run(args.users, args.seed, args.threads);
            print!("\n{}", super::worlds_ipv6::render(&r));
        }
        return Ok(());
    }
    let model_path = args
        .model
        .as_ref()
        .expect("clap requires --model without --worlds");
    let model = Model::load(model_path)
        .with_context(|| format!("loading model {}", model_path.display()))?;
    if let Some(loc) = &args.labels {
        labelled(&model, loc, &args)?;
    }
    let (Some(normal), Some(anomalous)) = (&args.normal, &args.anomalous) else {
        return Ok(());
    };
    let normal_pairs = read(normal, args.skip_malformed)?;
    let anomalous_pairs = read(anomalous, args.skip_malformed)?;
    let normal = model.score_ip_pairs(&normal_pairs)?;
    let anomalous = model.score_ip_pairs(&anomalous_pairs)?;
    let auc = eval::auc(&normal, &anomalous);
    let threshold = eval::threshold_for_fpr(&normal, args.target_fpr);
    let m = eval::metrics_at(&normal, &anomalous, threshold);
    let calibrated = model.threshold_for_fpr(args.target_fpr);
    println!(
        "normal pairs: {}, anomalous pairs: {}",
        normal.len(),
        anomalous.len()
    );
    println!("AUC: {auc:.6}");
    println!(
        "threshold for a {:.2}% false-positive budget on the normal pairs: {threshold:.6} (flag dot_product < threshold)",
        args.target_fpr * 100.0
    );
    println!(
        "at that threshold: precision {:.4}, recall {:.4}, false-positive rate {:.4} ({} anomalous and {} normal pairs flagged)",
        m.precision, m.recall, m.false_positive_rate, m.true_positives, m.false_positives
    );
    let mc = eval::metrics_at(&normal, &anomalous, calibrated);
    println!(
        "model calibration (training pairs) puts {:.2}% of known activity below {calibrated:.6}; there: precision {:.4}, recall {:.4}, false-positive rate {:.4}",
        args.target_fpr * 100.0,
        mc.precision,
        mc.recall,
        mc.false_positive_rate
    );
    hybrid(
        &model,
        model_path,
        args.baseline.as_ref(),
        &normal_pairs,
        &normal,
        &anomalous_pairs,
        &anomalous,
    )?;
    by_family(
        &normal_pairs,
        &normal,
        &anomalous_pairs,
        &anomalous,
        args.target_fpr,
    );
    if let Some(path) = &args.plot {
        plot(path, &normal, &anomalous, threshold)
            .with_context(|| format!("writing plot {}", path.display()))?;
        println!("plot written to {}", path.display());
    }
    Ok(())
}

/// With the model's baseline sidecar: the embedding alone, the history lookup alone ("the longest
/// prefix this principal used before") and the combined score side by side on the same pairs (AUC,
/// recall at 0.1/1/5% false positives, each threshold taken on the normal pairs), and how much of
/// the normal pairs each alert budget flags through the sidecar's calibrated percentiles. Pairs of
/// principals absent from the baseline are counted apart: their result is a policy
/// (`--new-principals`), not a score.
fn hybrid(
    model: &Model,
    model_path: &Path,
    explicit: Option<&PathBuf>,
    normal_pairs: &[(String, IpAddr)],
    normal: &[f32],
    anomalous_pairs: &[(String, IpAddr)],
    anomalous: &[f32],
) -> anyhow::Result<()> {
    let default = ipsight_model::sidecar_path(model_path);
    if explicit.is_none() && !default.exists() {
        println!(
            "no baseline sidecar ({}): embedding only",
            default.display()
        );
        return Ok(());
    }
    let det = super::score::load_detector(model, model_path, explicit)?;
    let judge = |pairs: &[(String, IpAddr)], dots: &[f32]| {
        let mut out = HybridScores::default();
        for ((e, ip), &d) in pairs.iter().zip(dots) {
            let v = det.judge(e, *ip, d, NewPrincipals::Alert);
            if v.history == History::NewPrincipal {
                out.new_principals += 1;
                continue;
            }
            out.embedding.push(d);
            out.lookup.push(v.history.lookup_score());
            out.combined.push(v.combined as f32);
            out.unusual.push(v.unusual_percentile);
            out.embedding_unusual.push(v.embedding_percentile);
        }
        out
    };
    let n = judge(normal_pairs, normal);
    let a = judge(anomalous_pairs, anomalous);
    println!(
        "side by side on pairs of principals in the baseline ({} normal, {} anomalous; {} normal and {} anomalous pairs of new principals left out):",
        n.embedding.len(),
        a.embedding.len(),
        n.new_principals,
        a.new_principals
    );
    println!("| detector | AUC | recall at 0.1% FPR | at 1% FPR | at 5% FPR |");
    println!("|---|---|---|---|---|");
    for (name, ns, as_) in [
        ("embedding", &n.embedding, &a.embedding),
        ("lookup", &n.lookup, &a.lookup),
        ("combined", &n.combined, &a.combined),
    ] {
        let q = eval::quality(ns, as_);
        println!(
            "| {name} | {:.4} | {:.3} | {:.3} | {:.3} |",
            q.auc, q.recall[0], q.recall[1], q.recall[2]
        );
    }
    println!(
        "| alert budget | normal pairs flagged: combined | embedding (held-back calibration) |"
    );
    println!("|---|---|---|");
    for b in eval::REPORT_FPRS {
        println!(
            "| {:.1}% | {:.2}% | {:.2}% |",
            b * 100.0,
            eval::flagged_share(&n.unusual, b) * 100.0,
            eval::flagged_share(&n.embedding_unusual, b) * 100.0
        );
    }
    if let Some(caveat) = det.calibration_caveat() {
        println!("note: {caveat}");
    }
    Ok(())
}

#[derive(Default)]
struct HybridScores {
    embedding: Vec<f32>,
    lookup: Vec<f32>,
    combined: Vec<f32>,
    unusual: Vec<f64>,
    embedding_unusual: Vec<f64>,
    new_principals: usize,
}

/// With both families in the data: AUC and recall at the false-positive budget for IPv4 and IPv6
/// pairs apart (each family's threshold set on its own normal pairs).
fn by_family(
    normal_pairs: &[(String, IpAddr)],
    normal: &[f32],
    anomalous_pairs: &[(String, IpAddr)],
    anomalous: &[f32],
    target_fpr: f64,
) {
    let pick = |pairs: &[(String, IpAddr)], scores: &[f32], v6: bool| -> Vec<f32> {
        pairs
            .iter()
            .zip(scores)
            .filter(|((_, ip), _)| ip.is_ipv6() == v6)
            .map(|(_, &s)| s)
            .collect()
    };
    let families = [false, true].map(|v6| {
        (
            v6,
            pick(normal_pairs, normal, v6),
            pick(anomalous_pairs, anomalous, v6),
        )
    });
    if families
        .iter()
        .any(|(_, n, a)| n.is_empty() && a.is_empty())
    {
        return;
    }
    for (v6, n, a) in &families {
        let t = eval::threshold_for_fpr(n, target_fpr);
        let m = eval::metrics_at(n, a, t);
        println!(
            "{}: normal {}, anomalous {}, AUC {:.6}, recall {:.4} at {:.2}% false positives",
            if *v6 { "IPv6 pairs" } else { "IPv4 pairs" },
            n.len(),
            a.len(),
            eval::auc(n, a),
            m.recall,
            target_fpr * 100.0
        );
    }
}

/// The alert threshold the analysts' decisions call for (ipsight_retrain::threshold).
fn labelled(model: &Model, location: &str, args: &Args) -> anyhow::Result<()> {
    let labels = super::label::load(location)?;
    let at_text = args
        .labels_at
        .clone()
        .unwrap_or_else(super::label::now_rfc3339);
    let at = ipsight_core::time::epoch_seconds(&at_text)
        .with_context(|| format!("--labels-at {at_text:?}: expected YYYY-MM-DD or RFC 3339"))?;
    let Some(t) =
        ipsight_retrain::threshold_from_labels(model, &labels, at, args.alert_min_percentile)
    else {
        println!("labels: no decision on an exact <entity, ip> pair in force in {location}: nothing to re-calibrate with");
        return Ok(());
    };
    println!(
        "labelled pairs: {} confirmed true positives, {} confirmed false positives",
        t.true_positives, t.false_positives
    );
    println!(
        "at ALERT_MIN_PERCENTILE {}: {} of {} true positives alert, {} of {} false positives still alert",
        t.current_alert_min_percentile, t.current_caught, t.true_positives, t.current_false_alerts, t.false_positives
    );
    if t.recommended_alert_min_percentile == t.current_alert_min_percentile {
        println!(
            "recommended: keep ALERT_MIN_PERCENTILE {}",
            t.current_alert_min_percentile
        );
    } else {
        println!(
            "recommended: ALERT_MIN_PERCENTILE {} ({} of {} true positives alert, {} of {} false positives)",
            t.recommended_alert_min_percentile, t.recommended_caught, t.true_positives, t.recommended_false_alerts, t.false_positives
        );
    }
    Ok(())
}

const BINS: usize = 60;

/// Per-set fractions in BINS equal bins over the central 99.8% of all scores (outliers land in the
/// edge bins), so two sets of different sizes compare.
fn histograms(normal: &[f32], anomalous: &[f32]) -> (f32, f32, Vec<f64>, Vec<f64>) {
    let mut all: Vec<f32> = normal
        .iter()
        .chain(anomalous)
        .copied()
        .filter(|s| s.is_finite())
        .collect();
    all.sort_unstable_by(f32::total_cmp);
    let lo = all[(all.len() - 1) / 1000];
    let mut hi = all[(all.len() - 1) * 999 / 1000];
    if hi <= lo {
        hi = lo + 1.0;
    }
    let hist = |s: &[f32]| {
        let mut h = vec![0.0; BINS];
        for &v in s.iter().filter(|v| v.is_finite()) {
            let b = (((v - lo) / (hi - lo)) * BINS as f32)
                .floor()
                .clamp(0.0, (BINS - 1) as f32) as usize;
            h[b] += 1.0 / s.len() as f64;
        }
        h
    };
    (lo, hi, hist(normal), hist(anomalous))
}

/// The score-distribution plot as an SVG document (also embedded in the demo's HTML report).
pub(crate) fn distribution_svg(normal: &[f32], anomalous: &[f32], threshold: f32) -> String {
    let (lo, hi, hn, ha) = histograms(normal, anomalous);
    let ymax = hn.iter().chain(&ha).cloned().fold(0.0, f64::max).max(1e-9);
    svg(lo, hi, &hn, &ha, ymax, threshold)
}

fn plot(path: &Path, normal: &[f32], anomalous: &[f32], threshold: f32) -> anyhow::Result<()> {
    let (lo, hi, hn, ha) = histograms(normal, anomalous);
    let ymax = hn.iter().chain(&ha).cloned().fold(0.0, f64::max).max(1e-9);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "svg" => std::fs::write(path, svg(lo, hi, &hn, &ha, ymax, threshold))?,
        "png" => png(path, lo, hi, &hn, &ha, ymax, threshold)?,
        _ => bail!("--plot must end in .svg or .png"),
    }
    Ok(())
}

fn svg(lo: f32, hi: f32, hn: &[f64], ha: &[f64], ymax: f64, threshold: f32) -> String {
    let (w, h, l, r, t, b) = (900.0, 500.0, 70.0, 20.0, 40.0, 60.0);
    let x = |v: f64| l + (v - lo as f64) / (hi - lo) as f64 * (w - l - r);
    let y = |f: f64| h - b - f / ymax * (h - t - b);
    let bin_w = (hi - lo) as f64 / BINS as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">ipsight: dot_product of normal vs anomalous pairs</text>\n",
        w / 2.0
    );
    for (hist, color) in [(hn, "#2a9d3a"), (ha, "#d62828")] {
        let mut d = format!("M{:.1},{:.1}", x(lo as f64), y(0.0));
        for (i, &f) in hist.iter().enumerate() {
            let x0 = x(lo as f64 + i as f64 * bin_w);
            let x1 = x(lo as f64 + (i + 1) as f64 * bin_w);
            d.push_str(&format!(" L{x0:.1},{:.1} L{x1:.1},{:.1}", y(f), y(f)));
        }
        d.push_str(&format!(" L{:.1},{:.1} Z", x(hi as f64), y(0.0)));
        s.push_str(&format!(
            "<path d=\"{d}\" fill=\"{color}\" fill-opacity=\"0.35\" stroke=\"{color}\" stroke-width=\"1.5\"/>\n"
        ));
    }
    // Axes and ticks.
    s.push_str(&format!(
        "<line x1=\"{l}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/><line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{0}\" stroke=\"black\"/>\n",
        h - b,
        w - r
    ));
    for k in 0..=6 {
        let v = lo as f64 + (hi - lo) as f64 * k as f64 / 6.0;
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{v:.2}</text>\n",
            x(v),
            h - b + 18.0
        ));
    }
    for k in 0..=4 {
        let f = ymax * k as f64 / 4.0;
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.1}%</text>\n",
            l - 6.0,
            y(f) + 4.0,
            f * 100.0
        ));
    }
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">dot_product (higher = more normal)</text>\n",
        w / 2.0,
        h - 15.0
    ));
    s.push_str(&format!(
        "<text x=\"18\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {0})\">share of pairs per bin</text>\n",
        h / 2.0
    ));
    let tx = x((threshold as f64).clamp(lo as f64, hi as f64));
    s.push_str(&format!(
        "<line x1=\"{tx:.1}\" y1=\"{t}\" x2=\"{tx:.1}\" y2=\"{}\" stroke=\"black\" stroke-width=\"2\" stroke-dasharray=\"6,4\"/>\n\
         <text x=\"{:.1}\" y=\"{}\">threshold {threshold:.3}</text>\n",
        h - b,
        tx + 4.0,
        t + 12.0
    ));
    s.push_str(&format!(
        "<rect x=\"{0}\" y=\"{1}\" width=\"12\" height=\"12\" fill=\"#2a9d3a\"/><text x=\"{2}\" y=\"{3}\">normal</text>\n\
         <rect x=\"{0}\" y=\"{4}\" width=\"12\" height=\"12\" fill=\"#d62828\"/><text x=\"{2}\" y=\"{5}\">anomalous</text>\n</svg>\n",
        w - r - 110.0,
        t + 4.0,
        w - r - 92.0,
        t + 14.0,
        t + 22.0,
        t + 32.0
    ));
    s
}

#[allow(clippy::too_many_arguments)]
fn png(
    path: &Path,
    lo: f32,
    hi: f32,
    hn: &[f64],
    ha: &[f64],
    ymax: f64,
    threshold: f32,
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let (w, h) = (900u32, 500u32);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let (l, r, t, b) = (40i32, 20i32, 20i32, 40i32);
    let px = |v: f64| l + ((v - lo as f64) / (hi - lo) as f64 * (w as i32 - l - r) as f64) as i32;
    let py = |f: f64| h as i32 - b - (f / ymax * (h as i32 - t - b) as f64) as i32;
    let bin_w = (hi - lo) as f64 / BINS as f64;
    for (hist, color) in [(hn, RGBColor(42, 157, 58)), (ha, RGBColor(214, 40, 40))] {
        for (i, &f) in hist.iter().enumerate() {
            let x0 = px(lo as f64 + i as f64 * bin_w);
            let x1 = px(lo as f64 + (i + 1) as f64 * bin_w);
            root.draw(&Rectangle::new(
                [(x0, py(f)), (x1, py(0.0))],
                color.mix(0.4).filled(),
            ))?;
            root.draw(&PathElement::new(
                vec![(x0, py(f)), (x1, py(f))],
                color.stroke_width(2),
            ))?;
        }
    }
    root.draw(&PathElement::new(
        vec![(l, py(0.0)), (w as i32 - r, py(0.0))],
        BLACK,
    ))?;
    root.draw(&PathElement::new(vec![(l, t), (l, py(0.0))], BLACK))?;
    let tx = px((threshold as f64).clamp(lo as f64, hi as f64));
    root.draw(&PathElement::new(
        vec![(tx, t), (tx, py(0.0))],
        BLACK.stroke_width(3),
    ))?;
    root.present()?;
    Ok(())
}
