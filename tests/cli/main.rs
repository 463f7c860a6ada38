//! End-to-end tests that drive the `astroclip` binary, one module per command group, in one test
//! binary (one link); every test works in its own temporary directory (registry and runs under
//! `--home`).

mod bench;
mod bind;
mod common;
mod embed;
mod models;
mod objectives;
mod plugin_encoders;
mod plugins;
mod run;
mod runs;
