#!/usr/bin/env bash
# The test command (README): data fixtures, every test on the default pure-Rust backend
# (burn-flex), the WASM plugin carrier's tests, then the libtorch backend tests with CPU-only
# libtorch 2.9.0 from PyPI.
# Set ASTROCLIP_SKIP_TCH=1 to skip the libtorch part (it downloads ~1 GB once).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/fixtures.sh | tail -n 1 | sed "s/^/export /")"
# The WASM plugin carrier is its own workspace (wasmtime would rebuild burn in the shared one);
# its host binary serves WASM plugins to `astroclip` (the binding test uses it).
cargo build --manifest-path plugins/wasm/Cargo.toml --bin astroclip-wasm-host
cargo test --workspace
ZIG_PYTHON=$PWD/.venv-data/bin/python cargo test --manifest-path plugins/wasm/Cargo.toml
if [ "${ASTROCLIP_SKIP_TCH:-0}" != 1 ]; then
    eval "$(scripts/setup-libtorch-cpu.sh)"
    cargo test --workspace --features astroclip-core/tch -- tch_backend
fi
