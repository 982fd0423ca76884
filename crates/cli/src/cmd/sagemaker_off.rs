//! `ipsight sagemaker` in a build without the `sagemaker` feature: the command stays in `--help`
//! and says how to get it, instead of being an unknown subcommand.

#[derive(clap::Args)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<String>,
}

pub fn run(_: Args) -> anyhow::Result<()> {
    anyhow::bail!(
        "this ipsight was built without SageMaker support (the `sagemaker` cargo feature, off by \
         default because the AWS SDK for SageMaker takes minutes to compile): rebuild with \
         `cargo build --release -p ipsight-cli --features sagemaker`, or run \
         `cargo run --release -p ipsight-cli --features sagemaker -- sagemaker ...`"
    )
}
