//! SpecFormer masked-modelling pre-training, AstroCLIP's stage 1 (`objective.kind =
//! "specformer-masked"`): every spectrum's token sequence gets `mask.num_chunks` chunks of
//! `mask.chunk_width` tokens zeroed ([`super::masking::mask_sequence`]), the SpecFormer
//! backbone reads the masked sequence, a linear layer maps each output token back to token
//! values, and the loss is the mean squared error over the masked entries
//! ([`super::masking::masked_mse`]). Same budget and optimiser as every other objective.
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
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::masking::{MaskConfig, mask_sequence, masked_mse};
use crate::dataset::TrainingData;
use crate::eval::Embeddings;
use crate::train::{StepLog, TrainError, TrainSetup, learning_rate, load_checkpoint, optimizer, save_checkpoint};

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

pub struct MaskedReport {
    pub model: MaskedSpecFormer,
    pub samples_per_sec: f64,
    pub steps_run: usize,
    pub stopped_at: Option<usize>,
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

/// Pre-trains `model` from `start_step` to `setup.cfg.steps`.
pub fn train(
    setup: TrainSetup<'_>,
    mut model: MaskedSpecFormer,
    mask: MaskConfig,
    start_step: usize,
) -> Result<MaskedReport, TrainError> {
    let cfg = setup.cfg;
    let mut log = StepLog::new(&setup, "specformer-masked", "masked mse", start_step)?;
    let mut optim = optimizer(cfg);
    if start_step > 0 {
        (model, optim) = load_checkpoint(setup.checkpoints, model, optim, start_step)?;
    }
    let (len, dim) = model.backbone.input_shape();
    let mut batches = log.batches();
    for step in start_step..log.end() {
        let b = log.next_batch(&mut batches, step, 1)?;
        let n = b.len();
        // The masks are a function of (seed, step): a resumed run masks identically.
        let mut rng =
            ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(step as u64) ^ 0x6d61_736b);
        let masked = mask_batch(&b.spectrum, n, len, dim, mask, &mut rng)
            .map_err(|detail| TrainError::Checkpoint { path: "objective.mask".into(), detail })?;
        let target = Tensor::<3>::from_data(TensorData::new(b.spectrum.clone(), [n, len, dim]), setup.device);
        let masked = Tensor::<3>::from_data(TensorData::new(masked, [n, len, dim]), setup.device);
        let loss = masked_mse(model.forward(masked.clone()), target, masked);
        let value: f32 = loss.clone().into_scalar();
        log.check(step, value)?;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = learning_rate(cfg, step);
        model = optim.step(lr, model, grads);
        let due = log.record(step, n, value, lr, |_| {})?;
        if due.checkpoint {
            save_checkpoint(&setup, &model, &optim, step + 1, |_| Ok(vec![]))?;
        }
        if due.stop {
            break;
        }
    }
    drop(batches);
    let (steps_run, samples_per_sec, stopped_at) = log.finish();
    Ok(MaskedReport { model, samples_per_sec, steps_run, stopped_at })
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
