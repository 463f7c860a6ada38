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

use std::time::Instant;

use astroclip_builtin::specformer::SpecFormer;
use astroclip_registry::Metric;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::masking::{MaskConfig, mask_sequence, masked_mse};
use crate::dataset::TrainingData;
use crate::eval::Embeddings;
use crate::train::{
    TrainError, TrainSetup, batch_indices, learning_rate, load_checkpoint, optimizer, progress_bar, save_checkpoint,
};

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
    if cfg.batch_size > setup.train_idx.len() {
        return Err(TrainError::BatchTooLarge { batch: cfg.batch_size, n: setup.train_idx.len() });
    }
    let mut optim = optimizer(cfg);
    if start_step > 0 {
        (model, optim) = load_checkpoint(setup.checkpoints, model, optim, start_step)?;
    }
    let (len, dim) = model.backbone.input_shape();
    let bar = progress_bar("specformer-masked", cfg, start_step);
    let end = setup.stop_after.map_or(cfg.steps, |s| s.clamp(start_step, cfg.steps));
    let train_idx = std::sync::Arc::new(setup.train_idx.to_vec());
    let (batch, seed) = (cfg.batch_size, cfg.seed);
    let plan: crate::data::loader::Plan =
        std::sync::Arc::new(move |k| batch_indices(&train_idx, batch, seed, start_step + k));
    let mut batches = setup.data.batches(plan, end - start_step);
    let started = Instant::now();
    let mut window = (Instant::now(), 0usize);
    let mut buffer: Vec<Metric> = Vec::new();
    let mut last_done = start_step;
    for step in start_step..end {
        let b = batches.next().unwrap_or_else(|| {
            Err(crate::data::DataError::Content { path: "loader".into(), detail: format!("no batch for step {step}") })
        })?;
        let n = b.indices.len();
        if n < 1 {
            return Err(TrainError::EmptyBatch { step, n });
        }
        // The masks are a function of (seed, step): a resumed run masks identically.
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(step as u64) ^ 0x6d61_736b);
        let masked = mask_batch(&b.spectrum, n, len, dim, mask, &mut rng)
            .map_err(|detail| TrainError::Checkpoint { path: "objective.mask".into(), detail })?;
        let target = Tensor::<3>::from_data(TensorData::new(b.spectrum.clone(), [n, len, dim]), setup.device);
        let masked = Tensor::<3>::from_data(TensorData::new(masked, [n, len, dim]), setup.device);
        let loss = masked_mse(model.forward(masked.clone()), target, masked);
        let value: f32 = loss.clone().into_scalar();
        if !value.is_finite() {
            setup.registry.log_metrics(setup.run_id, &buffer)?;
            return Err(TrainError::NonFiniteLoss { step, value });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = learning_rate(cfg, step);
        model = optim.step(lr, model, grads);
        window.1 += n;
        buffer.push(Metric::new("train.loss", step as i64, value as f64));
        buffer.push(Metric::new("train.lr", step as i64, lr));
        let done = step + 1;
        if done % cfg.log_every == 0 || done == cfg.steps {
            let rate = window.1 as f64 / window.0.elapsed().as_secs_f64();
            buffer.push(Metric::new("train.samples_per_sec", step as i64, rate));
            setup.registry.log_metrics(setup.run_id, &buffer)?;
            buffer.clear();
            bar.set_message(format!("masked mse {value:.4}  {rate:.1} samples/s"));
            window = (Instant::now(), 0);
        }
        bar.set_position(done as u64);
        last_done = done;
        let interrupted = crate::interrupt::requested();
        if done.is_multiple_of(cfg.checkpoint_every) || done == end || interrupted {
            if !buffer.is_empty() {
                setup.registry.log_metrics(setup.run_id, &buffer)?;
                buffer.clear();
            }
            save_checkpoint(&setup, &model, &optim, done, |_| Ok(vec![]))?;
        }
        if interrupted {
            break;
        }
    }
    bar.finish_and_clear();
    drop(batches);
    let steps_run = last_done - start_step;
    let secs = started.elapsed().as_secs_f64();
    Ok(MaskedReport {
        model,
        samples_per_sec: (steps_run * cfg.batch_size) as f64 / secs.max(1e-9),
        steps_run,
        stopped_at: (last_done < cfg.steps).then_some(last_done),
    })
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
