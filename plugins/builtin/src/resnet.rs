//! Image encoder `resnet`: a ResNet-style CNN (He et al. 2016, basic blocks) with GroupNorm
//! instead of BatchNorm (contrastive batches must not share statistics across samples, and
//! GroupNorm has no train/eval discrepancy), followed by AstroCLIP's cross-attention head over
//! the final feature map's positions.
//!
//! Input: the `(3, S, S)` output of the `legacy-survey-rgb` tokenizer, flattened per object.

use astroclip_plugin_api::{
    ComponentInfo, ComponentKind, ConfiguredEncoder, EncoderInput, ModalityEncoder, SettingError,
};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, activation::relu};

use crate::head::{CrossAttentionHead, CrossAttentionHeadConfig};

#[derive(Config, Debug)]
pub struct ResNetEncoderConfig {
    /// Side of the square input (after crop and downsampling).
    pub image_size: usize,
    pub embed_dim: usize,
    /// Channels of each stage; every stage halves the resolution.
    #[config(default = "vec![32, 64, 128]")]
    pub channels: Vec<usize>,
    #[config(default = 1)]
    pub blocks_per_stage: usize,
    /// Stride of the stem convolution (2 for large crops).
    #[config(default = 1)]
    pub stem_stride: usize,
    #[config(default = 4)]
    pub head_heads: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
}

/// The `[image.encoder]` table of `name = "resnet"` (defaults: the quickstart's CPU size).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResNetSettings {
    /// Channels of each stage; every stage halves the resolution.
    pub channels: Vec<usize>,
    pub blocks_per_stage: usize,
    /// Stride of the stem convolution (2 for large crops).
    pub stem_stride: usize,
    /// Attention heads of the cross-attention head (must divide the embedding width).
    pub head_heads: usize,
    /// Dropout of the cross-attention head.
    pub dropout: f64,
}

impl Default for ResNetSettings {
    fn default() -> Self {
        Self { channels: vec![16, 32, 64], blocks_per_stage: 1, stem_stride: 1, head_heads: 4, dropout: 0.1 }
    }
}

#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    norm1: GroupNorm,
    conv2: Conv2d,
    norm2: GroupNorm,
    shortcut: Option<Conv2d>,
    shortcut_norm: Option<GroupNorm>,
}

fn conv3(cin: usize, cout: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

fn group_norm(c: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(if c.is_multiple_of(8) { 8 } else { 1 }, c).init(device)
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        let needs_projection = stride != 1 || cin != cout;
        Self {
            conv1: conv3(cin, cout, stride, device),
            norm1: group_norm(cout, device),
            conv2: conv3(cout, cout, 1, device),
            norm2: group_norm(cout, device),
            shortcut: needs_projection.then(|| {
                Conv2dConfig::new([cin, cout], [1, 1]).with_stride([stride, stride]).with_bias(false).init(device)
            }),
            shortcut_norm: needs_projection.then(|| group_norm(cout, device)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match (&self.shortcut, &self.shortcut_norm) {
            (Some(conv), Some(norm)) => norm.forward(conv.forward(x.clone())),
            _ => x.clone(),
        };
        let y = relu(self.norm1.forward(self.conv1.forward(x)));
        let y = self.norm2.forward(self.conv2.forward(y));
        relu(y + identity)
    }
}

#[derive(Module, Debug)]
pub struct ResNetEncoder {
    stem: Conv2d,
    stem_norm: GroupNorm,
    blocks: Vec<BasicBlock>,
    head: CrossAttentionHead,
    image_size: usize,
    embed_dim: usize,
}

impl ResNetEncoderConfig {
    pub fn init(&self, device: &Device) -> ResNetEncoder {
        let c0 = self.channels[0];
        let mut blocks = Vec::new();
        let mut cin = c0;
        for &c in &self.channels {
            for b in 0..self.blocks_per_stage {
                blocks.push(BasicBlock::new(cin, c, if b == 0 { 2 } else { 1 }, device));
                cin = c;
            }
        }
        ResNetEncoder {
            stem: conv3(3, c0, self.stem_stride, device),
            stem_norm: group_norm(c0, device),
            blocks,
            head: CrossAttentionHeadConfig::new(self.embed_dim, cin)
                .with_n_heads(self.head_heads)
                .with_dropout(self.dropout)
                .init(device),
            image_size: self.image_size,
            embed_dim: self.embed_dim,
        }
    }
}

impl ResNetEncoder {
    /// The same encoder with its backbone (stem and residual blocks) excluded from training:
    /// only the cross-attention head keeps gradients (AstroCLIP's two-stage recipe).
    pub fn freeze_backbone(mut self) -> Self {
        self.stem = self.stem.no_grad();
        self.stem_norm = self.stem_norm.no_grad();
        self.blocks = self.blocks.into_iter().map(|b| b.no_grad()).collect();
        self
    }

    /// Backbone feature map as tokens `(batch, h·w, channels)`.
    pub fn tokens(&self, x: Tensor<4>) -> Tensor<3> {
        let mut x = relu(self.stem_norm.forward(self.stem.forward(x)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let [b, c, h, w] = x.dims();
        x.reshape([b, c, h * w]).swap_dims(1, 2)
    }
}

/// The widest stage accepted: a 3×3 convolution between two such stages holds 4096² × 9
/// weights (600 MB); wider ones would abort on allocation instead of training.
const MAX_CHANNELS: usize = 4096;

impl ConfiguredEncoder for ResNetEncoder {
    const NAME: &'static str = "resnet";
    const MODALITY: &'static str = "image";
    type Settings = ResNetSettings;

    fn check(s: &ResNetSettings, embed_dim: usize) -> Result<(), SettingError> {
        if s.channels.is_empty() || s.channels.len() > 16 || s.channels.iter().any(|&c| c == 0 || c > MAX_CHANNELS) {
            return Err(SettingError::new(
                "channels",
                format!("{:?}: give 1 to 16 stages of 1 to {MAX_CHANNELS} channels", s.channels),
            ));
        }
        for (key, v, max) in [("blocks_per_stage", s.blocks_per_stage, 64), ("stem_stride", s.stem_stride, 64)] {
            if !(1..=max).contains(&v) {
                return Err(SettingError::new(key, format!("{v} is outside [1, {max}]")));
            }
        }
        crate::head::check_settings(s.head_heads, s.dropout, embed_dim)
    }

    fn build(s: &ResNetSettings, input: &EncoderInput, device: &Device) -> Result<Self, SettingError> {
        Self::check(s, input.embed_dim)?;
        let side = match input.shape.as_slice() {
            [3, h, w] if h == w && *h > 0 => *h,
            other => {
                return Err(SettingError::new(
                    "name",
                    format!("resnet reads (3, S, S) images; the image tokenizer gives {other:?}"),
                ));
            }
        };
        Ok(ResNetEncoderConfig::new(side, input.embed_dim)
            .with_channels(s.channels.clone())
            .with_blocks_per_stage(s.blocks_per_stage)
            .with_stem_stride(s.stem_stride)
            .with_head_heads(s.head_heads)
            .with_dropout(s.dropout)
            .init(device))
    }

    fn freeze_backbone(self) -> Option<Self> {
        Some(ResNetEncoder::freeze_backbone(self))
    }
}

impl ModalityEncoder for ResNetEncoder {
    fn info(&self) -> ComponentInfo {
        crate::info("resnet", ComponentKind::Encoder, Some("image"))
    }

    fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    fn encode(&self, input: Tensor<2>) -> Tensor<2> {
        let [b, _] = input.dims();
        let s = self.image_size;
        self.head.forward(self.tokens(input.reshape([b, 3, s, s])))
    }
}
