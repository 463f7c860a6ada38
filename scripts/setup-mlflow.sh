#!/usr/bin/env bash
# Installs MLflow 3.17.2 from PyPI into .venv-mlflow/ (git-ignored; ~850 MB, ~2 min once) for
# the MLflow export round-trip test: a real `mlflow server` on 127.0.0.1 and MLflow's own
# Python client read back what `astroclip runs export mlflow` sent. Idempotent. Prints the
# environment the test reads:
#
#   eval "$(scripts/setup-mlflow.sh)"
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ ! -f .venv-mlflow/.installed-3.17.2 ]; then
    python3 -m venv .venv-mlflow >&2
    .venv-mlflow/bin/pip install -q --disable-pip-version-check mlflow==3.17.2 >&2
    touch .venv-mlflow/.installed-3.17.2
fi
echo "export ASTROCLIP_MLFLOW_PYTHON=$root/.venv-mlflow/bin/python"
