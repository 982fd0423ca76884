//! `ipsight score`: SageMaker IP Insights request formats in; its response format out, or with
//! `--output ipsight` one JSON object per pair with the combined score and its "why".
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use ipsight_core::tuning::{PrincipalAge, Subject};
use ipsight_enrich::{first_time_sentence, KnownNetworks, Network, NetworkHistory};
use ipsight_model::{sidecar_path, wire, Detector, Model, NewPrincipals};

#[derive(clap::Args)]
pub struct Args {
    /// Model file written by `ipsight train`
    #[arg(long)]
    model: PathBuf,
    /// Request format: text/csv, application/json or application/jsonlines
    #[arg(long, default_value = "text/csv")]
    content_type: String,
    /// Response format, e.g. `application/json`, `application/jsonlines`, `application/json; verbose=True`
    #[arg(long, default_value = "application/json")]
    accept: String,
    /// Add entity_embedding and ip_embedding to each prediction (same as `; verbose=True`)
    #[arg(long)]
    verbose: bool,
    /// `sagemaker`: the endpoint's response (--accept). `ipsight`: one JSON object per pair, in input
    /// order: entity, ip, dot_product, unusual_percentile (combined, 0–100, higher = less normal),
    /// embedding_percentile, history, explanation, nearest (needs the baseline sidecar)
    #[arg(long, default_value = "sagemaker", value_parser = ["sagemaker", "ipsight"])]
    output: String,
    /// Baseline sidecar (default: the model's path with extension .ipsb, written by `ipsight train`)
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Whether a principal absent from the baseline alerts (unusual_percentile 100) or not (0)
    #[arg(long, env = "NEW_PRINCIPALS", default_value = "alert")]
    new_principals: NewPrincipals,
    /// With `--output ipsight`: `network` (asn, as_org, country, ...) on each line.
    #[command(flatten)]
    network: super::netdb::NetworkArgs,
    /// With `--output ipsight`: `suppressed_reason` on each line a tuning rule covers.
    #[command(flatten)]
    tuning: super::tuning::TuningArgs,
    /// Request body file (default: standard input)
    file: Option<PathBuf>,
}

/// A pair's report with its network: the model's fields, then `network` when databases are given.
#[derive(serde::Serialize)]
struct Line<R> {
    #[serde(flatten)]
    report: R,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<Network>,
    /// Whether the principal's known prefixes were ever in this AS / country (`seen`, `first`).
    #[serde(skip_serializing_if = "Option::is_none")]
    network_history: Option<NetworkHistory>,
    /// The tuning rule that suppresses the pair (`--tuning`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed_reason: Option<String>,
}

/// Loads the model's baseline sidecar and checks it belongs to this model.
pub(crate) fn load_detector(
    model: &Model,
    model_path: &std::path::Path,
    explicit: Option<&PathBuf>,
) -> anyhow::Result<Detector> {
    let path = explicit
        .cloned()
        .unwrap_or_else(|| sidecar_path(model_path));
    let det = Detector::load(&path).with_context(|| {
        format!(
            "loading the baseline sidecar {} (written by `ipsight train` next to the model)",
            path.display()
        )
    })?;
    det.check_compatible(model.entity_definition(), Some(model.fingerprint()))
        .with_context(|| format!("baseline sidecar {}", path.display()))?;
    Ok(det)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let model = Model::load(&args.model)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    let mut body = Vec::new();
    match &args.file {
        Some(p) => {
            body = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading standard input")?;
        }
    }
    if (args.network.is_set() || args.tuning.tuning.is_some()) && args.output != "ipsight" {
        anyhow::bail!(
            "--ip-db/--aws-ranges/--tuning need --output ipsight: the SageMaker response format \
             has no place for network or suppression fields"
        );
    }
    let ct = wire::ContentType::parse(&args.content_type)?;
    let records = wire::parse_request(&body, ct)?;
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    if args.output == "ipsight" {
        let det = load_detector(&model, &args.model, args.baseline.as_ref())?;
        let enricher = args.network.enricher()?;
        let tuning = args.tuning.load()?;
        let today = ipsight_core::time::now_secs().div_euclid(86_400);
        let predictions = wire::predict(&model, &records, false)?;
        // Each principal's known prefixes placed once, however many of its pairs are scored.
        let mut known: HashMap<String, KnownNetworks> = HashMap::new();
        let dots: Vec<f32> = predictions.iter().map(|p| p.dot_product).collect();
        // The one batch path the Lambdas use too (the scorer port's `Baseline::judge_all`).
        let reports = det.report_all(&records, &dots, args.new_principals);
        for (r, mut report) in records.iter().zip(reports) {
            let ip = r.ip;
            let network = enricher
                .as_ref()
                .map(|e| e.lookup(ip, Network::default()))
                .transpose()?;
            let mut network_history = None;
            if let (Some(e), Some(net)) = (&enricher, &network) {
                if !known.contains_key(&r.entity) && det.baseline.contains_entity(&r.entity) {
                    let prefixes = det.baseline.entity_prefixes(&r.entity);
                    known.insert(r.entity.clone(), KnownNetworks::of_prefixes(e, prefixes)?);
                }
                if let Some(k) = known.get(&r.entity) {
                    let h = k.judge(net);
                    if let Some(s) = first_time_sentence(net, &h) {
                        report.explanation.push(' ');
                        report.explanation.push_str(&s);
                    }
                    network_history = (!h.is_empty()).then_some(h);
                }
            }
            let suppressed_reason = tuning.as_ref().and_then(|t| {
                let net = network.as_ref();
                let s = Subject {
                    entity: &report.entity,
                    ip: Some(ip),
                    asn: net.and_then(|n| n.asn),
                    country: net.and_then(|n| n.country.as_deref()),
                    aws_services: net
                        .and_then(|n| n.aws.as_ref())
                        .map(|a| a.services.as_slice()),
                    invoked_by: None,
                    // The learning period counts from the principal's first day in the
                    // baseline, as in ipcheck and fuse.
                    principal: if report.history.as_str() == "new_principal" {
                        PrincipalAge::New
                    } else {
                        det.baseline
                            .entity_first_seen(&report.entity)
                            .map_or(PrincipalAge::Unknown, |d| PrincipalAge::FirstSeen(d.into()))
                    },
                };
                t.check(&s, today).map(|s| s.rule)
            });
            serde_json::to_writer(
                &mut stdout,
                &Line {
                    report,
                    network,
                    network_history,
                    suppressed_reason,
                },
            )?;
            stdout.write_all(b"\n")?;
        }
        stdout.flush()?;
        return Ok(());
    }
    let mut accept = wire::Accept::parse(&args.accept)?;
    accept.verbose |= args.verbose;
    let out = wire::write_response(&wire::predict(&model, &records, accept.verbose)?, accept);
    stdout.write_all(&out)?;
    if !accept.jsonlines {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(())
}
