"""Summary of what arrived at the demo's backends (used by examples/run_demo.sh).

Usage::

    python examples/demo_summary.py BACKEND_DIR PROMETHEUS_URL [RUN_FILE]

Counts the spans and log records in the local backend's files (collector-config/
local-backend.yaml) and asks Prometheus which modelotel metrics it holds. With the run's
timeline (``demo_model.py --run-file``) it also tells the drift story from Prometheus:
per-feature drift (PSI and Jensen-Shannon) of the metric windows before and after the input
shift, the silent-failure checks that fired, and the accuracy from the labels
(``ml.outcome.*``) per model version, before and after the shift.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
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


def _alerts(prom: str) -> list[dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{prom}/api/v1/alerts", timeout=5) as r:
            alerts: list[dict[str, Any]] = json.load(r)["data"]["alerts"]
            return alerts
    except (OSError, ValueError, KeyError):
        return []


def _samples(
    prom: str, selector: str, seconds: float
) -> list[tuple[dict[str, str], list[float], list[float]]]:
    """Raw samples of every series of ``selector`` over the last ``seconds``:
    (labels, timestamps, values)."""
    out = []
    for s in _query(prom, f"{selector}[{max(int(seconds), 1)}s]"):
        ts = [float(t) for t, _ in s.get("values", [])]
        vs = [float(v) for _, v in s.get("values", [])]
        out.append((s["metric"], ts, vs))
    return out


def _drift_story(prom: str, run: dict[str, Any]) -> None:
    """Per-feature drift before / after the shift, checks fired, accuracy per version."""
    model, version = run["model"], run["version"]
    shift, step = float(run["shift"]), float(run["export_interval_s"])
    inc0, inc1 = (float(t) for t in run.get("incident") or (run["end"] + 1, run["end"] + 1))

    def after_shift(t: float) -> bool:
        # the window (t - step, t] lies after the shift and outside the incident
        lo = t - step * 1.05
        return lo >= shift and (t <= inc0 or lo >= inc1)

    lookback = time.time() - run["start"] + 60
    sel = f'ml_model_name="{model}",ml_model_version="{version}"'
    # A drift point describes the window since the previous export: (t - step, t]. Windows
    # that end before the shift saw only training-like inputs; those that start after it
    # only shifted ones. Windows across the shift or the incident are left out.
    drift: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for labels, ts, vs in _samples(
        prom, f'ml_feature_drift{{{sel},ml_drift_method=~"psi|js"}}', lookback
    ):
        key = (labels.get("ml_feature", "?"), labels.get("ml_drift_method", "?"))
        before = [v for t, v in zip(ts, vs, strict=True) if t <= shift]
        after = [v for t, v in zip(ts, vs, strict=True) if after_shift(t)]
        drift[key] = (before, after)
    for labels, ts, vs in _samples(
        prom, f'ml_output_drift{{{sel},ml_drift_method=~"psi|js"}}', lookback
    ):
        key = ("output " + labels.get("ml_output", "?"), labels.get("ml_drift_method", "?"))
        before = [v for t, v in zip(ts, vs, strict=True) if t <= shift]
        after = [v for t, v in zip(ts, vs, strict=True) if after_shift(t)]
        drift[key] = (before, after)

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.3f}" if values else "-"

    print(
        f"\n== drift of {model} v{version} against its training baseline "
        f"(median over the {step:g} s metric windows; the input shift came at "
        f"{shift - run['start']:.1f} s)"
    )
    print(f"  {'feature':<18}{'PSI before':>11}{'PSI after':>11}{'JS before':>11}{'JS after':>11}")
    shifted = set(run.get("shifted", ()))
    outputs = sorted({f for f, _ in drift if f.startswith("output ")})
    for feature in [*run.get("features", sorted({f for f, _ in drift})), *outputs]:
        psi = drift.get((feature, "psi"), ([], []))
        js = drift.get((feature, "js"), ([], []))
        mark = "  <- shifted" if feature in shifted else ""
        print(
            f"  {feature:<18}{med(psi[0]):>11}{med(psi[1]):>11}{med(js[0]):>11}{med(js[1]):>11}"
            f"{mark}"
        )
    print(
        "  (per export window; PSI above 0.2 is a significant shift. The alerts ModelFeatureDrift"
        " /\n   ModelOutputDrift look at the drift of all the rows in the range of the rules"
        " `modelotel rules`\n   wrote (here the last 10 s), when the rows are enough to tell;"
        " they fire after 1 min here, 15 min by default)"
    )

    print(
        f"\n== silent-failure checks that fired (ml.check.violations); the incident: "
        f"{inc0 - run['start']:.1f} s to {inc1 - run['start']:.1f} s"
    )
    fired = _query(
        prom, f"sum by (ml_check, ml_feature, ml_output) (ml_check_violations_total{{{sel}}})"
    )
    for s in sorted(fired, key=lambda s: -float(s["value"][1])):
        m = s["metric"]
        where = (
            f"feature {m['ml_feature']}"
            if "ml_feature" in m
            else f"output {m.get('ml_output', '?')}"
        )
        print(f"  check violations: {float(s['value'][1]):g}  {m.get('ml_check', '?')} ({where})")
    if not fired:
        print("  none")

    print("\n== alert rules (modelotel-rules.yml and the drift rules) pending or firing")
    alerts = _alerts(prom)
    for a in alerts:
        lab = a.get("labels", {})
        what = ",".join(
            f"{k}={lab[k]}" for k in ("ml_feature", "ml_output", "ml_check") if k in lab
        )
        print(
            f"  {a.get('state', '?')}: {lab.get('alertname', '?')}"
            + (f"  {{{what}}}" if what else "")
        )
    if not alerts:
        print("  none")

    print("\n== accuracy from the labels that arrived (ml.outcome.*)")
    for s in _query(prom, "ml_outcome_accuracy_ratio"):
        m = s["metric"]
        print(
            f"  accuracy since start: {float(s['value'][1]):.3f}  "
            f"{{ml_model_name={m.get('ml_model_name')},ml_model_version={m.get('ml_model_version')}}}"
        )
    # Labels arrive label_delay_s after their prediction: the outcomes counted by time
    # cut + delay are those of the predictions made by time cut. Counter samples come at
    # each export; a segment is the difference of the last samples before its two cuts.
    delay = run.get("label_delay_s", 0.0)
    cuts = [
        ("before the shift", run["start"], shift),
        ("after the shift", shift, inc0),
        ("during the incident", inc0, inc1),
        ("after the incident", inc1, run["end"] + 3600),
    ]
    series: dict[str, tuple[list[float], list[float]]] = {}
    for name in ("ml_outcome_count_total", "ml_outcome_correct_total"):
        for _, ts, vs in _samples(prom, f"{name}{{{sel}}}", lookback):
            series[name] = (ts, vs)
    if len(series) < 2:
        print("  no outcome metrics in Prometheus")
        return

    def at(name: str, cut: float) -> float:
        ts, vs = series[name]
        upto = [v for t, v in zip(ts, vs, strict=True) if t <= cut + delay]
        return upto[-1] if upto else 0.0

    for title, t0, t1 in cuts:
        n = at("ml_outcome_count_total", t1) - at("ml_outcome_count_total", t0)
        c = at("ml_outcome_correct_total", t1) - at("ml_outcome_correct_total", t0)
        if n > 0:
            print(f"  accuracy {title}: {c / n:.3f}  ({c:g} of {n:g} labels correct)")


def main(backend_dir: str, prom: str, run_file: str | None = None) -> int:
    spans: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    errors = 0
    for req in _lines(Path(backend_dir) / "traces.jsonl"):
        for rs in req.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    spans[s["name"]] += 1
                    attrs = _attrs(s.get("attributes", []))
                    errors += int(A.ERROR_TYPE in attrs)
                    if A.ML_MODEL_METHOD in attrs:
                        methods[str(attrs[A.ML_MODEL_METHOD])] += 1
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
    if methods:
        print(
            "  by method (ml.model.method; only the primary one feeds statistics): "
            + ", ".join(f"{m} {n}" for m, n in methods.most_common())
        )
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
            "highest feature drift (PSI)",
            'topk(3, max by (ml_feature) (ml_feature_drift{ml_drift_method="psi"}))',
        ),
    ]:
        for s in _query(prom, expr):
            labels = ",".join(f"{k}={v}" for k, v in s["metric"].items() if k != "__name__")
            print(f"  {title}: {s['value'][1]}  {{{labels}}}")
    if run_file and Path(run_file).exists():
        _drift_story(prom, json.loads(Path(run_file).read_text()))
    return 0 if spans else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
