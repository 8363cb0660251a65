"""What reached the backends of examples/run_example.sh: spans, log records, metric names.

Usage::

    python examples/arrived.py BACKEND_DIR PROMETHEUS_URL

Counts the spans (by name and by ``service.instance.id``, one per process) and the log records
(by event name) in the local backend's files (collector-config/local-backend.yaml), and lists
the modelotel metrics Prometheus holds with their number of series.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _attrs(kvs: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: next(iter(kv.get("value", {}).values()), None) for kv in kvs}


def _prometheus(prom: str, path: str, **params: str) -> Any:
    url = f"{prom}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)["data"]
    except (OSError, ValueError, KeyError):
        return None


def main(argv: list[str]) -> int:
    backend, prom = Path(argv[0]), argv[1]
    names: Counter[str] = Counter()
    instances: Counter[str] = Counter()
    for req in _lines(backend / "traces.jsonl"):
        for rs in req.get("resourceSpans", []):
            res = _attrs(rs.get("resource", {}).get("attributes", []))
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    names[span["name"]] += 1
                    instances[str(res.get("service.instance.id"))] += 1
    print(f"spans: {sum(names.values())} from {len(instances)} process(es)")
    for name, n in names.most_common(12):
        print(f"  {n:6d}  {name}")
    events: Counter[str] = Counter()
    for req in _lines(backend / "logs.jsonl"):
        for rl in req.get("resourceLogs", []):
            for sl in rl.get("scopeLogs", []):
                for rec in sl.get("logRecords", []):
                    events[rec.get("eventName") or "(log record)"] += 1
    print(f"log records: {sum(events.values())}")
    for name, n in events.most_common():
        print(f"  {n:6d}  {name}")
    metric_names = _prometheus(prom, "label/__name__/values") or []
    ours = [n for n in metric_names if n.startswith(("ml_", "ml:"))]
    print(f"modelotel metrics in Prometheus: {len(ours)}")
    for name in ours:
        series = _prometheus(prom, "series", **{"match[]": name}) or []
        print(f"  {len(series):6d} series  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
