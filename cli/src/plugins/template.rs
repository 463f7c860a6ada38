//! `astroclip plugins new`: a plugin crate from a template that builds, packs and passes the
//! conformance kit as created.
//!
//! * native (default): a Rust `cdylib` against `astroclip-plugin-sdk` with a tokenizer (array
//!   interface) and an encoder (tensor interface) for the chosen modality;
//! * `--wasm`: a Zig module (Zig from PyPI `ziglang`) with a tokenizer, built to `wasm32` and
//!   given its interface-version section.
//!
//! Each gets a `build.sh` that leaves an installable plugin directory in `dist/` (library or
//! module + a `plugin.toml` pinning its SHA-256), and a README with the next commands.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

const NATIVE_LIB: &str = r#"//! {{id}}: an astroclip plugin for the `{{modality}}` modality (created by `astroclip plugins new`).
//!
//! * `Features` — a tokenizer over the array interface: input `[2, bands]` (row 0 fluxes,
//!   row 1 inverse variances), output `bands` values log10(max(flux, 1e-3 · σ)) where σ = 1/√ivar.
//! * `Mlp` — an encoder over the host tensor interface: features → Linear → GELU → LayerNorm →
//!   Linear → embedding. Its parameters live in the host and are trained by the host.
//!
//! Edit, then `./build.sh` and `astroclip plugins test dist`.
use astroclip_plugin_sdk::tensor::{Graph, GraphEncoder, T, init};
use astroclip_plugin_sdk::{ArrayTokenizer, export_plugin};

pub struct Features;

impl ArrayTokenizer for Features {
    const NAME: &'static str = "features";
    const MODALITY: &'static str = "{{modality}}";

    fn output_len(shape: &[usize]) -> Option<usize> {
        (shape.len() == 2 && shape[0] == 2 && shape[1] > 0).then(|| shape[1])
    }

    fn tokenize(input: &[f32], shape: &[usize], out: &mut [f32]) -> Result<(), String> {
        let b = shape[1];
        for k in 0..b {
            let (f, ivar) = (input[k], input[b + k]);
            if !f.is_finite() || !(ivar > 0.0) {
                return Err(format!("band {k}: flux {f} / ivar {ivar} unusable"));
            }
            let floor = 1e-3 / ivar.sqrt();
            out[k] = f.max(floor).log10();
        }
        Ok(())
    }
}

pub struct Mlp;

impl GraphEncoder for Mlp {
    const NAME: &'static str = "mlp";
    const MODALITY: &'static str = "{{modality}}";

    fn forward(g: &Graph<'_>, x: T, embed_dim: usize) -> Result<T, String> {
        let d = g.shape(x)?[1];
        let h = g.gelu(g.dense(x, ("fc1.weight", "fc1.bias"), d, 64)?)?;
        let gamma = g.param("norm.weight", &[64], init::CONSTANT, 1.0)?;
        let beta = g.param("norm.bias", &[64], init::ZEROS, 0.0)?;
        let h = g.layer_norm(h, gamma, beta, 1e-5)?;
        g.dense(h, ("fc2.weight", "fc2.bias"), 64, embed_dim)
    }
}

export_plugin!(id: "{{id}}", version: "0.1.0", tokenizers: [Features], encoders: [Mlp]);
"#;

const NATIVE_CARGO: &str = r#"[package]
name = "astroclip-plugin-{{id}}"
version = "0.1.0"
edition = "2024"
publish = false

[workspace]

[lib]
crate-type = ["cdylib"]

[dependencies]
astroclip-plugin-sdk = { path = "{{sdk}}" }
"#;

const NATIVE_BUILD: &str = r#"#!/usr/bin/env bash
# Builds the plugin and lays it out in dist/ as an installable plugin directory: the library
# and a plugin.toml pinning its SHA-256 (rebuilding changes the hash: run this again).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --offline --quiet --release
mkdir -p dist
cp target/release/libastroclip_plugin_{{lib}}.so dist/{{id}}.so
cat > dist/plugin.toml <<TOML
[plugin]
id = "{{id}}"
version = "0.1.0"
api_version = "{{api}}"
kinds = ["tokenizer", "encoder"]
modality = "{{modality}}"
description = "created by astroclip plugins new"

[entry]
carrier = "native"
file = "{{id}}.so"
sha256 = "$(sha256sum dist/{{id}}.so | cut -d' ' -f1)"
TOML
echo "$PWD/dist"
"#;

const WASM_ZIG: &str = r#"//! {{id}}: an astroclip WASM plugin for the `{{modality}}` modality (created by
//! `astroclip plugins new --wasm`). Guest ABI of interface 1.x: exports `memory`,
//! `alloc(n) -> ptr`, `output_len(shape_ptr, ndim) -> len`, `tokenize(in, n, shape, ndim, out,
//! out_n) -> code` and optionally `last_error(buf, cap) -> len`; no imports (sandboxed).
//!
//! `features`: input [2, bands] (fluxes, inverse variances) → bands values
//! log10(max(flux, 1e-3 · σ)), σ = 1/√ivar.
const std = @import("std");

var heap: [64 * 1024]u8 align(8) = undefined;
var top: usize = 0;
var err_buf: [256]u8 = undefined;
var err_len: usize = 0;

export fn alloc(n: i32) i32 {
    const size: usize = (@as(usize, @intCast(n)) + 7) & ~@as(usize, 7);
    if (top + size > heap.len) top = 0;
    const p = @intFromPtr(&heap[top]);
    top += size;
    return @intCast(p);
}

fn fail(comptime fmt: []const u8, args: anytype) i32 {
    const s = std.fmt.bufPrint(&err_buf, fmt, args) catch err_buf[0..0];
    err_len = s.len;
    return 1;
}

export fn last_error(buf: [*]u8, cap: i32) i32 {
    const n = @min(err_len, @as(usize, @intCast(cap)));
    @memcpy(buf[0..n], err_buf[0..n]);
    return @intCast(n);
}

export fn output_len(shape: [*]const u32, ndim: i32) i32 {
    top = 0;
    if (ndim != 2 or shape[0] != 2 or shape[1] < 1) return 0;
    return @intCast(shape[1]);
}

export fn tokenize(input: [*]const f32, n: i32, shape: [*]const u32, ndim: i32, out: [*]f32, out_n: i32) i32 {
    defer top = 0;
    if (ndim != 2 or shape[0] != 2) return fail("input shape must be [2, bands]", .{});
    const b: usize = shape[1];
    if (@as(usize, @intCast(n)) != 2 * b or @as(usize, @intCast(out_n)) != b) return fail("buffer lengths do not match shape", .{});
    for (0..b) |k| {
        const f = input[k];
        const ivar = input[b + k];
        if (!std.math.isFinite(f) or !(ivar > 0)) return fail("band {d}: flux or ivar unusable", .{k});
        const floor = 1e-3 / @sqrt(ivar);
        out[k] = std.math.log10(@max(f, floor));
    }
    return 0;
}
"#;

const WASM_BUILD: &str = r#"#!/usr/bin/env bash
# Builds {{id}}.wasm with Zig from PyPI (`pip install ziglang==0.17.1`; PYTHON names the
# Python that has it), adds the interface-version section, and lays out dist/.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
mkdir -p dist
"$PY" -m ziglang build-exe {{id}}.zig -target wasm32-freestanding -fno-entry -rdynamic -O ReleaseSmall \
    -femit-bin=dist/{{id}}.wasm
rm -f dist/{{id}}.wasm.o
"$PY" "{{sdk}}/wasm/add_version_section.py" dist/{{id}}.wasm {{api}}
cat > dist/plugin.toml <<TOML
[plugin]
id = "{{id}}"
version = "0.1.0"
api_version = "{{api}}"
kinds = ["tokenizer"]
modality = "{{modality}}"
description = "created by astroclip plugins new --wasm"

[entry]
carrier = "wasm"
file = "{{id}}.wasm"
sha256 = "$(sha256sum dist/{{id}}.wasm | cut -d' ' -f1)"

[capabilities]
max_memory_mb = 4
deadline_ms = 500
TOML
echo "$PWD/dist"
"#;

const README: &str = r#"# {{id}}

An astroclip plugin for the `{{modality}}` modality, created by `astroclip plugins new`.

```bash
./build.sh                         # → dist/ (entry + plugin.toml with its sha256)
astroclip plugins test dist        # the conformance kit
astroclip plugins add dist         # install into $ASTROCLIP_HOME/plugins/{{id}}
```

See docs/plugins.md in the astroclip repository for the interfaces and for binding a new
modality into a trained embedding.
"#;

fn fill(t: &str, id: &str, modality: &str, sdk: &str) -> String {
    t.replace("{{id}}", id)
        .replace("{{lib}}", &id.replace('-', "_"))
        .replace("{{modality}}", modality)
        .replace("{{sdk}}", sdk)
        .replace("{{api}}", astroclip_plugin_sdk::INTERFACE_VERSION)
}

pub fn new_plugin(id: &str, parent: &Path, modality: &str, wasm: bool) -> anyhow::Result<PathBuf> {
    if !valid_id(id) {
        bail!("plugin id {id:?} must match ^[a-z0-9-]+$");
    }
    if !valid_id(modality) {
        bail!("modality {modality:?} must match ^[a-z0-9-]+$");
    }
    let dir = parent.join(id);
    if dir.exists() {
        bail!("{} already exists; choose another id or --dir", dir.display());
    }
    let sdk = Path::new(SDK_DIR)
        .canonicalize()
        .with_context(|| format!("the plugin SDK sources ({SDK_DIR}) are not here; run from an astroclip checkout"))?;
    let sdk = sdk.display().to_string();
    std::fs::create_dir_all(&dir)?;
    let write = |name: &str, text: &str, exec: bool| -> anyhow::Result<()> {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, fill(text, id, modality, &sdk))?;
        if exec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    };
    if wasm {
        write(&format!("{id}.zig"), WASM_ZIG, false)?;
        write("build.sh", WASM_BUILD, true)?;
    } else {
        write("Cargo.toml", NATIVE_CARGO, false)?;
        write("src/lib.rs", NATIVE_LIB, false)?;
        write("build.sh", NATIVE_BUILD, true)?;
    }
    write("README.md", README, false)?;
    write(".gitignore", "target/\ndist/\n", false)?;
    Ok(dir)
}
