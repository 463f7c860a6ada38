//! Test plugin built against plugin interface 1.0 (the frozen SDK 1.0.0 in
//! `plugins/sdk/frozen/v1_0`): one tokenizer, `spectrum-moments`, mapping a spectrum of any
//! length to its mean and its population standard deviation. The host must load and run it.

use astroclip_plugin_sdk::{ArrayTokenizer, export_plugin};

pub struct Moments;

impl ArrayTokenizer for Moments {
    const NAME: &'static str = "spectrum-moments";
    const MODALITY: &'static str = "spectrum";

    fn output_len(shape: &[usize]) -> Option<usize> {
        match shape {
            [n] if *n > 0 => Some(2),
            _ => None,
        }
    }

    fn tokenize(input: &[f32], _shape: &[usize], out: &mut [f32]) -> Result<(), String> {
        let n = input.len() as f64;
        let mean = input.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = input.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        out[0] = mean as f32;
        out[1] = var.sqrt() as f32;
        Ok(())
    }
}

export_plugin!(id: "legacy-v1-0", version: "0.1.0", tokenizers: [Moments]);
