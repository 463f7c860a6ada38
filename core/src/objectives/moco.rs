//! The MoCo v2 training loop: the image-only self-supervised baseline (Stein et al. 2021) on
//! the same image encoder, data, step count and batch size as an AstroCLIP run, so that the
//! two image embeddings can be compared at equal budget by the same k-NN probe.
//!
//! Each step: two augmented views of every image in the batch ([`crate::ssl::augment`]), query
//! embeddings from the trained encoder, key embeddings from its momentum copy (no gradient),
//! the InfoNCE loss against the key and the queue of earlier keys ([`crate::ssl::moco`]), an AdamW
//! step with the run's schedule, the momentum update, and the keys enqueued. Checkpoints hold
//! both encoders, the optimizer state and the queue, so a run resumes exactly.

use crate::encoders::Encoder;
use astroclip_plugin_api::ModalityEncoder;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

use crate::data::loader::TokenBatch;
use crate::ssl::augment::augment;
use crate::ssl::moco::{Queue, detached_copy, loss, momentum_update};
use crate::train::{Objective, TrainError};

/// The trained encoder and its momentum copy (no gradient), checkpointed together.
#[derive(Module, Debug)]
pub struct MocoPair {
    pub query: Encoder,
    pub key: Encoder,
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

/// MoCo v2's settings (`objective.queue_size`, `momentum`, `temperature`, `augment`).
#[derive(Debug, Clone)]
pub struct MocoConfig {
    pub queue_size: usize,
    pub momentum: f64,
    pub temperature: f64,
    pub augment: crate::ssl::augment::AugmentConfig,
}

/// MoCo v2 as an [`Objective`]: the queue, the views' augmentations and the keys of the step
/// in flight (enqueued after the optimizer step).
pub struct Moco {
    cfg: MocoConfig,
    seed: u64,
    queue: Queue,
    /// Values per image and the side of the `(3, side, side)` input.
    il: usize,
    side: usize,
    keys: Vec<f32>,
}

impl Moco {
    /// The objective for `encoder` on images of `il` values (`(3, S, S)` inputs only).
    pub fn new(encoder: &Encoder, ocfg: MocoConfig, il: usize, seed: u64) -> Result<Self, TrainError> {
        let side = ((il / 3) as f64).sqrt().round() as usize;
        if 3 * side * side != il {
            return Err(TrainError::Checkpoint {
                path: "image tokenizer".into(),
                detail: format!("MoCo augmentations need (3, S, S) images; the tokenizer gives {il} values"),
            });
        }
        let queue = Queue::new(ocfg.queue_size, encoder.embed_dim(), seed ^ 0x6d6f_636f);
        Ok(Self { cfg: ocfg, seed, queue, il, side, keys: Vec::new() })
    }

    /// The trained pair: the encoder and its momentum copy (no gradient).
    pub fn pair(encoder: Encoder) -> MocoPair {
        let key = detached_copy(&encoder);
        MocoPair { query: encoder, key }
    }
}

impl crate::train::Embeds for Moco {
    /// The query encoder's image embeddings (no spectrum embedding).
    fn embed(
        &self,
        model: &MocoPair,
        data: &crate::dataset::TrainingData,
        batch: usize,
        device: &Device,
    ) -> Result<(Option<crate::eval::Embeddings>, Option<crate::eval::Embeddings>), crate::data::DataError> {
        Ok((Some(crate::eval::embed_images(&model.query, data, batch, device)?), None))
    }
}

impl Objective for Moco {
    type Model = MocoPair;

    fn label(&self) -> String {
        "moco".into()
    }

    fn loss(&mut self, model: &MocoPair, b: TokenBatch, step: usize, device: &Device) -> Result<Tensor<1>, TrainError> {
        let (n, il, side) = (b.len(), self.il, self.side);
        // Two views per image, reproducible from (seed, step).
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed.wrapping_mul(1_000_003).wrapping_add(step as u64));
        let (mut vq, mut vk) = (Vec::with_capacity(n * il), Vec::with_capacity(n * il));
        for img in b.image.chunks(il) {
            vq.extend(augment(img, 3, side, &self.cfg.augment, &mut rng));
            vk.extend(augment(img, 3, side, &self.cfg.augment, &mut rng));
        }
        let im_q = Tensor::<2>::from_data(TensorData::new(vq, [n, il]), device);
        let im_k = Tensor::<2>::from_data(TensorData::new(vk, [n, il]), device);
        let q = l2_normalize(model.query.encode(im_q));
        let k = l2_normalize(model.key.encode(im_k)).detach();
        let l = loss(q, k.clone(), self.queue.tensor(device), self.cfg.temperature);
        self.keys = k.into_data().try_to_vec::<f32>().unwrap_or_default();
        Ok(l)
    }

    fn after_step(&mut self, mut model: MocoPair) -> MocoPair {
        model.key = momentum_update(model.key, &model.query, self.cfg.momentum);
        self.queue.enqueue(&std::mem::take(&mut self.keys));
        model
    }

    fn save(&self, dir: &Path) -> std::io::Result<Vec<(&'static str, &'static str)>> {
        save_queue(&dir.join("queue.bin"), &self.queue)?;
        Ok(vec![("queue.bin", "moco-queue")])
    }

    fn restore(&mut self, mut model: MocoPair, dir: &Path) -> Result<MocoPair, TrainError> {
        model.key = detached_copy(&model.key);
        self.queue = load_queue(&dir.join("queue.bin"), self.cfg.queue_size, model.query.embed_dim())
            .map_err(|detail| TrainError::Checkpoint { path: dir.display().to_string(), detail })?;
        Ok(model)
    }
}
