//! `astroclip data bench`: how fast the loader delivers batches compared with how fast the
//! training step consumes them, on the same file and machine, in one run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::optim::GradientsParams;

use astroclip_core::config::{self, CliOverrides};
use astroclip_core::data::loader::{LoaderConfig, Plan, Prefetcher, TokenizerPair};
use astroclip_core::data::{self, OnBad};
use astroclip_core::{components, device, train};

#[derive(clap::Args, Debug, Clone)]
pub struct LoaderBenchArgs {
    /// AstroCLIP-layout HDF5 (or survey safetensors) file.
    pub file: PathBuf,
    /// Experiment whose tokenizers and model are used (default: the quickstart preset).
    #[arg(long)]
    pub experiment: Option<PathBuf>,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Batches the loader delivers per measurement.
    #[arg(long, default_value_t = 40)]
    pub batches: usize,
    /// Worker-thread counts to measure.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    pub workers: Vec<usize>,
    /// Training steps timed (after 2 warm-up steps).
    #[arg(long, default_value_t = 8)]
    pub train_steps: usize,
    #[arg(long, default_value = "flex")]
    pub device: String,
}

/// `home` holds the installed plugins a plugin encoder in the configuration comes from.
pub fn loader_bench(args: &LoaderBenchArgs, home: &std::path::Path) -> anyhow::Result<()> {
    let cfg = config::load(args.experiment.as_deref(), &CliOverrides::parse(&args.set)?)?;
    let src = data::open_path(&args.file)?;
    let n = src.len();
    let batch = cfg.train.batch_size.min(n);
    let (image_tok, spectrum_tok) = components::tokenizers(&cfg, src.wavelength().len())?;
    let (image_shape, spectrum_shape) = (image_tok.output_shape(), spectrum_tok.output_shape());
    let tok = Arc::new(TokenizerPair { image: image_tok, spectrum: spectrum_tok });
    let all: Arc<Vec<usize>> = Arc::new((0..n).collect());
    let seed = cfg.train.seed;
    let plan: Plan = {
        let all = all.clone();
        Arc::new(move |k| train::batch_indices(&all, batch, seed, k))
    };
    println!("loader benchmark: {} ({n} objects, {}), batch {batch}", src.describe(), src.format());
    let mut rows: Vec<(String, f64)> = Vec::new();

    // 1. Raw reads, one thread, in the order of the first batches (random rows).
    let mut reader = src.reader()?;
    let s = src.image_size();
    let l = src.wavelength().len();
    let (mut ib, mut fb, mut wb) = (vec![0f32; s * s * src.bands().len()], vec![0f32; l], vec![0f32; l]);
    let order: Vec<usize> = (0..args.batches).flat_map(|k| plan(k)).take(args.batches * batch).collect();
    let t = Instant::now();
    for &i in &order {
        reader.read(i, &mut ib, &mut fb, &mut wb)?;
    }
    let raw = order.len() as f64 / t.elapsed().as_secs_f64();
    drop(reader);
    println!("RESULT raw_read_rows_per_sec={raw:.1}");
    rows.push(("raw read, 1 thread, random rows".into(), raw));

    // 2. The loader: read + tokenize on W workers, prefetching.
    let mut best = 0f64;
    for &w in &args.workers {
        let lc = LoaderConfig { workers: w, ..LoaderConfig::default() };
        let t = Instant::now();
        let mut got = 0;
        for b in Prefetcher::start(src.clone(), tok.clone(), plan.clone(), args.batches, &lc, OnBad::Error) {
            got += b?.len();
        }
        let rate = got as f64 / t.elapsed().as_secs_f64();
        best = best.max(rate);
        println!("RESULT loader_workers_{w}_samples_per_sec={rate:.1}");
        rows.push((format!("loader read+tokenize, {w} worker(s)"), rate));
    }

    // 3. The training step alone (batches prepared beforehand), on the chosen device.
    let dev = device::parse(&args.device)?;
    dev.seed(cfg.train.seed);
    let dev = dev.autodiff();
    let mut model = components::model(&cfg, &image_shape, &spectrum_shape, home, &dev)?.model;
    // The run's own optimizer (AdamW, weight decay, clipping), as in training.
    let mut optim = train::optimizer(&cfg.train);
    let lc = LoaderConfig { workers: 2, ..LoaderConfig::default() };
    let steps = args.train_steps + 2;
    let prepared: Vec<_> = Prefetcher::start(src.clone(), tok.clone(), plan.clone(), steps, &lc, OnBad::Error)
        .collect::<Result<Vec<_>, _>>()?;
    let (il, sl) = (tok.image_len(), tok.spectrum_len());
    let mut timed = 0.0;
    let mut samples = 0;
    for (k, b) in prepared.into_iter().enumerate() {
        let nb = b.len();
        let t = Instant::now();
        let (images, spectra) = b.tensors(il, sl, &dev);
        let loss = model.forward(images, spectra);
        let _: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(cfg.train.lr, model, grads);
        if k >= 2 {
            timed += t.elapsed().as_secs_f64();
            samples += nb;
        }
    }
    let consume = samples as f64 / timed.max(1e-9);
    println!("RESULT train_step_samples_per_sec={consume:.1}");
    rows.push((format!("training step consumption ({})", args.device), consume));

    println!("\n{:<44} {:>12}", "stage", "samples/s");
    for (name, v) in &rows {
        println!("{name:<44} {v:>12.1}");
    }
    println!("{:<44} {:>11.1}×", "loader (best) / training consumption", best / consume.max(1e-9));
    println!("(the loader shares the CPU cores with the training step; with a GPU step the ratio is what matters)");
    Ok(())
}
