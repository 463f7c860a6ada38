//! Image encoder `vit`: a Vision Transformer with DINOv2's architecture (Oquab et al. 2023,
//! "DINOv2: Learning Robust Visual Features without Supervision"; code:
//! `dinov2/models/vision_transformer.py` and `dinov2/layers/` in facebookresearch/dinov2) as
//! AstroCLIP configures it for AstroDINO (`astroclip/astrodino/config.yaml` in
//! PolymathicAI/AstroCLIP: `vit_large`, patch 12, LayerScale 1e-5, biases on qkv, proj and
//! the MLP FFN), followed by AstroCLIP's cross-attention head (`ImageHead` in
//! `astroclip/models/astroclip.py`, Parker et al. 2024 §3.3).
//!
//! - Patch embedding: a `patch × patch` convolution with stride `patch`; tokens in row-major
//!   order of the patch grid.
//! - Blocks (pre-LayerNorm, eps 1e-6): `x + ls1(attn(norm1(x)))`, `x + ls2(mlp(norm2(x)))`,
//!   packed `qkv` projection, scale `head_dim^-½`, GELU MLP of `mlp_ratio × width`.
//! - `positions = true` is DINOv2's `forward_features`: a CLS token is prepended and the
//!   learned positional embedding (a `pos_grid²` grid plus the CLS position) is added,
//!   bicubically interpolated to the input's grid exactly as DINOv2's
//!   `interpolate_pos_encoding` does (scale factor `(grid + 0.1) / pos_grid`, A = −0.75,
//!   no antialiasing). `positions = false` is AstroCLIP's `ImageHead.forward`: patch
//!   embedding → blocks → norm, with neither CLS token nor positions.
//! - `swap_xy`: AstroCLIP's collator turns `(B, H, W, C)` images into `(B, C, W, H)`
//!   (`permute(0, 3, 2, 1)`), which swaps the spatial axes; weights trained that way see the
//!   same orientation only when the axes are swapped here too.
//!
//! Parameter names follow DINOv2's state dict (`cls_token`, `pos_embed`, `mask_token`,
//! `patch_embed.proj`, `blocks.<i>.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1,
//! mlp.fc2, ls2.gamma}`, `norm`) under `backbone.`; a checkpoint written with
//! `block_chunks > 0` names the blocks `blocks.<chunk>.<i>`, which the importer maps.

use astroclip_plugin_api::{
    ComponentInfo, ComponentKind, ConfiguredEncoder, EncoderInput, ModalityEncoder, SettingError,
};
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::module::attention;
use burn::tensor::{Device, Distribution, Tensor, TensorData, activation::gelu};

use crate::head::{CrossAttentionHead, CrossAttentionHeadConfig};

/// DINOv2's LayerNorm epsilon (`partial(nn.LayerNorm, eps=1e-6)`).
const LN_EPS: f64 = 1e-6;
/// DINOv2's `interpolate_offset`, added to the target grid before the scale factor is taken.
const INTERPOLATE_OFFSET: f64 = 0.1;
/// PyTorch's bicubic coefficient.
const CUBIC_A: f64 = -0.75;

/// The `[image.encoder]` table of `name = "vit"` (defaults: a small ViT for CPU runs; AstroDINO
/// is `patch_size = 12, width = 1024, depth = 24, n_heads = 16, pos_grid = 12`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VitSettings {
    /// Side of the square patches in pixels; must divide the tokenizer's image side.
    pub patch_size: usize,
    /// Width of the tokens (DINOv2's `embed_dim`).
    pub width: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads per block; must divide `width`.
    pub n_heads: usize,
    /// Hidden width of the block MLP as a multiple of `width`.
    pub mlp_ratio: usize,
    /// Initial value of the LayerScale factors.
    pub layerscale: f64,
    /// DINOv2's CLS token and positional embedding (true) or AstroCLIP's `ImageHead` path
    /// without either (false).
    pub positions: bool,
    /// Side of the positional-embedding grid (DINOv2: `img_size / patch_size`); the input's
    /// grid when absent. Other grids are reached by bicubic interpolation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pos_grid: Option<usize>,
    /// Swap the image's two spatial axes first (AstroCLIP's collator does).
    pub swap_xy: bool,
    /// Attention heads of the cross-attention head (must divide the embedding width).
    pub head_heads: usize,
    /// `x + mlp(x)` in the head (AstroCLIP's `ImageHead`: false).
    pub head_residual: bool,
    /// Dropout of the head.
    pub dropout: f64,
}

impl Default for VitSettings {
    fn default() -> Self {
        Self {
            patch_size: 8,
            width: 64,
            depth: 2,
            n_heads: 4,
            mlp_ratio: 4,
            layerscale: 1e-5,
            positions: true,
            pos_grid: None,
            swap_xy: false,
            head_heads: 4,
            head_residual: false,
            dropout: 0.1,
        }
    }
}

#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: Conv2d,
}

#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    n_heads: usize,
}

impl Attention {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, n, c] = x.dims();
        let h = self.n_heads;
        // (B, N, 3, H, C/H) → three (B, H, N, C/H), as DINOv2's reshape + permute(2, 0, 3, 1, 4).
        let qkv = self.qkv.forward(x).reshape([b, n, 3, h, c / h]).permute([2, 0, 3, 1, 4]);
        let part = |i: usize| qkv.clone().narrow(0, i, 1).reshape([b, h, n, c / h]);
        let y = attention(part(0), part(1), part(2), None, None, Default::default());
        self.proj.forward(y.swap_dims(1, 2).reshape([b, n, c]))
    }
}

#[derive(Module, Debug)]
pub struct LayerScale {
    pub gamma: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

#[derive(Module, Debug)]
pub struct Block {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub ls1: LayerScale,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
    pub ls2: LayerScale,
}

impl Block {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let ls = |s: &LayerScale, y: Tensor<3>| y * s.gamma.val().unsqueeze_dims::<3>(&[0, 1]);
        let x = x.clone() + ls(&self.ls1, self.attn.forward(self.norm1.forward(x)));
        let y = self.mlp.fc2.forward(gelu(self.mlp.fc1.forward(self.norm2.forward(x.clone()))));
        x + ls(&self.ls2, y)
    }
}

/// DINOv2's `DinoVisionTransformer` without registers and with an identity head.
#[derive(Module, Debug)]
pub struct VisionTransformer {
    pub cls_token: Param<Tensor<3>>,
    pub pos_embed: Param<Tensor<3>>,
    pub mask_token: Param<Tensor<2>>,
    pub patch_embed: PatchEmbed,
    pub blocks: Vec<Block>,
    pub norm: LayerNorm,
    patch_size: usize,
    pos_grid: usize,
}

/// The architecture of a [`VisionTransformer`].
#[derive(Debug, Clone, PartialEq)]
pub struct VitShape {
    pub patch_size: usize,
    pub width: usize,
    pub depth: usize,
    pub n_heads: usize,
    pub mlp_ratio: usize,
    pub layerscale: f64,
    pub pos_grid: usize,
}

impl VitShape {
    /// A randomly initialised backbone (truncated-normal-like N(0, 0.02) tokens and positions,
    /// as DINOv2's `init_weights` up to truncation; burn's default Linear/Conv init).
    pub fn init(&self, device: &Device) -> VisionTransformer {
        let d = self.width;
        let n_pos = 1 + self.pos_grid * self.pos_grid;
        let normal = Distribution::Normal(0.0, 0.02);
        let blocks = (0..self.depth)
            .map(|_| Block {
                norm1: LayerNormConfig::new(d).with_epsilon(LN_EPS).init(device),
                attn: Attention {
                    qkv: LinearConfig::new(d, 3 * d).init(device),
                    proj: LinearConfig::new(d, d).init(device),
                    n_heads: self.n_heads,
                },
                ls1: LayerScale { gamma: Param::from_tensor(Tensor::full([d], self.layerscale, device)) },
                norm2: LayerNormConfig::new(d).with_epsilon(LN_EPS).init(device),
                mlp: Mlp {
                    fc1: LinearConfig::new(d, self.mlp_ratio * d).init(device),
                    fc2: LinearConfig::new(self.mlp_ratio * d, d).init(device),
                },
                ls2: LayerScale { gamma: Param::from_tensor(Tensor::full([d], self.layerscale, device)) },
            })
            .collect();
        VisionTransformer {
            cls_token: Param::from_tensor(Tensor::random([1, 1, d], normal, device)),
            pos_embed: Param::from_tensor(Tensor::random([1, n_pos, d], normal, device)),
            mask_token: Param::from_tensor(Tensor::zeros([1, d], device)),
            patch_embed: PatchEmbed {
                proj: Conv2dConfig::new([3, d], [self.patch_size, self.patch_size])
                    .with_stride([self.patch_size, self.patch_size])
                    .init(device),
            },
            blocks,
            norm: LayerNormConfig::new(d).with_epsilon(LN_EPS).init(device),
            patch_size: self.patch_size,
            pos_grid: self.pos_grid,
        }
    }
}

impl VisionTransformer {
    /// Token width.
    pub fn width(&self) -> usize {
        self.norm.gamma.dims()[0]
    }

    /// Patch tokens `(B, N, width)` of `(B, 3, H, W)` images, row-major over the patch grid.
    fn patches(&self, x: Tensor<4>) -> Tensor<3> {
        let y = self.patch_embed.proj.forward(x);
        let [b, d, gh, gw] = y.dims();
        y.reshape([b, d, gh * gw]).swap_dims(1, 2)
    }

    /// AstroCLIP's `ImageHead` backbone path: patch embedding → blocks → norm.
    pub fn patch_tokens(&self, x: Tensor<4>) -> Tensor<3> {
        self.run(self.patches(x))
    }

    /// DINOv2's `forward_features`: CLS token and interpolated positions, blocks, norm;
    /// `(B, 1 + N, width)` with the CLS token first.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<3> {
        let [b, _, h, w] = x.dims();
        let (gh, gw) = (h / self.patch_size, w / self.patch_size);
        let x = self.patches(x);
        let cls = self.cls_token.val().repeat_dim(0, b);
        let x = Tensor::cat(vec![cls, x], 1) + self.positions(gh, gw);
        self.run(x)
    }

    /// DINOv2's `forward` (identity head): the normalised CLS token `(B, width)`.
    pub fn cls_token(&self, x: Tensor<4>) -> Tensor<2> {
        let t = self.forward_features(x);
        let [b, _, d] = t.dims();
        t.narrow(1, 0, 1).reshape([b, d])
    }

    fn run(&self, mut x: Tensor<3>) -> Tensor<3> {
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.norm.forward(x)
    }

    /// The positional embedding `(1, 1 + gh·gw, width)` for a `gh × gw` patch grid.
    fn positions(&self, gh: usize, gw: usize) -> Tensor<3> {
        let pos = self.pos_embed.val();
        let g = self.pos_grid;
        if gh == g && gw == g {
            return pos;
        }
        let d = self.width();
        let device = pos.device();
        let cls = pos.clone().narrow(1, 0, 1);
        let grid = pos.narrow(1, 1, g * g).reshape([g, g * d]);
        let weights = |out: usize| {
            let w = bicubic_weights(g, out, (out as f64 + INTERPOLATE_OFFSET) / g as f64);
            Tensor::<2>::from_data(TensorData::new(w, [out, g]), &device)
        };
        // Separable: rows first ((gh × g) · (g × g·d)), then columns for every row.
        let rows = weights(gh).matmul(grid).reshape([gh, g, d]);
        let cols = weights(gw).unsqueeze_dim::<3>(0).repeat_dim(0, gh).matmul(rows);
        Tensor::cat(vec![cls, cols.reshape([1, gh * gw, d])], 1)
    }
}

/// PyTorch's `upsample_bicubic2d` along one axis (`align_corners = False`, the scale factor
/// given, as `F.interpolate(..., scale_factor=s)` uses it): an `(out × input)` matrix whose
/// row `i` holds the weights of source samples, indices clamped to the border.
pub fn bicubic_weights(input: usize, out: usize, scale: f64) -> Vec<f32> {
    let cc1 = |x: f64| ((CUBIC_A + 2.0) * x - (CUBIC_A + 3.0)) * x * x + 1.0;
    let cc2 = |x: f64| ((CUBIC_A * x - 5.0 * CUBIC_A) * x + 8.0 * CUBIC_A) * x - 4.0 * CUBIC_A;
    let mut w = vec![0f64; out * input];
    for i in 0..out {
        // area_pixel_compute_source_index with cubic = true: no clamping at 0.
        let src = (i as f64 + 0.5) / scale - 0.5;
        let x0 = src.floor();
        let t = src - x0;
        let coeffs = [cc2(t + 1.0), cc1(t), cc1(1.0 - t), cc2(2.0 - t)];
        for (k, c) in coeffs.iter().enumerate() {
            let j = (x0 as i64 - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
            w[i * input + j] += c;
        }
    }
    w.into_iter().map(|v| v as f32).collect()
}

/// The `vit` image encoder: the backbone and AstroCLIP's cross-attention head.
#[derive(Module, Debug)]
pub struct VitEncoder {
    pub backbone: VisionTransformer,
    pub head: CrossAttentionHead,
    side: usize,
    positions: bool,
    swap_xy: bool,
    embed_dim: usize,
}

impl VitEncoder {
    /// The same encoder with the backbone excluded from training.
    pub fn freeze_backbone(mut self) -> Self {
        self.backbone = self.backbone.no_grad();
        self
    }

    /// Backbone tokens of flattened `(B, 3·side·side)` images, as the head sees them.
    pub fn tokens(&self, input: Tensor<2>) -> Tensor<3> {
        let x = self.oriented(input);
        if self.positions { self.backbone.forward_features(x) } else { self.backbone.patch_tokens(x) }
    }

    /// `(B, 3, side, side)` images in the orientation the backbone sees (after `swap_xy`).
    pub fn oriented(&self, input: Tensor<2>) -> Tensor<4> {
        let [b, _] = input.dims();
        let x = input.reshape([b, 3, self.side, self.side]);
        if self.swap_xy { x.swap_dims(2, 3) } else { x }
    }
}

impl ConfiguredEncoder for VitEncoder {
    const NAME: &'static str = "vit";
    const MODALITY: &'static str = "image";
    type Settings = VitSettings;

    fn check(s: &VitSettings, embed_dim: usize) -> Result<(), SettingError> {
        // width ≤ 4096 keeps each weight matrix (width × mlp_ratio·width) in the hundreds of MB.
        for (key, v, max) in [
            ("patch_size", s.patch_size, 512),
            ("width", s.width, 4096),
            ("depth", s.depth, 256),
            ("n_heads", s.n_heads, 256),
            ("mlp_ratio", s.mlp_ratio, 16),
        ] {
            if !(1..=max).contains(&v) {
                return Err(SettingError::new(key, format!("{v} is outside [1, {max}]")));
            }
        }
        if !s.width.is_multiple_of(s.n_heads) {
            return Err(SettingError::new("n_heads", format!("must divide width = {}", s.width)));
        }
        if !(s.layerscale.is_finite() && s.layerscale > 0.0 && s.layerscale <= 1.0) {
            return Err(SettingError::new("layerscale", format!("{} is not in (0, 1]", s.layerscale)));
        }
        if let Some(g) = s.pos_grid
            && !(1..=512).contains(&g)
        {
            return Err(SettingError::new("pos_grid", format!("{g} is outside [1, 512]")));
        }
        crate::head::check_settings(s.head_heads, s.dropout, embed_dim)
    }

    fn build(s: &VitSettings, input: &EncoderInput, device: &Device) -> Result<Self, SettingError> {
        Self::check(s, input.embed_dim)?;
        let side = match input.shape[..] {
            [3, h, w] if h == w && h > 0 => h,
            _ => {
                return Err(SettingError::new(
                    "name",
                    format!("vit reads square (3, side, side) images; the tokenizer gives {:?}", input.shape),
                ));
            }
        };
        if !side.is_multiple_of(s.patch_size) {
            return Err(SettingError::new(
                "patch_size",
                format!(
                    "{} does not divide the tokenizer's {side}-pixel images (image.crop / image.downsample)",
                    s.patch_size
                ),
            ));
        }
        let shape = VitShape {
            patch_size: s.patch_size,
            width: s.width,
            depth: s.depth,
            n_heads: s.n_heads,
            mlp_ratio: s.mlp_ratio,
            layerscale: s.layerscale,
            pos_grid: s.pos_grid.unwrap_or(side / s.patch_size),
        };
        Ok(VitEncoder {
            backbone: shape.init(device),
            head: CrossAttentionHeadConfig::new(input.embed_dim, s.width)
                .with_n_heads(s.head_heads)
                .with_dropout(s.dropout)
                .with_residual(s.head_residual)
                .init(device),
            side,
            positions: s.positions,
            swap_xy: s.swap_xy,
            embed_dim: input.embed_dim,
        })
    }

    fn freeze_backbone(self) -> Option<Self> {
        Some(VitEncoder::freeze_backbone(self))
    }
}

impl ModalityEncoder for VitEncoder {
    fn info(&self) -> ComponentInfo {
        crate::info("vit", ComponentKind::Encoder, Some("image"))
    }

    fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    fn encode(&self, input: Tensor<2>) -> Tensor<2> {
        self.head.forward(self.tokens(input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of an interpolation matrix sum to one (a constant field stays constant), and an
    /// unchanged grid at scale 1 is the identity.
    #[test]
    fn bicubic_weights_preserve_constants_and_identity() {
        for (input, out) in [(12, 8), (12, 16), (4, 7)] {
            let w = bicubic_weights(input, out, (out as f64 + 0.1) / input as f64);
            for row in w.chunks(input) {
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{row:?}");
            }
        }
        let id = bicubic_weights(5, 5, 1.0);
        for i in 0..5 {
            for j in 0..5 {
                assert!((id[i * 5 + j] - f32::from(i == j)).abs() < 1e-7);
            }
        }
    }
}
