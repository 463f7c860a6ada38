#!/usr/bin/env bash
# The main job (README): build astroclip (pure-Rust CPU backend, no download but crates.io)
# and train + evaluate the quickstart experiment on the embedded synthetic survey.
# Extra arguments go to `astroclip run`, e.g. `--set train.steps=200`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace
exec target/debug/astroclip run experiments/quickstart.toml "$@"
