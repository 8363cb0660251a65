"""The fleet view of a batch job's replicas, checked against one process over all rows.

Used by the examples whose scoring runs in several processes (spark_batch, ray_data), with
the job's data and model they share (:func:`rows`, :func:`fit`): each
replica exports its own bin counters; the lifetime form of ``modelotel rules`` sums them in
Prometheus into the fleet's drift. Here: write those rules for a baseline and reload
Prometheus; compute the bin counts of ONE process that scored every row (in memory,
``modelotel.testing``); wait until Prometheus counts every row, then compare bin by bin and
the PSI / JS of each column.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel import cli, rules
from modelotel.stats import drift
from modelotel.testing import capture

Counts = dict[tuple[str, str], dict[str, float]]

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age"]
#: the column the serving rows shift (drift the fleet view must show)
SHIFTED = "monthly_charges"


def rows(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    frame[SHIFTED] += shift
    return frame


def fit(workdir: Path, model_name: str) -> tuple[LogisticRegression, modelotel.Baseline, Path]:
    """The job's model on 20,000 training rows, and its baseline saved under ``workdir``."""
    x = rows(20_000, seed=1)
    y = (x.monthly_charges + 0.5 * x.support_calls - 0.3 * x.tenure_months > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    baseline = modelotel.Baseline.from_data(x, outputs=model.predict_proba(x)[:, 1])
    path = workdir / f"{model_name}-v1.baseline.json"
    baseline.save(path)
    return model, baseline, path


def load_rules(model: str, baseline_path: Path, rules_file: Path, prometheus: str) -> None:
    """`modelotel rules` for ``model`` version 1 into ``rules_file`` (1 s); reload Prometheus."""
    cli.main(["rules", f"{model}@1={baseline_path}", "-o", str(rules_file), "--interval", "1s"])
    req = urllib.request.Request(f"{prometheus}/-/reload", method="POST")
    urllib.request.urlopen(req, timeout=10).close()


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        result: list[dict[str, Any]] = json.load(r)["data"]["result"]
        return result


def reference_counts(baseline: modelotel.Baseline,
                     predict: Callable[[pd.DataFrame], np.ndarray[Any, Any]],
                     serving: pd.DataFrame, batch: int) -> Counts:
    """Bin counts of ONE process that scored every row of ``serving`` (in memory), each
    row counted (``row_cap``: the replicas count every row of their batches too)."""
    instrumented = modelotel.instrument(model="one-process", baseline=baseline,
                                        row_cap=batch)(predict)
    with capture() as cap:
        for start in range(0, len(serving), batch):
            instrumented(serving.iloc[start:start + batch])
        points = cap.collect()
    out: Counts = {}
    for p in points:
        if p.name == A.METRIC_FEATURE_BIN:
            out.setdefault(("feature", p.attributes[A.ML_FEATURE]), {})[
                p.attributes[A.ML_BIN]] = p.value
        elif p.name == A.METRIC_OUTPUT_BIN:
            out.setdefault(("output", p.attributes[A.ML_OUTPUT]), {})[
                p.attributes[A.ML_BIN]] = p.value
    return out


def fleet_vs_one_process(prometheus: str, model: str, baseline: modelotel.Baseline,
                         ref: Counts, total: int, timeout: float = 90.0) -> dict[str, Any]:
    """Wait until the lifetime rules count all ``total`` rows, then compare them with ``ref``."""
    sel = f'{{ml_model_name="{model}",ml_model_version="1"}}'
    deadline = time.monotonic() + timeout
    want = total * (len(baseline.features) + len(baseline.outputs))
    while True:
        got = query(prometheus, f"sum(ml_fleet:feature_rows:lifetime{sel})"
                                f" + sum(ml_fleet:output_rows:lifetime{sel})")
        if got and float(got[0]["value"][1]) == want:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"Prometheus' lifetime rules did not reach {want} values: {got}")
        time.sleep(1)
    time.sleep(2)  # one more evaluation of the drift rules on these counts
    columns: dict[str, Any] = {}
    worst = 0.0
    mismatched_bins = compared_bins = 0
    profiles = {("feature", p.name): p for p in baseline.features}
    profiles.update({("output", p.name): p for p in baseline.outputs})
    for kind in ("feature", "output"):
        label = "ml_feature" if kind == "feature" else "ml_output"
        psi = {s["metric"][label]: float(s["value"][1])
               for s in query(prometheus, f"ml_fleet:{kind}_psi:lifetime{sel}")}
        js = {s["metric"][label]: float(s["value"][1])
              for s in query(prometheus, f"ml_fleet:{kind}_js:lifetime{sel}")}
        for s in query(prometheus, f"ml_fleet:{kind}_bin:lifetime{sel}"):
            counts = ref[(kind, s["metric"][label])]
            mismatched_bins += float(s["value"][1]) != counts.get(s["metric"]["ml_bin"], 0.0)
            compared_bins += 1
        for (k, name), counts in ref.items():
            if k != kind:
                continue
            bins = rules.column_bins(profiles[(k, name)])
            c = [counts.get(b, 0.0) for b, _ in bins]
            q = [share for _, share in bins]
            one_psi, one_js = drift.psi(c, q), drift.js_distance(c, q)
            worst = max(worst, abs(psi[name] - one_psi), abs(js[name] - one_js))
            columns[f"{kind}:{name}"] = {"fleet_psi": psi[name], "one_process_psi": one_psi,
                                         "fleet_js": js[name], "one_process_js": one_js}
    return {"columns": columns, "max_abs_error": worst, "mismatched_bins": mismatched_bins,
            "bins": compared_bins}
