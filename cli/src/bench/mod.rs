//! `astroclip bench <bench.toml>`: trains (or reuses from the registry) every model of a
//! benchmark suite on the same data with the same budget, evaluates each with the same k-NN
//! probe, and prints the paper-style table (AstroCLIP's README, Parker et al. 2024 Table 1:
//! rows source × model × protocol, columns redshift, each property, their average), saved as
//! Markdown and HTML and recorded in the registry as a run of its own.
//!
//! ```toml
//! [bench]
//! name = "bench-quick"
//! experiment = "quickstart.toml"     # base experiment, next to this file (or a preset name)
//! set = ["train.steps=900"]          # the shared budget, applied to every model
//!
//! [[model]]
//! name = "AstroCLIP"                 # objective.kind = "clip" (the default)
//!
//! [[model]]
//! name = "MoCo v2 (Stein et al. 2021)"
//! set = ["objective.kind=moco-v2"]
//!
//! [[model]]
//! name = "Supervised ResNet"             # also supervised-spectrum, supervised-photometry
//! set = ["objective.kind=supervised-image"]
//!
//! [[model]]
//! name = "SpecFormer (masked)"
//! set = ["objective.kind=specformer-masked"]
//!
//! [[model]]                              # `@name`: the run id an earlier model resolved to
//! name = "AstroCLIP two-stage"
//! set = ["objective.init_image=@MoCo v2 (Stein et al. 2021)",
//!        "objective.init_spectrum=@SpecFormer (masked)", "objective.freeze_backbones=true"]
//! ```
//! A model is reused when a finished run's recorded configuration equals the model's resolved
//! configuration apart from the `experiment` section (name and description).

pub mod import;
pub mod perf;
pub mod search;
pub mod twin;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use astroclip_registry::{Metric, NewRun, Registry};
use serde::{Deserialize, Serialize};

use astroclip_core::config::{self, CliOverrides, ExperimentConfig};
use astroclip_core::run::{self, RunOptions};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    pub bench: SuiteSection,
    #[serde(rename = "model")]
    pub models: Vec<SuiteModel>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteSection {
    pub name: String,
    #[serde(default)]
    pub experiment: String,
    #[serde(default)]
    pub set: Vec<String>,
    /// Shown in the file only (documentation of the bench).
    #[serde(default)]
    #[allow(dead_code)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteModel {
    pub name: String,
    #[serde(default)]
    pub set: Vec<String>,
}

/// One row of the table: a model's embedding of one source, probed zero-shot.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteRow {
    pub source: String,
    pub model: String,
    pub protocol: String,
    pub run: String,
    pub r2: Vec<(String, f64)>,
    pub mean_properties: f64,
}

/// Cross-modal retrieval of one model: image queries among the held-out pairs' spectrum
/// embeddings, recall@k = fraction whose own spectrum ranks within the k nearest.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalRow {
    pub model: String,
    pub run: String,
    pub recall: Vec<(usize, f64)>,
}

/// The embedding diagnostics of one model's embedding of one modality, as its run recorded
/// them.
#[derive(Debug, Clone, Serialize)]
pub struct DiagnosticsRow {
    pub model: String,
    pub run: String,
    #[serde(flatten)]
    pub recorded: astroclip_core::run::RecordedDiagnostics,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteTable {
    pub name: String,
    pub properties: Vec<String>,
    pub rows: Vec<SuiteRow>,
    /// Models with both modalities (image-only baselines have no retrieval).
    pub retrieval: Vec<RetrievalRow>,
    /// Models whose runs recorded embedding diagnostics (not the photometry MLP).
    pub diagnostics: Vec<DiagnosticsRow>,
    /// Runs trained by this invocation (the others were reused).
    pub trained: Vec<String>,
}

impl SuiteTable {
    /// Markdown: redshift, each property, and the mean over the non-redshift properties
    /// (AstroCLIP's "properties" column).
    pub fn markdown(&self) -> String {
        let mut out = format!("| source | model | protocol | {} | properties (mean) |\n", self.properties.join(" | "));
        out.push_str(&format!("|---|---|---|{}---|\n", "---:|".repeat(self.properties.len())));
        for r in &self.rows {
            let vals: Vec<String> = r.r2.iter().map(|(_, v)| format!("{v:.3}")).collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.3} |\n",
                r.source,
                r.model,
                r.protocol,
                vals.join(" | "),
                r.mean_properties
            ));
        }
        if let Some(first) = self.retrieval.first() {
            let ks: Vec<String> = first.recall.iter().map(|(k, _)| format!("recall@{k}")).collect();
            out.push_str("\nCross-modal retrieval, image → spectrum among the held-out pairs\n\n");
            out.push_str(&format!("| model | {} |\n|---|{}\n", ks.join(" | "), "---:|".repeat(ks.len())));
            for r in &self.retrieval {
                let vals: Vec<String> = r.recall.iter().map(|(_, v)| format!("{v:.3}")).collect();
                out.push_str(&format!("| {} | {} |\n", r.model, vals.join(" | ")));
            }
        }
        if !self.diagnostics.is_empty() {
            out.push_str(&format!("\n{DIAGNOSTICS_CAPTION}\n\n"));
            out.push_str(
                "| model | embedding | effective rank | uniformity | PC1 variance | PC2 variance | alignment |\n",
            );
            out.push_str("|---|---|---:|---:|---:|---:|---:|\n");
            for r in &self.diagnostics {
                let [u, p1, p2, a] = r.recorded.cells();
                out.push_str(&format!(
                    "| {} | {} | {:.2} | {u} | {p1} | {p2} | {a} |\n",
                    r.model, r.recorded.source, r.recorded.effective_rank
                ));
            }
        }
        out
    }

    pub fn html(&self) -> String {
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let mut out = format!(
            "<!doctype html><meta charset=utf-8><title>{0}</title><style>body{{font:14px sans-serif}}td,th{{padding:2px 8px}}\
             td.n{{text-align:right}}</style><h1>{0}</h1><p>zero-shot k-NN R² on held-out galaxies</p><table><tr>\
             <th>source<th>model<th>protocol",
            esc(&self.name)
        );
        for p in &self.properties {
            out.push_str(&format!("<th>{}", esc(p)));
        }
        out.push_str("<th>properties (mean)</tr>");
        for r in &self.rows {
            out.push_str(&format!("<tr><td>{}<td>{}<td>{}", esc(&r.source), esc(&r.model), esc(&r.protocol)));
            for (_, v) in &r.r2 {
                out.push_str(&format!("<td class=n>{v:.3}"));
            }
            out.push_str(&format!("<td class=n>{:.3}</tr>", r.mean_properties));
        }
        out.push_str("</table>\n");
        if let Some(first) = self.retrieval.first() {
            out.push_str(
                "<h2>Cross-modal retrieval, image → spectrum among the held-out pairs</h2><table><tr><th>model",
            );
            for (k, _) in &first.recall {
                out.push_str(&format!("<th>recall@{k}"));
            }
            out.push_str("</tr>");
            for r in &self.retrieval {
                out.push_str(&format!("<tr><td>{}", esc(&r.model)));
                for (_, v) in &r.recall {
                    out.push_str(&format!("<td class=n>{v:.3}"));
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>\n");
        }
        if !self.diagnostics.is_empty() {
            out.push_str(&format!(
                "<h2>Embedding diagnostics</h2><p>{}</p><table><tr><th>model<th>embedding<th>effective rank\
                 <th>uniformity<th>PC1 variance<th>PC2 variance<th>alignment</tr>",
                esc(DIAGNOSTICS_CAPTION)
            ));
            for r in &self.diagnostics {
                let [u, p1, p2, a] = r.recorded.cells();
                out.push_str(&format!(
                    "<tr><td>{}<td>{}<td class=n>{:.2}<td class=n>{u}<td class=n>{p1}<td class=n>{p2}<td class=n>{a}</tr>",
                    esc(&r.model),
                    esc(&r.recorded.source),
                    r.recorded.effective_rank
                ));
            }
            out.push_str("</table>\n");
        }
        out
    }
}

const DIAGNOSTICS_CAPTION: &str = "Embedding diagnostics on the held-out objects: effective rank (1 = collapsed onto \
     one axis), uniformity (Wang & Isola, t = 2; lower = more spread), variance fraction of the first two principal \
     axes, alignment of each object's image and spectrum embeddings (mean squared distance of unit vectors)";

/// A model name as a key part: lower case, runs of other characters as `-`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// A suite's models with their resolved configurations and the overrides that produce them
/// (relative to the returned experiment file, if any).
pub struct ResolvedModel {
    pub name: String,
    pub config: ExperimentConfig,
    pub file: Option<PathBuf>,
    pub overrides: Vec<String>,
}

/// Parses a bench file and resolves every model's configuration (nothing is trained).
pub fn resolve(file: &Path) -> anyhow::Result<(SuiteFile, Vec<ResolvedModel>)> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let suite: SuiteFile = toml::from_str(&text).with_context(|| format!("{}: not a bench file", file.display()))?;
    if suite.models.is_empty() {
        bail!("{}: no [[model]] entries", file.display());
    }
    let (exp_path, base): (Option<PathBuf>, Vec<String>) = if suite.bench.experiment.is_empty() {
        (None, vec![])
    } else {
        config::experiment_ref(file, "bench.experiment", &suite.bench.experiment)?
    };
    let mut out = Vec::new();
    for m in &suite.models {
        let mut overrides = base.clone();
        overrides.extend(suite.bench.set.iter().cloned());
        overrides.extend(m.set.iter().cloned());
        overrides.push(format!("experiment.name={}", suite.bench.name));
        let config = config::load(exp_path.as_deref(), &CliOverrides::parse(&overrides)?)
            .with_context(|| format!("{}: model {:?}", file.display(), m.name))?;
        out.push(ResolvedModel { name: m.name.clone(), config, file: exp_path.clone(), overrides });
    }
    Ok((suite, out))
}

/// Runs the suite in `file`; `home`/`registry` as for `astroclip run`.
pub fn execute(
    file: &Path,
    home: &Path,
    registry: Option<&str>,
    device: &str,
) -> anyhow::Result<(SuiteTable, PathBuf)> {
    let (suite, models) = resolve(file)?;
    let reg = run::open_registry(home, registry)?;
    let mut rows = Vec::new();
    let mut trained = Vec::new();
    let mut properties = Vec::new();
    let mut retrieval = Vec::new();
    let mut diagnostics = Vec::new();
    let mut run_of: Vec<(String, String)> = Vec::new();
    for m in &models {
        let m = &with_references(m, &run_of, file)?;
        let cfg = &m.config;
        let id = match reuse(&reg, cfg)? {
            Some(id) => {
                eprintln!("{}: reusing run {id} (same configuration)", m.name);
                id
            }
            None => {
                if cfg.objective.kind == astroclip_core::config::ObjectiveKind::SupervisedPhotometry {
                    eprintln!("{}: fitting (MLP per property on the photometry)", m.name);
                } else {
                    eprintln!("{}: training ({} steps of {})", m.name, cfg.train.steps, cfg.train.batch_size);
                }
                let out = run::execute(&RunOptions {
                    file: m.file.clone(),
                    overrides: m.overrides.clone(),
                    device: device.to_string(),
                    resume: None,
                    home: home.to_path_buf(),
                    registry: Some(reg.url().to_string()),
                    stop_after: None,
                })?;
                trained.push(out.run_id.clone());
                out.run_id
            }
        };
        run_of.push((m.name.clone(), id.clone()));
        properties = cfg.eval.properties.clone();
        let latest = reg.run(&id)?.latest_metrics;
        let recall: Vec<(usize, f64)> = cfg
            .eval
            .recall_at
            .iter()
            .filter_map(|k| {
                latest
                    .iter()
                    .find(|x| x.key == format!("eval.recall_at_{k}") && x.context == "split=test,source=image→spectrum")
                    .map(|x| (*k, x.value))
            })
            .collect();
        if !recall.is_empty() && recall.len() == cfg.eval.recall_at.len() {
            retrieval.push(RetrievalRow { model: m.name.clone(), run: id.clone(), recall });
        }
        diagnostics.extend(
            astroclip_core::run::recorded_diagnostics(&latest).into_iter().map(|recorded| DiagnosticsRow {
                model: m.name.clone(),
                run: id.clone(),
                recorded,
            }),
        );
        for (prefix, source, protocol) in [
            ("eval.r2", "image", "zero-shot (k-NN)"),
            ("eval.mlp_r2", "image", "few-shot (MLP)"),
            ("eval.r2", "spectrum", "zero-shot (k-NN)"),
            ("eval.mlp_r2", "spectrum", "few-shot (MLP)"),
            ("eval.r2", "image→spectrum", "zero-shot, cross-modal"),
            ("eval.supervised_r2", "image", "supervised"),
            ("eval.supervised_r2", "spectrum", "supervised"),
            ("eval.supervised_r2", "photometry", "supervised"),
        ] {
            let ctx = format!("split=test,source={source}");
            let r2: Vec<(String, f64)> = cfg
                .eval
                .properties
                .iter()
                .filter_map(|p| {
                    latest
                        .iter()
                        .find(|x| x.key == format!("{prefix}.{p}") && x.context == ctx)
                        .map(|x| (p.clone(), x.value))
                })
                .collect();
            if r2.len() != cfg.eval.properties.len() {
                continue;
            }
            let others: Vec<f64> = r2.iter().filter(|(p, _)| p != "redshift").map(|(_, v)| *v).collect();
            let mean_properties = others.iter().sum::<f64>() / others.len().max(1) as f64;
            rows.push(SuiteRow {
                source: source.to_string(),
                model: m.name.clone(),
                protocol: protocol.into(),
                run: id.clone(),
                r2,
                mean_properties,
            });
        }
    }
    // Grouped by source as in the paper's table.
    let order =
        |s: &str| ["image", "spectrum", "photometry", "image→spectrum"].iter().position(|x| *x == s).unwrap_or(9);
    let protocol = |p: &str| ["zero-shot", "few-shot", "supervised"].iter().position(|x| p.starts_with(x)).unwrap_or(9);
    rows.sort_by_key(|r| (order(&r.source), protocol(&r.protocol)));
    let table = SuiteTable { name: suite.bench.name.clone(), properties, rows, retrieval, diagnostics, trained };
    let out_dir = home.join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let md = out_dir.join(format!("{}.md", suite.bench.name));
    std::fs::write(&md, table.markdown())?;
    std::fs::write(out_dir.join(format!("{}.html", suite.bench.name)), table.html())?;
    record(&reg, &suite, &table, home, &md)?;
    Ok((table, md))
}

/// A model whose overrides name an earlier model of the suite as `key=@<model name>` (a
/// two-stage model starting from pre-trained ones) with the run id that model resolved to.
fn with_references(m: &ResolvedModel, run_of: &[(String, String)], file: &Path) -> anyhow::Result<ResolvedModel> {
    let mut overrides = Vec::new();
    let mut changed = false;
    for o in &m.overrides {
        match o.split_once("=@") {
            Some((key, name)) => {
                let Some((_, id)) = run_of.iter().find(|(n, _)| n == name) else {
                    bail!(
                        "{}: model {:?} sets {key}=@{name}, but no earlier [[model]] is named {name:?}; \
                         list the pre-training model first",
                        file.display(),
                        m.name
                    );
                };
                overrides.push(format!("{key}={id}"));
                changed = true;
            }
            None => overrides.push(o.clone()),
        }
    }
    if !changed {
        return Ok(ResolvedModel { name: m.name.clone(), config: m.config.clone(), file: m.file.clone(), overrides });
    }
    let config = config::load(m.file.as_deref(), &CliOverrides::parse(&overrides)?)
        .with_context(|| format!("{}: model {:?}", file.display(), m.name))?;
    Ok(ResolvedModel { name: m.name.clone(), config, file: m.file.clone(), overrides })
}

/// A finished run of any experiment (a model trained as `astroclip run` counts as well) with
/// the same model; bench tables (`<name>-table`) have no model.
fn reuse(reg: &Registry, cfg: &ExperimentConfig) -> anyhow::Result<Option<String>> {
    astroclip_core::lifecycle::reusable_run(reg, cfg, None, |d| !d.summary.experiment.ends_with("-table"))
}

/// The table as a registry run of experiment `<name>-table`: which run each row came from
/// (params), every R² (metrics with `model`/`source` context), the Markdown and HTML files.
fn record(reg: &Registry, suite: &SuiteFile, table: &SuiteTable, home: &Path, md: &Path) -> anyhow::Result<()> {
    let id = reg.create_run(&NewRun {
        experiment: format!("{}-table", suite.bench.name),
        name: suite.bench.name.clone(),
        config_json: serde_json::to_string(&serde_json::json!({
            "bench": { "name": suite.bench.name, "experiment": suite.bench.experiment, "set": suite.bench.set },
            "models": suite.models.iter().map(|m| serde_json::json!({"name": m.name, "set": m.set})).collect::<Vec<_>>(),
        }))?,
        git_commit: None,
        data_hash: None,
        components_json: "[]".into(),
    })?;
    let mut params: Vec<(String, String)> = Vec::new();
    for r in &table.rows {
        let key = format!("run.{}", slug(&r.model));
        if !params.iter().any(|(k, _)| *k == key) {
            params.push((key, r.run.clone()));
        }
    }
    reg.log_params(&id, &params)?;
    let mut metrics = Vec::new();
    for r in &table.rows {
        let ctx = format!("model={},source={},protocol={}", slug(&r.model), r.source, slug(&r.protocol));
        for (p, v) in &r.r2 {
            metrics.push(Metric::new(format!("bench.r2.{p}"), 0, *v).with_context(ctx.clone()));
        }
        metrics.push(Metric::new("bench.r2.properties_mean", 0, r.mean_properties).with_context(ctx));
    }
    for r in &table.retrieval {
        for (k, v) in &r.recall {
            metrics.push(
                Metric::new(format!("bench.recall_at_{k}"), 0, *v)
                    .with_context(format!("model={},source=image→spectrum", slug(&r.model))),
            );
        }
    }
    reg.log_metrics(&id, &metrics)?;
    let html = md.with_extension("html");
    for (f, kind) in [(md, "bench-table"), (html.as_path(), "bench-report")] {
        astroclip_core::train::record_artifact(reg, &id, home, f, kind)?;
    }
    reg.set_status(&id, "finished", None)?;
    Ok(())
}

/// `astroclip bench <file>` or `astroclip bench perf`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    /// Bench TOML.
    #[arg(required = true)]
    suite: Option<PathBuf>,
    /// Compute device: flex, tch or tch-cuda:N.
    #[arg(long, default_value = "flex")]
    device: String,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Speed of the platform itself: training step and embedding throughput per preset and
    /// backend against the same model in PyTorch, and the k-NN probe against scikit-learn, on
    /// this machine in one run.
    Perf(perf::PerfArgs),
    /// Similarity search: exact top-k against faiss-cpu's IndexFlatIP and the HNSW index's
    /// recall and queries/s, on this machine in one run.
    Search(search::SearchBenchArgs),
    /// Embedding throughput of an imported AstroCLIP model at the published sizes (~370 M
    /// parameters) against the same model in PyTorch, with the embeddings compared.
    Import(import::ImportBenchArgs),
}

/// Prints a speed report and keeps it as `<home>/bench/<name>.md` and `.json`.
fn save_report(home: &Path, name: &str, md: &str, report: &impl Serialize) -> anyhow::Result<()> {
    print!("{md}");
    let dir = home.join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.md")), md)?;
    std::fs::write(dir.join(format!("{name}.json")), serde_json::to_string_pretty(report)?)?;
    println!("\nsaved {}", dir.join(format!("{name}.md")).display());
    Ok(())
}

pub fn execute_command(args: BenchArgs, home: &Path, registry: Option<&str>) -> anyhow::Result<()> {
    match args.command {
        Some(BenchCommand::Perf(a)) => {
            let report = perf::execute(&a)?;
            return save_report(home, "perf", &report.markdown(), &report);
        }
        Some(BenchCommand::Import(a)) => {
            let report = import::execute(&a)?;
            return save_report(home, "import", &report.markdown(), &report);
        }
        Some(BenchCommand::Search(a)) => {
            let report = search::execute(&a)?;
            return save_report(home, "search", &report.markdown(), &report);
        }
        None => {}
    }
    let suite = args.suite.ok_or_else(|| anyhow::anyhow!("bench needs a bench TOML or `perf`"))?;
    let (table, md) = execute(&suite, home, registry, &args.device)?;
    println!("{}: R² on held-out galaxies (zero-shot k-NN, few-shot MLP, supervised)\n", table.name);
    print!("{}", table.markdown());
    println!("\nsaved {} (and .html); recorded as experiment {}-table", md.display(), table.name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped bench files resolve: equal budgets (every model differs from AstroCLIP only
    /// in its objective), and the paper file carries MoCo v2's published queue and momentum.
    #[test]
    fn shipped_bench_files_resolve_to_equal_budgets() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
        for (file, queue, momentum) in [("bench-quick.toml", 4096, 0.99), ("bench-paper.toml", 65536, 0.999)] {
            let (suite, models) = resolve(&dir.join(file)).unwrap();
            let kinds: Vec<&str> = models.iter().map(|m| m.config.objective.kind.as_str()).collect();
            assert_eq!(
                kinds,
                [
                    "clip",
                    "moco-v2",
                    "specformer-masked",
                    "clip",
                    "supervised-image",
                    "supervised-spectrum",
                    "supervised-photometry"
                ],
                "{file}"
            );
            let (clip, moco) = (&models[0].config, &models[1].config);
            assert_eq!((moco.objective.queue_size, moco.objective.momentum), (queue, momentum), "{file}");
            let two_stage = &models[3].config.objective;
            assert_eq!(
                (two_stage.init_image.as_str(), two_stage.init_spectrum.as_str(), two_stage.freeze_backbones),
                ("@MoCo v2 (Stein et al. 2021)", "@SpecFormer (masked)", true),
                "{file}"
            );
            for m in &models[1..] {
                let mut same = m.config.clone();
                same.objective = clip.objective.clone();
                assert_eq!(&same, clip, "{file}: {} differs from AstroCLIP in more than its objective", m.name);
            }
            assert_eq!(clip.experiment.name, suite.bench.name);
        }
    }
}
