//! Test plugin: encoders over the host tensor interface exercising its operations (an MLP, a
//! self-attention block, a small CNN) and one that breaks the interface's rule (a program that
//! changes between calls). Built and loaded by `tests/plugin_tensor.rs`.
use astroclip_plugin_sdk::export_plugin;
use astroclip_plugin_sdk::tensor::{Graph, GraphEncoder, GraphLoss, T, along, init, scalar, unary};

/// x → Linear(in, 16) → GELU → LayerNorm → Linear(16, embed).
pub struct Mlp;
impl GraphEncoder for Mlp {
    const NAME: &'static str = "mlp";
    const MODALITY: &'static str = "test";
    fn forward(g: &Graph<'_>, x: T, embed_dim: usize) -> Result<T, String> {
        let d = g.shape(x)?[1];
        let h = g.dense(x, ("fc1.weight", "fc1.bias"), d, 16)?;
        let h = g.gelu(h)?;
        let gamma = g.param("norm.weight", &[16], init::CONSTANT, 1.0)?;
        let beta = g.param("norm.bias", &[16], init::ZEROS, 0.0)?;
        let h = g.layer_norm(h, gamma, beta, 1e-5)?;
        g.dense(h, ("fc2.weight", "fc2.bias"), 16, embed_dim)
    }
}

/// Input (batch, 4·D) as 4 tokens of width D → single-head self-attention → mean over tokens
/// → Linear(D, embed).
pub struct Attention;
impl GraphEncoder for Attention {
    const NAME: &'static str = "attention";
    const MODALITY: &'static str = "test";
    fn forward(g: &Graph<'_>, x: T, embed_dim: usize) -> Result<T, String> {
        let s = g.shape(x)?;
        let (n, d) = (s[0], s[1] / 4);
        let t = g.reshape(x, &[n, 4, d])?;
        let q = g.dense(t, ("q.weight", "q.bias"), d, d)?;
        let k = g.dense(t, ("k.weight", "k.bias"), d, d)?;
        let v = g.dense(t, ("v.weight", "v.bias"), d, d)?;
        let scores = g.matmul(q, g.transpose(k, 1, 2)?)?;
        let scores = g.scalar(astroclip_plugin_sdk::tensor::scalar::MUL, scores, 1.0 / (d as f32).sqrt())?;
        let att = g.along(along::SOFTMAX, scores, 2)?;
        let o = g.matmul(att, v)?;
        let pooled = g.reshape(g.along(along::MEAN, o, 1)?, &[n, d])?;
        let pooled = g.unary(unary::TANH, pooled)?;
        g.dense(pooled, ("out.weight", "out.bias"), d, embed_dim)
    }
}

/// Input (batch, 3·H·W) as a 3-band image → Conv 3×3 (8 channels, padding 1) → ReLU →
/// global mean pool → concat with a 2×-strided conv's pool → Linear(16, embed).
pub struct Cnn;
impl GraphEncoder for Cnn {
    const NAME: &'static str = "cnn";
    const MODALITY: &'static str = "test";
    fn forward(g: &Graph<'_>, x: T, embed_dim: usize) -> Result<T, String> {
        let s = g.shape(x)?;
        let side = ((s[1] / 3) as f64).sqrt() as usize;
        let img = g.reshape(x, &[s[0], 3, side, side])?;
        let pool = |t: T| -> Result<T, String> {
            let t = g.along(along::MEAN, g.along(along::MEAN, t, 3)?, 2)?;
            g.reshape(t, &[s[0], 8])
        };
        let w1 = g.param("conv1.weight", &[8, 3, 3, 3], init::UNIFORM_FAN_IN, 1.0)?;
        let b1 = g.param("conv1.bias", &[8], init::ZEROS, 0.0)?;
        let a = pool(g.relu(g.conv2d(img, w1, Some(b1), 1, 1)?)?)?;
        let w2 = g.param("conv2.weight", &[8, 3, 3, 3], init::UNIFORM_FAN_IN, 1.0)?;
        let b = pool(g.relu(g.conv2d(img, w2, None, 2, 1)?)?)?;
        let both = g.concat(&[a, b], 1)?;
        g.dense(both, ("out.weight", "out.bias"), 16, embed_dim)
    }
}

/// Breaks the rule: declares a different parameter on every call after the first.
pub struct Changing;
static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
impl GraphEncoder for Changing {
    const NAME: &'static str = "changing";
    const MODALITY: &'static str = "test";
    fn forward(g: &Graph<'_>, x: T, embed_dim: usize) -> Result<T, String> {
        let d = g.shape(x)?[1];
        let name = if CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 { "w" } else { "w2" };
        let w = g.param(name, &[d, embed_dim], init::NORMAL, 0.1)?;
        g.linear(x, w, None)
    }
}

/// Asks for an operation on incompatible shapes: the host's error comes back as data.
pub struct BadShapes;
impl GraphEncoder for BadShapes {
    const NAME: &'static str = "bad-shapes";
    const MODALITY: &'static str = "test";
    fn forward(g: &Graph<'_>, x: T, embed_dim: usize) -> Result<T, String> {
        let w = g.param("w", &[3, embed_dim], init::NORMAL, 0.1)?;
        g.matmul(x, w)
    }
}

/// Symmetric InfoNCE (CLIP; AstroCLIP's CLIPLoss) written over the tensor interface, with a
/// fixed logit scale of 15.5: L = s · â b̂ᵀ, loss = (CE(L) + CE(Lᵀ)) / 2 with labels on the
/// diagonal, CE(L)_i = logsumexp_j L_ij − L_ii, and L_ii = s · â_i · b̂_i. (No `eps` clamp on
/// the norms: the host's built-in clamps at 1e-3, which never binds for these inputs.)
pub struct InfoNce;
impl GraphLoss for InfoNce {
    const NAME: &'static str = "infonce";
    fn loss(g: &Graph<'_>, a: T, b: T) -> Result<T, String> {
        let unit = |x: T| -> Result<T, String> {
            let norm = g.unary(unary::SQRT, g.along(along::SUM, g.mul(x, x)?, 1)?)?;
            g.div(x, norm)
        };
        let (a, b) = (unit(a)?, unit(b)?);
        let n = g.shape(a)?[0];
        let logits = g.scalar(scalar::MUL, g.matmul(a, g.transpose(b, 0, 1)?)?, 15.5)?;
        let positive = g.scalar(scalar::MUL, g.along(along::SUM, g.mul(a, b)?, 1)?, 15.5)?; // (n, 1)
        let lse = |l: T, dim: usize| -> Result<T, String> {
            g.unary(unary::LOG, g.along(along::SUM, g.unary(unary::EXP, l)?, dim)?)
        };
        let rows = g.sub(lse(logits, 1)?, positive)?; // (n, 1)
        let cols = g.sub(g.transpose(lse(logits, 0)?, 0, 1)?, positive)?; // (n, 1)
        let total = g.along(along::SUM, g.reshape(g.add(rows, cols)?, &[n])?, 0)?; // (1,)
        g.scalar(scalar::MUL, total, 0.5 / n as f32)
    }
}

export_plugin!(
    id: "tensor-zoo",
    version: "0.1.0",
    tokenizers: [],
    encoders: [Mlp, Attention, Cnn, Changing, BadShapes],
    losses: [InfoNce]
);
