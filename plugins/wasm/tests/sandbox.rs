//! The WASM carrier's sandbox against misbehaving modules (WAT written here): each failure is
//! an error naming the plugin, its version and the call, with the reason checked, and the host
//! keeps working afterwards (the example plugin still runs).

use std::path::{Path, PathBuf};
use std::time::Instant;

use astroclip_plugin_host::{MANIFEST, PluginDir};
use astroclip_plugin_wasm::WasmPlugin;

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wasm-spectrum-stats")
}

const ALLOC: &str = r#"(func (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))"#;

/// A module with the v1 exports; `alloc` and `tokenize` bodies vary per test.
fn module(alloc: &str, tokenize_body: &str, extra: &str, version: &str) -> String {
    format!(
        r#"(module
  {extra}
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  {alloc}
  (func (export "output_len") (param i32 i32) (result i32) (i32.const 2))
  (func $tok (export "tokenize") (param $in i32) (param $n i32) (param $shape i32) (param $ndim i32) (param $out i32) (param $outn i32) (result i32)
    {tokenize_body})
  (@custom "astroclip_plugin_interface" "{version}")
)"#
    )
}

fn plugin(id: &str, wat: &str, api: &str, deadline_ms: u64, max_memory_mb: u32) -> (tempfile::TempDir, PluginDir) {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.wat"), wat).unwrap();
    std::fs::write(
        dir.path().join(MANIFEST),
        format!(
            "[plugin]\nid = \"{id}\"\nversion = \"0.3.1\"\napi_version = \"{api}\"\nkinds = [\"tokenizer\"]\n\n\
             [entry]\ncarrier = \"wasm\"\nfile = \"p.wat\"\nsha256 = \"{}\"\n\n\
             [capabilities]\nmax_memory_mb = {max_memory_mb}\ndeadline_ms = {deadline_ms}\n",
            hex::encode(Sha256::digest(wat.as_bytes()))
        ),
    )
    .unwrap();
    let p = PluginDir::open(dir.path()).unwrap();
    (dir, p)
}

/// The host still works: the example plugin loads and computes sum and mean.
fn host_still_works() {
    let p = WasmPlugin::load(&PluginDir::open(&example_dir()).unwrap()).unwrap();
    let mut s = p.session().unwrap();
    let mut out = [0f32; 2];
    s.tokenize(&[1.0, 2.0, 3.0, 6.0], &[4], &mut out).unwrap();
    assert_eq!(out, [12.0, 3.0]);
}

#[test]
fn the_example_plugin_tokenizes_spectra() {
    let p = WasmPlugin::load(&PluginDir::open(&example_dir()).unwrap()).unwrap();
    let mut s = p.session().unwrap();
    assert_eq!(s.output_len(&[7781]).unwrap(), Some(2));
    assert_eq!(s.output_len(&[3, 4]).unwrap(), None);
    let flux: Vec<f32> = (0..7781).map(|i| (i % 17) as f32 * 0.25).collect();
    let mut out = [0f32; 2];
    for _ in 0..3 {
        s.tokenize(&flux, &[7781], &mut out).unwrap();
        let sum: f32 = flux.iter().sum();
        assert!((out[0] - sum).abs() <= 1e-3 * sum && (out[1] - sum / 7781.0).abs() <= 1e-3, "{out:?}");
    }
    let msg = s.tokenize(&flux[..6], &[2, 3], &mut out).unwrap_err().to_string();
    assert!(msg.contains("spectrum-stats 0.1.0") && msg.contains("refused the input"), "{msg}");
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    let wat = module(ALLOC, "(loop $l (br $l)) (i32.const 0)", "", "1.0.0");
    let (_d, dir) = plugin("loops", &wat, "1.0.0", 200, 16);
    let p = WasmPlugin::load(&dir).unwrap();
    let mut s = p.session().unwrap();
    let t = Instant::now();
    let msg = s.tokenize(&[1.0; 4], &[4], &mut [0.0; 2]).unwrap_err().to_string();
    assert!(t.elapsed().as_secs_f64() < 5.0, "stopped after {:?}", t.elapsed());
    assert!(
        msg.contains("loops 0.3.1") && msg.contains("tokenize") && msg.contains("deadline of 200 ms exceeded"),
        "{msg}"
    );
    host_still_works();
}

#[test]
fn unbounded_memory_growth_stops_at_the_cap() {
    let grow = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (i32.const 0)";
    let (_d, dir) = plugin("grows", &module(ALLOC, grow, "", "1.0.0"), "1.0.0", 2000, 8);
    let p = WasmPlugin::load(&dir).unwrap();
    let mut s = p.session().unwrap();
    let msg = s.tokenize(&[1.0; 4], &[4], &mut [0.0; 2]).unwrap_err().to_string();
    assert!(msg.contains("grows 0.3.1") && msg.contains("memory cap of 8 MiB reached"), "{msg}");
    host_still_works();
}

#[test]
fn an_out_of_range_pointer_is_refused_by_the_host() {
    let bad_alloc = r#"(func (export "alloc") (param i32) (result i32) (i32.const 0x7ffffff0))"#;
    let (_d, dir) = plugin("bad-pointer", &module(bad_alloc, "(i32.const 0)", "", "1.0.0"), "1.0.0", 2000, 16);
    let p = WasmPlugin::load(&dir).unwrap();
    let mut s = p.session().unwrap();
    let msg = s.tokenize(&[1.0; 4], &[4], &mut [0.0; 2]).unwrap_err().to_string();
    assert!(
        msg.contains("bad-pointer 0.3.1") && msg.contains("0x7ffffff0") && msg.contains("out of the guest's"),
        "{msg}"
    );
    host_still_works();
}

#[test]
fn unbounded_recursion_is_a_stack_overflow_trap() {
    let recurse = "(call $tok (local.get $in) (local.get $n) (local.get $shape) (local.get $ndim) (local.get $out) (local.get $outn))";
    let (_d, dir) = plugin("recurses", &module(ALLOC, recurse, "", "1.0.0"), "1.0.0", 5000, 16);
    let p = WasmPlugin::load(&dir).unwrap();
    let mut s = p.session().unwrap();
    let msg = s.tokenize(&[1.0; 4], &[4], &mut [0.0; 2]).unwrap_err().to_string();
    assert!(msg.contains("recurses 0.3.1") && msg.contains("stack overflow"), "{msg}");
    host_still_works();
}

#[test]
fn imports_and_other_interface_versions_are_refused_at_load() {
    let wasi = r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#;
    let (_d, dir) = plugin("wants-wasi", &module(ALLOC, "(i32.const 0)", wasi, "1.0.0"), "1.0.0", 2000, 16);
    let msg = WasmPlugin::load(&dir).err().unwrap().to_string();
    assert!(
        msg.contains("wants-wasi 0.3.1") && msg.contains("wasi_snapshot_preview1::fd_write") && msg.contains("no WASI"),
        "{msg}"
    );
    let (_d, dir) = plugin("v2", &module(ALLOC, "(i32.const 0)", "", "2.0.0"), "1.0.0", 2000, 16);
    let msg = WasmPlugin::load(&dir).err().unwrap().to_string();
    assert!(msg.contains("v2 0.3.1") && msg.contains("built for plugin interface 2.0.0"), "{msg}");
    let no_version =
        module(ALLOC, "(i32.const 0)", "", "1.0.0").replace(r#"(@custom "astroclip_plugin_interface" "1.0.0")"#, "");
    let (_d, dir) = plugin("unversioned", &no_version, "1.0.0", 2000, 16);
    let msg = WasmPlugin::load(&dir).err().unwrap().to_string();
    assert!(msg.contains("no `astroclip_plugin_interface` custom section"), "{msg}");
    host_still_works();
}

/// A WASM encoder (tensor interface) that never returns is stopped by the deadline, and one
/// that hands the host a bad pointer gets an error, not a crash; the host keeps working.
#[test]
fn misbehaving_wasm_encoders_are_contained() {
    let host = || -> astroclip_plugin_wasm::TensorHost {
        Box::new(|_call| astroclip_carrier_protocol::TensorAnswer::Handle(7))
    };
    let enc = |body: &str| {
        format!(
            r#"(module
  (import "astroclip_tensor_v1" "param" (func $param (param i32 i32 i32 i32 i32 f32) (result i64)))
  (memory (export "memory") 1)
  (func (export "encoder_forward") (param $x i64) (param $e i32) (result i64) {body})
  (@custom "astroclip_plugin_interface" "1.1.0")
)"#
        )
    };
    let (_d, dir) = plugin("loops-enc", &enc("(loop $l (br $l)) (i64.const 0)"), "1.1.0", 200, 16);
    let p = WasmPlugin::load(&dir).unwrap();
    assert!(p.is_encoder());
    let t = Instant::now();
    let msg = p.encoder_session(host()).unwrap().forward(1, 4).unwrap_err().to_string();
    assert!(msg.contains("loops-enc 0.3.1") && msg.contains("deadline of 200 ms exceeded"), "{msg}");
    assert!(t.elapsed().as_secs() < 5);
    // `param` with a name pointer far outside memory: the host refuses, forward returns 0.
    let bad =
        "(call $param (i32.const 0x7ffffff0) (i32.const 16) (i32.const 0) (i32.const 0) (i32.const 0) (f32.const 0))";
    let (_d, dir) = plugin("bad-ptr-enc", &enc(bad), "1.1.0", 2000, 16);
    let p = WasmPlugin::load(&dir).unwrap();
    let msg = p.encoder_session(host()).unwrap().forward(1, 4).unwrap_err().to_string();
    assert!(msg.contains("bad-ptr-enc 0.3.1") && msg.contains("outside the guest's memory"), "{msg}");
    // Importing anything outside the tensor interface is refused at load.
    let other =
        r#"(module (import "astroclip_tensor_v1" "open_file" (func)) (@custom "astroclip_plugin_interface" "1.1.0"))"#;
    let (_d, dir) = plugin("sneaky", other, "1.1.0", 2000, 16);
    let msg = WasmPlugin::load(&dir).err().unwrap().to_string();
    assert!(msg.contains("imports astroclip_tensor_v1::open_file"), "{msg}");
    host_still_works();
}
