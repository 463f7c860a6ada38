//! Assembly of a run's model from the components its configuration names: tokenizers, the
//! image and spectrum encoders (built-in or plugin, [`crate::encoders`]), the loss and the
//! probes. Unknown names are configuration errors that list what is available.

use std::path::Path;

use astroclip_builtin::infonce::InfoNceConfig;
use astroclip_builtin::knn::KnnRegressor;
use astroclip_builtin::spectrum_tokens::SpecformerTokens;
use astroclip_builtin::to_rgb::LegacySurveyRgb;
use astroclip_plugin_api::{ComponentInfo, ContrastiveLoss, EncoderInput, ModalityEncoder, Probe, Tokenizer};
use burn::tensor::Device;

use crate::config::{ConfigError, ExperimentConfig};
use crate::encoders::{self, Encoder, Loss, PluginProvenance};
use crate::model::AstroClip;

pub type Model = AstroClip<Encoder, Encoder, Loss>;

fn check(key: &str, got: &str, available: &[&str]) -> Result<(), ConfigError> {
    if available.contains(&got) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key: key.into(),
            message: format!("unknown component {got:?}; available: {}", available.join(", ")),
        })
    }
}

/// `(image, spectrum)` tokenizers.
pub type Tokenizers = (Box<dyn Tokenizer>, Box<dyn Tokenizer>);

/// The tokenizers of both modalities.
pub fn tokenizers(cfg: &ExperimentConfig, n_bins: usize) -> Result<Tokenizers, ConfigError> {
    check("image.tokenizer", &cfg.image.tokenizer, &["legacy-survey-rgb"])?;
    check("spectrum.tokenizer", &cfg.spectrum.tokenizer, &["specformer-tokens"])?;
    let image = LegacySurveyRgb::new(cfg.image.crop, cfg.image.downsample);
    let spectrum = SpecformerTokens::new(n_bins, cfg.spectrum.rebin);
    if spectrum.n_sections() == 0 {
        return Err(ConfigError::Invalid {
            key: "spectrum.rebin".into(),
            message: format!("{n_bins} bins rebinned by {} leave no 20-bin section", cfg.spectrum.rebin),
        });
    }
    Ok((Box::new(image), Box::new(spectrum)))
}

/// A built model and the plugins it uses: `(config key, provenance)`.
pub struct Built {
    pub model: Model,
    pub plugins: Vec<(String, PluginProvenance)>,
}

impl Built {
    /// `plugins.<key> = "<id> <version> sha256 <hex>"` params of the run.
    pub fn params(&self) -> Vec<(String, String)> {
        self.plugins
            .iter()
            .map(|(k, p)| (format!("plugins.{k}"), format!("{} {} sha256 {}", p.id, p.version, p.sha256)))
            .collect()
    }
}

/// Builds the model for `cfg` given the tokenizers' output shapes; plugin components are
/// looked up among the plugins installed under `home`. Parameters are initialised in the
/// order image encoder, spectrum encoder, loss (the device's seed makes it reproducible).
pub fn model(
    cfg: &ExperimentConfig,
    image_shape: &[usize],
    spectrum_shape: &[usize],
    home: &Path,
    device: &Device,
) -> Result<Built, ConfigError> {
    let err = |e: encoders::ChoiceError| ConfigError::Invalid { key: e.key, message: e.message };
    let dim = cfg.model.embed_dim;
    let mut plugins = Vec::new();
    let mut encoder = |key: &str, choice, shape: &[usize]| -> Result<Encoder, ConfigError> {
        let input = EncoderInput { shape: shape.to_vec(), embed_dim: dim };
        let (e, p) = encoders::build_encoder(key, choice, &input, home, device).map_err(err)?;
        plugins.extend(p.map(|p| (key.to_string(), p)));
        Ok(e)
    };
    let image = encoder("image.encoder", &cfg.image.encoder, image_shape)?;
    let spectrum = encoder("spectrum.encoder", &cfg.spectrum.encoder, spectrum_shape)?;
    let infonce = InfoNceConfig::new().with_logit_scale(cfg.loss.logit_scale).with_learnable(cfg.loss.learnable_scale);
    let (loss, p) = encoders::build_loss("loss.kind", &cfg.loss.kind, &infonce, dim, home, device).map_err(err)?;
    plugins.extend(p.map(|p| ("loss".to_string(), p)));
    Ok(Built { model: AstroClip { image, spectrum, loss }, plugins })
}

/// The zero-shot probe of the evaluation (AstroCLIP: k-NN, k = 64, distance-weighted,
/// standardised embeddings).
pub fn knn_probe(k: usize) -> Box<dyn Probe> {
    Box::new(KnnRegressor::new(k, true))
}

/// Identities of every component a run uses, for the registry.
pub fn describe(
    model: &Model,
    image_tok: &dyn Tokenizer,
    spectrum_tok: &dyn Tokenizer,
    k: usize,
) -> Vec<ComponentInfo> {
    vec![
        image_tok.info(),
        model.image.info(),
        spectrum_tok.info(),
        model.spectrum.info(),
        model.loss.info(),
        knn_probe(k).info(),
    ]
}
