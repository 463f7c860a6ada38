//! `astroclip-mlflow`: exports registry runs into an MLflow tracking server. Usually run by
//! `astroclip runs export mlflow --uri <url> [ids…]`, which passes --home and --registry.

use std::path::PathBuf;

use anyhow::Context;
use astroclip_mlflow::Exporter;
use astroclip_registry::Registry;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "astroclip-mlflow",
    about = "Export astroclip runs into MLflow (idempotent: only what is new is sent)"
)]
struct Cli {
    /// astroclip home (run outputs and artifacts; the default registry is <home>/registry.db).
    #[arg(long, env = "ASTROCLIP_HOME", default_value = ".astroclip")]
    home: PathBuf,
    /// Registry: a postgres:// URL or a SQLite file (default <home>/registry.db).
    #[arg(long, env = "ASTROCLIP_REGISTRY")]
    registry: Option<String>,
    /// MLflow tracking server, e.g. http://127.0.0.1:5000.
    #[arg(long)]
    uri: String,
    /// Only runs of this experiment (when no ids are given).
    #[arg(long)]
    experiment: Option<String>,
    /// Print the per-run summary as JSON.
    #[arg(long)]
    json: bool,
    /// Runs (ids or unique prefixes); default: every run not soft-deleted.
    ids: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let reg = match cli.registry.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Registry::open_url(r)?,
        None => Registry::open(&cli.home.join("registry.db"))?,
    };
    let ids: Vec<String> = if cli.ids.is_empty() {
        reg.list_runs(cli.experiment.as_deref())?.into_iter().map(|r| r.id).collect()
    } else {
        cli.ids.iter().map(|i| reg.resolve(i)).collect::<Result<_, _>>()?
    };
    if ids.is_empty() {
        anyhow::bail!("no runs to export in {}", reg.location());
    }
    let exporter = Exporter::new(&cli.uri)?;
    let mut done = Vec::new();
    for id in &ids {
        let r = exporter.export_run(&reg, &cli.home, id).with_context(|| format!("exporting run {id}"))?;
        if !cli.json {
            println!(
                "{} → mlflow run {} (experiment {}){}: {} params, {} tags, {} metric rows, {} artifacts ({} B) in {} requests",
                r.run,
                r.mlflow_run_id,
                r.mlflow_experiment_id,
                if r.created { ", created" } else { "" },
                r.params,
                r.tags,
                r.metrics,
                r.artifacts,
                r.artifact_bytes,
                r.requests
            );
            for s in &r.skipped {
                eprintln!("  warning: artifact not sent: {s}");
            }
        }
        done.push(r);
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    }
    Ok(())
}
