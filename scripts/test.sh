#!/usr/bin/env bash
# The test command (README): data fixtures, every test on the default pure-Rust backend
# (burn-flex) with the registry suite also against a throwaway PostgreSQL server (Debian
# package, loopback), the WASM plugin carrier's tests, the MLflow round trip (MLflow from
# PyPI, a real `mlflow server` on loopback), then the libtorch backend tests with CPU-only
# libtorch 2.9.0 from PyPI.
# Set ASTROCLIP_SKIP_TCH=1 to skip the libtorch part (it downloads ~1 GB once).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/fixtures.sh | tail -n 1 | sed "s/^/export /")"
# Headless Chromium (Debian) checks the HTML report; installed when missing and possible.
if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || echo "chromium could not be installed; the report's browser check will be skipped"
    fi
fi
if command -v chromium >/dev/null 2>&1; then export ASTROCLIP_REQUIRE_CHROMIUM=1; fi
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
# The WASM plugin carrier is its own workspace (wasmtime would rebuild burn in the shared one);
# its host binary serves WASM plugins to `astroclip` (the binding test uses it).
cargo build --manifest-path plugins/wasm/Cargo.toml --bin astroclip-wasm-host
cargo test --workspace
ZIG_PYTHON=$PWD/.venv-data/bin/python cargo test --manifest-path plugins/wasm/Cargo.toml
# MLflow export: its own workspace (reqwest/OpenSSL stay out of the trainer's build).
eval "$(scripts/setup-mlflow.sh)"
ASTROCLIP_REQUIRE_MLFLOW=1 cargo test --manifest-path registry/mlflow/Cargo.toml
if [ "${ASTROCLIP_SKIP_TCH:-0}" != 1 ]; then
    eval "$(scripts/setup-libtorch-cpu.sh)"
    cargo test --workspace --features astroclip-core/tch -- tch_backend
fi
