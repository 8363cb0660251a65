"""Summary of what arrived at the demo's backends (used by examples/run_demo.sh).

Usage::

    python examples/demo_summary.py BACKEND_DIR PROMETHEUS_URL

Counts the spans and log records in the local backend's files (collector-config/
local-backend.yaml) and asks Prometheus which modelotel metrics it holds.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from modelotel import attributes as A  # noqa: N812


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _attrs(kvs: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: next(iter(kv.get("value", {}).values()), None) for kv in kvs}


def _query(prom: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            result: list[dict[str, Any]] = json.load(r)["data"]["result"]
            return result
    except (OSError, ValueError, KeyError):
        return []


def main(backend_dir: str, prom: str) -> int:
    spans: Counter[str] = Counter()
    errors = 0
    for req in _lines(Path(backend_dir) / "traces.jsonl"):
        for rs in req.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    spans[s["name"]] += 1
                    errors += int(A.ERROR_TYPE in _attrs(s.get("attributes", [])))
    kinds: Counter[str] = Counter()
    masked = 0
    for req in _lines(Path(backend_dir) / "logs.jsonl"):
        for rl in req.get("resourceLogs", []):
            for sl in rl.get("scopeLogs", []):
                for r in sl.get("logRecords", []):
                    kinds[r.get("eventName") or "(other log records)"] += 1
                    masked += int(
                        _attrs(r.get("attributes", [])).get("redaction.masked.count") or 0
                    )

    print("== what arrived")
    print(f"spans: {sum(spans.values())} ({errors} with error.type)")
    for name, n in spans.most_common(5):
        print(f"  {n:6d}  {name}")
    print(f"log records: {sum(kinds.values())} (values masked by the collector: {masked})")
    for name, n in kinds.most_common():
        print(f"  {n:6d}  {name}")

    names = sorted({s["metric"]["__name__"] for s in _query(prom, '{__name__=~"ml_.+"}')})
    print(f"Prometheus: {len(names)} modelotel metric names")
    for name in names:
        print(f"  {name}")
    for title, expr in [
        ("predict calls", "sum by (ml_model_name, ml_model_version) (ml_prediction_calls_total)"),
        (
            "p95 latency (s)",
            "histogram_quantile(0.95, sum by (le, ml_model_name) "
            "(rate(ml_prediction_duration_seconds_bucket[1m])))",
        ),
        (
            "highest feature drift",
            'topk(3, max by (ml_feature, ml_drift_method) (ml_feature_drift))',
        ),
    ]:
        for s in _query(prom, expr):
            labels = ",".join(f"{k}={v}" for k, v in s["metric"].items() if k != "__name__")
            print(f"  {title}: {s['value'][1]}  {{{labels}}}")
    return 0 if spans else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
