//! The photometry tokenizer plugin (`plugins/examples/wasm-photometry`, Zig → WASM) against
//! an independent f64 implementation of its formulas (asinh magnitudes of Lupton, Gunn &
//! Szalay 1999 with softening b = σ; colours; magnitude errors), its refusals as data, the
//! committed `.wasm` against its source (rebuilt when `ZIG_PYTHON` names a Python with
//! `ziglang`), and the `astroclip-wasm-host serve` protocol.

use std::io::Read;

use astroclip_carrier_protocol::{PROTOCOL_VERSION, Reply, Request, read_frame, write_frame};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use astroclip_plugin_host::PluginDir;
use astroclip_plugin_wasm::WasmPlugin;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wasm-photometry")
}

fn reference(flux: &[f64], ivar: &[f64]) -> Vec<f64> {
    let k = 2.5 / std::f64::consts::LN_10;
    let b = flux.len();
    let mut out = vec![0.0; 2 * b];
    let mut mags = vec![0.0; b];
    for i in 0..b {
        let sigma = 1.0 / ivar[i].sqrt();
        let x = flux[i] / (2.0 * sigma);
        mags[i] = 22.5 - k * (x.asinh() + sigma.ln());
        out[b + i] = 10.0 * k * sigma / (2.0 * sigma * (1.0 + x * x).sqrt());
    }
    out[0] = (mags[1] - 18.0) / 2.0;
    for i in 0..b - 1 {
        out[1 + i] = mags[i] - mags[i + 1];
    }
    out
}

#[test]
fn photometry_features_match_the_reference_formulas() {
    let p = WasmPlugin::load(&PluginDir::open(&dir()).unwrap()).unwrap();
    let mut s = p.session().unwrap();
    assert_eq!(s.output_len(&[2, 5]).unwrap(), Some(10));
    assert_eq!(s.output_len(&[5]).unwrap(), None);
    let cases: [([f64; 5], [f64; 5]); 3] = [
        ([12.0, 25.0, 40.0, 30.0, 18.0], [400.0, 180.0, 30.0, 8.0, 2.0]),
        ([0.3, 1.1, 2.0, 1.5, -0.4], [300.0, 150.0, 25.0, 6.0, 1.5]), // faint, negative W2
        ([250.0, 600.0, 900.0, 700.0, 420.0], [10.0, 5.0, 1.0, 0.5, 0.2]),
    ];
    for (flux, ivar) in cases {
        let input: Vec<f32> = flux.iter().chain(&ivar).map(|&v| v as f32).collect();
        let mut out = [0f32; 10];
        s.tokenize(&input, &[2, 5], &mut out).unwrap();
        let want = reference(&flux, &ivar);
        for (i, (a, b)) in out.iter().zip(&want).enumerate() {
            assert!((*a as f64 - b).abs() < 2e-4 * (1.0 + b.abs()), "feature {i}: wasm {a} vs reference {b}");
        }
    }
}

#[test]
fn refusals_name_the_band_and_reason() {
    let p = WasmPlugin::load(&PluginDir::open(&dir()).unwrap()).unwrap();
    let mut s = p.session().unwrap();
    let mut out = [0f32; 10];
    let mut input = [1.0f32; 10];
    input[2] = f32::NAN;
    let msg = s.tokenize(&input, &[2, 5], &mut out).unwrap_err().to_string();
    assert!(msg.contains("photometry 0.1.0") && msg.contains("band 2: flux is not finite"), "{msg}");
    input[2] = 1.0;
    input[8] = 0.0;
    let msg = s.tokenize(&input, &[2, 5], &mut out).unwrap_err().to_string();
    assert!(msg.contains("band 3: ivar 0 must be positive"), "{msg}");
    input[8] = 1.0;
    s.tokenize(&input, &[2, 5], &mut out).unwrap();
}

#[test]
fn the_committed_modules_are_built_from_their_sources() {
    let Ok(py) = std::env::var("ZIG_PYTHON") else {
        eprintln!("ZIG_PYTHON not set: rebuild check skipped (scripts/test.sh sets it)");
        return;
    };
    for (example, source, module) in
        [("wasm-photometry", "photometry.zig", "photometry.wasm"), ("wasm-mlp-encoder", "mlp.zig", "mlp.wasm")]
    {
        let dir = dir().join("..").join(example);
        let tmp = tempfile::tempdir().unwrap();
        // build.sh finds the SDK script relative to itself: give it the same layout.
        let sdk = tmp.path().join("sdk/wasm");
        std::fs::create_dir_all(&sdk).unwrap();
        std::fs::copy(dir.join("../../sdk/wasm/add_version_section.py"), sdk.join("add_version_section.py")).unwrap();
        let work = tmp.path().join("examples/p");
        std::fs::create_dir_all(&work).unwrap();
        for f in [source, "build.sh"] {
            std::fs::copy(dir.join(f), work.join(f)).unwrap();
        }
        let out = Command::new("bash").arg(work.join("build.sh")).env("PYTHON", &py).output().unwrap();
        assert!(out.status.success(), "{example}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            std::fs::read(work.join(module)).unwrap(),
            std::fs::read(dir.join(module)).unwrap(),
            "{example}/{module} differs from a rebuild of {source}: rebuild it with build.sh and update plugin.toml's sha256"
        );
    }
}

fn serve() -> (std::process::Child, std::process::ChildStdin, std::process::ChildStdout) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_astroclip-wasm-host"))
        .arg("serve")
        .arg(dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (w, r) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    (child, w, r)
}

fn reply(r: &mut impl Read) -> (Reply, Vec<f32>) {
    read_frame(r).unwrap().expect("a reply")
}

#[test]
fn the_host_process_serves_batches_and_reports_the_failing_object() {
    let (mut child, mut w, mut r) = serve();
    write_frame(&mut w, &Request::Hello { protocol: PROTOCOL_VERSION }, &[]).unwrap();
    let (hello, _) = reply(&mut r);
    assert_eq!(
        hello,
        Reply::Hello { protocol: PROTOCOL_VERSION, id: "photometry".into(), version: "0.1.0".into(), encoder: false }
    );
    let batch: Vec<f32> =
        (0..3).flat_map(|k| [10.0 + k as f32, 20.0, 30.0, 25.0, 15.0, 100.0, 80.0, 20.0, 5.0, 2.0]).collect();
    let tokenize = Request::Tokenize { shape: vec![2, 5], n: 3 };
    write_frame(&mut w, &tokenize, &batch).unwrap();
    let (h, out) = reply(&mut r);
    assert!(matches!(h, Reply::Tokens { n: 3, .. }), "{h:?}");
    assert_eq!(out.len(), 30);
    let mut bad = batch.clone();
    bad[10 + 6] = -1.0; // object 1, ivar of band 1
    write_frame(&mut w, &tokenize, &bad).unwrap();
    match reply(&mut r).0 {
        Reply::Failed { index: Some(1), error } => {
            assert!(error.contains("band 1: ivar -1 must be positive"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    // Still serving after a refusal.
    write_frame(&mut w, &tokenize, &batch).unwrap();
    let (_, again) = reply(&mut r);
    assert_eq!(again, out);
    drop(w);
    assert!(child.wait().unwrap().success());
}

/// Another protocol version is refused at the handshake, before the plugin is loaded.
#[test]
fn the_host_process_refuses_another_protocol_version() {
    let (mut child, mut w, mut r) = serve();
    write_frame(&mut w, &Request::Hello { protocol: PROTOCOL_VERSION + 1 }, &[]).unwrap();
    match reply(&mut r).0 {
        Reply::Failed { error, .. } => assert!(error.contains("different carrier protocols"), "{error}"),
        other => panic!("{other:?}"),
    }
    drop(w);
    child.wait().unwrap();
}

/// A C plugin written against `plugins/sdk/include/astroclip_plugin.h`, built with `zig cc`
/// (when `ZIG_PYTHON` is set) plus the version-section step, runs in the sandbox.
#[test]
fn a_c_plugin_built_against_the_header_runs() {
    use sha2::{Digest, Sha256};
    let Ok(py) = std::env::var("ZIG_PYTHON") else {
        eprintln!("ZIG_PYTHON not set: C plugin check skipped (scripts/test.sh sets it)");
        return;
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wasm-c-colour");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    let tmp = tempfile::tempdir().unwrap();
    let wasm = tmp.path().join("colour.wasm");
    let out = Command::new(&py)
        .args(["-m", "ziglang", "cc", "--target=wasm32-freestanding", "-O2", "-nostdlib", "-Wl,--no-entry", "-I"])
        .arg(sdk.join("include"))
        .arg("-o")
        .arg(&wasm)
        .arg(src.join("colour.c"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(&py).arg(sdk.join("wasm/add_version_section.py")).arg(&wasm).arg("1.1.0").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&wasm).unwrap();
    assert_eq!(astroclip_plugin_wasm::embedded_version(&bytes).as_deref(), Some("1.1.0"));
    std::fs::write(
        tmp.path().join("plugin.toml"),
        format!(
            "[plugin]\nid = \"c-colour\"\nversion = \"0.1.0\"\napi_version = \"1.1.0\"\nkinds = [\"tokenizer\"]\n\
             modality = \"photometry\"\n\n[entry]\ncarrier = \"wasm\"\nfile = \"colour.wasm\"\nsha256 = \"{}\"\n",
            hex::encode(Sha256::digest(&bytes))
        ),
    )
    .unwrap();
    let p = WasmPlugin::load(&PluginDir::open(tmp.path()).unwrap()).unwrap();
    let mut s = p.session().unwrap();
    let mut out = [0f32; 3];
    s.tokenize(&[2.0, 4.0, 8.0, 1.0, 1.0, 1.0], &[2, 3], &mut out).unwrap();
    assert_eq!(out, [0.5, 1.0, 2.0]);
    let msg = s.tokenize(&[2.0, 0.0, 8.0, 1.0, 1.0, 1.0], &[2, 3], &mut out).unwrap_err().to_string();
    assert!(msg.contains("c-colour 0.1.0") && msg.contains("r-band flux must be positive"), "{msg}");
}
