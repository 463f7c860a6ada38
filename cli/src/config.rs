//! `astroclip config show`: the fully resolved configuration of an experiment.

use std::path::PathBuf;

use astroclip_core::config::{self, CliOverrides};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the fully resolved configuration of an experiment as TOML.
    Show {
        experiment: Option<PathBuf>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

pub fn execute(command: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Show { experiment, set } = command;
    let cfg = config::load(experiment.as_deref(), &CliOverrides::parse(&set)?)?;
    print!("{}", toml::to_string_pretty(&cfg)?);
    Ok(())
}
