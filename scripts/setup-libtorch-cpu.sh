#!/usr/bin/env bash
# Installs the CPU-only libtorch 2.9.0 that burn-tch (torch-sys 0.22) needs, from PyPI's
# torch==2.9.0 wheel, into .venv-torch/ and libtorch-cpu/ (both git-ignored), and prints the
# environment to build and run with. Idempotent; safe to re-run.
#
#   eval "$(scripts/setup-libtorch-cpu.sh)"
#   cargo build --workspace --features astroclip-core/tch
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ ! -f .venv-torch/.installed-2.9.0 ]; then
    python3 -m venv .venv-torch >&2
    .venv-torch/bin/pip install -q --disable-pip-version-check --no-deps \
        torch==2.9.0 nvidia-cuda-runtime-cu12==12.8.90 nvidia-cuda-cupti-cu12==12.8.90 >&2
    touch .venv-torch/.installed-2.9.0
fi
sp="$root/.venv-torch/lib/python3.11/site-packages"
mkdir -p libtorch-cpu/lib
ln -sfn "$sp/torch/include" libtorch-cpu/include
for l in libc10.so libtorch_cpu.so libgomp.so.1; do ln -sf "$sp/torch/lib/$l" "libtorch-cpu/lib/$l"; done
# Point libtorch.so at the CPU library so nothing asks for libtorch_cuda.so.
ln -sf "$sp/torch/lib/libtorch_cpu.so" libtorch-cpu/lib/libtorch.so
echo "export LIBTORCH=$root/libtorch-cpu"
echo "export LD_LIBRARY_PATH=$root/libtorch-cpu/lib:$sp/nvidia/cuda_runtime/lib:$sp/nvidia/cuda_cupti/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
