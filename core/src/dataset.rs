//! Training data as batches of tokens: either tokenized once into memory (small surveys) or
//! streamed from the source by the prefetching loader (anything larger than
//! `data.loader.memory_limit_mb`). Both read objects through the same [`ObjectSource`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::loader::{LoaderConfig, Plan, Prefetcher, TokenBatch, TokenizerPair};
use crate::data::{DataError, ObjectSource, OnBad};

/// Tokens of every object, kept in memory.
#[derive(Debug, Clone)]
pub struct TokenizedSet {
    pub n: usize,
    pub image_len: usize,
    pub spectrum_len: usize,
    pub image: Vec<f32>,
    pub spectrum: Vec<f32>,
}

pub struct TrainingData {
    pub source: Arc<dyn ObjectSource>,
    pub tokenizers: Arc<TokenizerPair>,
    pub loader: LoaderConfig,
    pub on_bad: OnBad,
    memory: Option<TokenizedSet>,
    /// Objects left out under `on_bad = skip`, with the reason, as they were met.
    excluded: Mutex<Vec<(usize, String)>>,
}

const CHUNK: usize = 256;

/// Whether `n` objects of these token sizes are tokenized into memory under `loader`.
pub fn holds_in_memory(loader: &LoaderConfig, n: usize, image_len: usize, spectrum_len: usize) -> bool {
    match loader.mode.as_str() {
        "memory" => true,
        "stream" => false,
        _ => n * 4 * (image_len + spectrum_len) <= loader.memory_limit_mb << 20,
    }
}

impl TrainingData {
    /// Prepares the data; in memory mode this reads and tokenizes every object now.
    pub fn new(
        source: Arc<dyn ObjectSource>,
        tokenizers: TokenizerPair,
        loader: LoaderConfig,
        on_bad: OnBad,
        progress: impl Fn(usize),
    ) -> Result<Self, DataError> {
        let tokenizers = Arc::new(tokenizers);
        let mut data = Self { source, tokenizers, loader, on_bad, memory: None, excluded: Mutex::new(Vec::new()) };
        if data.in_memory() {
            let n = data.source.len();
            let (il, sl) = (data.tokenizers.image_len(), data.tokenizers.spectrum_len());
            let mut set = TokenizedSet {
                n,
                image_len: il,
                spectrum_len: sl,
                image: vec![0.0; n * il],
                spectrum: vec![0.0; n * sl],
            };
            let n_chunks = n.div_ceil(CHUNK);
            let plan: Plan = Arc::new(move |k| (k * CHUNK..((k + 1) * CHUNK).min(n)).collect());
            let mut done = 0;
            for b in data.prefetch(plan, n_chunks) {
                let b = b?;
                for (r, &i) in b.indices.iter().enumerate() {
                    set.image[i * il..(i + 1) * il].copy_from_slice(&b.image[r * il..(r + 1) * il]);
                    set.spectrum[i * sl..(i + 1) * sl].copy_from_slice(&b.spectrum[r * sl..(r + 1) * sl]);
                }
                done += b.indices.len() + b.skipped.len();
                data.note_skipped(&b.skipped);
                progress(done);
            }
            data.memory = Some(set);
        }
        Ok(data)
    }

    /// Whether tokens are kept in memory (by `data.loader.mode`).
    pub fn in_memory(&self) -> bool {
        holds_in_memory(&self.loader, self.source.len(), self.tokenizers.image_len(), self.tokenizers.spectrum_len())
    }

    pub fn len(&self) -> usize {
        self.source.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    fn prefetch(&self, plan: Plan, n: usize) -> Prefetcher {
        Prefetcher::start(self.source.clone(), self.tokenizers.clone(), plan, n, &self.loader, self.on_bad)
    }

    /// Batches `0..n` of `plan`, in order; objects already excluded are left out.
    pub fn batches(&self, plan: Plan, n: usize) -> Box<dyn Iterator<Item = Result<TokenBatch, DataError>> + '_> {
        match &self.memory {
            Some(set) => {
                let excluded: BTreeSet<usize> = self.excluded().into_iter().map(|(i, _)| i).collect();
                Box::new((0..n).map(move |k| {
                    let idx: Vec<usize> = plan(k).into_iter().filter(|i| !excluded.contains(i)).collect();
                    Ok(set.gather(&idx))
                }))
            }
            None => Box::new(self.prefetch(plan, n).inspect(|b| {
                if let Ok(b) = b {
                    self.note_skipped(&b.skipped);
                }
            })),
        }
    }

    fn note_skipped(&self, skipped: &[(usize, String)]) {
        if skipped.is_empty() {
            return;
        }
        let mut ex = self.excluded.lock().unwrap_or_else(|p| p.into_inner());
        for (i, why) in skipped {
            if !ex.iter().any(|(j, _)| j == i) {
                tracing::warn!(object = %self.source.object_ids()[*i], "skipped: {why}");
                ex.push((*i, why.clone()));
            }
        }
    }

    /// Objects left out so far (`on_bad = skip`), with the reason.
    pub fn excluded(&self) -> Vec<(usize, String)> {
        self.excluded.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl TokenizedSet {
    fn gather(&self, idx: &[usize]) -> TokenBatch {
        let mut image = Vec::with_capacity(idx.len() * self.image_len);
        let mut spectrum = Vec::with_capacity(idx.len() * self.spectrum_len);
        for &i in idx {
            image.extend_from_slice(&self.image[i * self.image_len..(i + 1) * self.image_len]);
            spectrum.extend_from_slice(&self.spectrum[i * self.spectrum_len..(i + 1) * self.spectrum_len]);
        }
        TokenBatch { indices: idx.to_vec(), image, spectrum, skipped: Vec::new() }
    }
}

impl TokenBatch {
    /// `(images, spectra)` tensors `(n, len)`.
    pub fn tensors(self, image_len: usize, spectrum_len: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let n = self.indices.len();
        (
            Tensor::from_data(TensorData::new(self.image, [n, image_len]), device),
            Tensor::from_data(TensorData::new(self.spectrum, [n, spectrum_len]), device),
        )
    }
}
