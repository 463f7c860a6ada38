//! Experiment configuration, layered with figment:
//! preset defaults < experiment TOML < `ASTROCLIP_*` environment < `--set key.path=value`.
//!
//! Every struct denies unknown fields, so a misspelt key is an error naming the key and the
//! source it came from. The resolved configuration is stored with each run.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use astroclip_builtin::resnet::{ResNetEncoder, ResNetSettings};
use astroclip_builtin::specformer::{SpecFormer, SpecFormerSettings};

use crate::encoders::{self, EncoderChoice};
use crate::survey::SynthConfig;

/// Galaxies in a synthetic survey (`data.synth.n_galaxies`, `survey synth --n`).
pub const SYNTH_GALAXIES: std::ops::RangeInclusive<usize> = 1..=10_000_000;
/// Pixels on a side of a synthetic survey's images (`data.synth.image_size`,
/// `survey synth --image-size`).
pub const SYNTH_IMAGE_SIDE: std::ops::RangeInclusive<usize> = 8..=1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    pub experiment: ExperimentSection,
    pub data: DataConfig,
    pub image: ImageConfig,
    pub spectrum: SpectrumConfig,
    pub model: ModelConfig,
    pub loss: LossConfig,
    pub train: TrainConfig,
    pub eval: EvalConfig,
    /// The training objective (absent in configurations recorded before it existed: CLIP).
    #[serde(default)]
    pub objective: ObjectiveConfig,
}

/// What a run trains: AstroCLIP's cross-modal contrastive objective, or an image-only
/// self-supervised baseline at the same budget (same data, steps and batch size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectiveConfig {
    /// `clip` (image ↔ spectrum InfoNCE, AstroCLIP), `moco-v2` (image only: momentum
    /// contrast with a queue and astronomical augmentations, Stein et al. 2021),
    /// `specformer-masked` (AstroCLIP stage 1: SpecFormer masked modelling), or a
    /// supervised baseline regressing `eval.properties`: `supervised-image`,
    /// `supervised-spectrum`, `supervised-photometry` (see `crate::supervised`).
    pub kind: ObjectiveKind,
    /// MoCo: negatives kept in the queue (MoCo v2: 65536).
    pub queue_size: usize,
    /// MoCo: key-encoder momentum (MoCo v2: 0.999 over 200 epochs; short runs need less).
    pub momentum: f64,
    /// MoCo: softmax temperature (MoCo v2: 0.2).
    pub temperature: f64,
    /// MoCo: the views' augmentations.
    pub augment: crate::ssl::augment::AugmentConfig,
    /// `specformer-masked`: chunks of spectrum tokens zeroed per sequence (AstroCLIP: 6 of 50
    /// on 778 tokens; the quickstart's 97 tokens: 3 of 12, the same ~37 %).
    pub mask: crate::ssl::masking::MaskConfig,
    /// Two-stage AstroCLIP (`clip`): run id whose trained image encoder starts this run
    /// (a `moco-v2` run: its query encoder); empty = random initialisation.
    pub init_image: String,
    /// Two-stage AstroCLIP (`clip`): run id of a `specformer-masked` run whose pre-trained
    /// SpecFormer starts this run; empty = random initialisation.
    pub init_spectrum: String,
    /// Two-stage AstroCLIP: train only the cross-attention heads, the pre-trained backbones
    /// frozen (needs both `init_image` and `init_spectrum`). False = end-to-end fine-tuning.
    pub freeze_backbones: bool,
}

/// What a run trains (`objective.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectiveKind {
    /// Image ↔ spectrum InfoNCE (AstroCLIP).
    Clip,
    /// Image-only momentum contrast (Stein et al. 2021).
    MocoV2,
    /// SpecFormer masked modelling (AstroCLIP stage 1).
    SpecformerMasked,
    SupervisedImage,
    SupervisedSpectrum,
    SupervisedPhotometry,
}

impl ObjectiveKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clip => "clip",
            Self::MocoV2 => "moco-v2",
            Self::SpecformerMasked => "specformer-masked",
            Self::SupervisedImage => "supervised-image",
            Self::SupervisedSpectrum => "supervised-spectrum",
            Self::SupervisedPhotometry => "supervised-photometry",
        }
    }
}

impl std::fmt::Display for ObjectiveKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        Self {
            kind: ObjectiveKind::Clip,
            queue_size: 4096,
            momentum: 0.99,
            temperature: 0.2,
            augment: crate::ssl::augment::AugmentConfig::default(),
            mask: crate::ssl::masking::MaskConfig { num_chunks: 3, chunk_width: 12 },
            init_image: String::new(),
            init_spectrum: String::new(),
            freeze_backbones: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSection {
    /// Experiment name in the registry.
    pub name: String,
    /// `quickstart` or `paper`: the defaults every other key overrides.
    pub preset: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Training data file: AstroCLIP-layout HDF5 (`.h5`, from AstroCLIP, `astroclip survey
    /// synth` or `astroclip data import`) or a survey `.safetensors`; when empty, the survey is
    /// synthesised in memory from `synth`.
    pub path: String,
    pub synth: SynthConfig,
    pub test_fraction: f64,
    pub split_seed: u64,
    /// `error` stops at the first unusable object (NaN flux, bad shape), naming file and
    /// object; `skip` leaves such objects out, counted and logged.
    pub on_bad: crate::data::OnBad,
    pub loader: crate::data::loader::LoaderConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    pub tokenizer: String,
    /// Centre crop in pixels (AstroCLIP: 144 of 152).
    pub crop: usize,
    /// Block-average factor after the crop (1 = none).
    pub downsample: usize,
    /// `[image.encoder]`: `name` (built-in `resnet`, or `<plugin-id>/<encoder>`) and that
    /// encoder's own settings (`crate::encoders`).
    pub encoder: EncoderChoice,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpectrumConfig {
    pub tokenizer: String,
    /// Mean of this many adjacent bins before tokenisation (1 = the native grid).
    pub rebin: usize,
    /// `[spectrum.encoder]`: `name` (built-in `specformer`, or `<plugin-id>/<encoder>`) and
    /// that encoder's own settings.
    pub encoder: EncoderChoice,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Width of the shared embedding every encoder maps into.
    pub embed_dim: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    pub kind: String,
    /// Multiplier of cosine similarities (AstroCLIP: 15.5, fixed).
    pub logit_scale: f64,
    pub learnable_scale: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    /// Final learning rate as a fraction of `lr` at the end of the cosine.
    pub min_lr_fraction: f64,
    /// Clip the global gradient L2 norm (0 = off).
    pub grad_clip: f64,
    pub checkpoint_every: usize,
    /// Metrics are buffered and written to the registry every this many steps.
    pub log_every: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub k: usize,
    pub properties: Vec<String>,
    pub recall_at: Vec<usize>,
    pub batch_size: usize,
    /// Also the few-shot protocol: an MLP probe (hidden [64, 64], dropout 0.1, Adam 1e-3)
    /// trained on the frozen training-split embeddings, R² on the held-out split.
    #[serde(default = "default_few_shot")]
    pub few_shot: bool,
}

fn default_few_shot() -> bool {
    true
}

impl ExperimentConfig {
    pub fn preset(name: &str) -> Option<Self> {
        let quick = Self {
            experiment: ExperimentSection {
                name: "quickstart".into(),
                preset: "quickstart".into(),
                description: String::new(),
            },
            data: DataConfig {
                path: String::new(),
                synth: SynthConfig { n_galaxies: 2560, ..SynthConfig::default() },
                test_fraction: 0.2,
                split_seed: 7,
                on_bad: crate::data::OnBad::Error,
                loader: crate::data::loader::LoaderConfig::default(),
            },
            image: ImageConfig {
                tokenizer: "legacy-survey-rgb".into(),
                crop: 48,
                downsample: 2,
                encoder: EncoderChoice::builtin::<ResNetEncoder>(&ResNetSettings {
                    channels: vec![16, 32, 64],
                    blocks_per_stage: 1,
                    stem_stride: 1,
                    head_heads: 4,
                    dropout: 0.1,
                }),
            },
            spectrum: SpectrumConfig {
                tokenizer: "specformer-tokens".into(),
                rebin: 8,
                encoder: EncoderChoice::builtin::<SpecFormer>(&SpecFormerSettings {
                    d_model: 64,
                    n_layers: 2,
                    n_heads: 4,
                    head_heads: 4,
                    dropout: 0.1,
                    max_len: None,
                    head_residual: true,
                }),
            },
            model: ModelConfig { embed_dim: 128 },
            loss: LossConfig { kind: "infonce".into(), logit_scale: 15.5, learnable_scale: false },
            train: TrainConfig {
                steps: 900,
                batch_size: 64,
                lr: 1e-3,
                weight_decay: 0.05,
                warmup_steps: 50,
                min_lr_fraction: 0.05,
                grad_clip: 1.0,
                checkpoint_every: 200,
                log_every: 10,
                seed: 0,
            },
            eval: EvalConfig {
                k: 64,
                properties: ["redshift", "log_mass", "log_ssfr", "metallicity", "age"].map(String::from).to_vec(),
                recall_at: vec![1, 10],
                batch_size: 128,
                few_shot: true,
            },
            objective: ObjectiveConfig::default(),
        };
        match name {
            "quickstart" => Some(quick),
            // AstroCLIP's sizes (Parker et al. 2024 §4): 144-px crops, 1024-d embedding,
            // 6 × 768 SpecFormer, batch 256, AdamW lr 1e-4, wd 0.05, 1k warm-up then cosine.
            "paper" => Some(Self {
                experiment: ExperimentSection {
                    name: "paper".into(),
                    preset: "paper".into(),
                    description: String::new(),
                },
                data: DataConfig { synth: SynthConfig { n_galaxies: 200_000, ..SynthConfig::default() }, ..quick.data },
                image: ImageConfig {
                    crop: 144,
                    downsample: 1,
                    encoder: EncoderChoice::builtin::<ResNetEncoder>(&ResNetSettings {
                        channels: vec![64, 128, 256, 512],
                        blocks_per_stage: 2,
                        stem_stride: 2,
                        head_heads: 16,
                        dropout: 0.1,
                    }),
                    ..quick.image
                },
                spectrum: SpectrumConfig {
                    rebin: 1,
                    encoder: EncoderChoice::builtin::<SpecFormer>(&SpecFormerSettings {
                        d_model: 768,
                        n_layers: 6,
                        n_heads: 6,
                        head_heads: 16,
                        dropout: 0.1,
                        max_len: Some(800),
                        head_residual: true,
                    }),
                    ..quick.spectrum
                },
                model: ModelConfig { embed_dim: 1024 },
                loss: quick.loss,
                train: TrainConfig {
                    steps: 100_000,
                    batch_size: 256,
                    lr: 1e-4,
                    weight_decay: 0.05,
                    warmup_steps: 1000,
                    min_lr_fraction: 0.0,
                    checkpoint_every: 2000,
                    log_every: 50,
                    ..quick.train
                },
                eval: EvalConfig { batch_size: 64, ..quick.eval },
                objective: ObjectiveConfig {
                    queue_size: 65536,
                    momentum: 0.999,
                    mask: crate::ssl::masking::MaskConfig::default(),
                    ..ObjectiveConfig::default()
                },
            }),
            _ => None,
        }
    }

    /// Checks each encoder choice against its encoder's settings type and fills in every
    /// default, so the configuration says exactly what will be built.
    pub fn resolve_encoders(&mut self) -> Result<(), ConfigError> {
        let dim = self.model.embed_dim;
        let err = |e: encoders::ChoiceError| ConfigError::Invalid { key: e.key, message: e.message };
        encoders::resolve_choice("image.encoder", "image", &mut self.image.encoder, dim).map_err(err)?;
        encoders::resolve_choice("spectrum.encoder", "spectrum", &mut self.spectrum.encoder, dim).map_err(err)?;
        Ok(())
    }

    /// Checks that values are usable together; returns the first problem, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, msg: String| Err(ConfigError::Invalid { key: key.into(), message: msg });
        for (key, value) in [
            ("train.steps", self.train.steps),
            ("train.log_every", self.train.log_every),
            ("train.checkpoint_every", self.train.checkpoint_every),
            ("eval.k", self.eval.k),
            ("eval.batch_size", self.eval.batch_size),
            ("data.synth.n_galaxies", self.data.synth.n_galaxies),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        if self.train.batch_size < 2 {
            return bad("train.batch_size", "a contrastive batch needs at least 2 pairs".into());
        }
        if !["auto", "memory", "stream"].contains(&self.data.loader.mode.as_str()) {
            return bad("data.loader.mode", format!("{:?} is not one of auto, memory, stream", self.data.loader.mode));
        }
        if self.data.loader.prefetch == 0 {
            return bad("data.loader.prefetch", "must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.data.test_fraction) || self.data.test_fraction == 0.0 {
            return bad("data.test_fraction", format!("{} is not in (0, 1)", self.data.test_fraction));
        }
        if self.image.downsample == 0 || !self.image.crop.is_multiple_of(self.image.downsample) {
            return bad("image.downsample", format!("must divide image.crop = {}", self.image.crop));
        }
        if self.model.embed_dim == 0 {
            return bad("model.embed_dim", "must be at least 1".into());
        }
        if self.loss.logit_scale <= 0.0 {
            return bad("loss.logit_scale", "must be positive".into());
        }
        let o = &self.objective;
        if (!o.init_image.is_empty() || !o.init_spectrum.is_empty() || o.freeze_backbones)
            && o.kind != ObjectiveKind::Clip
        {
            return bad(
                "objective.init_image",
                format!(
                    "pre-trained initialisation and frozen backbones are for objective.kind = \"clip\" (two-stage \
                     AstroCLIP), not {:?}",
                    o.kind.as_str()
                ),
            );
        }
        if o.freeze_backbones && (o.init_image.is_empty() || o.init_spectrum.is_empty()) {
            return bad(
                "objective.freeze_backbones",
                "freezes pre-trained backbones: set objective.init_image (a moco-v2 run) and objective.init_spectrum \
                 (a specformer-masked run)"
                    .into(),
            );
        }
        if o.freeze_backbones {
            for (key, choice) in [("image.encoder", &self.image.encoder), ("spectrum.encoder", &self.spectrum.encoder)]
            {
                if choice.plugin().is_some() {
                    return bad(
                        "objective.freeze_backbones",
                        format!(
                            "{key} = {:?} is a plugin encoder, which has no backbone/head split to freeze",
                            choice.name
                        ),
                    );
                }
            }
        }
        if (o.kind == ObjectiveKind::SpecformerMasked || !o.init_spectrum.is_empty())
            && self.spectrum.encoder.name != "specformer"
        {
            return bad(
                "spectrum.encoder.name",
                format!(
                    "SpecFormer masked modelling (objective.kind = \"specformer-masked\", objective.init_spectrum) \
                     needs the specformer encoder, not {:?}",
                    self.spectrum.encoder.name
                ),
            );
        }
        if self.loss.kind != "infonce" && self.loss.learnable_scale {
            return bad(
                "loss.learnable_scale",
                format!("is a setting of the built-in infonce, not of {:?}", self.loss.kind),
            );
        }
        if self.objective.kind == ObjectiveKind::MocoV2 {
            if self.objective.queue_size < self.train.batch_size {
                return bad(
                    "objective.queue_size",
                    format!("must hold at least one batch ({})", self.train.batch_size),
                );
            }
            if !(0.0..=1.0).contains(&self.objective.momentum) {
                return bad("objective.momentum", format!("{} is not in [0, 1]", self.objective.momentum));
            }
            if self.objective.temperature <= 0.0 {
                return bad("objective.temperature", "must be positive".into());
            }
        }
        if self.train.lr <= 0.0 || !self.train.lr.is_finite() {
            return bad("train.lr", "must be a positive number".into());
        }
        self.check_bounds()
    }

    /// Bounds on every value that sizes memory or a loop, and on every float that must be a
    /// number: each message names the key and the allowed range.
    fn check_bounds(&self) -> Result<(), ConfigError> {
        let out_of = |key: &str, v: String, range: &str| {
            Err(ConfigError::Invalid { key: key.into(), message: format!("{v} is outside {range}") })
        };
        let sizes: [(&str, usize, usize, usize); 19] = [
            ("train.steps", self.train.steps, 1, 100_000_000),
            ("train.batch_size", self.train.batch_size, 2, 65_536),
            ("train.log_every", self.train.log_every, 1, usize::MAX),
            ("train.checkpoint_every", self.train.checkpoint_every, 1, usize::MAX),
            ("model.embed_dim", self.model.embed_dim, 1, 4096),
            ("image.crop", self.image.crop, 1, crate::data::MAX_IMAGE_SIDE),
            ("image.downsample", self.image.downsample, 1, crate::data::MAX_IMAGE_SIDE),
            ("spectrum.rebin", self.spectrum.rebin, 1, crate::data::MAX_SPECTRUM_BINS),
            ("eval.k", self.eval.k, 1, 100_000),
            ("eval.batch_size", self.eval.batch_size, 1, 65_536),
            ("data.synth.n_galaxies", self.data.synth.n_galaxies, *SYNTH_GALAXIES.start(), *SYNTH_GALAXIES.end()),
            ("data.synth.image_size", self.data.synth.image_size, *SYNTH_IMAGE_SIDE.start(), *SYNTH_IMAGE_SIDE.end()),
            ("data.loader.prefetch", self.data.loader.prefetch, 1, 1024),
            ("data.loader.workers", self.data.loader.workers, 0, 1024),
            ("data.loader.memory_limit_mb", self.data.loader.memory_limit_mb, 0, 16_777_216),
            ("objective.queue_size", self.objective.queue_size, 1, 1_048_576),
            ("objective.mask.num_chunks", self.objective.mask.num_chunks, 1, 100_000),
            ("objective.mask.chunk_width", self.objective.mask.chunk_width, 1, crate::data::MAX_SPECTRUM_BINS),
            ("objective.augment.max_shift", self.objective.augment.max_shift, 0, crate::data::MAX_IMAGE_SIDE),
        ];
        for (key, v, lo, hi) in sizes {
            if !(lo..=hi).contains(&v) {
                return out_of(key, v.to_string(), &format!("[{lo}, {hi}]"));
            }
        }
        let floats: [(&str, f64, f64, f64); 12] = [
            ("train.weight_decay", self.train.weight_decay, 0.0, 1e3),
            ("train.grad_clip", self.train.grad_clip, 0.0, 1e9),
            ("train.min_lr_fraction", self.train.min_lr_fraction, 0.0, 1.0),
            ("loss.logit_scale", self.loss.logit_scale, 1e-6, 1e6),
            ("objective.momentum", self.objective.momentum, 0.0, 1.0),
            ("objective.temperature", self.objective.temperature, 1e-6, 1e6),
            ("objective.augment.max_blur", self.objective.augment.max_blur as f64, 0.0, 1e3),
            ("objective.augment.max_noise", self.objective.augment.max_noise as f64, 0.0, 1e3),
            ("data.synth.pixel_scale", self.data.synth.pixel_scale, 0.01, 10.0),
            // The rejection sampler keeps galaxies brighter than r_limit: outside this range it
            // keeps almost none (or all are far brighter than any survey's).
            ("data.synth.r_limit", self.data.synth.r_limit, 15.0, 25.0),
            ("data.synth.z_max", self.data.synth.z_max, 0.01, 3.0),
            ("data.synth.spectrum_sigma", self.data.synth.spectrum_sigma, 0.0, 1e6),
        ];
        for (key, v, lo, hi) in floats {
            // NaN fails the range test as well.
            if !(lo..=hi).contains(&v) {
                return out_of(key, v.to_string(), &format!("[{lo}, {hi}] (a finite number)"));
            }
        }
        for (i, &v) in self.data.synth.sky_sigma.iter().enumerate() {
            if !(0.0..=1e6).contains(&v) {
                return out_of(&format!("data.synth.sky_sigma[{i}]"), v.to_string(), "[0, 1e6] (a finite number)");
            }
        }
        let name = &self.experiment.name;
        if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(ConfigError::Invalid {
                key: "experiment.name".into(),
                message: format!(
                    "{name:?}: give a non-empty name of at most 200 characters without control characters"
                ),
            });
        }
        if self.eval.properties.is_empty() {
            return Err(ConfigError::Invalid {
                key: "eval.properties".into(),
                message: "is empty; name at least one property to probe (e.g. [\"redshift\"])".into(),
            });
        }
        if self.eval.recall_at.is_empty() || self.eval.recall_at.iter().any(|&k| k == 0 || k > 100_000) {
            return Err(ConfigError::Invalid {
                key: "eval.recall_at".into(),
                message: format!("{:?}: give one or more k in [1, 100000]", self.eval.recall_at),
            });
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("experiment file {0} does not exist; pass an existing TOML file (see experiments/)")]
    MissingFile(PathBuf),
    #[error("unknown preset {0:?}; use `quickstart` or `paper`")]
    UnknownPreset(String),
    #[error("invalid configuration:\n{0}")]
    Figment(String),
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("--set {0:?} is not of the form key.path=value")]
    BadOverride(String),
}

/// `--set key.path=value` overrides as a figment provider with its own name, so errors say
/// where a bad value came from.
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    toml: String,
}

impl CliOverrides {
    pub fn parse(items: &[String]) -> Result<Self, ConfigError> {
        let mut root = toml::Table::new();
        for item in items {
            let (key, raw) = item.split_once('=').ok_or_else(|| ConfigError::BadOverride(item.clone()))?;
            let path: Vec<&str> = key.trim().split('.').collect();
            if path.iter().any(|p| p.is_empty()) {
                return Err(ConfigError::BadOverride(item.clone()));
            }
            // A value that parses as TOML keeps its type; anything else is a string.
            let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.to_string()));
            let mut table = &mut root;
            for part in &path[..path.len() - 1] {
                let entry = table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                table = match entry {
                    toml::Value::Table(t) => t,
                    _ => return Err(ConfigError::BadOverride(item.clone())),
                };
            }
            table.insert(path[path.len() - 1].to_string(), value);
        }
        Ok(Self { toml: root.to_string() })
    }
}

impl Provider for CliOverrides {
    fn metadata(&self) -> Metadata {
        Metadata::named("command-line --set")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Toml::string(&self.toml).data()
    }
}

fn describe(err: figment::Error) -> ConfigError {
    let lines: Vec<String> = err
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!("{} ({src})", m.name),
                    None => m.name.to_string(),
                })
                .unwrap_or_else(|| "defaults".into());
            let key = if key.is_empty() { String::new() } else { format!("key `{key}`: ") };
            format!("  {key}{} [from {source}]", e.kind)
        })
        .collect();
    ConfigError::Figment(lines.join("\n"))
}

fn layered(file: Option<&Path>, overrides: &CliOverrides) -> Figment {
    let mut f = Figment::new();
    if let Some(path) = file {
        f = f.merge(Toml::file_exact(path));
    }
    // Config values come as ASTROCLIP_<SECTION>__<KEY> (every config key is in a section); a
    // single-word variable (ASTROCLIP_HOME, ASTROCLIP_REGISTRY, ASTROCLIP_WASM_HOST, …) is a
    // program setting, never configuration.
    f.merge(Env::prefixed("ASTROCLIP_").filter(|k| k.as_str().contains("__")).split("__")).merge(overrides.clone())
}

/// Resolves an experiment: the preset named by the layers (default `quickstart`) supplies
/// defaults; file, environment and overrides go on top in that order.
pub fn load(file: Option<&Path>, overrides: &CliOverrides) -> Result<ExperimentConfig, ConfigError> {
    if let Some(path) = file
        && !path.is_file()
    {
        return Err(ConfigError::MissingFile(path.to_path_buf()));
    }
    let preset: String =
        layered(file, overrides).extract_inner::<String>("experiment.preset").unwrap_or_else(|_| "quickstart".into());
    check_moved_keys(&layered(file, overrides))?;
    let mut defaults = ExperimentConfig::preset(&preset).ok_or(ConfigError::UnknownPreset(preset))?;
    // A preset's encoder settings are for the preset's encoder: choosing another encoder
    // starts from that encoder's own defaults.
    for (key, choice) in
        [("image.encoder.name", &mut defaults.image.encoder), ("spectrum.encoder.name", &mut defaults.spectrum.encoder)]
    {
        if let Ok(name) = layered(file, overrides).extract_inner::<String>(key)
            && name != choice.name
        {
            *choice = EncoderChoice { name, settings: Default::default() };
        }
    }
    let mut cfg: ExperimentConfig =
        Figment::from(Serialized::defaults(defaults)).merge(layered(file, overrides)).extract().map_err(describe)?;
    cfg.validate()?;
    cfg.resolve_encoders()?;
    Ok(cfg)
}

/// An experiment another file names (`bench.experiment`, `base.experiment` under `key`): a TOML
/// file next to `file`, or a preset. Returns the experiment file to load (if any) and the
/// overrides that select the preset.
pub fn experiment_ref(file: &Path, key: &str, name: &str) -> Result<(Option<PathBuf>, Vec<String>), ConfigError> {
    let next_to = file.parent().unwrap_or(Path::new(".")).join(name);
    if next_to.is_file() {
        Ok((Some(next_to), vec![]))
    } else if ExperimentConfig::preset(name).is_some() {
        Ok((None, vec![format!("experiment.preset={name}")]))
    } else {
        Err(ConfigError::Invalid {
            key: key.into(),
            message: format!("{name:?} is neither a file next to {} nor a preset", file.display()),
        })
    }
}

/// Keys that moved into the encoder tables: an error that says where they went.
fn check_moved_keys(layers: &Figment) -> Result<(), ConfigError> {
    for section in ["image", "spectrum"] {
        if let Ok(name) = layers.extract_inner::<String>(&format!("{section}.encoder")) {
            return Err(ConfigError::Invalid {
                key: format!("{section}.encoder"),
                message: format!(
                    "the encoder is now a table: write [{section}.encoder] with name = {name:?} and that encoder's \
                     settings (see `astroclip config show`)"
                ),
            });
        }
    }
    for (old, new) in [
        ("image.channels", "image.encoder.channels"),
        ("image.blocks_per_stage", "image.encoder.blocks_per_stage"),
        ("image.stem_stride", "image.encoder.stem_stride"),
        ("spectrum.d_model", "spectrum.encoder.d_model"),
        ("spectrum.n_layers", "spectrum.encoder.n_layers"),
        ("spectrum.n_heads", "spectrum.encoder.n_heads"),
        ("model.head_heads", "image.encoder.head_heads and spectrum.encoder.head_heads"),
        ("model.dropout", "image.encoder.dropout and spectrum.encoder.dropout"),
    ] {
        if layers.find_value(old).is_ok() {
            return Err(ConfigError::Invalid {
                key: old.into(),
                message: format!("this setting belongs to the encoder now: set {new}"),
            });
        }
    }
    Ok(())
}

/// A run's stored configuration (JSON), upgraded from earlier layouts: before encoders were
/// chosen by table, `image.encoder`/`spectrum.encoder` were names and the ResNet, SpecFormer
/// and head settings sat in `[image]`, `[spectrum]` and `[model]`.
pub fn from_stored(stored: &serde_json::Value) -> Result<ExperimentConfig, serde_json::Error> {
    let mut v = stored.clone();
    let model = v.get("model").cloned().unwrap_or_default();
    for (section, keys) in [
        ("image", &["channels", "blocks_per_stage", "stem_stride"][..]),
        ("spectrum", &["d_model", "n_layers", "n_heads"][..]),
    ] {
        let Some(sec) = v.get_mut(section).and_then(|s| s.as_object_mut()) else { continue };
        let Some(serde_json::Value::String(name)) = sec.get("encoder").cloned() else { continue };
        let mut table = serde_json::Map::new();
        table.insert("name".into(), name.into());
        for k in keys {
            if let Some(x) = sec.remove(*k) {
                table.insert(k.to_string(), x);
            }
        }
        for k in ["head_heads", "dropout"] {
            if let Some(x) = model.get(k) {
                table.insert(k.to_string(), x.clone());
            }
        }
        sec.insert("encoder".into(), serde_json::Value::Object(table));
    }
    if let Some(m) = v.get_mut("model").and_then(|m| m.as_object_mut()) {
        m.remove("head_heads");
        m.remove("dropout");
    }
    serde_json::from_value(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value the hardening campaign found accepted and then crashing (or hanging) a run
    /// is refused when the configuration is loaded, by a message naming its key.
    #[test]
    fn out_of_range_values_are_refused_naming_the_key() {
        for (set, key) in [
            ("image.crop=0", "image.crop"),
            ("image.encoder.stem_stride=0", "stem_stride"),
            ("image.encoder.channels=[100000]", "channels"),
            ("spectrum.encoder.d_model=0", "d_model"),
            ("spectrum.encoder.d_model=65536", "d_model"),
            ("spectrum.encoder.n_layers=0", "n_layers"),
            ("spectrum.rebin=0", "spectrum.rebin"),
            ("model.embed_dim=0", "model.embed_dim"),
            ("data.synth.image_size=0", "data.synth.image_size"),
            ("image.encoder.dropout=1.0", "dropout"),
            ("image.encoder.dropout=nan", "image.encoder.dropout"),
            ("spectrum.encoder.dropout=inf", "spectrum.encoder.dropout"),
            ("data.synth.z_max=nan", "data.synth.z_max"),
            ("data.synth.pixel_scale=0", "data.synth.pixel_scale"),
            ("data.synth.r_limit=-100", "data.synth.r_limit"),
            ("data.loader.prefetch=100000000", "data.loader.prefetch"),
            ("data.synth.image_size=100000", "data.synth.image_size"),
            ("train.weight_decay=nan", "train.weight_decay"),
            ("train.weight_decay=-1", "train.weight_decay"),
            ("train.grad_clip=-1", "train.grad_clip"),
            ("loss.logit_scale=nan", "loss.logit_scale"),
            ("experiment.name=''", "experiment.name"),
            ("eval.properties=[]", "eval.properties"),
            ("eval.recall_at=[0]", "eval.recall_at"),
            ("train.batch_size=100000000", "train.batch_size"),
            ("objective.queue_size=100000000000", "objective.queue_size"),
        ] {
            let ov = CliOverrides::parse(&[set.to_string()]).unwrap();
            let err = load(None, &ov).map(|_| ()).expect_err(set).to_string();
            assert!(err.contains(key), "{set}: {err}");
        }
        // The presets themselves pass.
        for preset in ["quickstart", "paper"] {
            let ov = CliOverrides::parse(&[format!("experiment.preset={preset}")]).unwrap();
            load(None, &ov).unwrap_or_else(|e| panic!("{preset}: {e}"));
        }
    }
}
