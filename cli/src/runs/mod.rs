//! `astroclip runs`: list, show, diff, plot, report, tag, note, soft delete, artifacts, export.

pub mod diff;
pub mod plot;
pub mod report;

use std::path::{Path, PathBuf};

use anyhow::Context;
use astroclip_core::run;
use astroclip_registry::Registry;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ExportTarget {
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
pub enum RunsCommand {
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

pub fn execute(command: RunsCommand, home: &Path, registry: Option<&str>) -> anyhow::Result<()> {
    let reg = run::open_registry(home, registry)?;
    for id in reg.reap_dead_runs()? {
        eprintln!("note: run {id} was left `running` by a process that no longer exists; marked `killed` (resumable)");
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
                let mut head =
                    format!("{:<34} {:<w$} {:<9} {:<20} {:>8}", "id", "experiment", "status", "started (UTC)", "secs");
                for (f, fw) in fields.iter().zip(&fw) {
                    head.push_str(&format!("  {f:>fw$}"));
                }
                println!("{head}");
                for r in &runs {
                    let s = &r.summary;
                    let secs = s.end_ms.map(|e| format!("{:.0}", (e - s.start_ms) as f64 / 1e3)).unwrap_or_default();
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
            let d = crate::runs::diff::diff(&reg, &ids, all)?;
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
                series.push(crate::runs::plot::Series {
                    label: format!("{} {}", &d.summary.id[..8], d.summary.name),
                    points,
                });
            }
            let chart = crate::runs::plot::Chart {
                title: metric.clone(),
                x_label: "step".into(),
                y_label: metric.clone(),
                series,
            };
            let stem = out.unwrap_or_else(|| home.join("plots").join(metric.replace(['/', '[', ']', ','], "_")));
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
            let html = crate::runs::report::report(&reg, home, &ids)?;
            let out = out.unwrap_or_else(|| home.join("reports/report.html"));
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
                    let file = home.join(&a.path);
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
            cmd.arg("--home").arg(home).arg("--uri").arg(&uri);
            if let Some(r) = &registry.map(String::from) {
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
                anyhow::bail!("MLflow export failed ({status}); runs exported before the failure keep their state");
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
                        astroclip_registry::Metric::new("stress.value", (b * batch + i) as i64, (b * batch + i) as f64)
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
    Ok(())
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

/// `runs rm` / `runs restore`: soft delete only; nothing is ever removed.
fn soft_delete(reg: &Registry, ids: &[String], restore: bool) -> anyhow::Result<()> {
    for i in ids {
        let id = reg.resolve(i)?;
        reg.set_deleted(&id, !restore)?;
        println!("{} {id}", if restore { "restored" } else { "deleted (soft; `astroclip runs restore` undoes it)" });
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
