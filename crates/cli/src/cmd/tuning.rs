//! `--tuning FILE`: the tuning file `score` and `fuse` honour as ipcheck and fuse do (`TUNING_URI`).
use std::path::{Path, PathBuf};

use anyhow::Context;
use ipsight_core::tuning::Tuning;

#[derive(clap::Args, Debug, Default)]
pub struct TuningArgs {
    /// Tuning file (TOML; docs/tuning.example.toml): allowlists by CIDR, ASN and country, AWS
    /// service callers, learning period. Suppressed pairs are still written, with the rule.
    #[arg(long, value_name = "FILE")]
    pub tuning: Option<PathBuf>,
}

impl TuningArgs {
    pub fn load(&self) -> anyhow::Result<Option<Tuning>> {
        self.tuning.as_deref().map(read).transpose()
    }
}

pub fn read(path: &Path) -> anyhow::Result<Tuning> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading tuning file {}", path.display()))?;
    Ok(ipsight_formats::tuning::parse(
        &path.display().to_string(),
        &text,
    )?)
}
