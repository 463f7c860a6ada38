//! Resolution of component names in the configuration to first-party components.
//!
//! This is the one place that names concrete component types; everything downstream uses the
//! `astroclip-plugin-api` traits. Unknown names are configuration errors that list what is
//! available.

use astroclip_builtin::infonce::{InfoNce, InfoNceConfig};
use astroclip_builtin::knn::KnnRegressor;
use astroclip_builtin::resnet::{ResNetEncoder, ResNetEncoderConfig};
use astroclip_builtin::specformer::{SpecFormer, SpecFormerConfig};
use astroclip_builtin::spectrum_tokens::SpecformerTokens;
use astroclip_builtin::to_rgb::LegacySurveyRgb;
use astroclip_plugin_api::{ComponentInfo, ContrastiveLoss, ModalityEncoder, Probe, Tokenizer};
use burn::tensor::Device;

use crate::config::{ConfigError, ExperimentConfig};
use crate::model::AstroClip;

pub type Model = AstroClip<ResNetEncoder, SpecFormer, InfoNce>;

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

/// Builds the model for `cfg`, given the spectrum tokenizer's output shape.
pub fn model(cfg: &ExperimentConfig, spectrum_shape: &[usize], device: &Device) -> Result<Model, ConfigError> {
    check("image.encoder", &cfg.image.encoder, &["resnet"])?;
    check("spectrum.encoder", &cfg.spectrum.encoder, &["specformer"])?;
    check("loss.kind", &cfg.loss.kind, &["infonce"])?;
    let image = ResNetEncoderConfig::new(cfg.image.crop / cfg.image.downsample, cfg.model.embed_dim)
        .with_channels(cfg.image.channels.clone())
        .with_blocks_per_stage(cfg.image.blocks_per_stage)
        .with_stem_stride(cfg.image.stem_stride)
        .with_head_heads(cfg.model.head_heads)
        .with_dropout(cfg.model.dropout)
        .init(device);
    let spectrum = SpecFormerConfig::new(spectrum_shape[0], spectrum_shape[1], cfg.model.embed_dim)
        .with_d_model(cfg.spectrum.d_model)
        .with_n_layers(cfg.spectrum.n_layers)
        .with_n_heads(cfg.spectrum.n_heads)
        .with_head_heads(cfg.model.head_heads)
        .with_dropout(cfg.model.dropout)
        .init(device);
    let loss = InfoNceConfig::new()
        .with_logit_scale(cfg.loss.logit_scale)
        .with_learnable(cfg.loss.learnable_scale)
        .init(device);
    Ok(AstroClip { image, spectrum, loss })
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
