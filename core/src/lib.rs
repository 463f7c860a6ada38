//! astroclip core runtime: the synthetic survey, configuration, model assembly, training,
//! embedding and evaluation, and the `astroclip` command line.
//!
//! See `docs/architecture.md` for how the pieces fit and where components plug in.

pub mod bench;
pub mod bind;
pub mod components;
pub mod config;
pub mod conformance;
pub mod data;
pub mod dataset;
pub mod device;
pub mod diff;
pub mod encoders;
pub mod eval;
pub mod interrupt;
pub mod lifecycle;
pub mod model;
pub mod objectives;
pub mod perf;
pub mod plot;
pub mod plugin_encoder;
pub mod plugin_probe;
pub mod report;
pub mod run;
pub mod ssl;
pub mod suite;
pub mod supervised;
pub mod survey;
pub mod template;
pub mod train;
pub mod wasm_client;
