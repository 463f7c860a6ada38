//! The training-side loader: worker threads read objects by index from an [`ObjectSource`],
//! tokenize them and hand finished batches to the training thread through bounded channels.
//!
//! Batch `k` of a plan is built by worker `k mod W` and received in order, so the batches a
//! run sees depend only on the plan (a pure function of the step), not on thread timing.
//! Memory is bounded by `W × depth` batches in flight plus one object buffer per worker,
//! whatever the size of the file: a dataset larger than RAM trains.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use astroclip_plugin_api::{ImageView, Observation, SpectrumView, Tokenizer};
use serde::{Deserialize, Serialize};

use super::{DataError, ObjectSource, OnBad};

/// The two tokenizers a batch needs, shared by every worker.
pub struct TokenizerPair {
    pub image: Box<dyn Tokenizer>,
    pub spectrum: Box<dyn Tokenizer>,
}

impl TokenizerPair {
    pub fn image_len(&self) -> usize {
        self.image.output_shape().iter().product()
    }
    pub fn spectrum_len(&self) -> usize {
        self.spectrum.output_shape().iter().product()
    }
}

/// How the loader runs; `[data.loader]` in the experiment TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderConfig {
    /// `memory`: tokenize every object once and keep the tokens in RAM; `stream`: read and
    /// tokenize each batch on worker threads; `auto`: memory when the tokens fit in
    /// `memory_limit_mb`, else stream.
    pub mode: String,
    pub memory_limit_mb: usize,
    /// Worker threads (0 = one per core, at most 8).
    pub workers: usize,
    /// Batches prepared ahead of the training step (across all workers).
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self { mode: "auto".into(), memory_limit_mb: 2048, workers: 0, prefetch: 4 }
    }
}

impl LoaderConfig {
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(8)
        }
    }
}

/// Tokenized model inputs of one batch, `(n, image_len)` and `(n, spectrum_len)` row-major.
#[derive(Debug, Clone, Default)]
pub struct TokenBatch {
    /// Source indices of the rows, in order (skipped objects removed).
    pub indices: Vec<usize>,
    pub image: Vec<f32>,
    pub spectrum: Vec<f32>,
    /// `(index, reason)` of objects left out under `on_bad = skip`.
    pub skipped: Vec<(usize, String)>,
}

impl TokenBatch {
    pub fn len(&self) -> usize {
        self.indices.len()
    }
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// Which objects make batch `k`.
pub type Plan = Arc<dyn Fn(usize) -> Vec<usize> + Send + Sync>;

type Msg = Result<TokenBatch, DataError>;

/// Background batch producer; iterate it to receive batches `0..n_batches` in order.
pub struct Prefetcher {
    receivers: Vec<Receiver<Msg>>,
    next: usize,
    n_batches: usize,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl Prefetcher {
    pub fn start(
        source: Arc<dyn ObjectSource>,
        tokenizers: Arc<TokenizerPair>,
        plan: Plan,
        n_batches: usize,
        cfg: &LoaderConfig,
        on_bad: OnBad,
    ) -> Self {
        let workers = cfg.worker_count().max(1).min(n_batches.max(1));
        let depth = cfg.prefetch.div_ceil(workers).max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = sync_channel::<Msg>(depth);
            receivers.push(rx);
            let (source, tokenizers, plan, stop) = (source.clone(), tokenizers.clone(), plan.clone(), stop.clone());
            let handle = std::thread::Builder::new()
                .name(format!("astroclip-loader-{w}"))
                .spawn(move || {
                    worker(source.as_ref(), &tokenizers, &plan, (w, workers, n_batches), on_bad, &stop, &tx);
                })
                .expect("spawning a loader thread");
            handles.push(handle);
        }
        Self { receivers, next: 0, n_batches, stop, handles }
    }
}

fn worker(
    source: &dyn ObjectSource,
    tok: &TokenizerPair,
    plan: &Plan,
    (w, workers, n_batches): (usize, usize, usize),
    on_bad: OnBad,
    stop: &AtomicBool,
    tx: &SyncSender<Msg>,
) {
    // A panic in a reader or tokenizer must reach the training thread as an error.
    let run = || -> Result<(), ()> {
        let mut reader = match source.reader() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e));
                return Err(());
            }
        };
        let s = source.image_size();
        let bands = source.bands();
        let wavelength = source.wavelength();
        let (il, sl) = (tok.image_len(), tok.spectrum_len());
        let mut img = vec![0f32; s * s * bands.len()];
        let mut flux = vec![0f32; wavelength.len()];
        let mut ivar = vec![0f32; wavelength.len()];
        let ids = source.object_ids();
        let mut k = w;
        while k < n_batches {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let idx = plan(k);
            let mut b = TokenBatch {
                indices: Vec::with_capacity(idx.len()),
                image: vec![0f32; idx.len() * il],
                spectrum: vec![0f32; idx.len() * sl],
                skipped: Vec::new(),
            };
            for &i in &idx {
                let r = b.indices.len();
                let one = reader.read(i, &mut img, &mut flux, &mut ivar).and_then(|()| {
                    let id = &ids[i];
                    let view = ImageView {
                        object_id: id,
                        height: s,
                        width: s,
                        bands,
                        flux: &img,
                        pixel_scale: source.pixel_scale(),
                    };
                    let sp = SpectrumView { object_id: id, wavelength, flux: &flux, ivar: &ivar };
                    let as_data = |e: astroclip_plugin_api::ComponentError| DataError::BadObject {
                        path: source.describe(),
                        object: id.clone(),
                        detail: e.to_string(),
                    };
                    tok.image
                        .tokenize(&Observation::Image(view), &mut b.image[r * il..(r + 1) * il])
                        .map_err(as_data)?;
                    tok.spectrum
                        .tokenize(&Observation::Spectrum(sp), &mut b.spectrum[r * sl..(r + 1) * sl])
                        .map_err(as_data)
                });
                match one {
                    Ok(()) => b.indices.push(i),
                    Err(e @ DataError::BadObject { .. }) if on_bad == OnBad::Skip => b.skipped.push((i, e.brief())),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return Err(());
                    }
                }
            }
            b.image.truncate(b.indices.len() * il);
            b.spectrum.truncate(b.indices.len() * sl);
            if tx.send(Ok(b)).is_err() {
                return Ok(()); // the consumer is gone
            }
            k += workers;
        }
        Ok(())
    };
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        let _ = tx
            .send(Err(DataError::Content { path: source.describe(), detail: format!("loader worker failed: {msg}") }));
    }
}

impl Iterator for Prefetcher {
    type Item = Result<TokenBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.n_batches {
            return None;
        }
        let w = self.next % self.receivers.len();
        self.next += 1;
        match self.receivers[w].recv() {
            Ok(msg) => Some(msg),
            Err(_) => Some(Err(DataError::Content {
                path: "loader".into(),
                detail: format!("worker {w} stopped before batch {}", self.next - 1),
            })),
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers unblocks workers waiting to send.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
