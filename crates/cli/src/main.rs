//! The `ipsight` command line. Each subcommand lives in `cmd/<name>.rs` and calls the same library
//! functions as the Lambdas.
use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "ipsight",
    version,
    about = "Find AWS principals acting from IP addresses they don't normally use"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the main job locally on built-in synthetic data (no AWS account): bucket → tuples → model → scores
    Demo(cmd::demo::Args),
    /// Write deterministic synthetic data: CloudTrail buckets, benchmark objects, labelled pairs
    Synth(cmd::synth::Args),
    /// Turn logs into IP Insights training tuples (entity,ip CSV), with the Lambdas' rules
    Prepare(cmd::prepare::Args),
    /// Train an IP Insights-compatible model on a tuple CSV (entity,ip)
    Train(cmd::train::Args),
    /// Extract <entity, ip> inference records and tuples from GuardDuty findings (any shape)
    Extract(cmd::extract::Args),
    /// Fuse GuardDuty findings with IP Insights scores into a ranked list of suspicious activity
    Fuse(cmd::fuse::Args),
    /// Analyst decisions on pairs (false / true positive): honoured by fuse, ipcheck and retrain
    Label(cmd::label::Args),
    /// Retrain with analyst feedback, evaluate against the serving model, promote only if not worse
    Retrain(cmd::retrain::Args),
    /// Prepare the history already in a trail bucket: an S3 Batch Operations job running the preparer Lambda
    Backfill(cmd::backfill::Args),
    /// Fit a baseline sidecar beside a SageMaker IP Insights endpoint (BASELINE_URI for ipcheck and fuse)
    Baseline(cmd::baseline::Args),
    /// Train and deploy with the SageMaker built-in IP Insights algorithm (data that outgrows one machine)
    Sagemaker(cmd::sagemaker::Args),
    /// Score pairs with a model: SageMaker IP Insights request formats in, its response format out
    Score(cmd::score::Args),
    /// Evaluate a model on normal and anomalous pairs: AUC, threshold for a false-positive budget, plot
    Evaluate(cmd::evaluate::Args),
    /// Serve a model over HTTP as a SageMaker IP Insights endpoint (container contract + Runtime path)
    Serve(cmd::serve::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Prepare(a) => cmd::prepare::run(a),
        Command::Synth(a) => cmd::synth::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Extract(a) => cmd::extract::run(a),
        Command::Fuse(a) => cmd::fuse::run(a),
        Command::Label(a) => cmd::label::run(a),
        Command::Retrain(a) => cmd::retrain::run(a),
        Command::Score(a) => cmd::score::run(a),
        Command::Backfill(a) => cmd::backfill::run(a),
        Command::Sagemaker(a) => cmd::sagemaker::run(a),
        Command::Baseline(a) => cmd::baseline::run(a),
        Command::Evaluate(a) => cmd::evaluate::run(a),
        Command::Serve(a) => cmd::serve::run(a),
    }
}
