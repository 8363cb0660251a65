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
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import fleet  # noqa: E402 - examples/fleet.py, shared with ray_data

# a plain list in __main__: the worker-side code ships it by value, with no import of fleet
FEATURES = list(fleet.FEATURES)
MODEL = "batch-scorer"


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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=400_000)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="local[N]: concurrent Python workers")
    p.add_argument("--repeats", type=int, default=2, help="jobs with and without modelotel")
    args = p.parse_args()

    workdir = Path(os.environ.get("MODELOTEL_EXAMPLE_DIR") or tempfile.mkdtemp())
    prometheus = os.environ.get("MODELOTEL_EXAMPLE_PROMETHEUS")
    model, baseline, baseline_path = fleet.fit(workdir, MODEL)
    if prometheus:
        rules_file = Path(os.environ["MODELOTEL_EXAMPLE_RULES_DIR"]) / "spark-batch-drift.yml"
        fleet.load_rules(MODEL, baseline_path, rules_file, prometheus)

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
    serving = fleet.rows(args.rows, seed=2, shift=0.5)
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
        one_pass = fleet.reference_counts(
            baseline, lambda f: np.asarray(model.predict_proba(f)[:, 1]), serving, batch)
        ref = {k: {b: v * passes for b, v in c.items()} for k, c in one_pass.items()}
        compared = fleet.fleet_vs_one_process(prometheus, MODEL, baseline, ref,
                                              args.rows * passes)
        summary["fleet"] = compared
        for column, f in compared["columns"].items():
            print(f"  {column:26s} fleet PSI {f['fleet_psi']:.6f}  one process "
                  f"{f['one_process_psi']:.6f}   JS {f['fleet_js']:.6f} / "
                  f"{f['one_process_js']:.6f}")
        print(f"fleet drift from the workers' summed bins vs one process over all rows: "
              f"max abs difference {compared['max_abs_error']:.3g}, "
              f"{compared['mismatched_bins']} of {compared['bins']} bins differ")
    else:
        print("MODELOTEL_EXAMPLE_PROMETHEUS is not set: the fleet drift comparison is left out "
              "(bash examples/run_example.sh spark_batch runs it)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
