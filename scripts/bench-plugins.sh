#!/usr/bin/env bash
# Plugin platform benchmark: tensor-interface overhead (plugin-defined encoder vs the same
# encoder in direct burn, training step times) and WASM preprocessing throughput (through the
# astroclip-wasm-host process vs Rust). Prints Markdown tables; one run, same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh photometry-mlp tensor-zoo >/dev/null
cargo build --workspace --example bench_plugins
export ASTROCLIP_WASM_HOST=$PWD/plugins/wasm/target/debug/astroclip-wasm-host
target/debug/examples/bench_plugins target/plugins/photometry-mlp "$PWD"
echo
echo "In-process (no pipe), same WASM plugin and spectra:"
"$ASTROCLIP_WASM_HOST" bench plugins/examples/wasm-spectrum-stats --len 7781 --n 20000
