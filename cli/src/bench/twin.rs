//! The PyTorch twin of `astroclip bench perf` is the same model, checked by values rather than
//! by parameter count: the Rust model's parameters (named by their module path), one batch of
//! inputs and the Rust embeddings of that batch go into one `.safetensors` file;
//! `bench/torch_quickstart.py --twin` loads every parameter into its own modules by name (each
//! must be used exactly once, with the right shape), embeds the same inputs in evaluation mode
//! and reports how far its embeddings are from the Rust ones.

use std::path::Path;

use astroclip_plugin_api::ModalityEncoder;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Distribution, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use serde::Serialize;

use astroclip_core::config::ExperimentConfig;
use astroclip_core::{components, device};

/// What the twin check found.
#[derive(Debug, Clone, Serialize)]
pub struct TwinRow {
    pub preset: String,
    /// Parameter tensors and values written from the Rust model.
    pub tensors: usize,
    pub values: usize,
    /// Largest |Δ| / max(|rust|) per modality's embedding batch.
    pub image_rel_diff: f64,
    pub spectrum_rel_diff: f64,
}

/// The relative difference a twin must stay under: float32 on both sides, the same operations
/// in a different order (measured 3.2e-7 image, 3.4e-7 spectrum for the quickstart). Tried by
/// breaking the twin: GELU's tanh approximation in the heads gives 3.6e-5 / 4.4e-5 (caught); a
/// LayerNorm epsilon of 1e-6 instead of 1e-5 in SpecFormer's final norm gives 5.0e-6 (not).
pub const TOLERANCE: f64 = 1e-5;

/// Every float parameter of a module with its dotted path (`blocks.0.conv1.weight`).
#[derive(Default)]
struct Named {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor for Named {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        self.out.push((self.path.join("."), t.dims().to_vec(), values(t)));
    }
}

/// A tensor's values as f32, row-major.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("a tensor converted to f32 reads back as f32")
}

fn named<M: Module>(prefix: &str, m: &M) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut v = Named::default();
    m.visit(&mut v);
    v.out.into_iter().map(|(p, s, d)| (format!("{prefix}.{p}"), s, d)).collect()
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes the twin file for `cfg`'s model (built on flex with seed 0, evaluation mode) and
/// returns its tensor and value counts.
fn write_twin_file(cfg: &ExperimentConfig, path: &Path) -> anyhow::Result<(usize, usize)> {
    let (image_tok, spectrum_tok) = components::tokenizers(cfg, astroclip_core::survey::DESI_NBINS)?;
    let shape = spectrum_tok.output_shape();
    let ad = device::parse("flex")?.autodiff();
    ad.seed(0);
    // Built as a run builds it, then in evaluation mode (no dropout), as `embed` uses it.
    let model = components::model(cfg, &image_tok.output_shape(), &shape, Path::new(""), &ad)?.model.valid();
    let dev = ad.inner();
    let (b, px) = (4, cfg.image.crop / cfg.image.downsample);
    let images = Tensor::<2>::random([b, 3 * px * px], Distribution::Normal(0.0, 1.0), &dev);
    let spectra = Tensor::<2>::random([b, shape[0] * shape[1]], Distribution::Normal(0.0, 1.0), &dev);
    let image_emb = model.image.encode(images.clone());
    let spectrum_emb = model.spectrum.encode(spectra.clone());
    let mut tensors = named("image", &model.image);
    tensors.extend(named("spectrum", &model.spectrum));
    let counts = (tensors.len(), tensors.iter().map(|t| t.2.len()).sum());
    let e = cfg.model.embed_dim;
    tensors.push(("input.image".into(), vec![b, 3, px, px], values(images)));
    tensors.push(("input.spectrum".into(), vec![b, shape[0], shape[1]], values(spectra)));
    tensors.push(("output.image".into(), vec![b, e], values(image_emb)));
    tensors.push(("output.spectrum".into(), vec![b, e], values(spectrum_emb)));
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors.into_iter().map(|(n, s, d)| (n, s, bytes(&d))).collect();
    let views = raw
        .iter()
        .map(|(n, s, d)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), d)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    std::fs::write(path, safetensors::tensor::serialize(views, None)?)?;
    Ok(counts)
}

/// Runs the twin check of one preset with the PyTorch interpreter `py`.
pub fn check(cfg: &ExperimentConfig, py: &Path, spec: &serde_json::Value) -> Result<TwinRow, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("twin.safetensors");
    let (tensors, values) = write_twin_file(cfg, &file).map_err(|e| format!("writing the twin file: {e:#}"))?;
    let v = super::perf::run_reference(
        py,
        "torch_quickstart.py",
        &["--twin".into(), spec.to_string(), file.display().to_string()],
    )?;
    let f = |k: &str| v.get(k).and_then(|x| x.as_f64()).ok_or_else(|| format!("torch_quickstart.py --twin: no {k}"));
    if f("tensors")? as usize != tensors || f("values")? as usize != values {
        return Err(format!(
            "the twin loaded {} tensors / {} values of {tensors} / {values}",
            f("tensors")?,
            f("values")?
        ));
    }
    Ok(TwinRow {
        preset: cfg.experiment.preset.clone(),
        tensors,
        values,
        image_rel_diff: f("image_rel_diff")?,
        spectrum_rel_diff: f("spectrum_rel_diff")?,
    })
}
