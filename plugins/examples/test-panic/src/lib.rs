//! Test plugin: its tokenizer panics. The SDK catches the panic inside the plugin and returns
//! it to the host as an error; the host must keep working.
use astroclip_plugin_sdk::{ArrayTokenizer, export_plugin};

pub struct Panics;

impl ArrayTokenizer for Panics {
    const NAME: &'static str = "panics";
    const MODALITY: &'static str = "spectrum";
    fn output_len(shape: &[usize]) -> Option<usize> {
        shape.first().copied()
    }
    fn tokenize(_input: &[f32], shape: &[usize], _out: &mut [f32]) -> Result<(), String> {
        panic!("deliberate panic on a spectrum of {} bins", shape[0]);
    }
}

export_plugin!(id: "test-panic", version: "0.1.0", tokenizers: [Panics]);
