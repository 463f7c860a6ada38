#!/usr/bin/env bash
# The GPU check, run ON a GPU machine that has PyTorch (libtorch + CUDA libraries) but no
# network and no Rust toolchain: the `astroclip` binary is built elsewhere against the same
# torch version's headers (see docs/architecture.md, "GPU builds") and carried in.
#   LD_LIBRARY_PATH=<site-packages>/torch/lib scripts/gpu-device-check.sh path/to/astroclip
# Prints: the GPU; the quickstart (200 steps) on tch-cuda:0 and flex; the paper
# preset (30 steps, batch 256) on tch-cuda:0; the loader vs the GPU training step.
set -uo pipefail
cd "$(dirname "$0")/.."
bin="$1"
home="$(mktemp -d)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
nproc
"$bin" --home "$home" --log warn survey synth --n 2048 --out "$home/survey.h5"
for dev in tch-cuda:0 flex; do
    echo "== quickstart, 200 steps, $dev"
    timeout 120 "$bin" --home "$home" --log warn run experiments/quickstart.toml --device "$dev" \
        --set train.steps=200 --set train.checkpoint_every=200 | tail -n 8
done
echo "== paper preset, 30 steps, batch 256, tch-cuda:0, on the HDF5 survey"
timeout 120 "$bin" --home "$home" --log warn run experiments/paper.toml --device tch-cuda:0 \
    --set "data.path=$home/survey.h5" --set train.steps=30 --set train.warmup_steps=5 \
    --set train.log_every=10 --set train.checkpoint_every=30 --set eval.k=16 | tail -n 8
echo "== loader vs the GPU training step (quickstart model)"
timeout 60 "$bin" --home "$home" --log warn data bench "$home/survey.h5" --device tch-cuda:0 \
    --batches 30 --workers 1,2,4,8 --train-steps 20
echo "== loader vs the GPU training step (paper model, batch 256)"
timeout 60 "$bin" --home "$home" --log warn data bench "$home/survey.h5" --device tch-cuda:0 \
    --experiment experiments/paper.toml --batches 8 --workers 4,8 --train-steps 5
"$bin" --home "$home" runs list
