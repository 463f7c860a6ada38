//! `astroclip bench import`: embedding throughput of an imported AstroCLIP model at the
//! published sizes (AstroDINO ViT-L/12 + cross-attention head, SpecFormer 6 × 768 + head,
//! ~370 M parameters) against the same model in PyTorch, on this machine in one run.
//!
//! `bench/astroclip_twin.py --paper` builds AstroCLIP's modules at those sizes with random
//! weights, saves them as `astroclip.ckpt` (the published layout), embeds a batch of raw
//! 152-px g,r,z cutouts and 7781-bin spectra and times it (median after a warm-up, the given
//! threads). Here the checkpoint goes through `astroclip models import`'s reader, the same raw
//! inputs through our tokenizers, and each backend embeds the batch: the time is the encoders'
//! forward pass on both sides (tokenizing is not timed on either), and the embeddings must
//! equal PyTorch's to 1e-4 relative, or the row says that they differ.

use std::path::Path;
use std::time::Instant;

use astroclip_builtin::spectrum_tokens::SpecformerTokens;
use astroclip_builtin::to_rgb::LegacySurveyRgb;
use astroclip_core::device;
use astroclip_core::import::{ImportOptions, ImportedModel, TwinIo, import};
use astroclip_plugin_api::ModalityEncoder;
use burn::module::Module;
use burn::tensor::Tensor;
use serde::Serialize;

use super::perf::run_reference;
use crate::in_range;

/// Largest relative difference the embeddings may show to count as the same model.
pub const TOLERANCE: f64 = 1e-4;

#[derive(clap::Args, Debug, Clone)]
pub struct ImportBenchArgs {
    /// Backends timed: flex, tch, tch-cuda:N.
    #[arg(long, default_value = "flex", value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Objects per embedded batch (at least 2: AstroCLIP's cross-attention head, which the
    /// twin reproduces, returns `attentions[1]` and fails on a batch of one).
    #[arg(long, default_value_t = 4, value_parser = in_range(2..=1024))]
    pub batch: usize,
    /// Timed batches per modality (median), after one untimed one.
    #[arg(long, default_value_t = 3, value_parser = in_range(1..=1000))]
    pub reps: usize,
    /// CPU threads of PyTorch (default: all cores, which burn-flex uses).
    #[arg(long, value_parser = in_range(1..=4096))]
    pub threads: Option<usize>,
    /// Python interpreter with torch (default: .venv-torch/bin/python when present).
    #[arg(long, env = "ASTROCLIP_BENCH_PYTHON")]
    pub python: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportRow {
    pub backend: String,
    pub params: usize,
    pub batch: usize,
    pub image_per_s: f64,
    pub spectrum_per_s: f64,
    /// Against PyTorch's embeddings of the same inputs (absent for PyTorch itself).
    pub image_rel_diff: Option<f64>,
    pub spectrum_rel_diff: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub threads: usize,
    pub torch: Option<String>,
    pub import_seconds: f64,
    pub checkpoint_bytes: u64,
    pub rows: Vec<ImportRow>,
}

/// Our embeddings as values, for [`TwinIo::rel_diff`].
fn values(t: Tensor<2>) -> anyhow::Result<Vec<f32>> {
    t.into_data().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// Median seconds of `f` over `reps` calls after one untimed call; `f` returns its output so
/// that the work cannot be skipped.
fn timed(reps: usize, mut f: impl FnMut() -> Tensor<2>) -> (Tensor<2>, f64) {
    let out = f();
    let _ = out.clone().into_data();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            let _ = f().into_data();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (out, times[times.len() / 2])
}

pub fn execute(args: &ImportBenchArgs) -> anyhow::Result<ImportReport> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let py = args.python.clone().unwrap_or_else(|| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-torch/bin/python");
        if venv.exists() { venv } else { "python3".into() }
    });
    let dir = tempfile::tempdir()?;
    tracing::info!("writing and timing the PyTorch twin at the published sizes");
    let a: Vec<String> = vec![
        dir.path().display().to_string(),
        "--paper".into(),
        "--batch".into(),
        args.batch.to_string(),
        "--reps".into(),
        args.reps.to_string(),
        "--threads".into(),
        threads.to_string(),
    ];
    let v = run_reference(&py, "astroclip_twin.py", &a).map_err(|e| anyhow::anyhow!("the PyTorch twin: {e}"))?;
    let params = v.get("params").and_then(|x| x.as_u64()).unwrap_or(0) as usize;
    let secs = |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
    let mut report = ImportReport {
        threads,
        torch: v.get("torch").and_then(|x| x.as_str()).map(str::to_string),
        ..ImportReport::default()
    };
    report.rows.push(ImportRow {
        backend: format!("PyTorch {}", report.torch.clone().unwrap_or_default()),
        params,
        batch: args.batch,
        image_per_s: args.batch as f64 / secs("image_seconds"),
        spectrum_per_s: args.batch as f64 / secs("spectrum_seconds"),
        image_rel_diff: None,
        spectrum_rel_diff: None,
    });
    let io = TwinIo::read(&dir.path().join("twin_io.pt"))?;
    report.checkpoint_bytes = std::fs::metadata(dir.path().join("astroclip.ckpt"))?.len();
    for backend in &args.devices {
        let dev = device::parse(backend)?;
        tracing::info!("importing and timing on {backend}");
        let t = Instant::now();
        let imported = import(&dir.path().join("astroclip.ckpt"), &ImportOptions::default(), &dev)?;
        report.import_seconds = t.elapsed().as_secs_f64();
        let ImportedModel::AstroClip(model) = imported.model else {
            anyhow::bail!("the twin's astroclip.ckpt did not import as a whole model");
        };
        let images = io.tokens(&LegacySurveyRgb::new(144, 1), &dev)?;
        let spectra = io.tokens(&SpecformerTokens::new(7781, 1), &dev)?;
        let (img, image_s) = timed(args.reps, || model.image.encode(images.clone()));
        let (spec, spectrum_s) = timed(args.reps, || model.spectrum.encode(spectra.clone()));
        report.rows.push(ImportRow {
            backend: backend.clone(),
            params: model.num_params(),
            batch: args.batch,
            image_per_s: args.batch as f64 / image_s,
            spectrum_per_s: args.batch as f64 / spectrum_s,
            image_rel_diff: Some(io.rel_diff("astroclip_image", &values(img)?)?),
            spectrum_rel_diff: Some(io.rel_diff("astroclip_spectrum", &values(spec)?)?),
        });
    }
    Ok(report)
}

impl ImportReport {
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Embedding throughput of an imported AstroCLIP model at the published sizes ({} CPU threads where on CPU)\n\n",
            self.threads
        );
        s += "| backend | params | batch | image embeds/s | spectrum embeds/s | × PyTorch (image) | × PyTorch (spectrum) | rel. diff image | rel. diff spectrum |\n";
        s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        let torch = self.rows.first();
        for r in &self.rows {
            let ratio = |ours: f64, theirs: Option<f64>| theirs.map_or("—".into(), |t| format!("{:.2}", ours / t));
            let diff = |d: Option<f64>| {
                d.map_or(
                    "—".into(),
                    |d| if d < TOLERANCE { format!("{d:.1e}") } else { format!("{d:.1e} (DIFFERENT)") },
                )
            };
            s += &format!(
                "| {} | {} | {} | {:.3} | {:.3} | {} | {} | {} | {} |\n",
                r.backend,
                r.params,
                r.batch,
                r.image_per_s,
                r.spectrum_per_s,
                ratio(r.image_per_s, torch.map(|t| t.image_per_s)),
                ratio(r.spectrum_per_s, torch.map(|t| t.spectrum_per_s)),
                diff(r.image_rel_diff),
                diff(r.spectrum_rel_diff)
            );
        }
        s += &format!(
            "\nimport of the {:.2} GB checkpoint: {:.1} s (last backend)\n",
            self.checkpoint_bytes as f64 / 1e9,
            self.import_seconds
        );
        s
    }
}
