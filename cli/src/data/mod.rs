//! `astroclip data`: inspect a file, import real files into the AstroCLIP layout, benchmark the loader.

pub mod bench;

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// What a file holds: format, shapes, counts, NaN/inf and ivar≤0 counts, wavelength range.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Pair images and spectra from any supported format into an AstroCLIP-layout HDF5 file.
    Import {
        /// Spectrum files: DESI coadd FITS, SDSS spec FITS, MMU spectrum HDF5 (repeatable).
        #[arg(long, required = true, num_args = 1..)]
        spectra: Vec<PathBuf>,
        /// Image files: Legacy Survey cutout FITS, MMU image HDF5 (repeatable).
        #[arg(long, required = true, num_args = 1..)]
        images: Vec<PathBuf>,
        /// DESI redrock file with the redshifts of the coadd's targets.
        #[arg(long)]
        redrock: Option<PathBuf>,
        /// Pair by `id` (object/target id) or `sky` (position within --radius-arcsec).
        #[arg(long = "match", default_value = "id")]
        match_by: String,
        #[arg(long, default_value_t = 1.0)]
        radius_arcsec: f64,
        #[arg(long, default_value_t = 152)]
        image_size: usize,
        #[arg(long, default_value = "g,r,z", value_delimiter = ',')]
        bands: Vec<String>,
        /// `error` (stop at the first unusable or unpaired object) or `skip` (count and log).
        #[arg(long, default_value = "error")]
        on_bad: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Loader throughput vs the training step's consumption on the same file.
    Bench(crate::data::bench::LoaderBenchArgs),
}

pub fn execute(command: DataCommand, home: &std::path::Path) -> anyhow::Result<()> {
    match command {
        DataCommand::Inspect { file, json } => {
            let r = astroclip_core::data::inspect::inspect(&file)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.text());
            }
        }
        DataCommand::Import { spectra, images, redrock, match_by, radius_arcsec, image_size, bands, on_bad, out } => {
            let on_bad = match on_bad.as_str() {
                "error" => astroclip_core::data::OnBad::Error,
                "skip" => astroclip_core::data::OnBad::Skip,
                other => anyhow::bail!("--on-bad {other:?}: use `error` or `skip`"),
            };
            let spec = astroclip_core::data::inspect::ImportSpec {
                spectra,
                images,
                redrock,
                match_by,
                radius_arcsec,
                image_size,
                bands,
                on_bad,
            };
            let s = astroclip_core::data::inspect::import(&spec, &out)?;
            println!(
                "read {} spectra and {} images; {} pairs written to {} ({} spectra and {} images unpaired, {} objects skipped)",
                s.spectra_read,
                s.images_read,
                s.paired,
                s.out,
                s.spectra_unpaired,
                s.images_unpaired,
                s.skipped.len()
            );
            for (obj, why) in s.skipped.iter().take(20) {
                println!("  skipped {obj}: {why}");
            }
            println!("sha256 {}", s.sha256);
        }
        DataCommand::Bench(args) => {
            crate::data::bench::loader_bench(&args, home)?;
        }
    }
    Ok(())
}
