//! `astroclip bind`: a new modality (tokenizer + encoder from plugins) bound into a trained,
//! frozen image–spectrum embedding, or an interrupted binding resumed.

use std::path::{Path, PathBuf};

use clap::Args;

#[derive(Args, Debug)]
pub struct BindArgs {
    /// Bind experiment TOML (omit with --resume).
    #[arg(required_unless_present = "resume")]
    experiment: Option<PathBuf>,
    /// Continue an interrupted binding run from its newest checkpoint.
    #[arg(long, conflicts_with = "experiment")]
    resume: Option<String>,
    /// Compute device: flex, tch or tch-cuda:N.
    #[arg(long, default_value = "flex")]
    device: String,
}

pub fn execute(args: BindArgs, home: &Path, registry: Option<&str>) -> anyhow::Result<()> {
    let report = astroclip_core::bind::execute(
        args.experiment.as_deref(),
        args.resume.as_deref(),
        home,
        registry,
        &args.device,
    )?;
    print!("{}", report.table());
    println!("recorded as run {}", report.run_id);
    Ok(())
}
