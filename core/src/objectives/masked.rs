//! SpecFormer masked-modelling pre-training, AstroCLIP's stage 1 (`objective.kind =
//! "specformer-masked"`): every spectrum's token sequence gets `mask.num_chunks` chunks of
//! `mask.chunk_width` tokens zeroed ([`crate::ssl::masking::mask_sequence`]), the SpecFormer
//! backbone reads the masked sequence, a linear layer maps each output token back to token
//! values, and the loss is the mean squared error over the masked entries
//! ([`crate::ssl::masking::masked_mse`]). Same budget and optimiser as every other objective.
//!
//! Reference: AstroCLIP `astroclip/models/specformer.py` (`SpecFormer.forward`: the
//! reconstruction head `nn.Linear(embed_dim, input_dim)` on the final-norm tokens;
//! `training_step`: `mask_sequence` then `_masked_mse`), Parker et al. 2024 §3.2.
//!
//! The pre-trained backbone is evaluated by its spectrum embedding, the mean over tokens of
//! the backbone output (the cross-attention head is not trained in this stage), and serves as
//! `objective.init_spectrum` of a two-stage AstroCLIP run.

use astroclip_builtin::specformer::SpecFormer;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::loader::TokenBatch;
use crate::dataset::TrainingData;
use crate::eval::Embeddings;
use crate::ssl::masking::{MaskConfig, mask_sequence, masked_mse};
use crate::train::{Objective, TrainError};

/// The SpecFormer backbone with AstroCLIP's reconstruction head.
#[derive(Module, Debug)]
pub struct MaskedSpecFormer {
    pub backbone: SpecFormer,
    pub recon: Linear,
}

impl MaskedSpecFormer {
    pub fn new(backbone: SpecFormer, device: &Device) -> Self {
        let recon = LinearConfig::new(backbone.d_model(), backbone.input_shape().1).init(device);
        Self { backbone, recon }
    }

    /// Reconstructed tokens `(batch, n_tokens, token_dim)` of masked tokens of that shape.
    pub fn forward(&self, masked: Tensor<3>) -> Tensor<3> {
        self.recon.forward(self.backbone.tokens(masked))
    }
}

/// Masks every sequence of a `(n, len·dim)` batch, reproducibly from `rng`.
pub fn mask_batch(
    spectra: &[f32],
    n: usize,
    len: usize,
    dim: usize,
    cfg: MaskConfig,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<f32>, String> {
    let mut masked = spectra.to_vec();
    for seq in masked.chunks_mut(len * dim).take(n) {
        mask_sequence(seq, len, dim, cfg, rng)?;
    }
    Ok(masked)
}

/// Masked modelling as an [`Objective`].
pub struct Masked {
    pub mask: MaskConfig,
    pub seed: u64,
}

impl crate::train::Embeds for Masked {
    /// The backbone's mean-pooled tokens as spectrum embeddings (no image embedding).
    fn embed(
        &self,
        model: &MaskedSpecFormer,
        data: &TrainingData,
        batch: usize,
        device: &Device,
    ) -> Result<(Option<Embeddings>, Option<Embeddings>), crate::data::DataError> {
        Ok((None, Some(embed_spectra(&model.backbone, data, batch, device)?)))
    }
}

impl Objective for Masked {
    type Model = MaskedSpecFormer;

    fn label(&self) -> String {
        "specformer-masked".into()
    }

    fn loss_name(&self) -> &'static str {
        "masked mse"
    }

    fn min_batch(&self) -> usize {
        1
    }

    fn loss(
        &mut self,
        model: &MaskedSpecFormer,
        b: TokenBatch,
        step: usize,
        device: &Device,
    ) -> Result<Tensor<1>, TrainError> {
        let n = b.len();
        let (len, dim) = model.backbone.input_shape();
        // The masks are a function of (seed, step): a resumed run masks identically.
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed.wrapping_mul(1_000_003).wrapping_add(step as u64) ^ 0x6d61_736b);
        let masked = mask_batch(&b.spectrum, n, len, dim, self.mask, &mut rng)
            .map_err(|detail| TrainError::Checkpoint { path: "objective.mask".into(), detail })?;
        let target = Tensor::<3>::from_data(TensorData::new(b.spectrum, [n, len, dim]), device);
        let masked = Tensor::<3>::from_data(TensorData::new(masked, [n, len, dim]), device);
        Ok(masked_mse(model.forward(masked.clone()), target, masked))
    }
}

/// Spectrum embeddings of every object: the backbone's tokens averaged over the sequence
/// (evaluation mode, no autodiff).
pub fn embed_spectra(
    backbone: &SpecFormer,
    data: &TrainingData,
    batch: usize,
    device: &Device,
) -> Result<Embeddings, crate::data::DataError> {
    let valid = backbone.valid();
    let (len, dim) = valid.input_shape();
    crate::eval::embed_with(data, batch, &device.clone().inner(), valid.d_model(), |_, specs| {
        let [b, _] = specs.dims();
        let tokens = valid.tokens(specs.reshape([b, len, dim]));
        tokens.mean_dim(1).reshape([b as i32, -1]).into_data().try_to_vec::<f32>().unwrap_or_default()
    })
}
