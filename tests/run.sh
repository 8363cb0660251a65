#!/usr/bin/env bash
# The whole test suite, from a fresh machine: creates .venv, installs the package with its
# dev extras, builds (or reuses) the collector, installs Prometheus, then runs lint, types
# and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# what the examples need (tests/examples runs each one): their own requirements files, the
# same ones examples/run_example.sh installs. Never skipped: a missing package fails the test.
for req in examples/*/requirements.txt; do
  .venv/bin/python -m pip install -q -r "$req"
done
# examples/spark_batch runs PySpark, which needs Java 17 or newer (Debian's default JRE)
if ! command -v java >/dev/null; then
  apt-get install -y -q default-jre-headless >/dev/null || { apt-get update -q && apt-get install -y -q default-jre-headless; }
fi
# the optional C kernel of the statistics is compiled by that install (numpy runs without it;
# docs/kernel.md): which one runs, and why
.venv/bin/python -c "from modelotel.stats import kernel; print('statistics kernel:', 'compiled' if kernel.COMPILED else 'numpy', '-', kernel.REASON)"
# torch is not in the dev extras: its default wheels pull several GB of CUDA libraries.
# Best effort: tests/test_torch_real.py skips itself when torch is missing.
.venv/bin/python -m pip install -q torch || echo "torch could not be installed: the torch tests will be skipped"

echo "== collector (collector-config/build.sh: cached outside the repo, rebuilt when builder.yaml changes)"
if [ -z "${MODELOTEL_OTELCOL:-}" ]; then
  MODELOTEL_OTELCOL=$(bash collector-config/build.sh)
fi
export MODELOTEL_OTELCOL
echo "$MODELOTEL_OTELCOL"
echo "== prometheus and alertmanager (Debian's packages)"
bash collector-config/install-prometheus.sh

echo "== ruff"
.venv/bin/ruff check src tests benchmarks examples
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest --durations=30 "$@"
