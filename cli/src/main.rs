//! The `astroclip` command line: one module per command group (`run`, `bind`, `bench`, `runs`,
//! `survey`, `data`, `embed`, `search`, `models`, `plugins`, `config`), each parsing its arguments and rendering its output
//! over the `astroclip-core` runtime.

mod bench;
mod bind;
mod config;
mod data;
mod embed;
mod html;
mod models;
mod plugins;
mod run;
mod runs;
mod search;
mod survey;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "astroclip", version, about = "Cross-modal (image ↔ spectrum) foundation models for galaxies")]
struct Cli {
    /// Directory holding the registry (registry.db) and run outputs (runs/).
    #[arg(long, global = true, env = "ASTROCLIP_HOME", default_value = ".astroclip")]
    home: PathBuf,
    /// The registry: a PostgreSQL URL (`postgres://user@host/db`, shared by a team) or a SQLite
    /// file; default `<home>/registry.db`. Run outputs and artifacts stay under --home.
    #[arg(long, global = true, env = "ASTROCLIP_REGISTRY")]
    registry: Option<String>,
    /// Log filter (error, warn, info, debug, or a tracing directive). hnsw_rs's own build
    /// chatter is at warn unless a directive names it.
    #[arg(long, global = true, default_value = "info,hnsw_rs=warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train and evaluate an experiment, recording it in the registry.
    Run(run::RunArgs),
    /// Bind a new modality (tokenizer + encoder from plugins) into a trained, frozen
    /// image–spectrum embedding; see experiments/bind-photometry.toml.
    Bind(bind::BindArgs),
    /// Benchmark suite: train (or reuse) every model of a bench file on the same data and
    /// budget, evaluate each with the same probe, print and save the paper-style R² table
    /// (see experiments/bench-quick.toml).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Bench(bench::BenchArgs),
    /// Inspect recorded runs.
    Runs {
        #[command(subcommand)]
        command: runs::RunsCommand,
    },
    /// Synthetic surveys.
    Survey {
        #[command(subcommand)]
        command: survey::SurveyCommand,
    },
    /// Survey data files: inspect, import, benchmark the loader.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Apply a model to catalogues: (object id, embeddings) rows in Parquet; resumable, shardable.
    Embed(embed::EmbedArgs),
    /// Nearest neighbours in an embedded catalogue, in one modality or across; recall of the
    /// paired object.
    Search(search::SearchArgs),
    /// Models from elsewhere: import AstroCLIP's published checkpoints.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Plugins: list installed ones, add (verify + install) one, verify one.
    Plugins {
        #[command(subcommand)]
        command: plugins::PluginsCommand,
    },
    /// Configuration.
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
}

/// A clap value parser for a `usize` inside `range`: flags that size memory or a loop get the
/// same kind of bound, named in the error, as the experiment file's keys.
pub(crate) fn in_range(range: std::ops::RangeInclusive<usize>) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |s| {
        let v: usize = s.parse().map_err(|e| format!("{s:?} is not a whole number ({e})"))?;
        if range.contains(&v) { Ok(v) } else { Err(format!("{v} is outside [{}, {}]", range.start(), range.end())) }
    }
}

/// Whether a panic comes from printing to a closed pipe (`astroclip … | head -1`).
fn is_broken_pipe(payload: &(dyn std::any::Any + Send)) -> bool {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    msg.contains("Broken pipe") || msg.contains("os error 32")
}

fn main() {
    // A reader that stops reading (`| head`) ends the command quietly with the shell's SIGPIPE
    // status, as `cat` does, instead of a panic message; any other panic keeps its report.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_broken_pipe(info.payload()) {
            default_hook(info);
        }
    }));
    match std::panic::catch_unwind(run_cli) {
        Ok(()) => {}
        Err(payload) if is_broken_pipe(payload.as_ref()) => std::process::exit(141),
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

fn run_cli() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    astroclip_core::interrupt::install();
    if let Err(e) = dispatch(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let (home, registry) = (cli.home.as_path(), cli.registry.as_deref());
    match cli.command {
        Command::Run(args) => run::execute(args, home, registry),
        Command::Bind(args) => bind::execute(args, home, registry),
        Command::Bench(args) => bench::execute_command(args, home, registry),
        Command::Runs { command } => runs::execute(command, home, registry),
        Command::Survey { command } => survey::execute(command),
        Command::Data { command } => data::execute(command, home),
        Command::Embed(args) => embed::execute(args, home, registry),
        Command::Search(args) => search::execute(args, home, registry),
        Command::Models { command } => models::execute(command, home, registry),
        Command::Plugins { command } => plugins::execute(command, home),
        Command::Config { command } => config::execute(command),
    }
}
