//! Plugin platform benchmark (run by `scripts/bench-plugins.sh`, which builds the plugins):
//!
//! 1. **Tensor-interface overhead**: one training step (forward, backward, AdamW) of the
//!    photometry encoder defined by the `photometry-mlp` native plugin vs the same network
//!    written directly with burn modules, same device, same batch; ratio of median step times.
//! 2. **WASM preprocessing throughput**: the `spectrum-stats` WASM tokenizer on DESI-length
//!    spectra (7781 bins) through `astroclip-wasm-host` (process boundary, batches of 256) vs
//!    the same computation in Rust; the photometry tokenizer's objects/s likewise.
//!
//! Usage: bench_plugins <photometry-mlp plugin dir> <repo root>

use std::path::Path;
use std::time::Instant;

use astroclip_builtin::infonce::InfoNceConfig;
use astroclip_core::plugin_encoder::PluginEncoder;
use astroclip_core::wasm_client::WasmTokenizer;
use astroclip_plugin_api::ContrastiveLoss;
use astroclip_plugin_host::PluginDir;
use astroclip_plugin_host::native::NativePlugin;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Distribution, Tensor};

const HIDDEN: usize = 128;

/// photometry-mlp written directly in burn.
#[derive(Module, Debug)]
struct DirectMlp {
    input: Linear,
    block_norm: LayerNorm,
    block_fc: Linear,
    out_norm: LayerNorm,
    out: Linear,
}

impl DirectMlp {
    fn new(f: usize, e: usize, d: &Device) -> Self {
        Self {
            input: LinearConfig::new(f, HIDDEN).init(d),
            block_norm: LayerNormConfig::new(HIDDEN).with_epsilon(1e-5).init(d),
            block_fc: LinearConfig::new(HIDDEN, HIDDEN).init(d),
            out_norm: LayerNormConfig::new(HIDDEN).with_epsilon(1e-5).init(d),
            out: LinearConfig::new(HIDDEN, e).init(d),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = gelu(self.input.forward(x));
        let r = gelu(self.block_fc.forward(self.block_norm.forward(h.clone())));
        self.out.forward(self.out_norm.forward(h + r))
    }
}

/// tensor-zoo's `mlp` / wasm-mlp-encoder in direct burn.
#[derive(Module, Debug)]
struct SmallMlp {
    fc1: Linear,
    norm: LayerNorm,
    fc2: Linear,
}

impl SmallMlp {
    fn new(f: usize, e: usize, d: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(f, 16).init(d),
            norm: LayerNormConfig::new(16).with_epsilon(1e-5).init(d),
            fc2: LinearConfig::new(16, e).init(d),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(self.norm.forward(gelu(self.fc1.forward(x))))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time_steps<M: Module + Clone>(
    mut m: M,
    fwd: impl Fn(&M, Tensor<2>) -> Tensor<2>,
    x: &Tensor<2>,
    y: &Tensor<2>,
    d: &Device,
) -> f64 {
    let loss_fn = InfoNceConfig::new().init(d);
    let mut optim = AdamWConfig::new().init();
    let mut times = Vec::new();
    for i in 0..60 {
        let t = Instant::now();
        let loss = loss_fn.loss(fwd(&m, x.clone()), y.clone());
        let _: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        m = optim.step(1e-3, m, grads);
        if i >= 10 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    median(times)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (plugin_dir, repo) = (Path::new(&args[1]), Path::new(&args[2]));
    let d = Device::flex().autodiff();
    d.seed(1);
    let native = NativePlugin::load(&PluginDir::open(plugin_dir)?)?;
    let (f, e) = (10, 128);
    println!("| case | plugin ms/step | direct burn ms/step | plugin / direct |");
    println!("|---|---|---|---|");
    for batch in [256, 2048] {
        let x = Tensor::<2>::random([batch, f], Distribution::Normal(0.0, 1.0), &d);
        let y = Tensor::<2>::random([batch, e], Distribution::Normal(0.0, 1.0), &d);
        let plugin = PluginEncoder::init(native.encoder("mlp")?, f, e, &d)?;
        let mut direct = DirectMlp::new(f, e, &d);
        // Same weights in both, so both do the same arithmetic.
        let p = plugin.named_params();
        let w = |i: usize, s: [usize; 2]| Param::from_tensor(Tensor::<1>::from_data(p[i].2.to_data(), &d).reshape(s));
        let v = |i: usize| Param::from_tensor(Tensor::<1>::from_data(p[i].2.to_data(), &d));
        direct.input.weight = w(0, [f, HIDDEN]);
        direct.input.bias = Some(v(1));
        direct.block_norm.gamma = v(2);
        direct.block_norm.beta = Some(v(3));
        direct.block_fc.weight = w(4, [HIDDEN, HIDDEN]);
        direct.block_fc.bias = Some(v(5));
        direct.out_norm.gamma = v(6);
        direct.out_norm.beta = Some(v(7));
        direct.out.weight = w(8, [HIDDEN, e]);
        direct.out.bias = Some(v(9));
        let tp = time_steps(plugin, |m, x| m.try_encode(x).expect("plugin forward"), &x, &y, &d);
        let td = time_steps(direct, |m, x| m.forward(x), &x, &y, &d);
        println!("| photometry-mlp train step, batch {batch}, flex | {tp:.3} | {td:.3} | {:.2}× |", tp / td);
    }

    // The small MLP (Linear(d,16) → GELU → LayerNorm → Linear(16,e)) three ways: native plugin
    // (tensor-zoo `mlp`), WASM plugin (its tensor calls cross the pipe), direct burn.
    let (d_in, e_out, batch) = (10, 16, 256);
    let zoo = NativePlugin::load(&PluginDir::open(&repo.join("target/plugins/tensor-zoo"))?)?;
    let x = Tensor::<2>::random([batch, d_in], Distribution::Normal(0.0, 1.0), &d);
    let y = Tensor::<2>::random([batch, e_out], Distribution::Normal(0.0, 1.0), &d);
    let native = PluginEncoder::init(zoo.encoder("mlp")?, d_in, e_out, &d)?;
    let client = WasmTokenizer::spawn(&repo.join("plugins/examples/wasm-mlp-encoder"))?;
    let wasm = PluginEncoder::init_wasm(client, "test", d_in, e_out, &d)?;
    let small = SmallMlp::new(d_in, e_out, &d);
    let tn = time_steps(native, |m, x| m.try_encode(x).expect("native forward"), &x, &y, &d);
    let tw = time_steps(wasm, |m, x| m.try_encode(x).expect("wasm forward"), &x, &y, &d);
    let ts = time_steps(small, |m, x| m.forward(x), &x, &y, &d);
    println!("| small MLP train step, batch {batch}, native plugin | {tn:.3} | {ts:.3} | {:.2}× |", tn / ts);
    println!(
        "| small MLP train step, batch {batch}, WASM plugin (tensor calls over the pipe) | {tw:.3} | {ts:.3} | {:.2}× |",
        tw / ts
    );

    println!();
    println!("| WASM preprocessing | objects/s | Rust reference objects/s | WASM / Rust |");
    println!("|---|---|---|---|");
    let len = 7781;
    let n = 20_480;
    let spectra: Vec<f32> = (0..256 * len).map(|i| ((i % 9973) as f32 * 0.37).sin() + 1.0).collect();
    let mut tok = WasmTokenizer::spawn(&repo.join("plugins/examples/wasm-spectrum-stats"))?;
    let t = Instant::now();
    let mut check = 0f32;
    for _ in 0..n / 256 {
        let out = tok.tokenize_batch(&spectra, &[len], 256)?;
        check += out[0];
    }
    let wasm = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut check_ref = 0f32;
    for _ in 0..n / 256 {
        for s in spectra.chunks_exact(len) {
            let sum: f32 = s.iter().sum();
            std::hint::black_box(sum / len as f32);
        }
        check_ref += spectra[..len].iter().sum::<f32>();
    }
    let native_rate = n as f64 / t.elapsed().as_secs_f64();
    assert!((check - check_ref).abs() <= 1e-3 * check_ref.abs(), "{check} vs {check_ref}");
    println!(
        "| spectrum-stats, 7781-bin spectra, batches of 256 via astroclip-wasm-host | {wasm:.0} | {native_rate:.0} | {:.2}× |",
        wasm / native_rate
    );
    let mut phot = WasmTokenizer::spawn(&repo.join("plugins/examples/wasm-photometry"))?;
    let rows: Vec<f32> =
        (0..512).flat_map(|k| [10.0 + k as f32 * 0.01, 20.0, 30.0, 25.0, 15.0, 100.0, 80.0, 20.0, 5.0, 2.0]).collect();
    let t = Instant::now();
    let m = 200;
    for _ in 0..m {
        std::hint::black_box(phot.tokenize_batch(&rows, &[2, 5], 512)?);
    }
    println!(
        "| photometry (g,r,z,W1,W2 → 10 features), batches of 512 via astroclip-wasm-host | {:.0} | – | – |",
        (m * 512) as f64 / t.elapsed().as_secs_f64()
    );
    Ok(())
}
