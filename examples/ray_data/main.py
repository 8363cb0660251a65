"""Batch inference with Ray Data: ``map_batches`` with a callable class on an actor pool of 2
replicas (2 processes), each replica exporting through the collector under its own
``service.instance.id``; the fleet drift that Prometheus computes from the replicas' summed
bin counters, compared with one process over all rows. Prints a JSON summary as the last line.

    bash examples/run_example.sh ray_data                   # through the bundled collector
    bash examples/run_example.sh ray_data --rows 1000000

Steps: fit a scikit-learn model and profile its training data (the baseline); write the
fleet drift rules for it (``modelotel rules``) into Prometheus' rules directory and reload
it; start a local Ray (2 CPUs, no dashboard, a small object store, its logs in a temporary
directory); score ``--rows`` rows, with feature ``monthly_charges`` shifted, through
``Scorer`` replicas; wait until the replicas' processes have exited (their telemetry shut
down), stop Ray; wait until Prometheus holds every row, then compare its lifetime fleet
drift with the drift of one process that saw every row.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import modelotel

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import fleet  # noqa: E402 - examples/fleet.py, shared with spark_batch

# a plain list in __main__: the worker-side code ships it by value, with no import of fleet
FEATURES = list(fleet.FEATURES)
MODEL = "ray-batch-scorer"
SERVICE = "ray-data-scoring"


class Scorer:
    """One replica of the actor pool: a Ray actor, so a process of its own, which Ray Data
    builds once and then calls with batch after batch. modelotel is set up here, once per
    process; ``__del__`` shuts it down: Ray Data calls it when it releases the actor at the
    end of the job (``__ray_shutdown__``), before the process exits, so what the replica
    still holds (its last spans, its counters since the last periodic export) is exported,
    not lost. (modelotel's ``atexit`` hook also runs when Ray ends the actor gracefully;
    ``__del__`` is Ray Data's own cleanup hook and says so here. Neither runs for an actor
    killed with ``ray.kill`` or by a crash: what it held is lost.)"""

    def __init__(self, model: LogisticRegression, baseline: modelotel.Baseline,
                 batch_size: int) -> None:
        # service.instance.id: a new UUID per process (configure() sets it); the pid tells
        # which replica sent what
        modelotel.configure(service_name=SERVICE,
                            resource_attributes={"process.pid": os.getpid()})

        # row_cap: every row of a batch goes into the statistics (the default row-samples a
        # batch of more than 1,024), so the fleet's bins equal one process over all rows
        @modelotel.instrument(model=MODEL, version="1", task="classification",
                              baseline=baseline, row_cap=batch_size)
        def predict(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
            return np.asarray(model.predict_proba(frame)[:, 1])

        self._predict = predict

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        scores = self._predict(batch[FEATURES])
        return pd.DataFrame({"row_id": batch["row_id"], "score": scores, "pid": os.getpid(),
                             "prediction_id": modelotel.last_prediction_id()})

    def __del__(self) -> None:
        modelotel.shutdown()  # bounded by MODELOTEL_SHUTDOWN_TIMEOUT (5 s); never raises


def wait_exited(pids: set[int], timeout: float) -> bool:
    """Wait until the replicas' processes are gone (this machine: Ray runs locally)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = set()
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.add(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def score(model: LogisticRegression, baseline: modelotel.Baseline, serving: pd.DataFrame,
          args: argparse.Namespace) -> tuple[pd.DataFrame, float, bool, float]:
    """Score ``serving`` on a local Ray; the scored rows, the job's wall time, whether
    every replica's process exited before Ray stopped, and how long that took."""
    import ray

    ray_dir = tempfile.mkdtemp(prefix="modelotel-ray-")  # short: Ray's sockets live there
    # the replicas' telemetry settings, passed explicitly (a worker on another node of a
    # cluster would not inherit this process's environment)
    env = {k: v for k, v in os.environ.items() if k.startswith(("OTEL_", "MODELOTEL_"))}
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
             _temp_dir=ray_dir, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": env})
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        frame = serving.assign(row_id=np.arange(len(serving)))
        n, k = len(frame), args.blocks
        blocks = [frame.iloc[i * n // k:(i + 1) * n // k] for i in range(k)]
        t0 = time.perf_counter()
        scored = ray.data.from_pandas(blocks).map_batches(
            Scorer, fn_constructor_kwargs={"model": model, "baseline": baseline,
                                           "batch_size": args.batch_size},
            compute=ray.data.ActorPoolStrategy(size=args.replicas), num_cpus=1,
            batch_size=args.batch_size, batch_format="pandas").to_pandas()
        wall = time.perf_counter() - t0
        # Ray Data releases the actors when the job ends; each runs Scorer.__del__ then
        # exits. ray.shutdown() would kill a replica still exporting.
        exited = wait_exited(set(scored["pid"].tolist()), timeout=60)
        exit_wait = time.perf_counter() - t0 - wall
    finally:
        ray.shutdown()
    if args.keep_ray_logs:
        print(f"Ray's logs: {ray_dir}/session_latest/logs")
    else:
        for _ in range(50):  # Ray's last processes may still write there for a moment
            shutil.rmtree(ray_dir, ignore_errors=True)
            if not os.path.exists(ray_dir):
                break
            time.sleep(0.1)
    return scored, wall, exited, exit_wait


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--blocks", type=int, default=8, help="blocks of the input dataset")
    p.add_argument("--batch-size", type=int, default=5_000)
    p.add_argument("--replicas", type=int, default=2,
                   help="actors of the pool, 1 CPU each: at most 2 (Ray gets 2 CPUs here)")
    p.add_argument("--keep-ray-logs", action="store_true")
    args = p.parse_args()

    workdir = Path(os.environ.get("MODELOTEL_EXAMPLE_DIR") or tempfile.mkdtemp())
    prometheus = os.environ.get("MODELOTEL_EXAMPLE_PROMETHEUS")
    model, baseline, baseline_path = fleet.fit(workdir, MODEL)
    if prometheus:
        rules_file = Path(os.environ["MODELOTEL_EXAMPLE_RULES_DIR"]) / "ray-data-drift.yml"
        fleet.load_rules(MODEL, baseline_path, rules_file, prometheus)

    serving = fleet.rows(args.rows, seed=2, shift=0.5)
    scored, wall, exited, exit_wait = score(model, baseline, serving, args)
    scored = scored.sort_values("row_id")
    expected = model.predict_proba(serving)[:, 1]
    per_pid = scored.groupby("pid").agg(rows=("row_id", "size"),
                                        batches=("prediction_id", "nunique"))
    summary: dict[str, Any] = {
        "rows": args.rows, "scored_rows": len(scored),
        "row_ids_complete": scored["row_id"].tolist() == list(range(args.rows)),
        "max_abs_score_difference": float(np.max(np.abs(scored["score"].to_numpy() - expected))),
        "replicas": {str(pid): {"rows": int(r.rows), "batches": int(r.batches)}
                     for pid, r in per_pid.iterrows()},
        "replicas_exited": exited, "replicas_exit_wait_s": exit_wait,
        "prediction_ids": sorted(set(scored["prediction_id"])),
        "rows_per_prediction_id": dict(Counter(scored["prediction_id"])),
        "wall_s": wall, "load": os.getloadavg()[0],
    }
    print(f"{len(scored)} rows scored by {len(per_pid)} replicas ("
          + ", ".join(f"pid {pid}: {r.rows} rows in {r.batches} batches"
                      for pid, r in per_pid.iterrows())
          + f") in {wall:.2f} s; every replica shut its telemetry down and exited "
          f"before Ray stopped: {exited} ({exit_wait:.2f} s after the job)")
    if prometheus:
        ref = fleet.reference_counts(
            baseline, lambda f: np.asarray(model.predict_proba(f)[:, 1]), serving,
            args.batch_size)
        compared = fleet.fleet_vs_one_process(prometheus, MODEL, baseline, ref, args.rows)
        summary["fleet"] = compared
        for column, f in compared["columns"].items():
            print(f"  {column:26s} fleet PSI {f['fleet_psi']:.6f}  one process "
                  f"{f['one_process_psi']:.6f}   JS {f['fleet_js']:.6f} / "
                  f"{f['one_process_js']:.6f}")
        print(f"fleet drift from the replicas' summed bins vs one process over all rows: "
              f"max abs difference {compared['max_abs_error']:.3g}, "
              f"{compared['mismatched_bins']} of {compared['bins']} bins differ")
    else:
        print("MODELOTEL_EXAMPLE_PROMETHEUS is not set: the fleet drift comparison is left out "
              "(bash examples/run_example.sh ray_data runs it)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
