#!/usr/bin/env bash
# One short GPU check of the CUDA path (burn-tch on libtorch CUDA 2.9.0): builds with the
# `tch` feature against PyPI's CUDA torch, trains the quickstart for 200 steps on
# `tch-cuda:0` and the same steps on flex, and prints both training rates.
# Needs: an NVIDIA GPU + driver, Python 3.11, g++, the crates.io and PyPI registries.
# Usage: scripts/gpu-check.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-200}"
if [ ! -f .venv-cuda/.installed-2.9.0 ]; then
    python3 -m venv .venv-cuda
    .venv-cuda/bin/pip install -q --disable-pip-version-check torch==2.9.0
    touch .venv-cuda/.installed-2.9.0
fi
export VIRTUAL_ENV="$PWD/.venv-cuda" PATH="$PWD/.venv-cuda/bin:$PATH" LIBTORCH_USE_PYTORCH=1
sp="$PWD/.venv-cuda/lib/python3.11/site-packages"
export LD_LIBRARY_PATH="$sp/torch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
cargo build --workspace --features astroclip-core/tch
home="$(mktemp -d)"
for dev in tch-cuda:0 flex; do
    echo "== $dev"
    target/debug/astroclip --home "$home" run experiments/quickstart.toml --device "$dev" \
        --set train.steps="$steps" --set train.checkpoint_every="$steps" | tail -n 8
done
target/debug/astroclip --home "$home" runs list
