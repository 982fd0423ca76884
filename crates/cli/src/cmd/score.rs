//! `ipsight score`: SageMaker IP Insights request formats in, its response format out.
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use ipsight_model::{wire, Model};

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
    /// Request body file (default: standard input)
    file: Option<PathBuf>,
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
    let mut accept = wire::Accept::parse(&args.accept)?;
    accept.verbose |= args.verbose;
    let ct = wire::ContentType::parse(&args.content_type)?;
    let records = wire::parse_request(&body, ct)?;
    let out = wire::write_response(&wire::predict(&model, &records, accept.verbose), accept);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    if !accept.jsonlines {
        stdout.write_all(b"\n")?;
    }
    Ok(())
}
