//! Supervised baselines of the benchmark (AstroCLIP's README table, "supervised" rows; Parker
//! et al. 2024 §5): the same encoders trained end to end to regress the truth properties, so
//! that the self-supervised embeddings can be compared with what labels alone achieve.
//!
//! - `objective.kind = "supervised-image"`: the image ResNet (with its cross-attention head)
//!   and a linear layer to every property of `eval.properties` (AstroCLIP: a ResNet18);
//! - `"supervised-spectrum"`: the SpecFormer the same way (AstroCLIP: a conv + attention net);
//! - `"supervised-photometry"`: an MLP on the object's broad-band photometry (every band the
//!   source has; features `asinh(flux / 0.1 nMgy)`, a softened magnitude), AstroCLIP's
//!   photometry baseline. It uses the few-shot probe's MLP (hidden [64, 64], dropout 0.1,
//!   Adam 1e-3, 100 epochs) and not the run's step budget: photometry has 5 numbers per object.
//!
//! The networks train with the run's budget and optimiser (AdamW, warm-up + cosine, gradient
//! clipping, `train.steps` × `train.batch_size`) on the mean squared error of the properties
//! standardised with the training split's mean and standard deviation; R² on the held-out split
//! is recorded as `eval.supervised_r2.<property>` (context `split=test,source=<modality>`).

use std::path::Path;

use astroclip_plugin_api::{ModalityEncoder, ProbeInput};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::data::loader::TokenBatch;
use crate::dataset::TrainingData;
use crate::encoders::Encoder;
use crate::train::{Objective, TrainError};

/// Which input a supervised baseline regresses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    Image,
    Spectrum,
}

impl Modality {
    pub fn name(self) -> &'static str {
        match self {
            Modality::Image => "image",
            Modality::Spectrum => "spectrum",
        }
    }
}

/// An encoder with a linear regression head on its embedding.
#[derive(Module, Debug)]
pub struct Regressor {
    pub encoder: Encoder,
    pub head: Linear,
}

impl Regressor {
    pub fn new(encoder: Encoder, n_outputs: usize, device: &burn::tensor::Device) -> Self {
        let head = LinearConfig::new(encoder.embed_dim(), n_outputs).init(device);
        Self { encoder, head }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.head.forward(self.encoder.encode(x))
    }
}

/// Per-property standardisation with the training split's statistics.
#[derive(Debug, Clone, Serialize)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardizer {
    pub fn fit(targets: &[&[f32]], train_idx: &[usize]) -> Self {
        let n = train_idx.len() as f64;
        let mean: Vec<f64> = targets.iter().map(|t| train_idx.iter().map(|&i| t[i] as f64).sum::<f64>() / n).collect();
        let std = targets
            .iter()
            .zip(&mean)
            .map(|(t, m)| {
                let v = train_idx.iter().map(|&i| (t[i] as f64 - m).powi(2)).sum::<f64>() / n;
                if v > 0.0 { v.sqrt() } else { 1.0 }
            })
            .collect();
        Self { mean, std }
    }

    /// Row-major `(idx.len(), n_properties)` standardised targets.
    pub fn rows(&self, targets: &[&[f32]], idx: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(idx.len() * targets.len());
        for &i in idx {
            for (p, t) in targets.iter().enumerate() {
                out.push(((t[i] as f64 - self.mean[p]) / self.std[p]) as f32);
            }
        }
        out
    }
}

/// Regression of the standardised properties as an [`Objective`]: mean squared error.
pub struct Supervised<'a> {
    pub modality: Modality,
    pub targets: &'a [&'a [f32]],
    pub scaler: &'a Standardizer,
    /// Values per object of the image and spectrum tokens.
    pub lens: (usize, usize),
}

impl Objective for Supervised<'_> {
    type Model = Regressor;

    fn label(&self) -> String {
        format!("supervised {}", self.modality.name())
    }

    fn loss_name(&self) -> &'static str {
        "mse"
    }

    fn loss(
        &mut self,
        model: &Regressor,
        b: TokenBatch,
        _step: usize,
        device: &Device,
    ) -> Result<Tensor<1>, TrainError> {
        let n = b.len();
        let n_props = self.targets.len();
        let y =
            Tensor::<2>::from_data(TensorData::new(self.scaler.rows(self.targets, &b.indices), [n, n_props]), device);
        let (images, spectra) = b.tensors(self.lens.0, self.lens.1, device);
        let x = match self.modality {
            Modality::Image => images,
            Modality::Spectrum => spectra,
        };
        Ok((model.forward(x) - y).powi_scalar(2).mean())
    }
}

/// Predictions (in the targets' units) for the objects `idx`, evaluation mode, no autodiff,
/// per property; and the encoder's features (the linear head's input) of the same objects,
/// row-major `(idx.len(), embed_dim)`, for the embedding diagnostics.
pub fn predict(
    model: &Regressor,
    modality: Modality,
    data: &TrainingData,
    idx: &[usize],
    scaler: &Standardizer,
    batch: usize,
    device: &burn::tensor::Device,
) -> Result<(Vec<Vec<f32>>, Vec<f32>), crate::data::DataError> {
    let valid = model.valid();
    let mut features = Vec::with_capacity(idx.len() * valid.encoder.embed_dim());
    let inner = device.clone().inner();
    let n_props = scaler.mean.len();
    let mut out = vec![vec![0f32; idx.len()]; n_props];
    let idx_all = std::sync::Arc::new(idx.to_vec());
    let batch = batch.max(1);
    let n = idx.len();
    let plan: crate::data::loader::Plan = {
        let idx_all = idx_all.clone();
        std::sync::Arc::new(move |k| idx_all[k * batch..((k + 1) * batch).min(n)].to_vec())
    };
    let (il, sl) = (data.tokenizers.image_len(), data.tokenizers.spectrum_len());
    let mut row = 0;
    for b in data.batches(plan, n.div_ceil(batch)) {
        let b = b?;
        let m = b.indices.len();
        let (images, spectra) = b.tensors(il, sl, &inner);
        let x = match modality {
            Modality::Image => images,
            Modality::Spectrum => spectra,
        };
        let f = valid.encoder.encode(x);
        let pred = valid.head.forward(f.clone()).into_data().try_to_vec::<f32>().unwrap_or_default();
        features.extend(f.into_data().try_to_vec::<f32>().unwrap_or_default());
        for r in 0..m {
            for p in 0..n_props {
                out[p][row + r] = (pred[r * n_props + p] as f64 * scaler.std[p] + scaler.mean[p]) as f32;
            }
        }
        row += m;
    }
    Ok((out, features))
}

/// Softening of the photometry features, in the survey's flux unit (nanomaggies): fluxes far
/// above it map to `ln(2 f / b)` (a magnitude up to scale), noise around zero stays linear.
pub const PHOTOMETRY_SOFTENING: f32 = 0.1;

/// Photometry features of every object: `asinh(flux / b)` per band, row-major.
pub fn photometry_features(p: &crate::survey::Photometry, n: usize) -> Vec<f32> {
    (0..n).flat_map(|i| p.row(i).0.iter().map(|f| (f / PHOTOMETRY_SOFTENING).asinh()).collect::<Vec<_>>()).collect()
}

/// The photometry MLP: one few-shot-sized MLP per property on the photometry features of the
/// training split; R² on the held-out split.
pub fn photometry_r2(
    features: &[f32],
    n_bands: usize,
    train_idx: &[usize],
    test_idx: &[usize],
    targets: &[(String, &[f32])],
) -> Result<Vec<(String, f64)>, astroclip_plugin_api::ComponentError> {
    let select = |idx: &[usize]| -> Vec<f32> {
        idx.iter().flat_map(|&i| features[i * n_bands..(i + 1) * n_bands].iter().copied()).collect()
    };
    let (xtr, xte) = (select(train_idx), select(test_idx));
    let mut out = Vec::new();
    for (name, values) in targets {
        let ytr: Vec<f32> = train_idx.iter().map(|&i| values[i]).collect();
        let yte: Vec<f32> = test_idx.iter().map(|&i| values[i]).collect();
        let mut probe = crate::eval::mlp_probe();
        probe.fit(ProbeInput::new(&xtr, train_idx.len(), n_bands)?, &ytr)?;
        let pred = probe.predict(ProbeInput::new(&xte, test_idx.len(), n_bands)?)?;
        out.push((name.clone(), astroclip_builtin::knn::r2_score(&yte, &pred)));
    }
    Ok(out)
}

/// Writes `eval.json` for a supervised run: the R² per property of its source.
pub fn write_report(
    path: &Path,
    source: &str,
    r2: &[(String, f64)],
    n_train: usize,
    n_test: usize,
) -> std::io::Result<()> {
    let v = serde_json::json!({ "protocol": "supervised", "source": source, "n_train": n_train, "n_test": n_test, "r2": r2 });
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardizer_uses_training_rows_only() {
        let a = [1f32, 3.0, 100.0];
        let b = [5f32, 5.0, -7.0];
        let s = Standardizer::fit(&[&a, &b], &[0, 1]);
        assert_eq!(s.mean, vec![2.0, 5.0]);
        // Population std 1 for `a`; a constant column keeps scale 1.
        assert_eq!(s.std, vec![1.0, 1.0]);
        assert_eq!(s.rows(&[&a, &b], &[2, 0]), vec![98.0, -12.0, -1.0, 0.0]);
    }

    #[test]
    fn photometry_features_are_softened_magnitudes() {
        let p = crate::survey::Photometry {
            bands: vec!["g".into(), "r".into()],
            flux: vec![0.0, 10.0, -0.05, 1e4],
            ivar: vec![1.0; 4],
        };
        let f = photometry_features(&p, 2);
        assert_eq!(f[0], 0.0);
        assert!((f[1] - (100f32).asinh()).abs() < 1e-6);
        assert!(f[2] < 0.0, "negative noise stays finite and negative");
        // For bright objects the feature is ln(2f/b): a magnitude difference of 2.5·log10(1e3)
        // between 10 and 1e4 nMgy becomes ln(1e3) here.
        assert!(((f[3] - f[1]) - (1e3f32).ln()).abs() < 1e-3);
    }
}
