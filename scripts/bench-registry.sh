#!/usr/bin/env bash
# Registry benchmark: metric rows/s (batched vs one per transaction) and `runs list --where`
# latency over 10 000 runs, on this machine's disk. Prints a Markdown table.
# Usage: scripts/bench-registry.sh [n_runs] [postgres admin URL]   (a URL: PostgreSQL instead
# of SQLite, e.g. the one `scripts/start-postgres.sh` starts).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p astroclip-registry --example bench_registry
exec target/debug/examples/bench_registry "${1:-10000}" ${2:+"$2"}
