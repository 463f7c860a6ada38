#!/usr/bin/env bash
# Rebuilds mlp.wasm from mlp.zig with Zig from PyPI (`pip install ziglang==0.17.1`), then adds
# the interface-version section. PYTHON defaults to python3.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
"$PY" -m ziglang build-exe mlp.zig -target wasm32-freestanding -fno-entry -rdynamic -O ReleaseSmall -femit-bin=mlp.wasm
rm -f mlp.wasm.o
"$PY" ../../sdk/wasm/add_version_section.py mlp.wasm 1.1.0
