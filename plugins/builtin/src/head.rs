//! Cross-attention embedding head, after AstroCLIP's `CrossAttentionHead`
//! (`astroclip/models/astroclip.py`, Parker et al. 2024 §3.3): one learnable query attends over
//! the backbone's tokens; the attended vector goes through dropout, LayerNorm and a GELU MLP
//! (hidden 4×) into the shared embedding space. AstroCLIP's `SpectrumHead` adds the MLP as a
//! residual (`x + mlp(x)`), its `ImageHead` does not (`mlp(x)`): [`CrossAttentionHeadConfig::residual`].
//!
//! Parameters and their names in AstroCLIP's state dict (`<modality>_encoder.` prefix):
//! `query` = `cross_attention.query`; `attention` = `cross_attention.multihead_attn` (PyTorch's
//! packed `in_proj_weight`, or `q/k/v_proj_weight` when the token width differs from the
//! embedding width, and `in_proj_bias`, `out_proj`); `norm` = `cross_attention.layernorm`;
//! `fc1`/`fc2` = `mlp.encoder`/`mlp.decoder`.

use astroclip_plugin_api::SettingError;
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::attention::{CrossAttention, CrossAttentionConfig};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor, activation::gelu};

#[derive(Config, Debug)]
pub struct CrossAttentionHeadConfig {
    /// Width of the shared embedding.
    pub embed_dim: usize,
    /// Width of the backbone tokens attended over.
    pub model_dim: usize,
    #[config(default = 4)]
    pub n_heads: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
    /// `x + mlp(x)` (AstroCLIP's `SpectrumHead`) instead of `mlp(x)` (its `ImageHead`).
    #[config(default = true)]
    pub residual: bool,
}

#[derive(Module, Debug)]
pub struct CrossAttentionHead {
    query: Param<Tensor<3>>,
    attention: CrossAttention,
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    dropout: Dropout,
    residual: bool,
}

impl CrossAttentionHeadConfig {
    pub fn init(&self, device: &Device) -> CrossAttentionHead {
        assert!(
            self.embed_dim.is_multiple_of(self.n_heads),
            "embed_dim {} must be divisible by the head count {}",
            self.embed_dim,
            self.n_heads
        );
        let d_head = self.embed_dim / self.n_heads;
        CrossAttentionHead {
            query: Param::from_tensor(Tensor::random([1, 1, self.embed_dim], Distribution::Normal(0.0, 1.0), device)),
            attention: CrossAttentionConfig::new(self.embed_dim, self.model_dim, self.n_heads, self.n_heads, d_head)
                .with_dropout(self.dropout)
                .init(device),
            norm: LayerNormConfig::new(self.embed_dim).init(device),
            fc1: LinearConfig::new(self.embed_dim, 4 * self.embed_dim).init(device),
            fc2: LinearConfig::new(4 * self.embed_dim, self.embed_dim).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            residual: self.residual,
        }
    }
}

impl CrossAttentionHead {
    /// `tokens`: `(batch, n_tokens, model_dim)` → `(batch, embed_dim)`.
    pub fn forward(&self, tokens: Tensor<3>) -> Tensor<2> {
        let [batch, _, _] = tokens.dims();
        let query = self.query.val().repeat_dim(0, batch);
        let x = self.attention.forward(query, tokens, None);
        let x = self.norm.forward(self.dropout.forward(x));
        let mlp = self.fc2.forward(self.dropout.forward(gelu(self.fc1.forward(x.clone()))));
        let x = if self.residual { x + mlp } else { mlp };
        let [_, _, e] = x.dims();
        x.reshape([batch, e])
    }
}

/// Checks the cross-attention head settings every built-in encoder shares.
pub(crate) fn check_settings(head_heads: usize, dropout: f64, embed_dim: usize) -> Result<(), SettingError> {
    if head_heads == 0 || head_heads > embed_dim || !embed_dim.is_multiple_of(head_heads) {
        return Err(SettingError::new("head_heads", format!("must divide model.embed_dim = {embed_dim}")));
    }
    if !(0.0..1.0).contains(&dropout) {
        return Err(SettingError::new("dropout", format!("{dropout} is not in [0, 1)")));
    }
    Ok(())
}
