//! The MoCo v2 training loop: the image-only self-supervised baseline (Stein et al. 2021) on
//! the same image encoder, data, step count and batch size as an AstroCLIP run, so that the
//! two image embeddings can be compared at equal budget by the same k-NN probe.
//!
//! Each step: two augmented views of every image in the batch ([`super::augment`]), query
//! embeddings from the trained encoder, key embeddings from its momentum copy (no gradient),
//! the InfoNCE loss against the key and the queue of earlier keys ([`super::moco`]), an AdamW
//! step with the run's schedule, the momentum update, and the keys enqueued. Checkpoints hold
//! both encoders, the optimizer state and the queue, so a run resumes exactly.

use std::time::Instant;

use astroclip_builtin::resnet::ResNetEncoder;
use astroclip_plugin_api::ModalityEncoder;
use astroclip_registry::Metric;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::augment::augment;
use super::moco::{Queue, detached_copy, loss, momentum_update};
use crate::config::ObjectiveConfig;
use crate::train::{
    TrainError, TrainSetup, batch_indices, learning_rate, load_checkpoint, optimizer, progress_bar, save_checkpoint,
};

/// The trained encoder and its momentum copy (no gradient), checkpointed together.
#[derive(Module, Debug)]
pub struct MocoPair {
    pub query: ResNetEncoder,
    pub key: ResNetEncoder,
}

pub struct MocoReport {
    pub encoder: ResNetEncoder,
    pub final_loss: f32,
    pub samples_per_sec: f64,
    pub steps_run: usize,
    pub stopped_at: Option<usize>,
}

fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let n = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / n
}

fn save_queue(path: &std::path::Path, q: &Queue) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(16 + q.len() * q.row(0).len() * 4);
    bytes.extend_from_slice(&(q.ptr() as u64).to_le_bytes());
    bytes.extend_from_slice(&(q.row(0).len() as u64).to_le_bytes());
    for i in 0..q.len() {
        for v in q.row(i) {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, bytes)
}

fn load_queue(path: &std::path::Path, k: usize, dim: usize) -> Result<Queue, String> {
    let b = std::fs::read(path).map_err(|e| e.to_string())?;
    if b.len() != 16 + k * dim * 4 {
        return Err(format!("{} bytes, expected {} for a queue of {k} × {dim}", b.len(), 16 + k * dim * 4));
    }
    let ptr = u64::from_le_bytes(b[0..8].try_into().unwrap_or_default()) as usize;
    let values: Vec<f32> = b[16..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(Queue::from_parts(values, k, dim, ptr))
}

/// Trains `encoder` with MoCo v2 from `start_step` to `setup.cfg.steps`.
pub fn train(
    setup: TrainSetup<'_>,
    encoder: ResNetEncoder,
    ocfg: &ObjectiveConfig,
    start_step: usize,
) -> Result<MocoReport, TrainError> {
    let cfg = setup.cfg;
    if cfg.batch_size > setup.train_idx.len() {
        return Err(TrainError::BatchTooLarge { batch: cfg.batch_size, n: setup.train_idx.len() });
    }
    let dim = encoder.embed_dim();
    let key = detached_copy(&encoder);
    let mut model = MocoPair { query: encoder, key };
    let mut queue = Queue::new(ocfg.queue_size, dim, cfg.seed ^ 0x6d6f_636f);
    let mut optim = optimizer(cfg);
    if start_step > 0 {
        (model, optim) = load_checkpoint(setup.checkpoints, model, optim, start_step)?;
        model.key = detached_copy(&model.key);
        let dir = setup.checkpoints.step_dir(start_step);
        queue = load_queue(&dir.join("queue.bin"), ocfg.queue_size, dim)
            .map_err(|detail| TrainError::Checkpoint { path: dir.display().to_string(), detail })?;
    }
    let il = setup.data.tokenizers.image_len();
    // The image tokenizer's output is (3, side, side).
    let side = ((il / 3) as f64).sqrt().round() as usize;
    if 3 * side * side != il {
        return Err(TrainError::Checkpoint {
            path: "image tokenizer".into(),
            detail: format!("MoCo augmentations need (3, S, S) images; the tokenizer gives {il} values"),
        });
    }
    let bar = progress_bar("moco", cfg, start_step);
    let end = setup.stop_after.map_or(cfg.steps, |s| s.clamp(start_step, cfg.steps));
    let train_idx = std::sync::Arc::new(setup.train_idx.to_vec());
    let (batch, seed) = (cfg.batch_size, cfg.seed);
    let plan: crate::data::loader::Plan =
        std::sync::Arc::new(move |k| batch_indices(&train_idx, batch, seed, start_step + k));
    let mut batches = setup.data.batches(plan, end - start_step);
    let started = Instant::now();
    let mut window = (Instant::now(), 0usize);
    let mut buffer: Vec<Metric> = Vec::new();
    let (mut last_loss, mut last_done) = (f32::NAN, start_step);
    for step in start_step..end {
        let b = batches.next().unwrap_or_else(|| {
            Err(crate::data::DataError::Content { path: "loader".into(), detail: format!("no batch for step {step}") })
        })?;
        let n = b.indices.len();
        if n < 2 {
            return Err(TrainError::EmptyBatch { step, n });
        }
        // Two views per image, reproducible from (seed, step).
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(step as u64));
        let (mut vq, mut vk) = (Vec::with_capacity(n * il), Vec::with_capacity(n * il));
        for img in b.image.chunks(il) {
            vq.extend(augment(img, 3, side, &ocfg.augment, &mut rng));
            vk.extend(augment(img, 3, side, &ocfg.augment, &mut rng));
        }
        let im_q = Tensor::<2>::from_data(TensorData::new(vq, [n, il]), setup.device);
        let im_k = Tensor::<2>::from_data(TensorData::new(vk, [n, il]), setup.device);
        let q = l2_normalize(model.query.encode(im_q));
        let k = l2_normalize(model.key.encode(im_k)).detach();
        let l = loss(q, k.clone(), queue.tensor(setup.device), ocfg.temperature);
        let value: f32 = l.clone().into_scalar();
        if !value.is_finite() {
            setup.registry.log_metrics(setup.run_id, &buffer)?;
            return Err(TrainError::NonFiniteLoss { step, value });
        }
        let grads = GradientsParams::from_grads(l.backward(), &model);
        let lr = learning_rate(cfg, step);
        model = optim.step(lr, model, grads);
        model.key = momentum_update(model.key, &model.query, ocfg.momentum);
        queue.enqueue(&k.into_data().try_to_vec::<f32>().unwrap_or_default());
        last_loss = value;
        window.1 += n;
        buffer.push(Metric::new("train.loss", step as i64, value as f64));
        buffer.push(Metric::new("train.lr", step as i64, lr));
        let done = step + 1;
        if done % cfg.log_every == 0 || done == cfg.steps {
            let rate = window.1 as f64 / window.0.elapsed().as_secs_f64();
            buffer.push(Metric::new("train.samples_per_sec", step as i64, rate));
            setup.registry.log_metrics(setup.run_id, &buffer)?;
            buffer.clear();
            bar.set_message(format!("loss {value:.4}  {rate:.1} samples/s"));
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
            save_checkpoint(&setup, &model, &optim, done, |dir| {
                save_queue(&dir.join("queue.bin"), &queue)?;
                Ok(vec![("queue.bin", "moco-queue")])
            })?;
        }
        if interrupted {
            break;
        }
    }
    bar.finish_and_clear();
    drop(batches);
    let steps_run = last_done - start_step;
    let secs = started.elapsed().as_secs_f64();
    Ok(MocoReport {
        encoder: model.query,
        final_loss: last_loss,
        samples_per_sec: (steps_run * cfg.batch_size) as f64 / secs.max(1e-9),
        steps_run,
        stopped_at: (last_done < cfg.steps).then_some(last_done),
    })
}
