#!/usr/bin/env bash
# The test command (README): data fixtures, every test on the default pure-Rust backend
# (burn-flex) with the registry suite also against a throwaway PostgreSQL server (Debian
# package, loopback), the WASM plugin carrier's tests, the MLflow round trip (MLflow from
# PyPI, a real `mlflow server` on loopback), then the libtorch backend tests with CPU-only
# libtorch 2.9.0 from PyPI.
# Set ASTROCLIP_SKIP_TCH=1 to skip the libtorch part (it downloads torch 2.9.0 with its CUDA
# libraries, ~3.7 GB, once). The CLI tests also check `astroclip bench perf`'s k-NN rows
# against scikit-learn and its PyTorch model against ours, by values.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
phase() { echo "== $1 (at $(( $(date +%s) - t0 )) s)"; }
# The PyPI installs (MLflow, which brings scikit-learn; CPU libtorch) download while the Rust
# code builds; their environment lines land in .ci-env/ and are read when first needed.
mkdir -p .ci-env
scripts/setup-mlflow.sh >.ci-env/mlflow 2>.ci-env/mlflow.log &
mlflow_setup=$!
if [ "${ASTROCLIP_SKIP_TCH:-0}" != 1 ]; then
    # CPU libtorch for the tch build, then the rest of torch 2.9.0's wheel dependencies (and
    # scikit-learn) in the same venv: the PyTorch references of `bench perf` run from it.
    (scripts/setup-libtorch-cpu.sh >.ci-env/libtorch && scripts/setup-bench.sh >.ci-env/bench) 2>.ci-env/libtorch.log &
    libtorch_setup=$!
fi
wait_setup() { # pid name
    wait "$1" || { echo "setup of $2 failed:" >&2; cat ".ci-env/$2.log" >&2; exit 1; }
}
eval "$(scripts/fixtures.sh | tail -n 1 | sed "s/^/export /")"
# Headless Chromium (Debian) checks the HTML report; installed when missing. The check is
# required: without Chromium (and without root to install it) the report test fails.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export ASTROCLIP_REQUIRE_CHROMIUM=1
# The MLflow exporter links OpenSSL through reqwest: its headers, when missing and possible.
if ! pkg-config --exists openssl 2>/dev/null; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config >/dev/null
    fi
fi
# PostgreSQL for the registry suite (installed by the script when missing), stopped on exit.
eval "export $(scripts/start-postgres.sh | tail -n 1)"
export ASTROCLIP_REQUIRE_POSTGRES=1
trap 'scripts/start-postgres.sh stop' EXIT
# The libtorch phase must not compile burn a second time (core/Cargo.toml's unification
# block); seconds, no compilation.
phase "feature checks"
python3 scripts/check-tch-unification.py
# Three builds, one critical path: the workspace's test build (burn) runs in front; the WASM
# plugin carrier (its own workspace: wasmtime would rebuild burn in the shared one; its host
# binary serves WASM plugins to `astroclip`) and the MLflow exporter (its own workspace, for
# reqwest/OpenSSL) build at the lowest CPU priority beside it, on the core that burn's long
# single-crate compiles (burn-flex, burn-nn, …) leave idle.
phase "builds: workspace tests, with the WASM carrier and the MLflow exporter beside them"
side_build() { # log manifest cargo-args…
    local log=$1 manifest=$2
    shift 2
    nice -n 19 cargo "$@" --manifest-path "$manifest" >"$log" 2>&1 || { echo "build of $manifest failed:" >&2; cat "$log" >&2; return 1; }
}
side_build .ci-env/wasm-build.log plugins/wasm/Cargo.toml build --bin astroclip-wasm-host &
wasm_build=$!
side_build .ci-env/mlflow-build.log registry/mlflow/Cargo.toml test --no-run &
mlflow_build=$!
cargo test --workspace --no-run
phase "waiting for the side builds"
wait "$wasm_build"
wait "$mlflow_build"
# MLflow's venv has numpy and scikit-learn: the golden references are recomputed with them
# (tests/golden/reference.json must be what tests/golden/reference.py gives), and
# `bench perf` is checked against scikit-learn in the CLI tests.
wait_setup "$mlflow_setup" mlflow
eval "$(cat .ci-env/mlflow)"
phase "golden references"
"$ASTROCLIP_MLFLOW_PYTHON" tests/golden/reference.py
# `bench perf`'s references: scikit-learn always; the PyTorch model (same parameter count, and
# our weights in it give our embeddings) from .venv-torch, required unless the libtorch part is
# skipped.
if [ "${ASTROCLIP_SKIP_TCH:-0}" != 1 ]; then
    wait_setup "$libtorch_setup" libtorch
    eval "$(cat .ci-env/bench)"
    export ASTROCLIP_REQUIRE_TORCH=1
else
    export ASTROCLIP_BENCH_PYTHON="$ASTROCLIP_MLFLOW_PYTHON"
fi
export ASTROCLIP_REQUIRE_SKLEARN=1
phase "workspace tests"
cargo test --workspace
phase "WASM carrier tests"
ZIG_PYTHON=$PWD/.venv-data/bin/python cargo test --manifest-path plugins/wasm/Cargo.toml
# MLflow export: its own workspace (reqwest/OpenSSL stay out of the trainer's build).
phase "MLflow export tests"
ASTROCLIP_REQUIRE_MLFLOW=1 cargo test --manifest-path registry/mlflow/Cargo.toml
if [ "${ASTROCLIP_SKIP_TCH:-0}" != 1 ]; then
    phase "libtorch tests"
    eval "$(cat .ci-env/libtorch)"
    # Only the test binaries that hold tch_backend tests: the rest of the workspace's test
    # binaries would be compiled a second time for nothing. `astroclip-cli/tch` (which turns on
    # astroclip-core/tch) compiles the CLI's own tch test in.
    cargo test -p astroclip-core -p astroclip-cli --features astroclip-cli/tch \
        --test plugin_tensor --test import --test cli -- tch_backend
    # That build put the libtorch-linked `astroclip` at target/debug/astroclip, which does not
    # start without LD_LIBRARY_PATH; the default build is up to date, so cargo only puts its
    # binary back (README's commands run after README's test command).
    cargo build -p astroclip-cli
    env -u LD_LIBRARY_PATH target/debug/astroclip --version >/dev/null
fi
phase "done"
