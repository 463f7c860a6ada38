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

/// A settings problem, naming the key inside the encoder's table (`channels`, `n_heads`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct SettingError {
    pub key: String,
    pub message: String,
}

impl SettingError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// What an encoder is built for: the per-object shape its tokenizer declares and the width of
/// the shared embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderInput {
    pub shape: Vec<usize>,
    pub embed_dim: usize,
}

/// A first-party encoder named in an experiment file (`[image.encoder] name = "resnet"`).
///
/// Its settings are its own type: the experiment's encoder table minus `name` deserialises
/// into [`ConfiguredEncoder::Settings`] (which denies unknown keys), so every built-in encoder
/// documents and validates its own settings, and the host never copies them by hand.
pub trait ConfiguredEncoder: ModalityEncoder + Sized {
    /// The name the experiment file uses.
    const NAME: &'static str;
    /// The modality it is written for (`image`, `spectrum`).
    const MODALITY: &'static str;
    /// The settings table, with serde defaults for every key.
    type Settings: serde::Serialize + serde::de::DeserializeOwned + Clone + core::fmt::Debug;

    /// Checks settings that do not depend on the input (non-zero sizes, divisibility).
    fn check(settings: &Self::Settings, embed_dim: usize) -> Result<(), SettingError>;

    /// Builds the encoder (random initialisation on `device`) for `input`.
    fn build(
        settings: &Self::Settings,
        input: &EncoderInput,
        device: &burn::tensor::Device,
    ) -> Result<Self, SettingError>;

    /// The same encoder with only its head trainable (AstroCLIP's frozen-backbone alignment);
    /// `None` when it has no backbone/head split.
    fn freeze_backbone(self) -> Option<Self> {
        None
    }
}
