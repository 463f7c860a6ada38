//! The MoCo v2 training loop: the image-only self-supervised baseline (Stein et al. 2021) on
//! the same image encoder, data, step count and batch size as an AstroCLIP run, so that the
//! two image embeddings can be compared at equal budget by the same k-NN probe.
//!
//! Each step: two augmented views of every image in the batch ([`super::augment`]), query
//! embeddings from the trained encoder, key embeddings from its momentum copy (no gradient),
//! the InfoNCE loss against the key and the queue of earlier keys ([`super::moco`]), an AdamW
//! step with the run's schedule, the momentum update, and the keys enqueued. Checkpoints hold
//! both encoders, the optimizer state and the queue, so a run resumes exactly.

use astroclip_builtin::resnet::ResNetEncoder;
use astroclip_plugin_api::ModalityEncoder;
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::augment::augment;
use super::moco::{Queue, detached_copy, loss, momentum_update};
use crate::config::ObjectiveConfig;
use crate::train::{StepLog, TrainError, TrainSetup, learning_rate, load_checkpoint, optimizer, save_checkpoint};

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
    let mut log = StepLog::new(&setup, "moco", "loss", start_step)?;
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
    let mut batches = log.batches();
    let mut last_loss = f32::NAN;
    for step in start_step..log.end() {
        let b = log.next_batch(&mut batches, step, 2)?;
        let n = b.len();
        // Two views per image, reproducible from (seed, step).
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(step as u64));
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
        log.check(step, value)?;
        let grads = GradientsParams::from_grads(l.backward(), &model);
        let lr = learning_rate(cfg, step);
        model = optim.step(lr, model, grads);
        model.key = momentum_update(model.key, &model.query, ocfg.momentum);
        queue.enqueue(&k.into_data().try_to_vec::<f32>().unwrap_or_default());
        last_loss = value;
        let due = log.record(step, n, value, lr, |_| {})?;
        if due.checkpoint {
            save_checkpoint(&setup, &model, &optim, step + 1, |dir| {
                save_queue(&dir.join("queue.bin"), &queue)?;
                Ok(vec![("queue.bin", "moco-queue")])
            })?;
        }
        if due.stop {
            break;
        }
    }
    drop(batches);
    let (steps_run, samples_per_sec, stopped_at) = log.finish();
    Ok(MocoReport { encoder: model.query, final_loss: last_loss, samples_per_sec, steps_run, stopped_at })
}
