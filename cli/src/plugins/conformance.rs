//! The conformance kit: one call (`astroclip plugins test <plugin>`) that every component
//! passes, whatever carries it — a native plugin, a WASM plugin or a built-in.
//!
//! * **Plugins**: manifest (strict schema, id, semver), entry SHA-256, interface-version
//!   handshake (and for native plugins the toolchain fingerprint), declared kinds present.
//! * **Tokenizers**: accept their modality's standard input (image `[152, 152, 3]`, spectrum
//!   `[7781]`, photometry `[2, 5]`), finite output of the declared length, bit-identical on a
//!   second call, a NaN input refused with a message (or mapped to finite values), a
//!   malformed shape refused without a crash, each call within the manifest's deadline.
//! * **Encoders**: `(batch, embed_dim)` out for batches of 1 and 3, finite, deterministic,
//!   a gradient reaching every trainable parameter.
//! * **Losses**: finite, lower for matched pairs than for shuffled ones, gradients to both
//!   inputs. **Probes**: fit/predict shapes, determinism, NaN refused.

use std::time::Instant;

use astroclip_plugin_api::{
    ContrastiveLoss, ImageView, ModalityEncoder, Observation, Probe, ProbeInput, SpectrumView, Tokenizer,
};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub subject: String,
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn push(&mut self, subject: &str, check: &str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check { subject: subject.into(), check: check.into(), ok, detail: detail.into() });
    }

    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{} {:<40} {:<34} {}\n",
                if c.ok { "ok  " } else { "FAIL" },
                c.subject,
                c.check,
                c.detail
            ));
        }
        let failed = self.checks.iter().filter(|c| !c.ok).count();
        out.push_str(&format!("{} checks, {failed} failed\n", self.checks.len()));
        out
    }
}

/// A data-level tokenizer, whatever carries it.
pub trait ArrayTokenizerUnderTest {
    fn name(&self) -> String;
    fn modality(&self) -> String;
    fn output_len(&mut self, shape: &[usize]) -> Result<Option<usize>, String>;
    fn tokenize(&mut self, input: &[f32], shape: &[usize], out_len: usize) -> Result<Vec<f32>, String>;
}

/// The standard input of a modality and a deterministic, plausible instance of it.
pub fn probe_input(modality: &str) -> Option<(Vec<usize>, Vec<f32>)> {
    let wave = |i: usize| ((i as f32) * 0.618).sin() * 0.1;
    match modality {
        "image" => {
            let (h, b) = (152usize, 3usize);
            let c = (h as f32 - 1.0) / 2.0;
            let v = (0..h * h * b)
                .map(|k| {
                    let (p, band) = (k / b, k % b);
                    let (y, x) = ((p / h) as f32 - c, (p % h) as f32 - c);
                    (1.0 + band as f32) * (-(x * x + y * y) / 50.0).exp() + 0.01 * wave(k)
                })
                .collect();
            Some((vec![h, h, b], v))
        }
        "spectrum" => Some((vec![7781], (0..7781).map(|i| 2.0 + wave(i)).collect())),
        "photometry" => Some((vec![2, 5], vec![12.0, 25.0, 40.0, 30.0, 18.0, 400.0, 180.0, 30.0, 8.0, 2.0])),
        _ => None,
    }
}

fn caught<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(format!(
            "PANICKED: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        ))
    })
}

/// Runs the tokenizer checks; `deadline_ms` from the manifest (2000 for built-ins).
pub fn check_tokenizer(t: &mut dyn ArrayTokenizerUnderTest, deadline_ms: u64, report: &mut Report) {
    let subject = format!("tokenizer {}", t.name());
    let modality = t.modality();
    let Some((shape, input)) = probe_input(&modality) else {
        report.push(
            &subject,
            "standard input",
            false,
            format!("no standard input for modality {modality:?} (image, spectrum, photometry)"),
        );
        return;
    };
    let len = match caught(|| t.output_len(&shape)) {
        Ok(Some(n)) => {
            report.push(&subject, "accepts the standard input", true, format!("{modality} {shape:?} → {n} values"));
            n
        }
        Ok(None) => {
            return report.push(
                &subject,
                "accepts the standard input",
                false,
                format!("refuses {modality} shape {shape:?}"),
            );
        }
        Err(e) => return report.push(&subject, "accepts the standard input", false, e),
    };
    let t0 = Instant::now();
    let first = caught(|| t.tokenize(&input, &shape, len));
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let first = match first {
        Ok(v) => v,
        Err(e) => return report.push(&subject, "tokenizes the standard input", false, e),
    };
    report.push(
        &subject,
        "within the deadline",
        ms <= deadline_ms as f64,
        format!("{ms:.2} ms per call (deadline {deadline_ms} ms)"),
    );
    let finite = first.len() == len && first.iter().all(|v| v.is_finite());
    report.push(&subject, "finite output of declared length", finite, format!("{} values", first.len()));
    let second = caught(|| t.tokenize(&input, &shape, len));
    let same = second.as_ref().is_ok_and(|s| s.iter().zip(&first).all(|(a, b)| a.to_bits() == b.to_bits()));
    report.push(
        &subject,
        "deterministic",
        same,
        if same { "bit-identical on a second call".to_string() } else { format!("{second:?}") },
    );
    let mut bad = input.clone();
    bad[0] = f32::NAN;
    let (ok, detail) = match caught(|| t.tokenize(&bad, &shape, len)) {
        Err(e) if e.starts_with("PANICKED") => (false, e),
        Err(e) => (true, format!("refused: {}", e.chars().take(90).collect::<String>())),
        Ok(v) if v.iter().all(|x| x.is_finite()) => (true, "mapped to finite values".into()),
        Ok(_) => (false, "passes NaN through to the model".into()),
    };
    report.push(&subject, "NaN input refused or contained", ok, detail);
    let wrong = [3usize];
    let (ok, detail) = match caught(|| match t.output_len(&wrong)? {
        None => Ok("shape [3] declined".to_string()),
        Some(n) => t.tokenize(&[1.0, 2.0, 3.0], &wrong, n).map(|_| format!("shape [3] accepted ({n} values)")),
    }) {
        Err(e) if e.starts_with("PANICKED") => (false, e),
        Err(e) => (true, format!("refused: {}", e.chars().take(90).collect::<String>())),
        Ok(d) => (true, d),
    };
    report.push(&subject, "malformed shape handled", ok, detail);
}

/// A built-in [`Tokenizer`] behind the array interface: arrays become observations.
pub struct BuiltinTokenizer(pub Box<dyn Tokenizer>);

impl ArrayTokenizerUnderTest for BuiltinTokenizer {
    fn name(&self) -> String {
        format!("{} (built-in)", self.0.info().id)
    }
    fn modality(&self) -> String {
        self.0.info().modality.unwrap_or_default()
    }
    fn output_len(&mut self, shape: &[usize]) -> Result<Option<usize>, String> {
        let ok = match self.modality().as_str() {
            "image" => shape.len() == 3,
            "spectrum" => shape.len() == 1,
            _ => false,
        };
        Ok(ok.then(|| self.0.output_shape().iter().product()))
    }
    fn tokenize(&mut self, input: &[f32], shape: &[usize], out_len: usize) -> Result<Vec<f32>, String> {
        let mut out = vec![0f32; out_len];
        let bands: Vec<String> = ["g", "r", "z"].iter().map(|s| s.to_string()).collect();
        let wavelength: Vec<f32> = (0..input.len()).map(|i| 3600.0 + 0.8 * i as f32).collect();
        let ivar = vec![1f32; input.len()];
        let obs = match self.modality().as_str() {
            "image" if shape.len() == 3 => Observation::Image(ImageView {
                object_id: "conformance",
                height: shape[0],
                width: shape[1],
                bands: &bands[..shape[2].min(3)],
                flux: input,
                pixel_scale: 0.262,
            }),
            "spectrum" if shape.len() == 1 => Observation::Spectrum(SpectrumView {
                object_id: "conformance",
                wavelength: &wavelength,
                flux: input,
                ivar: &ivar,
            }),
            m => return Err(format!("{m} tokenizer: unsupported shape {shape:?}")),
        };
        self.0.tokenize(&obs, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

struct GradCheck<'a> {
    grads: &'a burn::tensor::Gradients,
    total: usize,
    missing: Vec<String>,
}

impl ModuleVisitor for GradCheck<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        if !t.is_require_grad() {
            return;
        }
        self.total += 1;
        let has = t.grad(self.grads).is_some_and(|g| g.abs().sum().into_scalar::<f32>() > 0.0);
        if !has {
            self.missing.push(format!("{:?}", t.dims()));
        }
    }
}

/// Encoder checks on an autodiff device; `forward` returns the plugin's error as text.
pub fn check_encoder<M: Module>(
    name: &str,
    enc: &M,
    forward: impl Fn(&M, Tensor<2>) -> Result<Tensor<2>, String>,
    input_len: usize,
    embed_dim: usize,
    device: &Device,
    report: &mut Report,
) {
    let subject = format!("encoder {name}");
    for batch in [1usize, 3] {
        let x = Tensor::<2>::random([batch, input_len], Distribution::Normal(0.0, 1.0), device);
        match caught(|| forward(enc, x)) {
            Ok(y) if y.dims() == [batch, embed_dim] => {
                let finite = y.into_data().try_to_vec::<f32>().is_ok_and(|v| v.iter().all(|x| x.is_finite()));
                report.push(
                    &subject,
                    &format!("batch {batch} → (batch, embed_dim)"),
                    finite,
                    if finite { "finite" } else { "non-finite output" },
                );
            }
            Ok(y) => report.push(
                &subject,
                &format!("batch {batch} → (batch, embed_dim)"),
                false,
                format!("got {:?}", y.dims()),
            ),
            Err(e) => report.push(&subject, &format!("batch {batch} → (batch, embed_dim)"), false, e),
        }
    }
    let x = Tensor::<2>::random([4, input_len], Distribution::Normal(0.0, 1.0), device);
    let a = caught(|| forward(enc, x.clone()));
    let b = caught(|| forward(enc, x.clone()));
    let same = match (&a, &b) {
        (Ok(a), Ok(b)) => a.to_data().try_to_vec::<f32>().ok() == b.to_data().try_to_vec::<f32>().ok(),
        _ => false,
    };
    report.push(
        &subject,
        "deterministic (eval mode)",
        same,
        if same { "identical outputs" } else { "outputs differ between calls (dropout on?)" },
    );
    if let Ok(y) = a {
        let grads = y.powf_scalar(2.0).sum().backward();
        let mut v = GradCheck { grads: &grads, total: 0, missing: Vec::new() };
        enc.visit(&mut v);
        let ok = v.total > 0 && v.missing.is_empty();
        report.push(
            &subject,
            "gradient reaches every parameter",
            ok,
            if ok {
                format!("{} parameter tensors", v.total)
            } else {
                format!("{} of {} without gradient: {:?}", v.missing.len(), v.total, v.missing)
            },
        );
    }
}

/// Loss checks: matched pairs score lower than shuffled ones; gradients reach both inputs.
pub fn check_loss<L: ContrastiveLoss>(name: &str, loss: &L, device: &Device, report: &mut Report) {
    let subject = format!("loss {name}");
    let a = Tensor::<2>::random([8, 16], Distribution::Normal(0.0, 1.0), device).require_grad();
    let noise = Tensor::<2>::random([8, 16], Distribution::Normal(0.0, 0.1), device);
    let b = Tensor::<2>::from_data((a.clone().detach() + noise).into_data(), device).require_grad();
    let perm: Vec<i64> = vec![3, 0, 6, 1, 7, 2, 5, 4];
    let shuffled = b.clone().select(0, Tensor::from_data(TensorData::new(perm, [8]), device));
    let matched = loss.loss(a.clone(), b.clone());
    let wrong: f32 = loss.loss(a.clone(), shuffled).into_scalar();
    let m: f32 = matched.clone().into_scalar();
    report.push(&subject, "finite; matched < shuffled", m.is_finite() && m < wrong, format!("{m:.4} vs {wrong:.4}"));
    let grads = matched.backward();
    let ok = a.grad(&grads).is_some() && b.grad(&grads).is_some();
    report.push(&subject, "gradients reach both inputs", ok, "");
}

/// Probe checks: shapes, determinism, a NaN embedding refused or contained.
pub fn check_probe(probe: &mut dyn Probe, report: &mut Report) {
    let subject = format!("probe {}", probe.info().id);
    let (n, d) = (80, 6);
    let x: Vec<f32> = (0..n * d).map(|i| ((i as f32) * 0.731).sin()).collect();
    let y: Vec<f32> = (0..n).map(|i| x[i * d] * 2.0 + x[i * d + 1]).collect();
    let fit =
        caught(|| probe.fit(ProbeInput::new(&x, n, d).map_err(|e| e.to_string())?, &y).map_err(|e| e.to_string()));
    report.push(&subject, "fits", fit.is_ok(), fit.err().unwrap_or_default());
    let q = &x[..10 * d];
    let p1 = caught(|| probe.predict(ProbeInput::new(q, 10, d).map_err(|e| e.to_string())?).map_err(|e| e.to_string()));
    let p2 = caught(|| probe.predict(ProbeInput::new(q, 10, d).map_err(|e| e.to_string())?).map_err(|e| e.to_string()));
    let ok = matches!((&p1, &p2), (Ok(a), Ok(b)) if a.len() == 10 && a == b && a.iter().all(|v| v.is_finite()));
    report.push(&subject, "predicts one finite value per row, deterministic", ok, "");
    let mut bad = q.to_vec();
    bad[0] = f32::NAN;
    let (ok, detail) = match caught(|| {
        probe.predict(ProbeInput::new(&bad, 10, d).map_err(|e| e.to_string())?).map_err(|e| e.to_string())
    }) {
        Err(e) if e.starts_with("PANICKED") => (false, e),
        Err(e) => (true, format!("refused: {}", e.chars().take(90).collect::<String>())),
        Ok(v) if v.iter().all(|x| x.is_finite()) => (true, "contained".to_string()),
        Ok(_) => (false, "NaN predictions".to_string()),
    };
    report.push(&subject, "NaN embedding refused or contained", ok, detail);
}

struct NativeTok {
    plugin: astroclip_plugin_host::native::NativePlugin,
    tok: astroclip_plugin_host::native::NativeTokenizer,
    name: String,
    modality: String,
}

impl ArrayTokenizerUnderTest for NativeTok {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn modality(&self) -> String {
        self.modality.clone()
    }
    fn output_len(&mut self, shape: &[usize]) -> Result<Option<usize>, String> {
        Ok(self.plugin.output_len(self.tok, shape))
    }
    fn tokenize(&mut self, input: &[f32], shape: &[usize], out_len: usize) -> Result<Vec<f32>, String> {
        let mut out = vec![0f32; out_len];
        self.plugin.tokenize(self.tok, input, shape, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

struct WasmTok(astroclip_core::wasm_client::WasmTokenizer, String);

impl ArrayTokenizerUnderTest for WasmTok {
    fn name(&self) -> String {
        self.0.id.clone()
    }
    fn modality(&self) -> String {
        self.1.clone()
    }
    fn output_len(&mut self, shape: &[usize]) -> Result<Option<usize>, String> {
        self.0.output_len(shape).map_err(|e| e.to_string())
    }
    fn tokenize(&mut self, input: &[f32], shape: &[usize], _out_len: usize) -> Result<Vec<f32>, String> {
        self.0.tokenize_batch(input, shape, 1).map_err(|e| e.to_string())
    }
}

/// The kit on the first-party components, through the same checks as plugins.
pub fn test_builtins(report: &mut Report) -> anyhow::Result<()> {
    let cfg = astroclip_core::config::ExperimentConfig::preset("quickstart").expect("quickstart preset");
    let (image, spectrum) = astroclip_core::components::tokenizers(&cfg, astroclip_core::survey::DESI_NBINS)?;
    let (ishape, sl) = (image.output_shape(), spectrum.output_shape());
    let il = ishape.iter().product::<usize>();
    check_tokenizer(&mut BuiltinTokenizer(image), 2000, report);
    check_tokenizer(&mut BuiltinTokenizer(spectrum), 2000, report);
    let device = Device::flex().autodiff();
    let mut cfg_eval = cfg.clone();
    for choice in [&mut cfg_eval.image.encoder, &mut cfg_eval.spectrum.encoder] {
        choice.settings.insert("dropout".into(), 0.0.into());
    }
    // The built-in components only: no plugin home.
    let model = astroclip_core::components::model(&cfg_eval, &ishape, &sl, std::path::Path::new(""), &device)?.model;
    let e = cfg.model.embed_dim;
    check_encoder(&model.image.info().id, &model.image, |m, x| Ok(m.encode(x)), il, e, &device, report);
    check_encoder(
        &model.spectrum.info().id,
        &model.spectrum,
        |m, x| Ok(m.encode(x)),
        sl.iter().product(),
        e,
        &device,
        report,
    );
    check_loss(&model.loss.info().id, &model.loss, &device, report);
    check_probe(astroclip_core::components::knn_probe(8).as_mut(), report);
    Ok(())
}

/// The kit on one plugin (installed id or directory).
pub fn test_plugin(spec: &str, home: &std::path::Path, input_len: usize, report: &mut Report) -> anyhow::Result<()> {
    use astroclip_plugin_host::{Carrier, ComponentKind, Installed};
    let dir = match Installed::new(home).resolve(spec) {
        Ok(d) => d,
        Err(e) => {
            report.push(spec, "manifest", false, e.to_string());
            return Ok(());
        }
    };
    let who = format!("{} {}", dir.id(), dir.version());
    report.push(
        &who,
        "manifest (strict schema)",
        true,
        format!("{}", dir.dir.join(astroclip_plugin_host::MANIFEST).display()),
    );
    if let Err(e) = dir.verify() {
        report.push(&who, "sha256 + interface version", false, e.to_string());
        return Ok(());
    }
    report.push(&who, "sha256 + interface version", true, format!("interface {}", dir.manifest.plugin.api_version));
    let deadline = dir.manifest.capabilities.deadline_ms;
    let modality = dir.manifest.plugin.modality.clone().unwrap_or_default();
    let kinds = dir.manifest.plugin.kinds.clone();
    match dir.manifest.entry.carrier {
        Carrier::Native => {
            let plugin = match astroclip_plugin_host::native::NativePlugin::load(&dir) {
                Ok(p) => p,
                Err(e) => {
                    report.push(&who, "load handshake", false, e.to_string());
                    return Ok(());
                }
            };
            report.push(&who, "load handshake", true, "interface + toolchain fingerprint + identity");
            let toks = plugin.tokenizers();
            let encs = plugin.encoders();
            let losses = plugin.losses();
            let probes = plugin.probes();
            for (kind, have) in [
                (ComponentKind::Tokenizer, toks.len()),
                (ComponentKind::Encoder, encs.len()),
                (ComponentKind::Loss, losses.len()),
                (ComponentKind::Probe, probes.len()),
            ] {
                let declared = kinds.contains(&kind);
                if declared || have > 0 {
                    report.push(&who, &format!("declares {kind:?} ↔ exports {have}"), declared == (have > 0), "");
                }
            }
            for (name, m, tok) in toks {
                let plugin = astroclip_plugin_host::native::NativePlugin::load(&dir)?;
                check_tokenizer(&mut NativeTok { plugin, tok, name, modality: m }, deadline, report);
            }
            let device = Device::flex().autodiff();
            for (name, _, enc) in encs {
                match astroclip_core::plugin_encoder::PluginEncoder::init(enc, input_len, 8, &device) {
                    Ok(e) => check_encoder(
                        &format!("{}/{name}", dir.id()),
                        &e,
                        |m, x| m.try_encode(x).map_err(|e| e.to_string()),
                        input_len,
                        8,
                        &device,
                        report,
                    ),
                    Err(e) => {
                        report.push(&format!("encoder {name}"), "builds (input_len, embed 8)", false, e.to_string())
                    }
                }
            }
            for (name, p) in probes {
                match astroclip_core::plugin_probe::PluginProbe::new(p) {
                    Ok(mut probe) => check_probe(&mut probe, report),
                    Err(e) => report.push(&format!("probe {name}"), "creates a probe", false, e.to_string()),
                }
            }
            for (name, l) in losses {
                match astroclip_core::plugin_encoder::PluginLoss::init(l, 16, &device) {
                    Ok(loss) => check_loss(&format!("{}/{name}", dir.id()), &loss, &device, report),
                    Err(e) => report.push(&format!("loss {name}"), "evaluates on a (4, 16) pair", false, e.to_string()),
                }
            }
        }
        Carrier::Wasm => match astroclip_core::wasm_client::WasmTokenizer::spawn(&dir.dir) {
            Ok(t) if t.is_encoder => {
                report.push(
                    &who,
                    "load handshake (sandboxed host)",
                    true,
                    "interface section + tensor-interface imports only",
                );
                let device = Device::flex().autodiff();
                let name = format!("{} (wasm)", dir.id());
                match astroclip_core::plugin_encoder::PluginEncoder::init_wasm(t, &modality, input_len, 8, &device) {
                    Ok(e) => check_encoder(
                        &name,
                        &e,
                        |m, x| m.try_encode(x).map_err(|e| e.to_string()),
                        input_len,
                        8,
                        &device,
                        report,
                    ),
                    Err(e) => {
                        report.push(&format!("encoder {name}"), "builds (input_len, embed 8)", false, e.to_string())
                    }
                }
            }
            Ok(t) => {
                report.push(&who, "load handshake (sandboxed host)", true, "interface section + no imports");
                check_tokenizer(&mut WasmTok(t, modality), deadline, report);
            }
            Err(e) => report.push(&who, "load handshake (sandboxed host)", false, e.to_string()),
        },
    }
    Ok(())
}
