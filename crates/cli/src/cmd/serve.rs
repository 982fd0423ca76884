//! `ipsight serve`: a model behind SageMaker's container contract (`GET /ping`, `POST /invocations`)
//! and the SageMaker Runtime path (`POST /endpoints/{name}/invocations`), so the AWS SDK's
//! `InvokeEndpoint` with an endpoint override (`AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`) talks to it.
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use ipsight_model::Model;

#[derive(clap::Args)]
pub struct Args {
    /// Model file written by `ipsight train`
    #[arg(long)]
    model: PathBuf,
    /// Port (SageMaker containers listen on 8080; 0 picks a free port)
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on (loopback by default: the server has no authentication)
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let model = Model::load(&args.model)
        .with_context(|| format!("loading model {}", args.model.display()))?;
    eprintln!(
        "loaded {} in {:.1} ms (vector_dim {}, {} entity vectors)",
        args.model.display(),
        started.elapsed().as_secs_f64() * 1e3,
        model.dim(),
        model.hyperparameters().num_entity_vectors,
    );
    let addr = SocketAddr::new(args.host, args.port);
    ipsight_serve::serve_blocking(Arc::new(model), addr, |bound| {
        eprintln!(
            "listening on http://{bound}: GET /ping, POST /invocations, \
             POST /endpoints/<name>/invocations (bodies up to 6 MiB)"
        );
    })
    .with_context(|| format!("serving on {addr}"))
}
