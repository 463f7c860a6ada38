#!/usr/bin/env bash
# Loader benchmark (issue: "a loader that never starves training"): on one AstroCLIP-layout HDF5
# file of N synthetic galaxies, in one run on this machine:
#   * astroclip's raw random-row reads (1 thread), the loader (read + tokenize on 1 and 2
#     workers), and the quickstart training step's consumption rate (`astroclip data bench`);
#   * h5py reading the same rows (bench/h5py_read.py, .venv-data from scripts/fixtures.sh).
# Usage: scripts/bench-loader.sh [N_GALAXIES]   (default 2048, ~0.7 GB file under target/)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-2048}"
cargo build --workspace -q
scripts/fixtures.sh >/dev/null
file="target/bench-loader-$n.h5"
[ -f "$file" ] || target/debug/astroclip survey synth --n "$n" --out "$file"
rows=$((n < 1920 ? n : 1920))
ours="$(target/debug/astroclip --log warn data bench "$file" --batches $((rows / 64)))"
echo "$ours"
ref="$(.venv-data/bin/python bench/h5py_read.py "$file" "$rows")"
echo "$ref"
raw="$(echo "$ours" | sed -n 's/^RESULT raw_read_rows_per_sec=//p')"
h5="$(echo "$ref" | sed -n 's/^RESULT h5py_rows_per_sec=//p')"
python3 -c "print(f'astroclip raw read / h5py = {float($raw)/float($h5):.2f}x  ({float($raw):.0f} vs {float($h5):.0f} rows/s, warm page cache)')"
