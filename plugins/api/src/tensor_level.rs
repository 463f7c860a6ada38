use burn::module::Module;
use burn::tensor::Tensor;

use crate::ComponentInfo;

/// Maps a batch of tokenized inputs `(batch, input_len)` to embeddings `(batch, embed_dim)`.
///
/// The input layout is the one the paired [`crate::Tokenizer`] declares; the encoder reshapes
/// it itself. Runs in the host's autodiff graph and is trained by the host's optimizer.
pub trait ModalityEncoder: Module + core::fmt::Debug {
    fn info(&self) -> ComponentInfo;
    fn embed_dim(&self) -> usize;
    fn encode(&self, input: Tensor<2>) -> Tensor<2>;
}

/// A contrastive objective between two batches of paired embeddings, row `i` of `a` paired
/// with row `i` of `b`. Returns a scalar loss tensor of shape `[1]`.
pub trait ContrastiveLoss: Module + core::fmt::Debug {
    fn info(&self) -> ComponentInfo;
    fn loss(&self, a: Tensor<2>, b: Tensor<2>) -> Tensor<1>;
    /// The current logit scale (multiplier of cosine similarities), for logging.
    fn logit_scale(&self) -> f32;
}
