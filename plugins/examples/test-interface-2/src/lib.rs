//! Test plugin: claims plugin interface 2.0.0, which a 1.x host must refuse before any call.
use astroclip_plugin_sdk::{ArrayTokenizer, TOOLCHAIN, export_plugin};

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

export_plugin!(interface: "2.0.0", toolchain: TOOLCHAIN, id: "test-interface-2", version: "0.1.0", tokenizers: [Never]);
