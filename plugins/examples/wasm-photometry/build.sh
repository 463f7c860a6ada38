#!/usr/bin/env bash
# Rebuilds photometry.wasm from photometry.zig with Zig from PyPI (`pip install ziglang==0.17.1`),
# then adds the interface-version custom section the host reads first. PYTHON defaults to python3.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
"$PY" -m ziglang build-exe photometry.zig -target wasm32-freestanding -fno-entry -rdynamic -O ReleaseSmall \
    -femit-bin=photometry.wasm
rm -f photometry.wasm.o
"$PY" ../../sdk/wasm/add_version_section.py photometry.wasm 1.1.0
