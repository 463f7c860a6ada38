#!/usr/bin/env bash
# Binds a new instrument into the trained embedding from one command: builds astroclip, the
# photometry encoder plugin (native, tensor interface) and the WASM plugin host, then runs
# `astroclip bind experiments/bind-photometry.toml` — which reuses a finished quickstart run
# from the registry or trains one first (~8 min on 2 cores), then binds photometry (WASM
# tokenizer) to the frozen image and spectrum embeddings. Extra arguments go to `astroclip`
# (e.g. `--home DIR`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace
scripts/build-plugins.sh photometry-mlp >/dev/null
export ASTROCLIP_WASM_HOST=$PWD/plugins/wasm/target/debug/astroclip-wasm-host
exec target/debug/astroclip "$@" bind experiments/bind-photometry.toml
