#!/usr/bin/env bash
# Registry benchmark: metric rows/s (batched vs one per transaction) and `runs list --where`
# latency over 10 000 runs, on this machine's disk. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p astroclip-registry --example bench_registry
exec target/debug/examples/bench_registry "${1:-10000}"
