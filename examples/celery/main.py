"""Start a Celery worker (prefork pool, 2 child processes) on examples/celery/tasks.py, send it
scoring tasks, wait for every result, stop the worker, and print a JSON summary as the last
line.

    bash examples/run_example.sh celery                        # through the bundled collector
    .venv/bin/python examples/celery/main.py --tasks 40
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=40)
    p.add_argument("--rows", type=int, default=200, help="rows per task")
    p.add_argument("--concurrency", type=int, default=2)
    args = p.parse_args()

    base = Path(os.environ.get("MODELOTEL_EXAMPLE_DIR") or tempfile.mkdtemp())
    os.environ["CELERY_EXAMPLE_DIR"] = str(base / "celery")
    sys.path.insert(0, str(HERE))
    # the client sends tasks and reads results: it predicts nothing, so modelotel stays off here
    os.environ["MODELOTEL_ENABLED"] = "false"
    import tasks

    env = dict(os.environ)
    env.pop("MODELOTEL_ENABLED")
    celery = Path(sys.executable).with_name("celery")
    log = base / "celery-worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [str(celery), "-A", "tasks", "worker", "--pool", "prefork",
             "--concurrency", str(args.concurrency), "--loglevel", "INFO", "-n", "scoring@%h"],
            cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        pending = [tasks.score.delay(seed, args.rows) for seed in range(args.tasks)]
        results = [r.get(timeout=120) for r in pending]
    finally:
        worker.send_signal(signal.SIGTERM)  # warm shutdown: the children flush, then exit
        worker.wait(timeout=60)
    pids = sorted({r["pid"] for r in results})
    print(f"{len(results)} tasks of {args.rows} rows scored by worker processes {pids}; "
          f"worker exit code {worker.returncode}")
    print(json.dumps({"tasks": len(results), "rows": args.rows, "pids": pids,
                      "worker_rc": worker.returncode,
                      "prediction_ids": sorted(r["prediction_id"] for r in results)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
