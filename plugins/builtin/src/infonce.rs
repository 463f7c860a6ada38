//! Symmetric InfoNCE (CLIP) loss `infonce`.
//!
//! Reference: Radford et al. 2021 (CLIP); AstroCLIP `astroclip/models/astroclip.py::CLIPLoss`
//! (Parker et al. 2024 eq. 1):
//!
//! ```text
//! a = a / max(|a|, eps);  b = b / max(|b|, eps)          (eps = 1e-3, F.normalize)
//! L = s · a bᵀ
//! loss = ( CE(L, arange) + CE(Lᵀ, arange) ) / 2
//! ```
//! `s` is the logit scale: AstroCLIP fixes it to 15.5. When learnable it is parameterised as
//! `s = exp(θ)` (as in CLIP) with `θ` initialised to `ln(logit_scale)` and clamped at 100.

use astroclip_plugin_api::{ComponentInfo, ComponentKind, ContrastiveLoss};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData, activation::log_softmax};

#[derive(Config, Debug)]
pub struct InfoNceConfig {
    #[config(default = 15.5)]
    pub logit_scale: f64,
    #[config(default = false)]
    pub learnable: bool,
    #[config(default = 1e-3)]
    pub eps: f64,
}

#[derive(Module, Debug)]
pub struct InfoNce {
    log_scale: Param<Tensor<1>>,
    eps: f64,
}

impl InfoNceConfig {
    pub fn init(&self, device: &Device) -> InfoNce {
        let t = Tensor::from_data(TensorData::new(vec![self.logit_scale.ln() as f32], [1]), device);
        let param = Param::from_tensor(t);
        InfoNce { log_scale: if self.learnable { param } else { param.set_require_grad(false) }, eps: self.eps }
    }
}

fn l2_normalize(x: Tensor<2>, eps: f64) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(eps);
    x / norm
}

impl InfoNce {
    /// The `(batch, batch)` logits `s · â b̂ᵀ`.
    pub fn logits(&self, a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
        let scale = self.log_scale.val().clamp_max(100f64.ln()).exp();
        let a = l2_normalize(a, self.eps);
        let b = l2_normalize(b, self.eps);
        a.matmul(b.transpose()) * scale.unsqueeze_dim(0)
    }
}

/// Mean over rows of `-log_softmax(logits)[i, i]`, i.e. cross-entropy with labels `arange`.
fn diagonal_cross_entropy(logits: Tensor<2>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let mut eye = vec![0f32; n * n];
    for i in 0..n {
        eye[i * n + i] = 1.0;
    }
    let eye = Tensor::<2>::from_data(TensorData::new(eye, [n, n]), &logits.device());
    -(log_softmax(logits, 1) * eye).sum() / n as f64
}

impl ContrastiveLoss for InfoNce {
    fn info(&self) -> ComponentInfo {
        crate::info("infonce", ComponentKind::Loss, None)
    }

    fn loss(&self, a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
        let logits = self.logits(a, b);
        (diagonal_cross_entropy(logits.clone()) + diagonal_cross_entropy(logits.transpose())) / 2.0
    }

    fn logit_scale(&self) -> f32 {
        self.log_scale.val().exp().into_data().try_to_vec::<f32>().map(|v| v[0]).unwrap_or(f32::NAN)
    }
}
