#!/usr/bin/env bash
# Installs the Python references of `astroclip bench perf` into .venv-torch/ (git-ignored):
# PyTorch 2.9.0 with its dependencies (the PyPI wheel is the CUDA build: ~3.8 GB download,
# ~6.7 GB installed; it runs on CPU too, and it is the same torch the libtorch backend uses),
# NumPy, scikit-learn, pyarrow (reads `astroclip embed`'s Parquet back) and faiss-cpu (the
# exact-search reference of `astroclip bench search`). Idempotent. Prints the environment for the bench:
#
#   eval "$(scripts/setup-bench.sh)"
#   cargo run --release -- bench perf
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
[ -d .venv-torch ] || python3 -m venv .venv-torch >&2
if [ ! -f .venv-torch/.installed-bench-2.9.0-2 ]; then
    .venv-torch/bin/pip install -q --disable-pip-version-check torch==2.9.0 numpy scikit-learn pyarrow faiss-cpu==1.13.2 >&2
    touch .venv-torch/.installed-bench-2.9.0-2
fi
echo "export ASTROCLIP_BENCH_PYTHON=$root/.venv-torch/bin/python"
