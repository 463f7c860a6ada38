//! `astroclip run`: train and evaluate an experiment (or resume one), recorded in the registry.

use std::path::{Path, PathBuf};

use astroclip_core::run::{self, RunOptions};
use clap::Args;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Experiment TOML (see experiments/). Without it the `quickstart` preset runs.
    pub experiment: Option<PathBuf>,
    /// Override a configuration key, e.g. `--set train.steps=100` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Backend: flex (pure-Rust CPU), tch (libtorch CPU), tch-cuda:N (libtorch GPU N).
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Continue a run from its latest checkpoint (id or unique prefix).
    #[arg(long, value_name = "RUN_ID")]
    pub resume: Option<String>,
    /// Stop after this many training steps with a checkpoint; the run stays resumable.
    #[arg(long, value_name = "STEPS")]
    pub stop_after: Option<usize>,
}

pub fn execute(args: RunArgs, home: &Path, registry: Option<&str>) -> anyhow::Result<()> {
    let outcome = run::execute(&RunOptions {
        file: args.experiment,
        overrides: args.set,
        device: args.device,
        resume: args.resume,
        home: home.to_path_buf(),
        registry: registry.map(String::from),
        stop_after: args.stop_after,
    })?;
    match &outcome.report {
        Some(report) => {
            println!("{}", report.table());
            if outcome.train_samples_per_sec > 0.0 {
                println!(
                    "run {} finished in {:.1} s; training {:.1} samples/s",
                    outcome.run_id, outcome.wall_secs, outcome.train_samples_per_sec
                );
            } else {
                println!("run {} finished in {:.1} s (no network training)", outcome.run_id, outcome.wall_secs);
            }
        }
        None => println!(
            "run {} stopped early after {:.1} s; continue with `astroclip run --resume {}`",
            outcome.run_id, outcome.wall_secs, outcome.run_id
        ),
    }
    Ok(())
}
