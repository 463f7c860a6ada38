//! Test plugin: carries the toolchain fingerprint of a plugin built for another target (and by
//! another compiler, which alone would not matter: the tables are plain C ABI); the host must
//! refuse it at load.
use astroclip_plugin_sdk::{ArrayTokenizer, INTERFACE_VERSION, export_plugin};

pub struct Never;

impl ArrayTokenizer for Never {
    const NAME: &'static str = "never";
    const MODALITY: &'static str = "spectrum";
    fn output_len(_shape: &[usize]) -> Option<usize> {
        panic!("a refused plugin must never be called");
    }
    fn tokenize(_input: &[f32], _shape: &[usize], _out: &mut [f32]) -> Result<(), String> {
        panic!("a refused plugin must never be called");
    }
}

export_plugin!(
    interface: INTERFACE_VERSION,
    toolchain: "rustc 1.80.0 (051478957 2024-07-21) / aarch64-apple-darwin / abi v1",
    id: "test-toolchain",
    version: "0.1.0",
    tokenizers: [Never]
);
