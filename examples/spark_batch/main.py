"""Batch scoring with PySpark (local mode, several Python worker processes) through
``mapInPandas``, every worker exporting through the collector; the fleet drift that Prometheus
computes from the workers' summed bin counters, compared with one process over all rows; the
job's overhead with and without modelotel. Prints a JSON summary as the last line.

    bash examples/run_example.sh spark_batch                       # through the bundled collector
    bash examples/run_example.sh spark_batch --rows 1000000 --repeats 3

Steps: fit a scikit-learn model and profile its training data (the baseline); write the
fleet drift rules for it (``modelotel rules``) into Prometheus' rules directory and reload
it; score ``--rows`` rows, with feature ``monthly_charges`` shifted, with modelotel and
without (``--repeats`` times each, alternating); wait until Prometheus holds every row, then
compare its lifetime fleet drift with the drift of one process that saw every row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import warnings
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

HERE = Path(__file__).resolve().parent
FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age"]
SHIFTED = "monthly_charges"
MODEL = "batch-scorer"


def rows(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES)
    frame[SHIFTED] += shift
    return frame


def fit(workdir: Path) -> tuple[LogisticRegression, modelotel.Baseline, Path]:
    x = rows(20_000, seed=1)
    y = (x.monthly_charges + 0.5 * x.support_calls - 0.3 * x.tenure_months > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    baseline = modelotel.Baseline.from_data(x, outputs=model.predict_proba(x)[:, 1])
    path = workdir / f"{MODEL}-v1.baseline.json"
    baseline.save(path)
    return model, baseline, path


def load_rules(baseline_path: Path, rules_dir: str, prometheus: str) -> None:
    """`modelotel rules` for the baseline, into Prometheus' rules directory; then reload."""
    out = Path(rules_dir) / "spark-batch-drift.yml"
    cli.main(["rules", f"{MODEL}@1={baseline_path}", "-o", str(out), "--interval", "1s"])
    req = urllib.request.Request(f"{prometheus}/-/reload", method="POST")
    urllib.request.urlopen(req, timeout=10).close()


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        result: list[dict[str, Any]] = json.load(r)["data"]["result"]
        return result


def job(spark: Any, frame: Any, model: LogisticRegression, baseline_file: str,
        instrumented: bool) -> tuple[float, float, set[int]]:
    """Score every row; the job's wall time, the workers' CPU seconds and their pids."""

    def score(batches: Any) -> Any:
        import os as _os
        import time as _time

        import scoring

        cpu0 = _time.process_time()
        predict = (scoring.predictor(model, MODEL, baseline_file) if instrumented
                   else (lambda f: model.predict_proba(f)[:, 1]))
        for batch in batches:
            out = pd.DataFrame({"score": predict(batch[FEATURES]), "cpu": 0.0,
                                "pid": _os.getpid()})
            out.loc[out.index[-1:], "cpu"] = _time.process_time() - cpu0
            yield out
            cpu0 = _time.process_time()
        if instrumented:
            scoring.flush()  # at the partition's end: its flush counts in the CPU too
        yield pd.DataFrame({"score": [0.0], "cpu": [_time.process_time() - cpu0],
                            "pid": [_os.getpid()]})

    t0 = time.perf_counter()
    result = frame.mapInPandas(score, "score double, cpu double, pid long") \
        .groupBy("pid").agg({"score": "sum", "cpu": "sum"}).collect()
    wall = time.perf_counter() - t0
    return wall, sum(r["sum(cpu)"] for r in result), {int(r["pid"]) for r in result}


def reference_counts(baseline: modelotel.Baseline, model: LogisticRegression,
                     serving: pd.DataFrame, batch: int) -> dict[tuple[str, str], dict[str, float]]:
    """Bin counts of ONE process that scored every row (in memory: modelotel.testing)."""

    @modelotel.instrument(model="one-process", baseline=baseline)
    def predict(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return np.asarray(model.predict_proba(frame)[:, 1])

    with capture() as cap:
        for start in range(0, len(serving), batch):
            predict(serving.iloc[start:start + batch])
        points = cap.collect()
    out: dict[tuple[str, str], dict[str, float]] = {}
    for p in points:
        if p.name == A.METRIC_FEATURE_BIN:
            out.setdefault(("feature", p.attributes[A.ML_FEATURE]), {})[
                p.attributes[A.ML_BIN]] = p.value
        elif p.name == A.METRIC_OUTPUT_BIN:
            out.setdefault(("output", p.attributes[A.ML_OUTPUT]), {})[
                p.attributes[A.ML_BIN]] = p.value
    return out


def fleet_vs_one_process(prometheus: str, baseline: modelotel.Baseline,
                         ref: dict[tuple[str, str], dict[str, float]], total: int,
                         timeout: float = 90.0) -> dict[str, Any]:
    """Wait until the lifetime rules count every row, then compare them with ``ref``."""
    sel = f'{{ml_model_name="{MODEL}",ml_model_version="1"}}'
    deadline = time.monotonic() + timeout
    want = total * (len(FEATURES) + 1)
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=400_000)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="local[N]: concurrent Python workers")
    p.add_argument("--repeats", type=int, default=2, help="jobs with and without modelotel")
    args = p.parse_args()

    workdir = Path(os.environ.get("MODELOTEL_EXAMPLE_DIR") or tempfile.mkdtemp())
    prometheus = os.environ.get("MODELOTEL_EXAMPLE_PROMETHEUS")
    model, baseline, baseline_path = fit(workdir)
    if prometheus:
        load_rules(baseline_path, os.environ["MODELOTEL_EXAMPLE_RULES_DIR"], prometheus)

    # pyspark's own notice about pandas 3, printed at every conversion
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers run this interpreter
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(f"local[{args.workers}]")
             .appName("modelotel-spark-batch")
             .config("spark.ui.enabled", "false")
             .config("spark.python.worker.reuse", "true")
             .config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.addPyFile(str(HERE / "scoring.py"))
    spark.sparkContext.addFile(str(baseline_path))
    serving = rows(args.rows, seed=2, shift=0.5)
    frame = spark.createDataFrame(serving).repartition(args.partitions).cache()
    frame.count()
    # warm the workers up (imports, configure()): not timed, but its rows count in the fleet
    pids: set[int] = set()  # the workers that scored with modelotel
    job(spark, frame, model, baseline_path.name, instrumented=False)
    pids |= job(spark, frame, model, baseline_path.name, instrumented=True)[2]
    passes = args.repeats + 1

    timings: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
    for _ in range(args.repeats):
        for variant in ("without", "with"):
            wall, cpu, seen = job(spark, frame, model, baseline_path.name, variant == "with")
            timings[variant].append((wall, cpu))
            if variant == "with":
                pids |= seen
    batch = int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch") or 10_000)
    spark.stop()

    wall = {v: min(w for w, _ in t) for v, t in timings.items()}
    cpu = {v: min(c for _, c in t) for v, t in timings.items()}
    summary: dict[str, Any] = {
        "rows": args.rows, "repeats": args.repeats, "instrumented_passes": passes,
        "worker_pids": sorted(pids),
        "wall_s": wall, "worker_cpu_s": cpu,
        "overhead_ratio_wall": wall["with"] / wall["without"],
        "overhead_ratio_worker_cpu": cpu["with"] / cpu["without"],
        "load": os.getloadavg()[0],
    }
    print(f"{args.rows} rows x {args.repeats} jobs scored by {len(pids)} Python worker "
          f"processes; job wall time (best of {args.repeats}) with modelotel "
          f"{wall['with']:.2f} s, without {wall['without']:.2f} s: overhead ratio "
          f"{summary['overhead_ratio_wall']:.3f}; workers' CPU {cpu['with']:.2f} s vs "
          f"{cpu['without']:.2f} s: ratio {summary['overhead_ratio_worker_cpu']:.3f} "
          f"(load {summary['load']:.1f})")
    if prometheus:
        # one process that scored every row of every instrumented job (the warm-up too): the
        # counts of one pass, times the number of passes (the same rows each time)
        one_pass = reference_counts(baseline, model, serving, batch)
        ref = {k: {b: v * passes for b, v in c.items()} for k, c in one_pass.items()}
        fleet = fleet_vs_one_process(prometheus, baseline, ref, args.rows * passes)
        summary["fleet"] = fleet
        for column, f in fleet["columns"].items():
            print(f"  {column:26s} fleet PSI {f['fleet_psi']:.6f}  one process "
                  f"{f['one_process_psi']:.6f}   JS {f['fleet_js']:.6f} / "
                  f"{f['one_process_js']:.6f}")
        print(f"fleet drift from the workers' summed bins vs one process over all rows: "
              f"max abs difference {fleet['max_abs_error']:.3g}, "
              f"{fleet['mismatched_bins']} of {fleet['bins']} bins differ")
    else:
        print("MODELOTEL_EXAMPLE_PROMETHEUS is not set: the fleet drift comparison is left out "
              "(bash examples/run_example.sh spark_batch runs it)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
