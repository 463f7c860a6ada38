//! Tensor interface v1: encoders defined by a native plugin (`plugins/examples/tensor-zoo`),
//! run on the host's tensors.
//!
//! * The plugin MLP's outputs and gradients equal those of the same network written directly
//!   with burn's `nn::Linear` / `nn::LayerNorm` and the same weights (reference: burn's own
//!   modules, i.e. PyTorch's `Linear` + exact `GELU` + `LayerNorm` semantics).
//! * MLP, attention and CNN encoders train: the loss goes down and every parameter changes.
//! * A plugin that changes its program between calls, or multiplies incompatible shapes, gets
//!   an error naming the plugin, its version, the encoder and the operation.
//!
//! The `tch_backend_*` tests repeat the gradient check and training on libtorch (CPU here; the
//! same code runs on `tch-cuda:N`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use astroclip_builtin::infonce::InfoNceConfig;
use astroclip_core::plugin_encoder::{PluginEncoder, PluginLoss};
use astroclip_plugin_api::ContrastiveLoss;
use astroclip_plugin_host::native::NativePlugin;
use astroclip_plugin_host::{MANIFEST, PluginDir};
use burn::module::{Module, Param};
use burn::nn::{LayerNormConfig, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// Builds an example plugin, installs it next to a manifest pinning its SHA-256, loads it.
fn load_example(name: &str, kinds: &str) -> (tempfile::TempDir, NativePlugin) {
    use sha2::{Digest, Sha256};
    let target = root().join("target/plugin-examples");
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(root().join(format!("plugins/examples/{name}/Cargo.toml")))
        .arg("--target-dir")
        .arg(&target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lib = std::fs::read(target.join(format!("debug/libastroclip_plugin_{}.so", name.replace('-', "_")))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.so"), &lib).unwrap();
    std::fs::write(
        dir.path().join(MANIFEST),
        format!(
            "[plugin]\nid = \"{name}\"\nversion = \"0.1.0\"\napi_version = \"{}\"\nkinds = [{kinds}]\n\n\
             [entry]\ncarrier = \"native\"\nfile = \"p.so\"\nsha256 = \"{}\"\n",
            astroclip_plugin_sdk::INTERFACE_VERSION,
            hex::encode(Sha256::digest(&lib))
        ),
    )
    .unwrap();
    let p = NativePlugin::load(&PluginDir::open(dir.path()).unwrap()).unwrap();
    (dir, p)
}

fn zoo() -> &'static NativePlugin {
    static P: OnceLock<(tempfile::TempDir, NativePlugin)> = OnceLock::new();
    &P.get_or_init(|| load_example("tensor-zoo", "\"encoder\", \"loss\"")).1
}

/// The ridge-probe plugin (array interface) recovers an exact linear relation, refuses bad
/// input with its message, and keeps its fitted state in the plugin across calls.
#[test]
fn a_probe_plugin_fits_and_predicts_through_the_array_interface() {
    use astroclip_core::plugin_probe::PluginProbe;
    use astroclip_plugin_api::{Probe, ProbeInput};
    let (_d, p) = load_example("ridge-probe", "\"probe\"");
    let (_, probe) = p.probes().into_iter().find(|(n, _)| n == "ridge").unwrap();
    let mut ridge = PluginProbe::new(probe).unwrap();
    let (n, d) = (200, 3);
    let x: Vec<f32> = (0..n * d).map(|i| ((i as f32) * 0.731).sin() * 3.0).collect();
    let y: Vec<f32> = (0..n).map(|r| 2.0 * x[r * d] - x[r * d + 1] + 0.5).collect();
    let msg = ridge.predict(ProbeInput::new(&x[..d], 1, d).unwrap()).unwrap_err().to_string();
    assert!(msg.contains("ridge-probe 0.1.0") && msg.contains("before fit"), "{msg}");
    ridge.fit(ProbeInput::new(&x, n, d).unwrap(), &y).unwrap();
    let pred = ridge.predict(ProbeInput::new(&x[..10 * d], 10, d).unwrap()).unwrap();
    for (a, b) in pred.iter().zip(&y[..10]) {
        assert!((a - b).abs() < 0.02 * (1.0 + b.abs()), "{a} vs {b}");
    }
    let mut bad = x[..d].to_vec();
    bad[1] = f32::NAN;
    let msg = ridge.predict(ProbeInput::new(&bad, 1, d).unwrap()).unwrap_err().to_string();
    assert!(msg.contains("non-finite query value in row 0 (column 1)"), "{msg}");
    assert_eq!(ridge.info().id, "ridge-probe/ridge");
}

fn encoder(name: &str, input: usize, embed: usize, device: &Device) -> PluginEncoder {
    PluginEncoder::init(zoo().encoder(name).unwrap(), input, embed, device).unwrap()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}[{i}]: plugin {x} vs direct {y}");
    }
}

/// The example WASM encoder (Zig, `plugins/examples/wasm-mlp-encoder`), run by
/// `astroclip-wasm-host`; its tensor calls come back over the pipe and run here.
fn wasm_encoder(input: usize, embed: usize, device: &Device) -> PluginEncoder {
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(root().join("plugins/wasm/Cargo.toml"))
        .args(["--bin", "astroclip-wasm-host"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client = astroclip_core::wasm_client::WasmTokenizer::spawn_with(
        &root().join("plugins/wasm/target/debug/astroclip-wasm-host"),
        &root().join("plugins/examples/wasm-mlp-encoder"),
    )
    .unwrap();
    PluginEncoder::init_wasm(client, "test", input, embed, device).unwrap()
}

fn gradients_match_direct_burn(device: &Device) {
    gradients_match_direct_burn_for(device, |d| encoder("mlp", 6, 5, d));
}

fn gradients_match_direct_burn_for(device: &Device, make: impl Fn(&Device) -> PluginEncoder) {
    let device = device.clone().autodiff();
    let enc = make(&device);
    let p = enc.named_params();
    let names: Vec<&str> = p.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["fc1.weight", "fc1.bias", "norm.weight", "norm.bias", "fc2.weight", "fc2.bias"]);
    let copy = |i: usize| Tensor::<1>::from_data(p[i].2.to_data(), &device);
    // The same network in direct burn, with the plugin's initial weights.
    let mut fc1 = LinearConfig::new(6, 16).init(&device);
    fc1.weight = Param::from_tensor(copy(0).reshape([6, 16]));
    fc1.bias = Some(Param::from_tensor(copy(1)));
    let mut norm = LayerNormConfig::new(16).with_epsilon(1e-5).init(&device);
    norm.gamma = Param::from_tensor(copy(2));
    norm.beta = Some(Param::from_tensor(copy(3)));
    let mut fc2 = LinearConfig::new(16, 5).init(&device);
    fc2.weight = Param::from_tensor(copy(4).reshape([16, 5]));
    fc2.bias = Some(Param::from_tensor(copy(5)));

    let x = Tensor::<2>::random([7, 6], Distribution::Normal(0.0, 1.0), &device);
    let target = Tensor::<2>::random([7, 5], Distribution::Normal(0.0, 1.0), &device);
    let y_plugin = enc.try_encode(x.clone()).unwrap();
    let y_direct = fc2.forward(norm.forward(gelu(fc1.forward(x))));
    close(&values(y_plugin.clone()), &values(y_direct.clone()), 1e-5, "outputs");

    let loss = |y: Tensor<2>| (y - target.clone()).powf_scalar(2.0).sum();
    let gp = loss(y_plugin).backward();
    let gd = loss(y_direct).backward();
    let direct: Vec<Vec<f32>> = vec![
        values(fc1.weight.val().grad(&gd).unwrap()),
        values(fc1.bias.as_ref().unwrap().val().grad(&gd).unwrap()),
        values(norm.gamma.val().grad(&gd).unwrap()),
        values(norm.beta.as_ref().unwrap().val().grad(&gd).unwrap()),
        values(fc2.weight.val().grad(&gd).unwrap()),
        values(fc2.bias.as_ref().unwrap().val().grad(&gd).unwrap()),
    ];
    for (i, (name, _, t)) in enc.named_params().into_iter().enumerate() {
        let g = t.grad(&gp).unwrap_or_else(|| panic!("no gradient for {name}"));
        close(&values(g), &direct[i], 1e-4, &format!("d loss / d {name}"));
        assert!(direct[i].iter().any(|v| v.abs() > 1e-6), "{name}: zero gradient proves nothing");
    }
}

/// A few Adam steps fitting random targets: the loss must fall and every parameter move.
fn trains(name: &str, input: usize, device: &Device) {
    trains_with(name, input, device, |d| encoder(name, input, 4, d));
}

fn trains_with(name: &str, input: usize, device: &Device, make: impl Fn(&Device) -> PluginEncoder) -> PluginEncoder {
    let device = device.clone().autodiff();
    let mut enc = make(&device);
    let before: Vec<Vec<f32>> = enc.named_params().into_iter().map(|(_, _, t)| values(t)).collect();
    let x = Tensor::<2>::random([16, input], Distribution::Normal(0.0, 1.0), &device);
    let target = Tensor::<2>::random([16, 4], Distribution::Normal(0.0, 1.0), &device);
    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..30 {
        let loss = (enc.try_encode(x.clone()).unwrap() - target.clone()).powf_scalar(2.0).mean();
        losses.push(values(loss.clone())[0]);
        let grads = GradientsParams::from_grads(loss.backward(), &enc);
        enc = optim.step(1e-2, enc, grads);
    }
    assert!(losses[29] < 0.7 * losses[0], "{name}: loss {} → {}", losses[0], losses[29]);
    for ((n, _, t), b) in enc.named_params().into_iter().zip(before) {
        let a = values(t);
        assert!(a.iter().zip(&b).any(|(x, y)| x != y), "{name}: parameter {n} did not change");
    }
    // The trained parameters survive a save/load round trip of the module (checkpoints).
    let dir = tempfile::tempdir().unwrap();
    enc.clone().save_file(dir.path().join("enc.bpk")).unwrap();
    let fresh = make(&device).try_load_file(dir.path().join("enc.bpk")).unwrap();
    close(&values(fresh.try_encode(x.clone()).unwrap()), &values(enc.try_encode(x).unwrap()), 1e-6, "reloaded");
    enc
}

#[test]
fn plugin_mlp_gradients_match_direct_burn_on_flex() {
    gradients_match_direct_burn(&Device::flex());
}

#[test]
fn a_wasm_encoder_matches_direct_burn_and_trains_through_the_tensor_interface() {
    gradients_match_direct_burn_for(&Device::flex(), |d| wasm_encoder(6, 5, d));
    let enc = trains_with("wasm mlp", 6, &Device::flex(), |d| wasm_encoder(6, 4, d));
    let (device, x) = (Device::flex().autodiff(), Tensor::<2>::ones([16, 6], &Device::flex().autodiff()));
    // A wrong input length is refused before the plugin runs; the host keeps working.
    let msg = enc.try_encode(Tensor::<2>::zeros([2, 5], &device)).err().unwrap().to_string();
    assert!(msg.contains("wasm-mlp-encoder 0.1.0") && msg.contains("built for 6"), "{msg}");
    assert_eq!(enc.try_encode(x).unwrap().dims(), [16, 4]);
}

#[test]
fn plugin_encoders_train_on_flex() {
    trains("mlp", 6, &Device::flex());
    trains("attention", 4 * 8, &Device::flex());
    trains("cnn", 3 * 8 * 8, &Device::flex());
}

#[test]
fn a_program_that_changes_between_calls_is_refused() {
    let enc = encoder("changing", 3, 2, &Device::flex());
    let msg = enc.try_encode(Tensor::<2>::zeros([2, 3], &Device::flex())).err().unwrap().to_string();
    assert!(msg.contains("tensor-zoo 0.1.0") && msg.contains("changing") && msg.contains("same order"), "{msg}");
}

#[test]
fn shape_errors_come_back_as_data_naming_the_operation() {
    let msg =
        PluginEncoder::init(zoo().encoder("bad-shapes").unwrap(), 5, 2, &Device::flex()).err().unwrap().to_string();
    assert!(
        msg.contains("tensor-zoo 0.1.0")
            && msg.contains("bad-shapes")
            && msg.contains("matmul: shapes [2, 5] and [3, 2]"),
        "{msg}"
    );
    let enc = encoder("mlp", 6, 5, &Device::flex());
    let msg = enc.try_encode(Tensor::<2>::zeros([2, 4], &Device::flex())).err().unwrap().to_string();
    assert!(msg.contains("built for 6"), "{msg}");
    let msg = zoo().encoder("nope").err().unwrap().to_string();
    assert!(msg.contains("mlp, attention, cnn"), "{msg}");
    // The host keeps working.
    let ok = encoder("mlp", 6, 5, &Device::flex())
        .try_encode(Tensor::<2>::from_data(TensorData::new(vec![0.5f32; 12], [2, 6]), &Device::flex()));
    assert_eq!(ok.unwrap().dims(), [2, 5]);
}

/// The plugin's InfoNCE (written over the tensor interface) equals the built-in one, whose
/// value and gradient are golden-tested against a float64 port of AstroCLIP's CLIPLoss.
fn plugin_infonce_matches_builtin(device: &Device) {
    let device = device.clone().autodiff();
    let plugin = PluginLoss::init(zoo().loss("infonce").unwrap(), 16, &device).unwrap();
    let builtin = InfoNceConfig::new().init(&device);
    let data_a = Tensor::<2>::random([12, 16], Distribution::Normal(0.0, 1.0), &device).into_data();
    let data_b = Tensor::<2>::random([12, 16], Distribution::Normal(0.0, 1.0), &device).into_data();
    let run = |f: &dyn Fn(Tensor<2>, Tensor<2>) -> Tensor<1>| {
        let a = Tensor::<2>::from_data(data_a.clone(), &device).require_grad();
        let b = Tensor::<2>::from_data(data_b.clone(), &device).require_grad();
        let l = f(a.clone(), b.clone());
        let v = values(l.clone());
        let g = l.backward();
        (v, values(a.grad(&g).unwrap()), values(b.grad(&g).unwrap()))
    };
    let p = run(&|a, b| plugin.try_loss(a, b).unwrap());
    let d = run(&|a, b| builtin.loss(a, b));
    close(&p.0, &d.0, 1e-5, "loss");
    close(&p.1, &d.1, 1e-4, "dL/da");
    close(&p.2, &d.2, 1e-4, "dL/db");
    assert!(p.0[0] > 0.5, "{p:?}");
}

#[test]
fn plugin_infonce_matches_the_builtin_on_flex() {
    plugin_infonce_matches_builtin(&Device::flex());
}

#[cfg(feature = "tch")]
#[test]
#[allow(deprecated)]
fn tch_backend_plugin_encoder_gradients_and_training() {
    plugin_infonce_matches_builtin(&Device::libtorch());
    gradients_match_direct_burn(&Device::libtorch());
    trains("mlp", 6, &Device::libtorch());
    trains("attention", 4 * 8, &Device::libtorch());
    trains("cnn", 3 * 8 * 8, &Device::libtorch());
}
