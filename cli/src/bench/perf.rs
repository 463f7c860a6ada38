//! `astroclip bench perf`: the platform's own speed, each number next to a reference measured on
//! the same machine in the same run.
//!
//! - **Training step** of the AstroCLIP model per preset and backend (forward, backward,
//!   per-parameter gradient clipping, AdamW; median over timed steps after warm-up), against
//!   `bench/torch_quickstart.py`, the same model and step in PyTorch. That it is the same model
//!   is checked by values ([`super::twin`]): the Rust parameters loaded into the PyTorch modules
//!   by name give the same embeddings (relative difference printed, must stay under 1e-5).
//! - **Embedding throughput** (evaluation mode, no autodiff) per modality, same reference.
//! - **Zero-shot k-NN probe** (standardise + k = 64 distance-weighted regression, fit and
//!   predict) against scikit-learn's `StandardScaler` + `KNeighborsRegressor(k=64,
//!   weights="distance")` (`bench/sklearn_knn.py`) on the same embeddings, for a range of
//!   object counts; predictions are compared as well as times.
//!
//! The Python references run with the interpreter given by `--python` (default: the
//! `.venv-torch` of `scripts/setup-bench.sh`, else `python3`); a missing one is reported in the
//! table, never silently skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use astroclip_builtin::knn::r2_score;
use astroclip_plugin_api::{ModalityEncoder, ProbeInput};

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use astroclip_core::config::{self, CliOverrides, ExperimentConfig};
use astroclip_core::{components, device, train};

use crate::in_range;

#[derive(clap::Args, Debug, Clone)]
pub struct PerfArgs {
    /// Experiment whose model is timed (default: each preset's own settings).
    #[arg(long)]
    pub experiment: Option<PathBuf>,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Presets timed (quickstart, paper; `none` for the k-NN probe alone).
    #[arg(long, default_value = "quickstart", value_delimiter = ',')]
    pub presets: Vec<String>,
    /// Backends timed: flex, tch, tch-cuda:N.
    #[arg(long, default_value = "flex", value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Timed training steps (median reported), after `--warmup` untimed ones.
    #[arg(long, default_value_t = 10, value_parser = in_range(1..=100_000))]
    pub steps: usize,
    #[arg(long, default_value_t = 2, value_parser = in_range(0..=100_000))]
    pub warmup: usize,
    /// Timed embedding batches per modality.
    #[arg(long, default_value_t = 5, value_parser = in_range(1..=100_000))]
    pub embed_reps: usize,
    /// Training-set sizes for the k-NN probe (the held-out set is a quarter of each).
    #[arg(long, default_value = "1000,4000,16000", value_delimiter = ',', value_parser = in_range(1..=1_000_000))]
    pub knn_sizes: Vec<usize>,
    /// Embedding width for the k-NN timing (the quickstart's embed_dim).
    #[arg(long, default_value_t = 128, value_parser = in_range(1..=4096))]
    pub knn_dim: usize,
    #[arg(long, default_value_t = 3, value_parser = in_range(1..=10_000))]
    pub knn_reps: usize,
    /// Python interpreter with torch / scikit-learn (default: .venv-torch/bin/python when
    /// present, else python3).
    #[arg(long, env = "ASTROCLIP_BENCH_PYTHON")]
    pub python: Option<PathBuf>,
    /// Skip the PyTorch and scikit-learn references.
    #[arg(long)]
    pub no_reference: bool,
    /// CPU threads of the PyTorch reference (default: all cores, which burn-flex and the k-NN
    /// probe always use).
    #[arg(long, value_parser = in_range(1..=4096))]
    pub threads: Option<usize>,
}

/// Where `bench/*.py` live: `ASTROCLIP_BENCH_DIR`, else the source tree this binary came from.
fn bench_dir() -> PathBuf {
    std::env::var_os("ASTROCLIP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("bench"))
}

fn python(args: &PerfArgs) -> PathBuf {
    if let Some(p) = &args.python {
        return p.clone();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-torch/bin/python");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

/// Runs a reference script; its stdout's last line is a JSON object.
pub(super) fn run_reference(py: &Path, script: &str, args: &[String]) -> Result<serde_json::Value, String> {
    let path = bench_dir().join(script);
    let out =
        Command::new(py).arg(&path).args(args).output().map_err(|e| format!("cannot start {}: {e}", py.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
        return Err(format!("{} {} failed: {last}", py.display(), path.display()));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).map_err(|e| format!("{script} printed no JSON result ({e})"))
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRow {
    pub preset: String,
    pub backend: String,
    pub params: usize,
    pub batch: usize,
    pub step_ms: f64,
    pub samples_per_sec: f64,
    pub image_embed_per_sec: f64,
    pub spectrum_embed_per_sec: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KnnRow {
    pub n_train: usize,
    pub n_test: usize,
    pub ours_s: f64,
    pub sklearn_s: Option<f64>,
    pub r2_ours: f64,
    pub r2_sklearn: Option<f64>,
    pub max_abs_diff: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PerfReport {
    pub threads: usize,
    /// The score kernel of the k-NN probe's distances on this CPU (`avx512` or `gemm`).
    pub knn_kernel: String,
    pub steps: Vec<StepRow>,
    pub knn: Vec<KnnRow>,
    /// The PyTorch twin's embeddings against ours, per preset.
    pub twin: Vec<super::twin::TwinRow>,
    /// References that could not run, with the reason.
    pub missing: Vec<String>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn timed(warmup: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    median(
        (0..reps.max(1))
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn preset_config(args: &PerfArgs, preset: &str) -> anyhow::Result<ExperimentConfig> {
    let mut set = vec![format!("experiment.preset={preset}")];
    set.extend(args.set.iter().cloned());
    Ok(config::load(args.experiment.as_deref(), &CliOverrides::parse(&set)?)?)
}

/// The training step and embedding throughput of one preset on one backend.
fn time_ours(cfg: &ExperimentConfig, backend: &str, args: &PerfArgs) -> anyhow::Result<StepRow> {
    let (image_tok, spectrum_tok) = components::tokenizers(cfg, astroclip_core::survey::DESI_NBINS)?;
    let shape = spectrum_tok.output_shape();
    let dev = device::parse(backend)?;
    dev.seed(0);
    let ad = dev.clone().autodiff();
    // The built-in encoders only (the PyTorch twin is of them): no plugin home.
    let mut model = components::model(cfg, &image_tok.output_shape(), &shape, Path::new(""), &ad)?.model;
    let params = model.image.num_params() + model.spectrum.num_params();
    let (b, px) = (cfg.train.batch_size, cfg.image.crop / cfg.image.downsample);
    let images = Tensor::<2>::random([b, 3 * px * px], Distribution::Normal(0.0, 1.0), &ad);
    let spectra = Tensor::<2>::random([b, shape[0] * shape[1]], Distribution::Normal(0.0, 1.0), &ad);
    // The run's own optimizer (AdamW, weight decay, clipping).
    let mut optim = train::optimizer(&cfg.train);
    let mut slot = Some(model);
    let step_s = timed(args.warmup, args.steps, || {
        let m = slot.take().expect("model");
        let loss = m.forward(images.clone(), spectra.clone());
        let _: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        slot = Some(optim.step(cfg.train.lr, m, grads));
    });
    model = slot.take().expect("model");
    let valid = model.valid();
    let eb = cfg.eval.batch_size;
    let inner = ad.clone().inner();
    let eimg = Tensor::<2>::random([eb, 3 * px * px], Distribution::Normal(0.0, 1.0), &inner);
    let espec = Tensor::<2>::random([eb, shape[0] * shape[1]], Distribution::Normal(0.0, 1.0), &inner);
    let img_s = timed(1, args.embed_reps, || {
        let _ = valid.image.encode(eimg.clone()).into_data();
    });
    let spec_s = timed(1, args.embed_reps, || {
        let _ = valid.spectrum.encode(espec.clone()).into_data();
    });
    Ok(StepRow {
        preset: cfg.experiment.preset.clone(),
        backend: format!("astroclip ({backend})"),
        params,
        batch: b,
        step_ms: step_s * 1e3,
        samples_per_sec: b as f64 / step_s,
        image_embed_per_sec: eb as f64 / img_s,
        spectrum_embed_per_sec: eb as f64 / spec_s,
    })
}

/// The model and step settings `bench/torch_quickstart.py` builds its twin from.
fn torch_spec(cfg: &ExperimentConfig, threads: usize, args: &PerfArgs) -> Result<serde_json::Value, String> {
    let (_, spectrum_tok) =
        components::tokenizers(cfg, astroclip_core::survey::DESI_NBINS).map_err(|e| e.to_string())?;
    let shape = spectrum_tok.output_shape();
    let (Some(img), Some(sp)) = (
        cfg.image.encoder.settings_of::<astroclip_builtin::resnet::ResNetEncoder>(),
        cfg.spectrum.encoder.settings_of::<astroclip_builtin::specformer::SpecFormer>(),
    ) else {
        return Err("the PyTorch reference is the resnet + specformer model; set those encoders".into());
    };
    Ok(serde_json::json!({
        "threads": threads,
        "channels": img.channels, "blocks_per_stage": img.blocks_per_stage,
        "stem_stride": img.stem_stride, "image_size": cfg.image.crop / cfg.image.downsample,
        "embed_dim": cfg.model.embed_dim, "head_heads": img.head_heads, "dropout": img.dropout,
        "d_model": sp.d_model, "n_layers": sp.n_layers, "n_heads": sp.n_heads,
        "n_tokens": shape[0], "token_dim": shape[1],
        "lr": cfg.train.lr, "weight_decay": cfg.train.weight_decay, "grad_clip": cfg.train.grad_clip,
        "batch": cfg.train.batch_size, "logit_scale": cfg.loss.logit_scale,
        "warmup": args.warmup, "steps": args.steps,
        "eval_batch": cfg.eval.batch_size, "embed_reps": args.embed_reps,
    }))
}

fn time_torch(cfg: &ExperimentConfig, py: &Path, spec: &serde_json::Value) -> Result<StepRow, String> {
    let v = run_reference(py, "torch_quickstart.py", &[spec.to_string()])?;
    let f = |k: &str| v.get(k).and_then(|x| x.as_f64()).ok_or_else(|| format!("torch_quickstart.py: no {k}"));
    Ok(StepRow {
        preset: cfg.experiment.preset.clone(),
        backend: format!("PyTorch {} (reference)", v.get("torch").and_then(|x| x.as_str()).unwrap_or("?")),
        params: f("params")? as usize,
        batch: cfg.train.batch_size,
        step_ms: f("step_ms_median")?,
        samples_per_sec: f("samples_per_sec")?,
        image_embed_per_sec: f("image_embed_per_sec")?,
        spectrum_embed_per_sec: f("spectrum_embed_per_sec")?,
    })
}

/// Embedding-like data with a smooth target: `y ~ U(0, 1)`, `x_j = sin((j+1)·y) + noise`.
fn synthetic_embeddings(n: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * dim);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let t: f32 = rng.random();
        for j in 0..dim {
            let noise: f32 = rng.random::<f32>() - 0.5;
            x.push(((j + 1) as f32 * t).sin() + 3.0 * noise);
        }
        y.push(t);
    }
    (x, y)
}

fn write_f32(path: &Path, v: &[f32]) -> std::io::Result<()> {
    std::fs::write(path, v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

fn time_knn(n_train: usize, args: &PerfArgs, py: Option<&Path>, missing: &mut Vec<String>) -> anyhow::Result<KnnRow> {
    let n_test = (n_train / 4).max(1);
    let dim = args.knn_dim;
    let (xtr, ytr) = synthetic_embeddings(n_train, dim, 1);
    let (xte, yte) = synthetic_embeddings(n_test, dim, 2);
    let mut pred = Vec::new();
    let ours_s = timed(0, args.knn_reps, || {
        let mut probe = components::knn_probe(64);
        probe.fit(ProbeInput { values: &xtr, rows: n_train, cols: dim }, &ytr).expect("finite synthetic data");
        pred = probe.predict(ProbeInput { values: &xte, rows: n_test, cols: dim }).expect("fitted");
    });
    let mut row = KnnRow {
        n_train,
        n_test,
        ours_s,
        sklearn_s: None,
        r2_ours: r2_score(&yte, &pred),
        r2_sklearn: None,
        max_abs_diff: None,
    };
    if let Some(py) = py {
        let dir = tempfile::tempdir()?;
        write_f32(&dir.path().join("train_x.f32"), &xtr)?;
        write_f32(&dir.path().join("train_y.f32"), &ytr)?;
        write_f32(&dir.path().join("test_x.f32"), &xte)?;
        let a = [dir.path().display().to_string(), n_train.to_string(), n_test.to_string(), dim.to_string()];
        let mut a: Vec<String> = a.to_vec();
        a.extend(["64".into(), args.knn_reps.to_string()]);
        match run_reference(py, "sklearn_knn.py", &a) {
            Ok(v) => {
                let bytes = std::fs::read(dir.path().join("sklearn_pred.f32"))?;
                let sk: Vec<f32> =
                    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                row.sklearn_s = v.get("seconds_median").and_then(|x| x.as_f64());
                row.r2_sklearn = Some(r2_score(&yte, &sk));
                row.max_abs_diff =
                    Some(sk.iter().zip(&pred).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0.0, f64::max));
            }
            Err(e) => missing.push(format!("scikit-learn k-NN: {e}")),
        }
    }
    Ok(row)
}

pub fn execute(args: &PerfArgs) -> anyhow::Result<PerfReport> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let py = (!args.no_reference).then(|| python(args));
    let knn_kernel = astroclip_builtin::topk::Kernel::detect().name().to_string();
    let mut report = PerfReport { threads, knn_kernel, ..PerfReport::default() };
    for preset in args.presets.iter().filter(|p| p.as_str() != "none") {
        let cfg = preset_config(args, preset)?;
        for backend in &args.devices {
            tracing::info!("timing {preset} on {backend}");
            report.steps.push(time_ours(&cfg, backend, args)?);
        }
        if let Some(py) = &py {
            let spec = torch_spec(&cfg, threads, args);
            match spec.as_ref().map_err(Clone::clone).and_then(|spec| time_torch(&cfg, py, spec)) {
                Ok(row) => report.steps.push(row),
                Err(e) => report.missing.push(format!("PyTorch ({preset}): {e}")),
            }
            match spec.and_then(|spec| super::twin::check(&cfg, py, &spec)) {
                Ok(row) => report.twin.push(row),
                Err(e) => report.missing.push(format!("PyTorch twin ({preset}): {e}")),
            }
        }
    }
    let mut missing = Vec::new();
    for &n in &args.knn_sizes {
        tracing::info!("timing k-NN on {n} objects");
        report.knn.push(time_knn(n, args, py.as_deref(), &mut missing)?);
    }
    missing.dedup();
    report.missing.extend(missing);
    Ok(report)
}

impl PerfReport {
    pub fn markdown(&self) -> String {
        let mut s = format!("Training step and embedding throughput ({} CPU threads where on CPU)\n\n", self.threads);
        s += "| preset | backend | params | batch | step ms (median) | samples/s | image embeds/s | spectrum embeds/s |\n";
        s += "|---|---|---:|---:|---:|---:|---:|---:|\n";
        for r in &self.steps {
            s += &format!(
                "| {} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.0} |\n",
                r.preset,
                r.backend,
                r.params,
                r.batch,
                r.step_ms,
                r.samples_per_sec,
                r.image_embed_per_sec,
                r.spectrum_embed_per_sec
            );
        }
        let mut ratios = String::new();
        for r in self.steps.iter().filter(|r| !r.backend.starts_with("PyTorch")) {
            if let Some(t) = self.steps.iter().find(|t| t.preset == r.preset && t.backend.starts_with("PyTorch")) {
                ratios += &format!(
                    "- {} {}: step time {:.2}× PyTorch's; image embedding {:.2}×, spectrum embedding {:.2}× PyTorch's throughput{}\n",
                    r.preset,
                    r.backend,
                    r.step_ms / t.step_ms,
                    r.image_embed_per_sec / t.image_embed_per_sec,
                    r.spectrum_embed_per_sec / t.spectrum_embed_per_sec,
                    if r.params == t.params {
                        String::new()
                    } else {
                        format!(" (PARAMETER COUNTS DIFFER: {} vs {})", r.params, t.params)
                    }
                );
            }
        }
        if !ratios.is_empty() {
            s += "\n";
            s += &ratios;
        }
        for t in &self.twin {
            let same = t.image_rel_diff < super::twin::TOLERANCE && t.spectrum_rel_diff < super::twin::TOLERANCE;
            s += &format!(
                "- {} PyTorch twin: our {} parameter tensors ({} values) loaded by name; embeddings of the same batch differ by {:.1e} (image), {:.1e} (spectrum) relative: {}\n",
                t.preset,
                t.tensors,
                t.values,
                t.image_rel_diff,
                t.spectrum_rel_diff,
                if same { "the same model" } else { "NOT THE SAME MODEL" }
            );
        }
        s += &format!(
            "\nZero-shot k-NN probe (standardise, k = 64, distance-weighted; fit + predict, median; distances by the {} kernel)\n\n",
            self.knn_kernel
        );
        s += "| train / test objects | astroclip s | scikit-learn s | astroclip / scikit-learn time | R² astroclip | R² scikit-learn | max \\|Δ prediction\\| |\n";
        s += "|---|---:|---:|---:|---:|---:|---:|\n";
        let opt = |v: Option<f64>, p: usize| v.map_or("—".to_string(), |x| format!("{x:.p$}"));
        for r in &self.knn {
            s += &format!(
                "| {} / {} | {:.3} | {} | {} | {:.4} | {} | {} |\n",
                r.n_train,
                r.n_test,
                r.ours_s,
                opt(r.sklearn_s, 3),
                opt(r.sklearn_s.map(|t| r.ours_s / t), 2),
                r.r2_ours,
                opt(r.r2_sklearn, 4),
                r.max_abs_diff.map_or("—".into(), |d| format!("{d:.1e}")),
            );
        }
        for m in &self.missing {
            s += &format!("\nreference not run — {m}; install it with scripts/setup-bench.sh\n");
        }
        s
    }
}
