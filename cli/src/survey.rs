//! `astroclip survey synth`: write a synthetic survey file.

use std::path::PathBuf;

use anyhow::Context;
use astroclip_core::config;
use astroclip_core::survey::{self, SynthConfig, storage};
use clap::Subcommand;

use crate::in_range;

#[derive(Subcommand, Debug)]
pub enum SurveyCommand {
    /// Generate a synthetic survey file: AstroCLIP's HDF5 layout for `.h5`/`.hdf5`, safetensors
    /// for `.safetensors`.
    Synth {
        /// Galaxies to generate (1 to 10 000 000).
        #[arg(long, default_value_t = 2048, value_parser = in_range(config::SYNTH_GALAXIES))]
        n: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Pixels on a side of each image (8 to 1024).
        #[arg(long, default_value_t = 152, value_parser = in_range(config::SYNTH_IMAGE_SIDE))]
        image_size: usize,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn execute(command: SurveyCommand) -> anyhow::Result<()> {
    let SurveyCommand::Synth { n, seed, image_size, out } = command;
    let cfg = SynthConfig { n_galaxies: n, seed, image_size, ..SynthConfig::default() };
    let t = std::time::Instant::now();
    let s = survey::synthesize(&cfg, |_| {});
    let secs = t.elapsed().as_secs_f64();
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "h5" | "hdf5" => astroclip_core::data::astroclip_h5::write(&s, &out)?,
        "safetensors" => storage::save(&s, &out).with_context(|| format!("writing {}", out.display()))?,
        _ => anyhow::bail!("--out {}: use a .h5 (AstroCLIP HDF5 layout) or .safetensors file name", out.display()),
    }
    println!("{n} galaxies in {secs:.2} s ({:.1} galaxies/s) -> {}", n as f64 / secs, out.display());
    println!("data hash {}", s.content_hash());
    Ok(())
}
