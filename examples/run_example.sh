#!/usr/bin/env bash
# Runs one example of examples/ from a fresh machine, through the bundled collector:
#   1. creates .venv and installs modelotel with its dev extras (as tests/run.sh does), and
#      what the example needs (examples/NAME/requirements.txt),
#   2. builds the bundled OpenTelemetry Collector, or reuses the cached build
#      (collector-config/build.sh; needs Go; a first build takes a few minutes),
#   3. installs Debian's Prometheus if it is missing (collector-config/install-prometheus.sh),
#   4. starts, on 127.0.0.1: a local tracing/logs backend (a second collector writing JSON
#      files), Prometheus (remote-write receiver on, our alert rules loaded, rules.d/ for the
#      rules an example writes) and our collector with collector-config/base.yaml in front,
#   5. runs examples/NAME/main.py with the OTEL_* variables pointing at that collector,
#   6. prints what arrived (spans by name, log records, metric names in Prometheus) and where
#      to look, then stops everything it started.
#
#   bash examples/run_example.sh quickstart
#   bash examples/run_example.sh fastapi --requests 200      # extra arguments go to main.py
#   EXAMPLE_KEEP=1 bash examples/run_example.sh spark_batch  # keep the backends up until Enter
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

name=${1:?usage: bash examples/run_example.sh NAME [ARGS...] (NAME: a directory of examples/)}
shift
example="examples/$name"
if [ ! -f "$example/main.py" ]; then
  echo "run_example.sh: no example $example/main.py" >&2
  exit 2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ -z "${MODELOTEL_DEMO_SKIP_INSTALL:-}" ]; then # set by the tests that run this script
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  if [ -f "$example/requirements.txt" ]; then
    .venv/bin/python -m pip install -q -r "$example/requirements.txt"
  fi
fi

echo "== collector"
OTELCOL=${MODELOTEL_OTELCOL:-$(bash collector-config/build.sh)}
echo "$OTELCOL"
echo "== prometheus"
bash collector-config/install-prometheus.sh

demo=${MODELOTEL_DEMO_DIR:-$(mktemp -d -t "modelotel-$name.XXXXXX")}
mkdir -p "$demo/backend" "$demo/prometheus/rules.d"
port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(port)
GRPC_PORT=$(port)
PROM_PORT=$(port)
BACKEND_PORT=$(port)
TELEMETRY_PORT=$(port)
HEALTH_PORT=$(port)

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
wait_http() { # url what
  for _ in $(seq 1 100); do
    if .venv/bin/python -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "run_example.sh: $2 did not start; its log is in $demo" >&2
  exit 1
}

echo "== starting the local backend, Prometheus and the collector (logs in $demo)"
MODELOTEL_LOCAL_BACKEND_PORT=$BACKEND_PORT MODELOTEL_LOCAL_BACKEND_HEALTH_PORT=$(port) \
MODELOTEL_LOCAL_BACKEND_DIR="$demo/backend" \
  "$OTELCOL" --config=collector-config/local-backend.yaml >"$demo/backend.log" 2>&1 &
pids+=($!)

cat >"$demo/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
  - $root/collector-config/prometheus/modelotel-rules.yml
  - $demo/prometheus/rules.d/*.yml
scrape_configs:
  - job_name: otelcol-modelotel
    static_configs:
      - targets: ['127.0.0.1:$TELEMETRY_PORT']
EOF
/usr/bin/prometheus --config.file="$demo/prometheus/prometheus.yml" \
  --storage.tsdb.path="$demo/prometheus/data" --web.listen-address="127.0.0.1:$PROM_PORT" \
  --web.enable-remote-write-receiver --web.enable-lifecycle \
  >"$demo/prometheus.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$PROM_PORT/-/ready" "Prometheus"

MODELOTEL_COLLECTOR_GRPC_PORT=$GRPC_PORT MODELOTEL_COLLECTOR_HTTP_PORT=$HTTP_PORT \
MODELOTEL_COLLECTOR_HEALTH_PORT=$HEALTH_PORT MODELOTEL_COLLECTOR_TELEMETRY_PORT=$TELEMETRY_PORT \
MODELOTEL_COLLECTOR_STORAGE_DIR="$demo/queue" \
MODELOTEL_COLLECTOR_TRACES_ENDPOINT=127.0.0.1:$BACKEND_PORT \
MODELOTEL_COLLECTOR_LOGS_ENDPOINT=127.0.0.1:$BACKEND_PORT \
MODELOTEL_COLLECTOR_PROMETHEUS_ENDPOINT=http://127.0.0.1:$PROM_PORT/api/v1/write \
  "$OTELCOL" --config=collector-config/base.yaml >"$demo/collector.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$HEALTH_PORT/" "the collector"
echo "collector: OTLP HTTP 127.0.0.1:$HTTP_PORT (collector-config/base.yaml); Prometheus: http://127.0.0.1:$PROM_PORT"

echo "== examples/$name/main.py $*"
# 2 s metric exports instead of 60 s: an example lasts seconds
OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$HTTP_PORT OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
OTEL_METRIC_EXPORT_INTERVAL=${OTEL_METRIC_EXPORT_INTERVAL:-2000} \
MODELOTEL_EXAMPLE_DIR="$demo" MODELOTEL_EXAMPLE_PROMETHEUS=http://127.0.0.1:$PROM_PORT \
MODELOTEL_EXAMPLE_RULES_DIR="$demo/prometheus/rules.d" \
  .venv/bin/python "$example/main.py" "$@" | tee "$demo/main.out"
sleep 5 # the collector's last batches reach the backend and Prometheus

echo
.venv/bin/python examples/arrived.py "$demo/backend" "http://127.0.0.1:$PROM_PORT"
cat <<EOF

== where to look
  what main.py printed:                       $demo/main.out
  spans (OTLP/JSON, one request per line):   $demo/backend/traces.jsonl
  payload and other log records:              $demo/backend/logs.jsonl
  Prometheus (while running):                 http://127.0.0.1:$PROM_PORT/graph?g0.expr=ml_prediction_calls_total
  rules the example wrote (if any):           $demo/prometheus/rules.d/
  collector / backend / Prometheus logs:      $demo/*.log
EOF
if [ -n "${EXAMPLE_KEEP:-}" ]; then
  read -r -p "The collector, backend and Prometheus keep running: press Enter to stop them. " _ || true
fi
echo "== stopping the collector, the local backend and Prometheus"
