//! astroclip core runtime: the synthetic survey, data formats, configuration, model assembly,
//! training, embedding and evaluation. The `astroclip` command line is the `astroclip-cli`
//! crate (`cli/`), built on this library.
//!
//! See `docs/architecture.md` for how the pieces fit and where components plug in.

pub mod ann;
pub mod bind;
pub mod components;
pub mod config;
pub mod data;
pub mod dataset;
pub mod device;
pub mod embed;
pub mod encoders;
pub mod eval;
pub mod import;
pub mod interrupt;
pub mod lifecycle;
pub mod model;
pub mod objectives;
pub mod plugin_encoder;
pub mod plugin_probe;
pub mod query;
pub mod run;
pub mod search;
pub mod ssl;
pub mod supervised;
pub mod survey;
pub mod train;
pub mod wasm_client;
