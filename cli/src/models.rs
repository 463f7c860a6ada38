//! `astroclip models`: import AstroCLIP's published checkpoints as registry runs.

use std::path::{Path, PathBuf};

use astroclip_core::import::{self, ImportOptions};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Import one of AstroCLIP's checkpoints (astroclip.ckpt, specformer.ckpt, astrodino.ckpt;
    /// the kind is read from the file) as a finished run of the experiment `imported`, usable
    /// wherever a run id is (`objective.init_spectrum`, `objective.init_image`, bench rows, …).
    Import {
        /// The PyTorch checkpoint file.
        file: PathBuf,
        /// Run name (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
        /// Attention heads of the ViT blocks (default: width / 64, DINOv2's head width).
        #[arg(long, value_parser = crate::in_range(1..=256))]
        vit_heads: Option<usize>,
        /// Attention heads of the SpecFormer layers (default: the checkpoint's
        /// `hyper_parameters.num_heads`, else d_model / 128 as AstroCLIP's 768 / 6).
        #[arg(long, value_parser = crate::in_range(1..=256))]
        specformer_heads: Option<usize>,
        /// Attention heads of the cross-attention heads (default: AstroCLIP's 4).
        #[arg(long, value_parser = crate::in_range(1..=256))]
        head_heads: Option<usize>,
    },
}

pub fn execute(command: ModelsCommand, home: &Path, registry: Option<&str>) -> anyhow::Result<()> {
    let ModelsCommand::Import { file, name, vit_heads, specformer_heads, head_heads } = command;
    let opts = ImportOptions { vit_heads, specformer_heads, head_heads };
    let t = std::time::Instant::now();
    let imported = import::import(&file, &opts, &burn::tensor::Device::flex())?;
    let name = name.unwrap_or_else(|| file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
    let reg = astroclip_core::run::open_registry(home, registry)?;
    let id = import::record(&reg, home, &name, &file, &imported)?;
    let r = &imported.report;
    println!(
        "imported {} ({}) as run {id} \"{name}\" in {:.1} s",
        file.display(),
        imported.kind.as_str(),
        t.elapsed().as_secs_f64()
    );
    let loaded: usize = r.loaded.values().sum();
    println!(
        "  {} tensors under `{}` → {loaded} parameters loaded (packed q/k/v tensors split in three), {} skipped",
        r.keys,
        r.top_level_key,
        r.skipped.len()
    );
    for (module, n) in &r.loaded {
        println!("    {module:<20} {n:>5} parameters");
    }
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    for (_, why) in &r.skipped {
        match reasons.iter_mut().find(|(w, _)| w == why) {
            Some((_, n)) => *n += 1,
            None => reasons.push((why, 1)),
        }
    }
    for (why, n) in reasons {
        println!("    skipped {n:>4}: {why}");
    }
    println!("  hyper-parameters:");
    for (k, v, from) in &r.inferred {
        println!("    {k} = {v}  ({from})");
    }
    println!("  use it as: astroclip runs show {id}");
    Ok(())
}
