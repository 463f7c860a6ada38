//! Cross-attention embedding head, after AstroCLIP's `CrossAttentionHead`
//! (`astroclip/models/astroclip.py`, Parker et al. 2024 §3.3): one learnable query attends over
//! the backbone's tokens; the attended vector goes through dropout, LayerNorm and a residual
//! GELU MLP (hidden 4×) into the shared embedding space.

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
}

#[derive(Module, Debug)]
pub struct CrossAttentionHead {
    query: Param<Tensor<3>>,
    attention: CrossAttention,
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    dropout: Dropout,
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
        let x = x.clone() + self.fc2.forward(self.dropout.forward(gelu(self.fc1.forward(x))));
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
