#!/usr/bin/env bash
# Training throughput of the quickstart model on each CPU backend, same binary, same machine,
# one run: builds with the `tch` feature (CPU libtorch 2.9.0 from PyPI), trains 100 quickstart
# steps on 1024 synthetic galaxies with --device tch and --device flex, prints a table with
# the ratio. Usage: scripts/bench-backends.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-100}"
eval "$(scripts/setup-libtorch-cpu.sh)"
cargo build --workspace --features astroclip-core/tch >&2
home="$(mktemp -d)"
declare -A rate
for dev in tch flex; do
    line=$(target/debug/astroclip --home "$home" --log warn run experiments/quickstart.toml --device "$dev" \
        --set data.synth.n_galaxies=1024 --set train.steps="$steps" --set train.checkpoint_every="$steps" | tail -n 1)
    rate[$dev]=$(sed -E 's/.*training ([0-9.]+) samples\/s.*/\1/' <<<"$line")
done
printf '%-8s %14s\n' backend samples/s
for dev in tch flex; do printf '%-8s %14s\n' "$dev" "${rate[$dev]}"; done
python3 -c "print(f'tch / flex = {${rate[tch]} / ${rate[flex]}:.2f}x')"
rm -rf "$home"
