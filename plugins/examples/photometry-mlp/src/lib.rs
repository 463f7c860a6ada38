//! The photometry encoder as a native plugin over the host tensor interface: a residual MLP
//! from the photometry tokenizer's features to the shared embedding. Its parameters live in
//! the host and are trained by the host's optimizer (see `docs/plugins.md`, "Binding a new
//! modality").
use astroclip_plugin_sdk::export_plugin;
use astroclip_plugin_sdk::tensor::{Graph, GraphEncoder, T, init};

const HIDDEN: usize = 128;

/// features → Linear(F, 128) → GELU → [LayerNorm → Linear(128, 128) → GELU] + residual →
/// LayerNorm → Linear(128, embed).
pub struct PhotometryMlp;
impl GraphEncoder for PhotometryMlp {
    const NAME: &'static str = "mlp";
    const MODALITY: &'static str = "photometry";
    fn forward(g: &Graph<'_>, x: T, embed_dim: usize) -> Result<T, String> {
        let f = g.shape(x)?[1];
        let h = g.gelu(g.dense(x, ("in.weight", "in.bias"), f, HIDDEN)?)?;
        let n1 = (
            g.param("block.norm.weight", &[HIDDEN], init::CONSTANT, 1.0)?,
            g.param("block.norm.bias", &[HIDDEN], init::ZEROS, 0.0)?,
        );
        let r = g.layer_norm(h, n1.0, n1.1, 1e-5)?;
        let r = g.gelu(g.dense(r, ("block.fc.weight", "block.fc.bias"), HIDDEN, HIDDEN)?)?;
        let h = g.add(h, r)?;
        let n2 = (
            g.param("out.norm.weight", &[HIDDEN], init::CONSTANT, 1.0)?,
            g.param("out.norm.bias", &[HIDDEN], init::ZEROS, 0.0)?,
        );
        let h = g.layer_norm(h, n2.0, n2.1, 1e-5)?;
        g.dense(h, ("out.weight", "out.bias"), HIDDEN, embed_dim)
    }
}

export_plugin!(id: "photometry-mlp", version: "0.1.0", tokenizers: [], encoders: [PhotometryMlp]);
