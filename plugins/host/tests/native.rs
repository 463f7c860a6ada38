//! The native carrier against real plugin libraries: `plugins/examples/*` are built here with
//! the same cargo (into `target/plugin-examples`), given a manifest pinning their SHA-256, and
//! loaded. Each failure is checked for its message, and the host keeps working after it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use astroclip_plugin_host::native::NativePlugin;
use astroclip_plugin_host::{MANIFEST, PluginDir};

const IFACE: &str = astroclip_plugin_sdk::INTERFACE_VERSION;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Builds every example plugin once (serially: one cargo at a time on the shared target dir).
fn built() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace();
        let target = root.join("target/plugin-examples");
        for name in ["band-fluxes", "test-panic", "test-interface-2", "test-toolchain", "legacy-v1-0"] {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let out = std::process::Command::new(cargo)
                .args(["build", "--offline", "--quiet", "--manifest-path"])
                .arg(root.join(format!("plugins/examples/{name}/Cargo.toml")))
                .arg("--target-dir")
                .arg(&target)
                .output()
                .expect("run cargo");
            assert!(out.status.success(), "building {name}: {}", String::from_utf8_lossy(&out.stderr));
        }
        target.join("debug")
    })
}

/// A plugin directory holding the example's library and a manifest that pins it.
fn install(name: &str, id: &str, api: &str) -> (tempfile::TempDir, PluginDir) {
    use sha2::{Digest, Sha256};
    let lib = built().join(format!("libastroclip_plugin_{}.so", name.replace('-', "_")));
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&lib, dir.path().join("plugin.so")).unwrap();
    let sha = hex::encode(Sha256::digest(std::fs::read(&lib).unwrap()));
    std::fs::write(
        dir.path().join(MANIFEST),
        format!(
            "[plugin]\nid = \"{id}\"\nversion = \"0.1.0\"\napi_version = \"{api}\"\nkinds = [\"tokenizer\"]\n\n\
             [entry]\ncarrier = \"native\"\nfile = \"plugin.so\"\nsha256 = \"{sha}\"\n"
        ),
    )
    .unwrap();
    let p = PluginDir::open(dir.path()).unwrap();
    (dir, p)
}

/// The reference for band-fluxes, computed here independently: aperture sum within 8 px of the
/// centre, then asinh(F / 0.02) · (−2.5 / ln 10).
fn reference(img: &[f32], h: usize, w: usize, b: usize) -> Vec<f32> {
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    (0..b)
        .map(|k| {
            let mut f = 0f64;
            for y in 0..h {
                for x in 0..w {
                    if ((y as f64 - cy).powi(2) + (x as f64 - cx).powi(2)).sqrt() <= 8.0 {
                        f += img[(y * w + x) * b + k] as f64;
                    }
                }
            }
            ((f / 0.02).asinh() * -2.5 / std::f64::consts::LN_10) as f32
        })
        .collect()
}

#[test]
fn a_native_tokenizer_runs_on_host_buffers_deterministically() {
    let (_d, dir) = install("band-fluxes", "band-fluxes", IFACE);
    let p = NativePlugin::load(&dir).unwrap();
    let toks = p.tokenizers();
    assert_eq!(toks.len(), 1);
    assert_eq!((toks[0].0.as_str(), toks[0].1.as_str()), ("band-fluxes", "image"));
    let tok = p.tokenizer("band-fluxes").unwrap();
    let (h, w, b) = (24, 20, 3);
    let img: Vec<f32> = (0..h * w * b).map(|i| ((i * 37 % 101) as f32 - 30.0) * 0.01).collect();
    assert_eq!(p.output_len(tok, &[h, w, b]), Some(3));
    assert_eq!(p.output_len(tok, &[h, w]), None);
    let mut out = vec![0f32; 3];
    p.tokenize(tok, &img, &[h, w, b], &mut out).unwrap();
    let want = reference(&img, h, w, b);
    for (a, e) in out.iter().zip(&want) {
        assert!((a - e).abs() <= 1e-5 * e.abs().max(1.0), "{out:?} vs {want:?}");
    }
    let mut again = vec![0f32; 3];
    p.tokenize(tok, &img, &[h, w, b], &mut again).unwrap();
    assert_eq!(out, again);
    // Shapes are checked on both sides of the boundary; the message names plugin and call.
    let msg = p.tokenize(tok, &img, &[h, w, 4], &mut out).unwrap_err().to_string();
    assert!(msg.contains("band-fluxes 0.1.0") && msg.contains("tokenize") && msg.contains("shape"), "{msg}");
    let mut bad = img.clone();
    bad[(12 * w + 10) * b + 1] = f32::NAN;
    let msg = p.tokenize(tok, &bad, &[h, w, b], &mut out).unwrap_err().to_string();
    assert!(msg.contains("pixel (12, 10) band 1 is NaN"), "{msg}");
}

#[test]
fn a_panicking_plugin_returns_an_error_and_the_host_keeps_working() {
    let (_d, dir) = install("test-panic", "test-panic", IFACE);
    let p = NativePlugin::load(&dir).unwrap();
    let tok = p.tokenizer("panics").unwrap();
    let mut out = vec![0f32; 5];
    for _ in 0..2 {
        let msg = p.tokenize(tok, &[1.0; 5], &[5], &mut out).unwrap_err().to_string();
        assert!(
            msg.contains("test-panic 0.1.0") && msg.contains("panicked: deliberate panic on a spectrum of 5 bins"),
            "{msg}"
        );
    }
    // Another plugin still loads and runs in the same process.
    let (_d2, good) = install("band-fluxes", "band-fluxes", IFACE);
    let g = NativePlugin::load(&good).unwrap();
    let mut o = vec![0f32; 1];
    g.tokenize(g.tokenizer("band-fluxes").unwrap(), &[0.5; 16 * 16], &[16, 16, 1], &mut o).unwrap();
    assert!(o[0].is_finite());
}

/// A plugin built with SDK 1.0.0 (the frozen copy in plugins/sdk/frozen/v1_0: interface 1.0,
/// its 1.0 fingerprint "abi v1: …") loads in this host and runs; it has no tables of later
/// versions.
#[test]
fn a_plugin_built_against_interface_1_0_loads_and_runs() {
    let (_d, dir) = install("legacy-v1-0", "legacy-v1-0", "1.0.0");
    let p = NativePlugin::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.interface, "1.0.0");
    assert!(p.encoders().is_empty() && p.losses().is_empty() && p.probes().is_empty());
    let tok = p.tokenizer("spectrum-moments").unwrap();
    assert_eq!(p.output_len(tok, &[4]), Some(2));
    let mut out = [0f32; 2];
    p.tokenize(tok, &[1.0, 2.0, 3.0, 4.0], &[4], &mut out).unwrap();
    assert_eq!(out[0], 2.5);
    assert!((out[1] - 1.25f32.sqrt()).abs() < 1e-6, "{out:?}");
}

/// The version is read from the file: a refused library is never mapped, so its ELF
/// constructor never runs (it does run when the same file is mapped directly).
#[test]
#[allow(unsafe_code)]
fn a_refused_plugin_runs_no_code_not_even_its_constructors() {
    let marker = tempfile::tempdir().unwrap();
    let flag = marker.path().join("ran");
    // SAFETY: no other test reads or writes this variable.
    unsafe { std::env::set_var("ASTROCLIP_TEST_CTOR_MARKER", &flag) };
    let (d, dir) = install("test-interface-2", "test-interface-2", IFACE);
    let msg = NativePlugin::load(&dir).err().unwrap().to_string();
    assert!(msg.contains("built for plugin interface 2.0.0"), "{msg}");
    assert!(!flag.exists(), "the refused plugin's constructor ran");
    // SAFETY: mapping the test library runs its constructor, which only writes the marker.
    let lib = unsafe { libloading::Library::new(d.path().join("plugin.so")) }.unwrap();
    assert!(flag.exists(), "the marker mechanism did not work: the test proves nothing");
    std::mem::forget(lib);
}

#[test]
fn another_interface_version_is_refused_before_any_call() {
    // The manifest honestly declares 2.0.0: refused by the manifest check.
    let (_d, dir) = install("test-interface-2", "test-interface-2", "2.0.0");
    let msg = NativePlugin::load(&dir).err().unwrap().to_string();
    assert!(msg.contains("test-interface-2 0.1.0") && msg.contains("interface 2.0.0"), "{msg}");
    // The manifest lies (1.0.0): the version embedded in the library is read before any call.
    let (_d, dir) = install("test-interface-2", "test-interface-2", IFACE);
    let msg = NativePlugin::load(&dir).err().unwrap().to_string();
    assert!(msg.contains("built for plugin interface 2.0.0") && msg.contains("rebuild"), "{msg}");
}

#[test]
fn another_toolchain_is_refused_at_load() {
    let (_d, dir) = install("test-toolchain", "test-toolchain", IFACE);
    let msg = NativePlugin::load(&dir).err().unwrap().to_string();
    assert!(msg.contains("built for target \"aarch64-apple-darwin\"") && msg.contains("rustc 1.80.0"), "{msg}");
}

#[test]
fn a_library_that_does_not_match_its_manifest_is_not_loaded() {
    let (d, dir) = install("band-fluxes", "band-fluxes", IFACE);
    std::fs::copy(built().join("libastroclip_plugin_test_panic.so"), d.path().join("plugin.so")).unwrap();
    let msg = NativePlugin::load(&dir).err().unwrap().to_string();
    assert!(msg.contains("band-fluxes 0.1.0") && msg.contains("sha256"), "{msg}");
    // A manifest naming the wrong library identity is caught after the handshake.
    let (_d, dir) = install("band-fluxes", "not-band-fluxes", IFACE);
    let msg = NativePlugin::load(&dir).err().unwrap().to_string();
    assert!(msg.contains("the library says it is band-fluxes 0.1.0"), "{msg}");
}
