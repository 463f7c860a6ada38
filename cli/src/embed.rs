//! `astroclip embed`: apply a model to catalogues, writing Parquet (see `astroclip_core::embed`);
//! `astroclip embed merge`: join the shards of one embed.

use std::path::{Path, PathBuf};

use astroclip_core::data::OnBad;
use astroclip_core::embed::{self, EmbedOptions, Modality};

use crate::in_range;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EmbedArgs {
    #[command(subcommand)]
    command: Option<EmbedCommand>,
    /// A finished contrastive run or imported AstroCLIP model (id or unique prefix).
    #[arg(long, required = true)]
    model: Option<String>,
    /// Data files (AstroCLIP HDF5 or survey .safetensors; other formats through `astroclip data import`).
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Modalities to embed, comma-separated.
    #[arg(long, default_value = "image,spectrum", value_delimiter = ',', value_parser = Modality::parse)]
    modalities: Vec<Modality>,
    /// The Parquet file to write.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Embed only shard i of N (`i/N`, 0-based); join the shards with `astroclip embed merge`.
    #[arg(long, default_value = "0/1", value_parser = parse_shard)]
    shard: (usize, usize),
    /// Rows per Parquet row group, which is also the unit a resumed embed keeps.
    #[arg(long, default_value_t = 1024, value_parser = in_range(1..=1_000_000))]
    chunk_rows: usize,
    /// Objects per model batch.
    #[arg(long, default_value_t = 128, value_parser = in_range(1..=65_536))]
    batch_size: usize,
    /// What to do with an object whose data cannot be tokenized: error, or skip it (listed).
    #[arg(long, default_value = "error", value_parser = parse_on_bad)]
    on_bad: OnBad,
    /// Stop after writing this many row groups; the embed stays resumable (rerun the command).
    #[arg(long, value_parser = in_range(1..=usize::MAX))]
    stop_after: Option<usize>,
    /// Compute device: flex, tch or tch-cuda:N.
    #[arg(long, default_value = "flex")]
    device: String,
}

#[derive(clap::Subcommand, Debug)]
pub enum EmbedCommand {
    /// Join the shard files of one embed (every shard i/N once) into the file one process writes.
    Merge {
        /// Shard files, in any order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s.split_once('/').ok_or_else(|| format!("{s:?} is not of the form i/N"))?;
    let (i, n): (usize, usize) = (
        i.parse().map_err(|e| format!("{s:?}: shard index: {e}"))?,
        n.parse().map_err(|e| format!("{s:?}: shard count: {e}"))?,
    );
    if n == 0 || i >= n || n > 100_000 {
        return Err(format!("{s:?}: need 0 ≤ i < N ≤ 100000"));
    }
    Ok((i, n))
}

fn parse_on_bad(s: &str) -> Result<OnBad, String> {
    match s {
        "error" => Ok(OnBad::Error),
        "skip" => Ok(OnBad::Skip),
        other => Err(format!("{other:?}: use error or skip")),
    }
}

pub fn execute(args: EmbedArgs, home: &Path, registry: Option<&str>) -> anyhow::Result<()> {
    if let Some(EmbedCommand::Merge { files, out }) = args.command {
        let rows = embed::merge(&files, &out)?;
        println!("merged {} shards, {rows} rows -> {}", files.len(), out.display());
        return Ok(());
    }
    let (Some(model), Some(out)) = (args.model, args.out) else {
        anyhow::bail!("--model and --out are required");
    };
    let device = astroclip_core::device::parse(&args.device)?;
    let o = embed::embed(&EmbedOptions {
        model,
        data: args.data,
        modalities: args.modalities,
        out,
        shard: args.shard,
        chunk_rows: args.chunk_rows,
        batch_size: args.batch_size,
        on_bad: args.on_bad,
        stop_after: args.stop_after,
        device,
        home: home.to_path_buf(),
        registry: registry.map(str::to_string),
    })?;
    for (id, why) in o.skipped.iter().take(20) {
        println!("skipped {id}: {why}");
    }
    if o.skipped.len() > 20 {
        println!("… and {} more skipped", o.skipped.len() - 20);
    }
    let rate = o.rows_written as f64 / o.secs.max(1e-9);
    let kept =
        if o.resumed_chunks > 0 { format!(" ({} kept from an earlier run)", o.resumed_chunks) } else { String::new() };
    println!(
        "embedded {} objects in {:.1} s ({rate:.1} objects/s); {} of {} row groups written now{kept}",
        o.rows_written, o.secs, o.written_chunks, o.chunks
    );
    if o.complete {
        println!("-> {}", o.out.display());
    } else {
        println!("stopped early; rerun the same command to finish {}", o.out.display());
    }
    Ok(())
}
