//! Component interfaces of the astroclip platform.
//!
//! Every modality, loss and probe the core uses reaches it through one of these traits; the
//! core never names a concrete component type outside [`crate`]-level registration. The split
//! follows the plugin design of the platform:
//!
//! * **data-level** interfaces exchange plain arrays with explicit shapes:
//!   [`Tokenizer`] (raw observation → model input) and [`Probe`] (embeddings → predictions).
//!   These are the ones a dynamic-library or WASM plugin can implement without sharing any
//!   Rust type with the host.
//! * **tensor-level** interfaces run inside the host's autodiff graph: [`ModalityEncoder`]
//!   (model input → embedding) and [`ContrastiveLoss`]. In this version they are Rust traits
//!   over burn tensors, implemented by statically linked components; the host-owned tensor
//!   interface for foreign plugins is a later, separately versioned API.
//!
//! [`API_VERSION`] is bumped (semver) whenever a trait here changes shape.

mod observation;
mod probe;
mod tensor_level;
mod tokenizer;

pub use observation::{ImageView, Observation, SpectrumView};
pub use probe::{Probe, ProbeInput};
pub use tensor_level::{ConfiguredEncoder, ContrastiveLoss, EncoderInput, ModalityEncoder, SettingError};
pub use tokenizer::Tokenizer;

/// Version of the component interfaces in this crate.
pub const API_VERSION: &str = "0.1.0";

/// Version of the plugin interface (manifest schema, array and tensor interfaces), defined by
/// the dependency-free SDK crate so plugins and the plugin host need not link burn.
pub use astroclip_plugin_sdk::{INTERFACE_VERSION as PLUGIN_INTERFACE_VERSION, api_compatible, parse_semver};

/// What a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    Tokenizer,
    Encoder,
    Loss,
    Probe,
}

/// Identity of a component, recorded with every run that used it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ComponentInfo {
    /// Stable id, `^[a-z0-9-]+$`.
    pub id: String,
    /// Semver version of the component itself.
    pub version: String,
    pub kind: ComponentKind,
    /// Modality served (`image`, `spectrum`, …); `None` for losses and probes.
    pub modality: Option<String>,
}

/// Errors a component returns to the host, as data: never a panic across the interface.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The input does not have the shape or layout the component needs.
    #[error("{component}: bad input shape: {detail}")]
    Shape { component: String, detail: String },
    /// The input holds values the component refuses (NaN, inf, empty, …).
    #[error("{component}: invalid value in object {object}: {detail}")]
    InvalidValue { component: String, object: String, detail: String },
    /// Anything else, with a message naming what to do.
    #[error("{component}: {detail}")]
    Other { component: String, detail: String },
}
