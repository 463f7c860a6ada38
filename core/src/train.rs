//! The training loop: AdamW (decoupled weight decay), linear warm-up then cosine decay,
//! per-parameter gradient-norm clipping, periodic checkpoints (model + optimizer state) that a
//! resumed run continues from, a progress bar, and metrics buffered into registry batches.

use std::path::{Path, PathBuf};
use std::time::Instant;

use astroclip_registry::{Metric, Registry};
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::components::Model;
use crate::config::TrainConfig;
use crate::data::loader::TokenBatch;
use crate::dataset::TrainingData;
use crate::eval::Embeddings;
use astroclip_plugin_api::ContrastiveLoss;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("loss became {value} at step {step}; lower train.lr or enable train.grad_clip")]
    NonFiniteLoss { step: usize, value: f32 },
    #[error("train.batch_size {batch} exceeds the {n} training objects; lower it or add data")]
    BatchTooLarge { batch: usize, n: usize },
    #[error("checkpoint {path}: {detail}")]
    Checkpoint { path: String, detail: String },
    #[error(transparent)]
    Registry(#[from] astroclip_registry::RegistryError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A component (a plugin's encoder or loss) failed; the message names it.
    #[error("{0}")]
    Component(String),
    #[error("batch of step {step} has {n} usable objects after skipping bad ones; CLIP needs at least 2")]
    EmptyBatch { step: usize, n: usize },
}

/// Learning rate at `step` (0-based): linear warm-up to `lr`, then cosine to `lr·min_frac`.
pub fn learning_rate(cfg: &TrainConfig, step: usize) -> f64 {
    if step < cfg.warmup_steps {
        return cfg.lr * (step + 1) as f64 / cfg.warmup_steps as f64;
    }
    let span = (cfg.steps - cfg.warmup_steps).max(1) as f64;
    let t = ((step - cfg.warmup_steps) as f64 / span).min(1.0);
    let floor = cfg.lr * cfg.min_lr_fraction;
    floor + (cfg.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

/// Indices of the batch for `step`: each epoch is a fresh permutation seeded by (seed, epoch),
/// so the sequence depends only on the step and a resumed run sees the same batches.
pub fn batch_indices(train: &[usize], batch: usize, seed: u64, step: usize) -> Vec<usize> {
    let per_epoch = train.len() / batch;
    let (epoch, pos) = (step / per_epoch, step % per_epoch);
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
    let mut perm = train.to_vec();
    for i in (1..perm.len()).rev() {
        let j = rng.random_range(0..=i);
        perm.swap(i, j);
    }
    perm[pos * batch..(pos + 1) * batch].to_vec()
}

pub struct Checkpoints {
    pub dir: PathBuf,
}

impl Checkpoints {
    pub fn step_dir(&self, step: usize) -> PathBuf {
        self.dir.join(format!("step-{step:07}"))
    }

    /// The newest complete checkpoint: `(step, directory)`.
    pub fn latest(&self) -> Option<(usize, PathBuf)> {
        let entries = std::fs::read_dir(&self.dir).ok()?;
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let step = name.strip_prefix("step-")?.parse().ok()?;
                e.path().join("complete").exists().then_some((step, e.path()))
            })
            .max_by_key(|(s, _)| *s)
    }
}

/// Where a training loop's batches come from: the tokenized survey ([`TrainingData`]), or
/// index-only batches for objectives that hold their inputs themselves (`bind`).
pub trait BatchSource {
    /// Batches `plan(0..n)`, in order.
    fn batches(&self, plan: crate::data::loader::Plan, n: usize) -> Batches<'_>;
    /// Objects left out so far (`data.on_bad = "skip"`).
    fn excluded_count(&self) -> usize;
}

pub type Batches<'a> = Box<dyn Iterator<Item = Result<TokenBatch, crate::data::DataError>> + 'a>;

impl BatchSource for TrainingData {
    fn batches(&self, plan: crate::data::loader::Plan, n: usize) -> Batches<'_> {
        TrainingData::batches(self, plan, n)
    }

    fn excluded_count(&self) -> usize {
        self.excluded().len()
    }
}

/// Batches that carry only the objects' indices.
pub struct IndexBatches;

impl BatchSource for IndexBatches {
    fn batches(&self, plan: crate::data::loader::Plan, n: usize) -> Batches<'_> {
        Box::new(
            (0..n).map(move |k| Ok(TokenBatch { indices: plan(k), image: vec![], spectrum: vec![], skipped: vec![] })),
        )
    }

    fn excluded_count(&self) -> usize {
        0
    }
}

pub struct TrainSetup<'a> {
    pub cfg: &'a TrainConfig,
    pub device: &'a Device,
    pub data: &'a dyn BatchSource,
    pub train_idx: &'a [usize],
    pub registry: &'a Registry,
    pub run_id: &'a str,
    pub checkpoints: &'a Checkpoints,
    /// Artifact paths are recorded relative to this directory.
    pub artifact_root: &'a Path,
    /// Stop (with a checkpoint) once this many steps are done, leaving the run resumable.
    pub stop_after: Option<usize>,
}

/// SHA-256 and size of a file, read in blocks (checkpoints run to gigabytes).
pub fn file_sha256(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok((hex::encode(hasher.finalize()), bytes))
}

pub fn record_artifact(reg: &Registry, run: &str, root: &Path, path: &Path, kind: &str) -> Result<(), TrainError> {
    let (sha, size) = file_sha256(path)
        .map_err(|e| TrainError::Checkpoint { path: path.display().to_string(), detail: e.to_string() })?;
    let rel = path.strip_prefix(root).unwrap_or(path).display().to_string();
    reg.log_artifact(run, &rel, kind, &sha, size)?;
    Ok(())
}

/// AdamW with the run's weight decay and per-parameter gradient-norm clipping.
pub fn optimizer(cfg: &TrainConfig) -> burn::optim::ModuleOptimizer {
    let mut adamw = AdamWConfig::new().with_weight_decay(cfg.weight_decay as f32);
    if cfg.grad_clip > 0.0 {
        adamw = adamw.with_grad_clipping(Some(GradientClippingConfig::Norm(cfg.grad_clip as f32)));
    }
    adamw.init()
}

/// The training progress bar, labelled `label`, positioned at `start`.
pub fn progress_bar(label: &str, cfg: &TrainConfig, start: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(cfg.steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{label} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}<{{eta_precise}}] {{msg}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(start as u64);
    bar
}

/// Model and optimizer state from the checkpoint of `step`.
pub fn load_checkpoint<M: Module>(
    checkpoints: &Checkpoints,
    model: M,
    optim: burn::optim::ModuleOptimizer,
    step: usize,
) -> Result<(M, burn::optim::ModuleOptimizer), TrainError> {
    let dir = checkpoints.step_dir(step);
    let ck = |detail: String| TrainError::Checkpoint { path: dir.display().to_string(), detail };
    let model = model.try_load_file(dir.join("model.bpk")).map_err(|e| ck(e.to_string()))?;
    let optim = optim.load(dir.join("optimizer.bpk")).map_err(|e| ck(e.to_string()))?;
    Ok((model, optim))
}

/// Writes the checkpoint of `step`: model, optimizer state, then whatever `extra` writes into
/// the directory (returning `(file, kind)` of each), then the `complete` marker; every file is
/// recorded as an artifact.
pub fn save_checkpoint<M: Module + Clone>(
    setup: &TrainSetup<'_>,
    model: &M,
    optim: &burn::optim::ModuleOptimizer,
    step: usize,
    extra: impl FnOnce(&Path) -> std::io::Result<Vec<(&'static str, &'static str)>>,
) -> Result<(), TrainError> {
    let dir = setup.checkpoints.step_dir(step);
    let ck = |detail: String| TrainError::Checkpoint { path: dir.display().to_string(), detail };
    std::fs::create_dir_all(&dir).map_err(|e| ck(e.to_string()))?;
    model.clone().save_file(dir.join("model.bpk")).map_err(|e| ck(e.to_string()))?;
    optim.save(dir.join("optimizer.bpk")).map_err(|e| ck(e.to_string()))?;
    let mut files = vec![("model.bpk", "checkpoint"), ("optimizer.bpk", "optimizer-state")];
    files.extend(extra(&dir).map_err(|e| ck(e.to_string()))?);
    // Written last: a checkpoint without it was interrupted and is never resumed from.
    std::fs::write(dir.join("complete"), step.to_string()).map_err(|e| ck(e.to_string()))?;
    for (file, kind) in files {
        record_artifact(setup.registry, setup.run_id, setup.artifact_root, &dir.join(file), kind)?;
    }
    Ok(())
}

/// What the loop does after a recorded step.
pub struct Due {
    /// Write a checkpoint now (cadence, last step, or interruption).
    pub checkpoint: bool,
    /// Stop after that checkpoint (Ctrl-C).
    pub stop: bool,
}

/// The bookkeeping every training loop shares: the batch plan, loader wait time, metric
/// batches for the registry (loss, learning rate, samples/s, loader wait), the progress bar,
/// the checkpoint cadence and interruption, and the final rate.
pub struct StepLog<'s, 'a> {
    setup: &'s TrainSetup<'a>,
    bar: indicatif::ProgressBar,
    buffer: Vec<Metric>,
    started: Instant,
    window: (Instant, usize),
    window_wait: f64,
    waited: f64,
    start_step: usize,
    end: usize,
    last_done: usize,
    loss_name: &'static str,
    /// While the loop runs, the first Ctrl-C/SIGTERM is a stop request (checkpoint, resumable).
    _listening: crate::interrupt::Listening,
}

impl<'s, 'a> StepLog<'s, 'a> {
    /// `label` names the progress bar, `loss_name` the loss in its message.
    pub fn new(
        setup: &'s TrainSetup<'a>,
        label: &str,
        loss_name: &'static str,
        start_step: usize,
    ) -> Result<Self, TrainError> {
        let cfg = setup.cfg;
        if cfg.batch_size > setup.train_idx.len() {
            return Err(TrainError::BatchTooLarge { batch: cfg.batch_size, n: setup.train_idx.len() });
        }
        Ok(Self {
            setup,
            bar: progress_bar(label, cfg, start_step),
            buffer: Vec::new(),
            started: Instant::now(),
            window: (Instant::now(), 0),
            window_wait: 0.0,
            waited: 0.0,
            start_step,
            end: setup.stop_after.map_or(cfg.steps, |s| s.clamp(start_step, cfg.steps)),
            last_done: start_step,
            loss_name,
            _listening: crate::interrupt::listen(),
        })
    }

    /// The last step (exclusive) this invocation runs: `train.steps`, or `--stop-after`.
    pub fn end(&self) -> usize {
        self.end
    }

    /// The batches of steps `start_step..end` (a function of the step: resumable).
    pub fn batches(&self) -> Batches<'a> {
        let setup = self.setup;
        let train_idx = std::sync::Arc::new(setup.train_idx.to_vec());
        let (batch, seed, start) = (setup.cfg.batch_size, setup.cfg.seed, self.start_step);
        let plan: crate::data::loader::Plan =
            std::sync::Arc::new(move |k| batch_indices(&train_idx, batch, seed, start + k));
        setup.data.batches(plan, self.end - self.start_step)
    }

    /// The next batch, timing the wait for the loader; a batch under `min` objects is an error.
    pub fn next_batch(
        &mut self,
        batches: &mut dyn Iterator<Item = Result<TokenBatch, crate::data::DataError>>,
        step: usize,
        min: usize,
    ) -> Result<TokenBatch, TrainError> {
        let t = Instant::now();
        let b = batches.next().unwrap_or_else(|| {
            Err(crate::data::DataError::Content { path: "loader".into(), detail: format!("no batch for step {step}") })
        })?;
        let w = t.elapsed().as_secs_f64();
        self.waited += w;
        self.window_wait += w;
        if b.len() < min {
            return Err(TrainError::EmptyBatch { step, n: b.len() });
        }
        Ok(b)
    }

    /// Fails on a non-finite loss, after writing the metrics gathered so far.
    pub fn check(&mut self, step: usize, value: f32) -> Result<(), TrainError> {
        if value.is_finite() {
            return Ok(());
        }
        self.setup.registry.log_metrics(self.setup.run_id, &self.buffer)?;
        Err(TrainError::NonFiniteLoss { step, value })
    }

    /// Records step `step` (`n` objects, loss `value`, learning rate `lr`); at logging steps
    /// `extra` adds the loop's own metrics and the batch goes to the registry.
    pub fn record(
        &mut self,
        step: usize,
        n: usize,
        value: f32,
        lr: f64,
        extra: impl FnOnce(&mut Vec<Metric>),
    ) -> Result<Due, TrainError> {
        let (cfg, setup) = (self.setup.cfg, self.setup);
        self.window.1 += n;
        self.buffer.push(Metric::new("train.loss", step as i64, value as f64));
        self.buffer.push(Metric::new("train.lr", step as i64, lr));
        let done = step + 1;
        if done.is_multiple_of(cfg.log_every) || done == cfg.steps {
            let elapsed = self.window.0.elapsed().as_secs_f64();
            let rate = self.window.1 as f64 / elapsed;
            self.buffer.push(Metric::new("train.samples_per_sec", step as i64, rate));
            self.buffer.push(Metric::new("data.wait_fraction", step as i64, self.window_wait / elapsed.max(1e-9)));
            self.buffer.push(Metric::new("data.skipped_objects", step as i64, setup.data.excluded_count() as f64));
            extra(&mut self.buffer);
            setup.registry.log_metrics(setup.run_id, &self.buffer)?;
            self.buffer.clear();
            self.bar.set_message(format!("{} {value:.4}  {rate:.1} samples/s", self.loss_name));
            self.window = (Instant::now(), 0);
            self.window_wait = 0.0;
        }
        self.bar.set_position(done as u64);
        self.last_done = done;
        let stop = crate::interrupt::requested();
        let checkpoint = done.is_multiple_of(cfg.checkpoint_every) || done == self.end || stop;
        if checkpoint && !self.buffer.is_empty() {
            setup.registry.log_metrics(setup.run_id, &self.buffer)?;
            self.buffer.clear();
        }
        Ok(Due { checkpoint, stop })
    }

    /// `(steps run, samples/s over them, the step stopped at if before train.steps)`.
    pub fn finish(self) -> (usize, f64, Option<usize>) {
        self.bar.finish_and_clear();
        let steps_run = self.last_done - self.start_step;
        let secs = self.started.elapsed().as_secs_f64();
        tracing::info!(
            wait_fraction = format!("{:.3}", self.waited / secs.max(1e-9)),
            "training thread waited {:.1} s of {secs:.1} s for data",
            self.waited
        );
        let cfg = self.setup.cfg;
        (
            steps_run,
            (steps_run * cfg.batch_size) as f64 / secs.max(1e-9),
            (self.last_done < cfg.steps).then_some(self.last_done),
        )
    }
}

/// A training objective: what one step computes from a batch, and any state it carries
/// across steps (MoCo's queue and momentum encoder). Every objective — AstroCLIP's InfoNCE
/// ([`Clip`]), MoCo v2, SpecFormer masked modelling, the supervised baselines — runs through
/// the one loop of [`fit`]: one optimizer, the schedule, clipping, metric batches, progress,
/// checkpoints, Ctrl-C/SIGTERM and resume.
pub trait Objective {
    /// What the optimizer trains and a checkpoint holds.
    type Model: Module + burn::module::ModuleDisplay;
    /// Progress-bar label.
    fn label(&self) -> String;
    /// The loss's name in the progress message.
    fn loss_name(&self) -> &'static str {
        "loss"
    }
    /// Fewest usable objects a batch needs.
    fn min_batch(&self) -> usize {
        2
    }
    /// The loss of step `step` on batch `b`.
    fn loss(
        &mut self,
        model: &Self::Model,
        b: TokenBatch,
        step: usize,
        device: &Device,
    ) -> Result<Tensor<1>, TrainError>;
    /// After the optimizer step (MoCo: the momentum update and the queue).
    fn after_step(&mut self, model: Self::Model) -> Self::Model {
        model
    }
    /// The objective's own metrics at a logging step.
    fn metrics(&self, _model: &Self::Model, _step: usize, _out: &mut Vec<Metric>) {}
    /// Writes the objective's state into a checkpoint directory: `(file, artifact kind)`s.
    fn save(&self, _dir: &Path) -> std::io::Result<Vec<(&'static str, &'static str)>> {
        Ok(vec![])
    }
    /// Restores that state when resuming from the checkpoint in `dir` (the model is loaded).
    fn restore(&mut self, model: Self::Model, _dir: &Path) -> Result<Self::Model, TrainError> {
        Ok(model)
    }
}

/// An objective whose trained model is evaluated by its embeddings: `(image, spectrum)` of
/// every object, `None` for a modality it does not embed.
pub trait Embeds: Objective {
    fn embed(
        &self,
        model: &Self::Model,
        data: &TrainingData,
        batch: usize,
        device: &Device,
    ) -> Result<(Option<Embeddings>, Option<Embeddings>), crate::data::DataError>;
}

/// What [`fit`] returns.
pub struct Fitted<M> {
    pub model: M,
    pub samples_per_sec: f64,
    pub steps_run: usize,
    /// Stopped early (`--stop-after`, Ctrl-C); the run continues with `--resume`.
    pub stopped_at: Option<usize>,
}

/// Trains `model` on `objective` from `start_step` (0, or the step of the checkpoint being
/// resumed) to `cfg.steps`.
pub fn fit<O: Objective>(
    setup: TrainSetup<'_>,
    objective: &mut O,
    mut model: O::Model,
    start_step: usize,
) -> Result<Fitted<O::Model>, TrainError> {
    let cfg = setup.cfg;
    let mut log = StepLog::new(&setup, &objective.label(), objective.loss_name(), start_step)?;
    let mut optim = optimizer(cfg);
    if start_step > 0 {
        (model, optim) = load_checkpoint(setup.checkpoints, model, optim, start_step)?;
        model = objective.restore(model, &setup.checkpoints.step_dir(start_step))?;
    }
    let mut batches = log.batches();
    for step in start_step..log.end() {
        let b = log.next_batch(&mut batches, step, objective.min_batch())?;
        let n = b.len();
        let loss = objective.loss(&model, b, step, setup.device)?;
        let value: f32 = loss.clone().into_scalar();
        log.check(step, value)?;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = learning_rate(cfg, step);
        model = objective.after_step(optim.step(lr, model, grads));
        let due = log.record(step, n, value, lr, |m| objective.metrics(&model, step, m))?;
        if due.checkpoint {
            save_checkpoint(&setup, &model, &optim, step + 1, |dir| objective.save(dir))?;
        }
        if due.stop {
            break;
        }
    }
    drop(batches);
    let (steps_run, samples_per_sec, stopped_at) = log.finish();
    Ok(Fitted { model, samples_per_sec, steps_run, stopped_at })
}

/// AstroCLIP's objective: symmetric InfoNCE between the image and spectrum embeddings of
/// each batch's pairs (Parker et al. 2024 eq. 1).
pub struct Clip {
    /// Values per object of the image and spectrum tokens.
    pub lens: (usize, usize),
}

impl Clip {
    pub fn new(data: &TrainingData) -> Self {
        Self { lens: (data.tokenizers.image_len(), data.tokenizers.spectrum_len()) }
    }
}

impl Embeds for Clip {
    fn embed(
        &self,
        model: &Model,
        data: &TrainingData,
        batch: usize,
        device: &Device,
    ) -> Result<(Option<Embeddings>, Option<Embeddings>), crate::data::DataError> {
        let (image, spectrum) = crate::eval::embed_all(model, data, batch, device)?;
        Ok((Some(image), Some(spectrum)))
    }
}

impl Objective for Clip {
    type Model = Model;

    fn label(&self) -> String {
        "train".into()
    }

    fn loss(&mut self, model: &Model, b: TokenBatch, _step: usize, device: &Device) -> Result<Tensor<1>, TrainError> {
        let (images, spectra) = b.tensors(self.lens.0, self.lens.1, device);
        Ok(model.forward(images, spectra))
    }

    fn metrics(&self, model: &Model, step: usize, out: &mut Vec<Metric>) {
        out.push(Metric::new("train.logit_scale", step as i64, model.loss.logit_scale() as f64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TrainConfig {
        TrainConfig {
            steps: 100,
            batch_size: 4,
            lr: 1e-3,
            weight_decay: 0.05,
            warmup_steps: 10,
            min_lr_fraction: 0.1,
            grad_clip: 1.0,
            checkpoint_every: 50,
            log_every: 10,
            seed: 3,
        }
    }

    #[test]
    fn schedule_warms_up_then_cosines_to_floor() {
        let c = cfg();
        assert!((learning_rate(&c, 0) - 1e-4).abs() < 1e-12);
        assert!((learning_rate(&c, 9) - 1e-3).abs() < 1e-12);
        assert!((learning_rate(&c, 10) - 1e-3).abs() < 1e-12);
        // Half-way through the cosine: floor + (lr - floor)/2.
        assert!((learning_rate(&c, 55) - (1e-4 + 0.45e-3)).abs() < 1e-9);
        assert!((learning_rate(&c, 100) - 1e-4).abs() < 1e-12);
    }

    #[test]
    fn batches_are_a_function_of_step() {
        let train: Vec<usize> = (0..10).collect();
        let a = batch_indices(&train, 4, 1, 5);
        assert_eq!(a, batch_indices(&train, 4, 1, 5));
        // One epoch (2 batches of 4) has no repeated object.
        let mut epoch = batch_indices(&train, 4, 1, 0);
        epoch.extend(batch_indices(&train, 4, 1, 1));
        epoch.sort();
        epoch.dedup();
        assert_eq!(epoch.len(), 8);
    }
}
