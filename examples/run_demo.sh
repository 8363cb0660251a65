#!/usr/bin/env bash
# The modelotel demo, from a fresh machine:
#   1. creates .venv and installs modelotel (as tests/run.sh does),
#   2. builds the bundled OpenTelemetry Collector, or reuses the cached build
#      (collector-config/build.sh; needs Go; a first build takes a few minutes),
#   3. installs Debian's Prometheus if it is missing (collector-config/install-prometheus.sh),
#   4. starts, on 127.0.0.1: a local tracing/logs backend (a second collector writing JSON files),
#      Prometheus (remote-write receiver on, our alert rules loaded) and our collector with
#      collector-config/base.yaml in front of them,
#   5. runs examples/demo_model.py for DEMO_SECONDS (default 30), with 5% of payloads sampled:
#      a model fitted and profiled (training baseline) at start, predicting in a loop, two of
#      its four input features shifting halfway, an upstream incident at three quarters (a
#      feature sent in cents), labels for half of the predictions arriving a moment later
#      (record_outcome),
#   6. prints what arrived: spans, payload records, metric names, and from Prometheus the
#      drift per feature before / after the shift (PSI, JS), the checks that fired, the
#      alerts pending and the accuracy per model version before / after the shift; where to
#      look; then stops everything it started.
#
#   DEMO_SECONDS=60 bash examples/run_demo.sh
#   DEMO_KEEP=1 bash examples/run_demo.sh      # keep the backends up until Enter, to explore
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ -z "${MODELOTEL_DEMO_SKIP_INSTALL:-}" ]; then # set by the test that runs this script
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
fi

echo "== collector"
OTELCOL=${MODELOTEL_OTELCOL:-$(bash collector-config/build.sh)}
echo "$OTELCOL"
echo "== prometheus"
bash collector-config/install-prometheus.sh

demo=${MODELOTEL_DEMO_DIR:-$(mktemp -d -t modelotel-demo.XXXXXX)}
mkdir -p "$demo/backend" "$demo/prometheus"
port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
free_or() { # the preferred port if nothing listens there, else a free one
  if .venv/bin/python -c 'import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0)' "$1"; then
    echo "$1"
  else
    port
  fi
}
GRPC_PORT=$(free_or 4317)
HTTP_PORT=$(free_or 4318)
PROM_PORT=$(free_or 9090)
BACKEND_PORT=$(port)

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
  echo "run_demo.sh: $2 did not start; its log is in $demo" >&2
  exit 1
}

echo "== starting the local backends and the collector (logs in $demo)"
MODELOTEL_LOCAL_BACKEND_PORT=$BACKEND_PORT MODELOTEL_LOCAL_BACKEND_HEALTH_PORT=$(port) \
MODELOTEL_LOCAL_BACKEND_DIR="$demo/backend" \
  "$OTELCOL" --config=collector-config/local-backend.yaml >"$demo/backend.log" 2>&1 &
pids+=($!)

echo "== training: the model's baseline, and the fleet drift rules for it (modelotel rules)"
.venv/bin/python examples/demo_model.py --profile-only --baseline "$demo/churn-demo-v1.baseline.json"
# The demo lasts seconds, not hours: its drift rules look at the last 10 s (production: the
# default 1h and 1d) and alert after 1 min (production: 15 min), so the alert shows pending.
.venv/bin/modelotel rules "churn-demo@1=$demo/churn-demo-v1.baseline.json" \
  -o "$demo/prometheus/drift-rules.yml" --range 10s --interval 5s --for 1m

cat >"$demo/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $root/collector-config/prometheus/modelotel-rules.yml
  - $demo/prometheus/drift-rules.yml
scrape_configs:
  - job_name: otelcol-modelotel
    static_configs:
      - targets: ['127.0.0.1:__TELEMETRY_PORT__']
EOF
TELEMETRY_PORT=$(port)
sed -i "s/__TELEMETRY_PORT__/$TELEMETRY_PORT/" "$demo/prometheus/prometheus.yml"
/usr/bin/prometheus --config.file="$demo/prometheus/prometheus.yml" \
  --storage.tsdb.path="$demo/prometheus/data" --web.listen-address="127.0.0.1:$PROM_PORT" \
  --web.enable-remote-write-receiver --enable-feature=exemplar-storage \
  >"$demo/prometheus.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$PROM_PORT/-/ready" "Prometheus"

HEALTH_PORT=$(port)
MODELOTEL_COLLECTOR_GRPC_PORT=$GRPC_PORT MODELOTEL_COLLECTOR_HTTP_PORT=$HTTP_PORT \
MODELOTEL_COLLECTOR_HEALTH_PORT=$HEALTH_PORT MODELOTEL_COLLECTOR_TELEMETRY_PORT=$TELEMETRY_PORT \
MODELOTEL_COLLECTOR_STORAGE_DIR="$demo/queue" \
MODELOTEL_COLLECTOR_TRACES_ENDPOINT=127.0.0.1:$BACKEND_PORT \
MODELOTEL_COLLECTOR_LOGS_ENDPOINT=127.0.0.1:$BACKEND_PORT \
MODELOTEL_COLLECTOR_PROMETHEUS_ENDPOINT=http://127.0.0.1:$PROM_PORT/api/v1/write \
  "$OTELCOL" --config=collector-config/base.yaml >"$demo/collector.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$HEALTH_PORT/" "the collector"
echo "collector: OTLP gRPC 127.0.0.1:$GRPC_PORT, HTTP 127.0.0.1:$HTTP_PORT (collector-config/base.yaml)"
echo "Prometheus: http://127.0.0.1:$PROM_PORT"

echo "== the instrumented model (examples/demo_model.py, ${DEMO_SECONDS:-30} s)"
OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$HTTP_PORT OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
MODELOTEL_PAYLOAD_SAMPLE_RATE=${MODELOTEL_PAYLOAD_SAMPLE_RATE:-0.05} \
  .venv/bin/python examples/demo_model.py --seconds "${DEMO_SECONDS:-30}" \
  --baseline "$demo/churn-demo-v1.baseline.json" --run-file "$demo/run.json"
sleep 6 # the collector's batches reach Prometheus; an alert rule evaluation

echo
.venv/bin/python examples/demo_summary.py "$demo/backend" "http://127.0.0.1:$PROM_PORT" \
  "$demo/run.json" || true
cat <<EOF

== where to look
  spans (OTLP/JSON, one request per line):   $demo/backend/traces.jsonl
  payload and other log records:              $demo/backend/logs.jsonl
  Prometheus (while running):                 http://127.0.0.1:$PROM_PORT/graph?g0.expr=ml_prediction_calls_total
  Grafana dashboard to import:                collector-config/grafana/modelotel-dashboard.json
  training baseline of the model:             $demo/churn-demo-v1.baseline.json
  alert rules:                                collector-config/prometheus/modelotel-rules.yml
  fleet drift rules (modelotel rules):        $demo/prometheus/drift-rules.yml
  collector / backend / Prometheus logs:      $demo/*.log
EOF
if [ -n "${DEMO_KEEP:-}" ]; then
  read -r -p "The collector, backend and Prometheus keep running: press Enter to stop them. " _ || true
fi
echo "== stopping the collector, the local backend and Prometheus"
