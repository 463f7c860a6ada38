//! Spectrum encoder `specformer`, after AstroCLIP's SpecFormer
//! (`astroclip/models/specformer.py`; Parker et al. 2024 §3.2): a linear token embedding,
//! learned positional embeddings (initialised N(0, 0.02)), a pre-LayerNorm transformer encoder
//! (GELU MLP, 4× width), a final LayerNorm, then the cross-attention head into the shared space.
//!
//! Input: the `(n_tokens, section + 2)` output of the `specformer-tokens` tokenizer.

use astroclip_plugin_api::{
    ComponentInfo, ComponentKind, ConfiguredEncoder, EncoderInput, ModalityEncoder, SettingError,
};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor};

use crate::head::{CrossAttentionHead, CrossAttentionHeadConfig};

#[derive(Config, Debug)]
pub struct SpecFormerConfig {
    /// Tokens per spectrum including the stats token.
    pub n_tokens: usize,
    /// Values per token (section length + 2).
    pub token_dim: usize,
    pub embed_dim: usize,
    #[config(default = 128)]
    pub d_model: usize,
    #[config(default = 2)]
    pub n_layers: usize,
    #[config(default = 4)]
    pub n_heads: usize,
    #[config(default = 4)]
    pub head_heads: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Rows of the positional embedding (AstroCLIP: `max_len = 800`); `n_tokens` when absent.
    #[config(default = "None")]
    pub max_len: Option<usize>,
    #[config(default = true)]
    pub head_residual: bool,
}

/// The `[spectrum.encoder]` table of `name = "specformer"` (defaults: the quickstart's size).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpecFormerSettings {
    /// Width of the transformer tokens (AstroCLIP: 768).
    pub d_model: usize,
    /// Transformer layers (AstroCLIP: 6).
    pub n_layers: usize,
    /// Attention heads per layer (AstroCLIP: 6); must divide `d_model`.
    pub n_heads: usize,
    /// Attention heads of the cross-attention head (must divide the embedding width).
    pub head_heads: usize,
    /// Dropout of the transformer and the head.
    pub dropout: f64,
    /// Rows of the learned positional embedding, at least the tokenizer's token count
    /// (AstroCLIP's SpecFormer: `max_len = 800` for 777 tokens); the token count when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    /// `x + mlp(x)` in the head (AstroCLIP's `SpectrumHead`: true).
    pub head_residual: bool,
}

impl Default for SpecFormerSettings {
    fn default() -> Self {
        Self { d_model: 64, n_layers: 2, n_heads: 4, head_heads: 4, dropout: 0.1, max_len: None, head_residual: true }
    }
}

#[derive(Module, Debug)]
pub struct SpecFormer {
    embedding: Linear,
    position: Param<Tensor<2>>,
    dropout: Dropout,
    transformer: TransformerEncoder,
    norm: LayerNorm,
    head: CrossAttentionHead,
    n_tokens: usize,
    token_dim: usize,
    embed_dim: usize,
}

impl SpecFormerConfig {
    pub fn init(&self, device: &Device) -> SpecFormer {
        SpecFormer {
            embedding: LinearConfig::new(self.token_dim, self.d_model).init(device),
            position: Param::from_tensor(Tensor::random(
                [self.max_len.unwrap_or(self.n_tokens).max(self.n_tokens), self.d_model],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            dropout: DropoutConfig::new(self.dropout).init(),
            transformer: TransformerEncoderConfig::new(self.d_model, 4 * self.d_model, self.n_heads, self.n_layers)
                .with_norm_first(true)
                .with_dropout(self.dropout)
                .init(device),
            norm: LayerNormConfig::new(self.d_model).init(device),
            head: CrossAttentionHeadConfig::new(self.embed_dim, self.d_model)
                .with_n_heads(self.head_heads)
                .with_dropout(self.dropout)
                .with_residual(self.head_residual)
                .init(device),
            n_tokens: self.n_tokens,
            token_dim: self.token_dim,
            embed_dim: self.embed_dim,
        }
    }
}

impl SpecFormer {
    /// The same encoder with its transformer backbone (token embedding, positions, layers,
    /// final norm) excluded from training: only the cross-attention head keeps gradients.
    pub fn freeze_backbone(mut self) -> Self {
        self.embedding = self.embedding.no_grad();
        self.position = self.position.set_require_grad(false);
        self.transformer = self.transformer.no_grad();
        self.norm = self.norm.no_grad();
        self
    }

    /// Width of the transformer tokens.
    pub fn d_model(&self) -> usize {
        self.norm.gamma.dims()[0]
    }

    /// `(n_tokens, token_dim)` of the input.
    pub fn input_shape(&self) -> (usize, usize) {
        (self.n_tokens, self.token_dim)
    }

    /// Transformer tokens `(batch, n_tokens, d_model)` after the final LayerNorm.
    pub fn tokens(&self, x: Tensor<3>) -> Tensor<3> {
        let x = self.embedding.forward(x) + self.position.val().narrow(0, 0, self.n_tokens).unsqueeze_dim(0);
        let x = self.transformer.forward(TransformerEncoderInput::new(self.dropout.forward(x)));
        self.norm.forward(x)
    }
}

impl ConfiguredEncoder for SpecFormer {
    const NAME: &'static str = "specformer";
    const MODALITY: &'static str = "spectrum";
    type Settings = SpecFormerSettings;

    fn check(s: &SpecFormerSettings, embed_dim: usize) -> Result<(), SettingError> {
        // d_model ≤ 4096 keeps each weight matrix (d_model × 4·d_model) under 256 MB.
        for (key, v, max) in [("d_model", s.d_model, 4096), ("n_layers", s.n_layers, 256), ("n_heads", s.n_heads, 256)]
        {
            if !(1..=max).contains(&v) {
                return Err(SettingError::new(key, format!("{v} is outside [1, {max}]")));
            }
        }
        if !s.d_model.is_multiple_of(s.n_heads) {
            return Err(SettingError::new("n_heads", format!("must divide d_model = {}", s.d_model)));
        }
        if let Some(m) = s.max_len
            && !(1..=100_000).contains(&m)
        {
            return Err(SettingError::new("max_len", format!("{m} is outside [1, 100000]")));
        }
        crate::head::check_settings(s.head_heads, s.dropout, embed_dim)
    }

    fn build(s: &SpecFormerSettings, input: &EncoderInput, device: &Device) -> Result<Self, SettingError> {
        Self::check(s, input.embed_dim)?;
        let [n_tokens, token_dim] = input.shape[..] else {
            return Err(SettingError::new(
                "name",
                format!("specformer reads (tokens, token width) sequences; the tokenizer gives {:?}", input.shape),
            ));
        };
        if let Some(m) = s.max_len
            && m < n_tokens
        {
            return Err(SettingError::new(
                "max_len",
                format!("{m} positions are fewer than the tokenizer's {n_tokens} tokens"),
            ));
        }
        Ok(SpecFormerConfig::new(n_tokens, token_dim, input.embed_dim)
            .with_d_model(s.d_model)
            .with_n_layers(s.n_layers)
            .with_n_heads(s.n_heads)
            .with_head_heads(s.head_heads)
            .with_dropout(s.dropout)
            .with_max_len(s.max_len)
            .with_head_residual(s.head_residual)
            .init(device))
    }

    fn freeze_backbone(self) -> Option<Self> {
        Some(SpecFormer::freeze_backbone(self))
    }
}

impl ModalityEncoder for SpecFormer {
    fn info(&self) -> ComponentInfo {
        crate::info("specformer", ComponentKind::Encoder, Some("spectrum"))
    }

    fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    fn encode(&self, input: Tensor<2>) -> Tensor<2> {
        let [b, _] = input.dims();
        self.head.forward(self.tokens(input.reshape([b, self.n_tokens, self.token_dim])))
    }
}
