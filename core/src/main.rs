//! The `astroclip` command line.

use std::path::PathBuf;

use anyhow::Context;
use astroclip_core::config::{self, CliOverrides};
use astroclip_core::run::{self, RunOptions};
use astroclip_core::survey::{self, SynthConfig, storage};
use astroclip_registry::Registry;
use clap::{Args, Parser, Subcommand};

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
    /// Log filter (error, warn, info, debug, or a tracing directive).
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Speed of the platform itself: training step and embedding throughput per preset and
    /// backend against the same model in PyTorch, and the k-NN probe against scikit-learn, on
    /// this machine in one run.
    Perf(astroclip_core::perf::PerfArgs),
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train and evaluate an experiment, recording it in the registry.
    Run(RunArgs),
    /// Bind a new modality (tokenizer + encoder from plugins) into a trained, frozen
    /// image–spectrum embedding; see experiments/bind-photometry.toml.
    Bind {
        /// Bind experiment TOML (omit with --resume).
        #[arg(required_unless_present = "resume")]
        experiment: Option<PathBuf>,
        /// Continue an interrupted binding run from its newest checkpoint.
        #[arg(long, conflicts_with = "experiment")]
        resume: Option<String>,
        /// Compute device: flex, tch or tch-cuda:N.
        #[arg(long, default_value = "flex")]
        device: String,
    },
    /// Benchmark suite: train (or reuse) every model of a bench file on the same data and
    /// budget, evaluate each with the same probe, print and save the paper-style R² table
    /// (see experiments/bench-quick.toml).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Bench {
        #[command(subcommand)]
        command: Option<BenchCommand>,
        /// Bench TOML.
        #[arg(required = true)]
        suite: Option<PathBuf>,
        /// Compute device: flex, tch or tch-cuda:N.
        #[arg(long, default_value = "flex")]
        device: String,
    },
    /// Inspect recorded runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Synthetic surveys.
    Survey {
        #[command(subcommand)]
        command: SurveyCommand,
    },
    /// Survey data files: inspect, import, benchmark the loader.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Plugins: list installed ones, add (verify + install) one, verify one.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Experiment TOML (see experiments/). Without it the `quickstart` preset runs.
    experiment: Option<PathBuf>,
    /// Override a configuration key, e.g. `--set train.steps=100` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Backend: flex (pure-Rust CPU), tch (libtorch CPU), tch-cuda:N (libtorch GPU N).
    #[arg(long, default_value = "flex")]
    device: String,
    /// Continue a run from its latest checkpoint (id or unique prefix).
    #[arg(long, value_name = "RUN_ID")]
    resume: Option<String>,
    /// Stop after this many training steps with a checkpoint; the run stays resumable.
    #[arg(long, value_name = "STEPS")]
    stop_after: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum ExportTarget {
    /// Into an MLflow tracking server: experiments, runs, params, tags, metric series and
    /// artifact files (run by the `astroclip-mlflow` helper; see docs/registry.md).
    Mlflow {
        /// Tracking server, e.g. http://127.0.0.1:5000.
        #[arg(long)]
        uri: String,
        /// Only runs of this experiment (when no ids are given).
        #[arg(long)]
        experiment: Option<String>,
        #[arg(long)]
        json: bool,
        /// Runs (ids or unique prefixes); default: every run not soft-deleted.
        ids: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum RunsCommand {
    /// Export runs to another tracker (idempotent: a second export sends only what is new).
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
    /// List runs, newest first; filter with --where, sort with --order (see docs/registry.md).
    List {
        #[arg(long)]
        experiment: Option<String>,
        /// e.g. "params.loss.logit_scale = 15.5 and metrics.eval.r2.redshift[source=image] > 0.5"
        #[arg(long = "where", value_name = "QUERY")]
        filter: Option<String>,
        /// A field to sort by, ascending; prefix `-` for descending (e.g. -metrics.train.loss).
        #[arg(long, allow_hyphen_values = true)]
        order: Option<String>,
        /// List soft-deleted runs instead.
        #[arg(long)]
        deleted: bool,
        #[arg(long)]
        json: bool,
    },
    /// Compare runs: differing params, final and best metrics with deltas, components, data.
    Diff {
        #[arg(required = true, num_args = 2..)]
        ids: Vec<String>,
        /// Show identical params too.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Set tags on a run: `runs tag <id> key=value [key=value…]` (tags are mutable labels).
    Tag {
        id: String,
        #[arg(required = true)]
        tags: Vec<String>,
    },
    /// Overlay a metric's curves from several runs: writes an SVG and a PNG.
    Plot {
        #[arg(required = true)]
        ids: Vec<String>,
        /// Metric key, optionally with context parts: train.loss, eval.r2.redshift[source=image].
        #[arg(long, default_value = "train.loss")]
        metric: String,
        /// Output path without extension (default: <home>/plots/<metric>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// One static HTML page comparing runs (an experiment's, or the ids given): run table,
    /// diff, metric curves, R² table, embedding map, retrieval examples.
    Report {
        /// An experiment name, or run ids.
        #[arg(required = true)]
        runs: Vec<String>,
        /// Output file (default: <home>/reports/report.html).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A run's artifacts (checkpoints, embeddings, config, evaluation) with kind, size and
    /// SHA-256, each re-hashed: `ok`, `changed` or `missing`.
    Artifacts {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Attach a note to a run (the tag `note`).
    Note { id: String, text: String },
    /// Soft-delete runs (hidden from lists; nothing is removed; `runs restore` undoes it).
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Restore soft-deleted runs.
    Restore {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Durability test helper: create a run and log `batches` metric batches of `batch` rows,
    /// printing `committed N` after each commit.
    #[command(hide = true)]
    StressWriter {
        #[arg(long, default_value_t = 200)]
        batches: usize,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Pause between batches (ms).
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
    /// Show one run: configuration, params, latest metrics, artifacts.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum SurveyCommand {
    /// Generate a synthetic survey file: AstroCLIP's HDF5 layout for `.h5`/`.hdf5`, safetensors
    /// for `.safetensors`.
    Synth {
        #[arg(long, default_value_t = 2048)]
        n: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 152)]
        image_size: usize,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// What a file holds: format, shapes, counts, NaN/inf and ivar≤0 counts, wavelength range.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Pair images and spectra from any supported format into an AstroCLIP-layout HDF5 file.
    Import {
        /// Spectrum files: DESI coadd FITS, SDSS spec FITS, MMU spectrum HDF5 (repeatable).
        #[arg(long, required = true, num_args = 1..)]
        spectra: Vec<PathBuf>,
        /// Image files: Legacy Survey cutout FITS, MMU image HDF5 (repeatable).
        #[arg(long, required = true, num_args = 1..)]
        images: Vec<PathBuf>,
        /// DESI redrock file with the redshifts of the coadd's targets.
        #[arg(long)]
        redrock: Option<PathBuf>,
        /// Pair by `id` (object/target id) or `sky` (position within --radius-arcsec).
        #[arg(long = "match", default_value = "id")]
        match_by: String,
        #[arg(long, default_value_t = 1.0)]
        radius_arcsec: f64,
        #[arg(long, default_value_t = 152)]
        image_size: usize,
        #[arg(long, default_value = "g,r,z", value_delimiter = ',')]
        bands: Vec<String>,
        /// `error` (stop at the first unusable or unpaired object) or `skip` (count and log).
        #[arg(long, default_value = "error")]
        on_bad: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Loader throughput vs the training step's consumption on the same file.
    Bench(astroclip_core::bench::LoaderBenchArgs),
}

#[derive(Subcommand, Debug)]
enum PluginsCommand {
    /// Installed plugins (`<home>/plugins/`), each re-verified.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Verify a plugin directory (manifest, interface version, entry sha256) and install it.
    Add {
        dir: PathBuf,
        /// Replace an installed plugin with the same id.
        #[arg(long)]
        replace: bool,
    },
    /// Verify an installed plugin (by id) or a plugin directory.
    Verify { plugin: String },
    /// Run the conformance kit on a plugin (id or directory), or on the built-ins (`builtin`).
    Test {
        plugin: String,
        /// Input length given to encoders under test.
        #[arg(long, default_value_t = 16)]
        input_len: usize,
        #[arg(long)]
        json: bool,
    },
    /// Create a new plugin crate from the template (native Rust; `--wasm` for a Zig WASM one).
    New {
        /// Plugin id, `^[a-z0-9-]+$`.
        id: String,
        /// Parent directory of the new plugin directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Modality the plugin serves.
        #[arg(long, default_value = "photometry")]
        modality: String,
        #[arg(long)]
        wasm: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print the fully resolved configuration of an experiment as TOML.
    Show {
        experiment: Option<PathBuf>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

fn fmt_time(ms: i64) -> String {
    let secs = ms / 1000;
    let (d, s) = (secs / 86_400, secs % 86_400);
    // Civil date from days since epoch (Howard Hinnant's algorithm).
    let z = d + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    astroclip_core::interrupt::install();
    if let Err(e) = dispatch(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The first-party components, linked into the binary; they pass the same conformance kit
/// (`astroclip plugins test builtin`).
fn print_builtins() {
    println!("\nbuilt-in (linked; `astroclip plugins test builtin` checks them like plugins):");
    for (id, kind, modality) in [
        ("legacy-survey-rgb", "tokenizer", "image"),
        ("specformer-tokens", "tokenizer", "spectrum"),
        ("resnet", "encoder", "image"),
        ("specformer", "encoder", "spectrum"),
        ("infonce", "loss", "-"),
        ("knn", "probe", "-"),
    ] {
        println!("{id:<24} {:<10} {:<7} {kind:<22} {modality:<12} linked", env!("CARGO_PKG_VERSION"), "builtin");
    }
}

/// `runs rm` / `runs restore`: soft delete only; nothing is ever removed.
fn soft_delete(reg: &Registry, ids: &[String], restore: bool) -> anyhow::Result<()> {
    for i in ids {
        let id = reg.resolve(i)?;
        reg.set_deleted(&id, !restore)?;
        println!("{} {id}", if restore { "restored" } else { "deleted (soft; `astroclip runs restore` undoes it)" });
    }
    Ok(())
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let outcome = run::execute(&RunOptions {
                file: args.experiment,
                overrides: args.set,
                device: args.device,
                resume: args.resume,
                home: cli.home,
                registry: cli.registry,
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
        }
        Command::Bind { experiment, resume, device } => {
            let report = astroclip_core::bind::execute(
                experiment.as_deref(),
                resume.as_deref(),
                &cli.home,
                cli.registry.as_deref(),
                &device,
            )?;
            print!("{}", report.table());
            println!("recorded as run {}", report.run_id);
        }
        Command::Bench { command: Some(BenchCommand::Perf(args)), .. } => {
            let report = astroclip_core::perf::execute(&args)?;
            let md = report.markdown();
            print!("{md}");
            let dir = cli.home.join("bench");
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("perf.md"), &md)?;
            std::fs::write(dir.join("perf.json"), serde_json::to_string_pretty(&report)?)?;
            println!("\nsaved {}", dir.join("perf.md").display());
        }
        Command::Bench { suite, device, .. } => {
            let suite = suite.ok_or_else(|| anyhow::anyhow!("bench needs a bench TOML or `perf`"))?;
            let (table, md) = astroclip_core::suite::execute(&suite, &cli.home, cli.registry.as_deref(), &device)?;
            println!("{}: R² on held-out galaxies (zero-shot k-NN, few-shot MLP, supervised)\n", table.name);
            print!("{}", table.markdown());
            println!("\nsaved {} (and .html); recorded as experiment {}-table", md.display(), table.name);
        }
        Command::Runs { command } => {
            let reg = run::open_registry(&cli.home, cli.registry.as_deref())?;
            for id in reg.reap_dead_runs()? {
                eprintln!(
                    "note: run {id} was left `running` by a process that no longer exists; marked `killed` (resumable)"
                );
            }
            match command {
                RunsCommand::List { experiment, filter, order, deleted, json } => {
                    let runs = reg.query(filter.as_deref(), order.as_deref(), experiment.as_deref(), deleted)?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&runs)?);
                    } else {
                        // The experiment column is as wide as its longest name; one column per
                        // field the query named.
                        let w = runs.iter().map(|r| r.summary.experiment.chars().count()).max().unwrap_or(0).max(10);
                        let fields: Vec<String> =
                            runs.first().map(|r| r.fields.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
                        let fw: Vec<usize> = fields.iter().map(|f| f.chars().count().max(10)).collect();
                        let mut head = format!(
                            "{:<34} {:<w$} {:<9} {:<20} {:>8}",
                            "id", "experiment", "status", "started (UTC)", "secs"
                        );
                        for (f, fw) in fields.iter().zip(&fw) {
                            head.push_str(&format!("  {f:>fw$}"));
                        }
                        println!("{head}");
                        for r in &runs {
                            let s = &r.summary;
                            let secs =
                                s.end_ms.map(|e| format!("{:.0}", (e - s.start_ms) as f64 / 1e3)).unwrap_or_default();
                            let mut line = format!(
                                "{:<34} {:<w$} {:<9} {:<20} {:>8}",
                                s.id,
                                s.experiment,
                                s.status,
                                fmt_time(s.start_ms),
                                secs
                            );
                            for ((_, v), fw) in r.fields.iter().zip(&fw) {
                                let v = v.as_deref().map(|v| match v.parse::<f64>() {
                                    Ok(x) if v.contains('.') => format!("{x:.4}"),
                                    _ => v.to_string(),
                                });
                                line.push_str(&format!("  {:>fw$}", v.unwrap_or_else(|| "—".into())));
                            }
                            println!("{line}");
                        }
                        if runs.is_empty() {
                            println!("(no {}runs match)", if deleted { "deleted " } else { "" });
                        }
                    }
                }
                RunsCommand::Diff { ids, all, json } => {
                    let d = astroclip_core::diff::diff(&reg, &ids, all)?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&d)?);
                    } else {
                        print!("{}", d.table(all));
                    }
                }
                RunsCommand::Tag { id, tags } => {
                    let id = reg.resolve(&id)?;
                    let pairs = tags
                        .iter()
                        .map(|t| match t.split_once('=') {
                            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
                            _ => Err(anyhow::anyhow!("tag {t:?} is not key=value")),
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    reg.set_tags(&id, &pairs)?;
                    println!("tagged {id}: {}", tags.join(", "));
                }
                RunsCommand::Plot { ids, metric, out } => {
                    let (key, parts) = match metric.split_once('[') {
                        Some((k, c)) => (
                            k.to_string(),
                            c.trim_end_matches(']').split(',').map(|p| p.trim().to_string()).collect::<Vec<_>>(),
                        ),
                        None => (metric.clone(), Vec::new()),
                    };
                    let mut series = Vec::new();
                    for i in &ids {
                        let d = reg.run(i)?;
                        let points: Vec<(f64, f64)> = reg
                            .metric_history(&d.summary.id, &key)?
                            .into_iter()
                            .filter(|m| parts.iter().all(|p| m.context.split(',').any(|c| c == p)))
                            .map(|m| (m.step as f64, m.value))
                            .collect();
                        if points.is_empty() {
                            anyhow::bail!(
                                "run {} has no {metric:?} values; `astroclip runs show {}` lists its metrics",
                                d.summary.id,
                                &d.summary.id[..8]
                            );
                        }
                        series.push(astroclip_core::plot::Series {
                            label: format!("{} {}", &d.summary.id[..8], d.summary.name),
                            points,
                        });
                    }
                    let chart = astroclip_core::plot::Chart {
                        title: metric.clone(),
                        x_label: "step".into(),
                        y_label: metric.clone(),
                        series,
                    };
                    let stem =
                        out.unwrap_or_else(|| cli.home.join("plots").join(metric.replace(['/', '[', ']', ','], "_")));
                    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                    }
                    let (svg, png) = (stem.with_extension("svg"), stem.with_extension("png"));
                    std::fs::write(&svg, chart.svg()).with_context(|| format!("writing {}", svg.display()))?;
                    std::fs::write(&png, chart.png()).with_context(|| format!("writing {}", png.display()))?;
                    println!("wrote {} and {}", svg.display(), png.display());
                }
                RunsCommand::Report { runs, out } => {
                    // One argument naming an experiment means all its runs.
                    let ids: Vec<String> = match runs.as_slice() {
                        [one] if reg.resolve(one).is_err() => {
                            let r = reg.list_runs(Some(one))?;
                            anyhow::ensure!(!r.is_empty(), "{one:?} is neither a run id nor an experiment with runs");
                            r.into_iter().map(|r| r.id).collect()
                        }
                        _ => runs.clone(),
                    };
                    let html = astroclip_core::report::report(&reg, &cli.home, &ids)?;
                    let out = out.unwrap_or_else(|| cli.home.join("reports/report.html"));
                    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::write(&out, html).with_context(|| format!("writing {}", out.display()))?;
                    println!("wrote {}", out.display());
                }
                RunsCommand::Artifacts { id, json } => {
                    let d = reg.run(&id)?;
                    let rows: Vec<serde_json::Value> = d
                        .artifacts
                        .iter()
                        .map(|a| {
                            let file = cli.home.join(&a.path);
                            let state = match astroclip_core::train::file_sha256(&file) {
                                Ok((sha, _)) if sha == a.sha256 => "ok",
                                Ok(_) => "changed",
                                Err(_) => "missing",
                            };
                            serde_json::json!({"kind": a.kind, "path": file.display().to_string(), "size_bytes": a.size_bytes,
                                               "sha256": a.sha256, "state": state})
                        })
                        .collect();
                    if json {
                        println!("{}", serde_json::to_string_pretty(&rows)?);
                    } else {
                        println!("{:<16} {:>12}  {:<16} {:<8} path", "kind", "bytes", "sha256", "state");
                        for r in &rows {
                            println!(
                                "{:<16} {:>12}  {:<16} {:<8} {}",
                                r["kind"].as_str().unwrap_or(""),
                                r["size_bytes"].as_i64().unwrap_or(0),
                                &r["sha256"].as_str().unwrap_or("")[..16.min(r["sha256"].as_str().unwrap_or("").len())],
                                r["state"].as_str().unwrap_or(""),
                                r["path"].as_str().unwrap_or("")
                            );
                        }
                    }
                }
                RunsCommand::Export { target: ExportTarget::Mlflow { uri, experiment, json, ids } } => {
                    drop(reg);
                    let exe = mlflow_exporter();
                    let mut cmd = std::process::Command::new(&exe);
                    cmd.arg("--home").arg(&cli.home).arg("--uri").arg(&uri);
                    if let Some(r) = &cli.registry {
                        cmd.arg("--registry").arg(r);
                    }
                    if let Some(e) = &experiment {
                        cmd.arg("--experiment").arg(e);
                    }
                    if json {
                        cmd.arg("--json");
                    }
                    cmd.args(&ids);
                    let status = cmd.status().map_err(|e| {
                        anyhow::anyhow!(
                            "cannot run the MLflow exporter {} ({e}); build it with `cargo build --release --manifest-path \
                             registry/mlflow/Cargo.toml` (needs libssl-dev and pkg-config) and put it next to astroclip, \
                             on PATH, or in ASTROCLIP_MLFLOW_EXPORTER",
                            exe.display()
                        )
                    })?;
                    if !status.success() {
                        anyhow::bail!(
                            "MLflow export failed ({status}); runs exported before the failure keep their state"
                        );
                    }
                }
                RunsCommand::Note { id, text } => {
                    let id = reg.resolve(&id)?;
                    reg.set_tags(&id, &[("note".into(), text)])?;
                    println!("noted {id}");
                }
                RunsCommand::StressWriter { batches, batch, pause_ms } => {
                    use std::io::Write;
                    let id = reg.create_run(&astroclip_registry::NewRun {
                        experiment: "stress".into(),
                        name: format!("writer-{}", std::process::id()),
                        config_json: "{}".into(),
                        git_commit: None,
                        data_hash: None,
                        components_json: "[]".into(),
                    })?;
                    println!("run {id}");
                    for b in 0..batches {
                        let rows: Vec<astroclip_registry::Metric> = (0..batch)
                            .map(|i| {
                                astroclip_registry::Metric::new(
                                    "stress.value",
                                    (b * batch + i) as i64,
                                    (b * batch + i) as f64,
                                )
                            })
                            .collect();
                        reg.log_metrics(&id, &rows)?;
                        println!("committed {}", (b + 1) * batch);
                        std::io::stdout().flush()?;
                        std::thread::sleep(std::time::Duration::from_millis(pause_ms));
                    }
                    reg.set_status(&id, "finished", None)?;
                }
                RunsCommand::Rm { ids } => soft_delete(&reg, &ids, false)?,
                RunsCommand::Restore { ids } => soft_delete(&reg, &ids, true)?,
                RunsCommand::Show { id, json } => {
                    let d = reg.run(&id)?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&d)?);
                    } else {
                        let s = &d.summary;
                        println!("run        {}\nexperiment {}\nstatus     {}", s.id, s.experiment, s.status);
                        println!("started    {}", fmt_time(s.start_ms));
                        if let Some(e) = s.end_ms {
                            println!("ended      {} ({:.1} s)", fmt_time(e), (e - s.start_ms) as f64 / 1e3);
                        }
                        println!("git        {}", s.git_commit.as_deref().unwrap_or("-"));
                        println!("data hash  {}", s.data_hash.as_deref().unwrap_or("-"));
                        if let Some(m) = &d.message {
                            println!("message    {m}");
                        }
                        if let Some(t) = d.deleted_ms {
                            println!("deleted    {} (soft; `astroclip runs restore {}`)", fmt_time(t), s.id);
                        }
                        for (k, v) in &d.tags {
                            println!("{:<10} {v}", if k == "note" { "note".to_string() } else { format!("tag {k}") });
                        }
                        println!("\nmetrics (last value)");
                        for m in &d.latest_metrics {
                            let ctx = if m.context.is_empty() { String::new() } else { format!(" [{}]", m.context) };
                            println!("  {:<34} step {:>7}  {:>12.5}{ctx}", m.key, m.step, m.value);
                        }
                        println!("\nartifacts");
                        for a in &d.artifacts {
                            println!("  {:<16} {:>10} B  {}  {}", a.kind, a.size_bytes, &a.sha256[..12], a.path);
                        }
                        println!("\nparams: {} (see --json)", d.params.len());
                    }
                }
            }
        }
        Command::Survey { command: SurveyCommand::Synth { n, seed, image_size, out } } => {
            let cfg = SynthConfig { n_galaxies: n, seed, image_size, ..SynthConfig::default() };
            let t = std::time::Instant::now();
            let s = survey::synthesize(&cfg, |_| {});
            let secs = t.elapsed().as_secs_f64();
            let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            match ext.as_str() {
                "h5" | "hdf5" => astroclip_core::data::astroclip_h5::write(&s, &out)?,
                "safetensors" => storage::save(&s, &out).with_context(|| format!("writing {}", out.display()))?,
                _ => anyhow::bail!(
                    "--out {}: use a .h5 (AstroCLIP HDF5 layout) or .safetensors file name",
                    out.display()
                ),
            }
            println!("{n} galaxies in {secs:.2} s ({:.1} galaxies/s) -> {}", n as f64 / secs, out.display());
            println!("data hash {}", s.content_hash());
        }
        Command::Data { command: DataCommand::Inspect { file, json } } => {
            let r = astroclip_core::data::inspect::inspect(&file)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.text());
            }
        }
        Command::Data {
            command:
                DataCommand::Import { spectra, images, redrock, match_by, radius_arcsec, image_size, bands, on_bad, out },
        } => {
            let on_bad = match on_bad.as_str() {
                "error" => astroclip_core::data::OnBad::Error,
                "skip" => astroclip_core::data::OnBad::Skip,
                other => anyhow::bail!("--on-bad {other:?}: use `error` or `skip`"),
            };
            let spec = astroclip_core::data::inspect::ImportSpec {
                spectra,
                images,
                redrock,
                match_by,
                radius_arcsec,
                image_size,
                bands,
                on_bad,
            };
            let s = astroclip_core::data::inspect::import(&spec, &out)?;
            println!(
                "read {} spectra and {} images; {} pairs written to {} ({} spectra and {} images unpaired, {} objects skipped)",
                s.spectra_read,
                s.images_read,
                s.paired,
                s.out,
                s.spectra_unpaired,
                s.images_unpaired,
                s.skipped.len()
            );
            for (obj, why) in s.skipped.iter().take(20) {
                println!("  skipped {obj}: {why}");
            }
            println!("sha256 {}", s.sha256);
        }
        Command::Data { command: DataCommand::Bench(args) } => {
            astroclip_core::bench::loader_bench(&args, &cli.home)?;
        }
        Command::Plugins { command } => {
            let installed = astroclip_plugin_host::Installed::new(&cli.home);
            match command {
                PluginsCommand::List { json } => {
                    let rows = installed.list()?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&rows)?);
                    } else if rows.is_empty() {
                        println!("no plugins installed under {}", installed.root().display());
                        print_builtins();
                    } else {
                        println!(
                            "{:<24} {:<10} {:<7} {:<22} {:<12} status",
                            "id", "version", "carrier", "kinds", "modality"
                        );
                        for r in rows {
                            let kinds: Vec<String> = r
                                .kinds
                                .iter()
                                .map(|k| serde_json::to_string(k).unwrap_or_default().replace('"', ""))
                                .collect();
                            println!(
                                "{:<24} {:<10} {:<7} {:<22} {:<12} {}",
                                r.id.as_deref().unwrap_or(&r.dir),
                                r.version.as_deref().unwrap_or("-"),
                                r.carrier.map(|c| format!("{c:?}").to_lowercase()).unwrap_or_else(|| "-".into()),
                                kinds.join(","),
                                r.modality.as_deref().unwrap_or("-"),
                                r.status
                            );
                        }
                        print_builtins();
                    }
                }
                PluginsCommand::Add { dir, replace } => {
                    let p = installed.add(&dir, replace)?;
                    println!("installed {} {} at {}", p.id(), p.version(), p.dir.display());
                }
                PluginsCommand::Test { plugin, input_len, json } => {
                    let mut report = astroclip_core::conformance::Report::default();
                    if plugin == "builtin" {
                        astroclip_core::conformance::test_builtins(&mut report)?;
                    } else {
                        astroclip_core::conformance::test_plugin(&plugin, &cli.home, input_len, &mut report)?;
                    }
                    if json {
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        print!("{}", report.table());
                    }
                    if !report.passed() {
                        anyhow::bail!("{plugin} does not pass the conformance kit (see the FAIL lines)");
                    }
                }
                PluginsCommand::New { id, dir, modality, wasm } => {
                    let made = astroclip_core::template::new_plugin(&id, &dir, &modality, wasm)?;
                    println!("created {}", made.display());
                    println!(
                        "next: cd {} && ./build.sh && astroclip plugins test dist   (see README.md)",
                        made.display()
                    );
                }
                PluginsCommand::Verify { plugin } => {
                    let p = installed.resolve(&plugin)?;
                    p.verify()?;
                    if p.manifest.entry.carrier == astroclip_plugin_host::Carrier::Native {
                        // The handshake: load, embedded interface version, toolchain, table.
                        let lib = astroclip_plugin_host::native::NativePlugin::load(&p)?;
                        for (name, modality, _) in lib.tokenizers() {
                            println!("  tokenizer {name} (modality {modality})");
                        }
                        for (name, modality, _) in lib.encoders() {
                            println!("  encoder {name} (modality {modality}, tensor interface)");
                        }
                    }
                    println!(
                        "{} {}: manifest ok, plugin interface {} compatible with host {}, entry {} sha256 ok",
                        p.id(),
                        p.version(),
                        p.manifest.plugin.api_version,
                        astroclip_plugin_api::PLUGIN_INTERFACE_VERSION,
                        p.manifest.entry.file
                    );
                }
            }
        }
        Command::Config { command: ConfigCommand::Show { experiment, set } } => {
            let cfg = config::load(experiment.as_deref(), &CliOverrides::parse(&set)?)?;
            print!("{}", toml::to_string_pretty(&cfg)?);
        }
    }
    Ok(())
}

/// The `astroclip-mlflow` helper: $ASTROCLIP_MLFLOW_EXPORTER, next to this executable, or PATH.
/// It is a separate program so the trainer links neither reqwest nor OpenSSL.
fn mlflow_exporter() -> PathBuf {
    if let Ok(p) = std::env::var("ASTROCLIP_MLFLOW_EXPORTER") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let c = dir.join("astroclip-mlflow");
        if c.is_file() {
            return c;
        }
    }
    PathBuf::from("astroclip-mlflow")
}
