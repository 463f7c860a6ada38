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
pub use tensor_level::{ContrastiveLoss, ModalityEncoder};
pub use tokenizer::Tokenizer;

/// Version of the component interfaces in this crate.
pub const API_VERSION: &str = "0.1.0";

/// Version of the plugin interface (manifest schema, array and tensor interfaces) that
/// `plugin.toml`'s `api_version` and the version embedded in a plugin artifact are checked
/// against, by the caret rule of [`api_compatible`]. Released versions are frozen.
pub const PLUGIN_INTERFACE_VERSION: &str = "1.0.0";

/// `MAJOR.MINOR.PATCH` with an optional `-pre` / `+build` suffix (ignored for compatibility).
pub fn parse_semver(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.');
    let (a, b, c) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0')))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((num(a)?, num(b)?, num(c)?))
}

/// Caret rule (Cargo's `^`): a plugin built against `plugin` runs on a host providing `host`
/// when the left-most non-zero component matches and the host is not older than the plugin.
pub fn api_compatible(host: &str, plugin: &str) -> bool {
    let (Some(h), Some(p)) = (parse_semver(host), parse_semver(plugin)) else { return false };
    let same_line = match p {
        (0, 0, _) => h.0 == 0 && h.1 == 0 && h.2 == p.2,
        (0, minor, _) => h.0 == 0 && h.1 == minor,
        (major, _, _) => h.0 == major,
    };
    same_line && h >= p
}

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
