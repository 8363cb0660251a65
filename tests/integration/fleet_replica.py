"""One replica of a fleet serving one model, run as its own process by test_fleet_drift.py.

Every replica serves a disjoint shard of one serving set: call ``k`` of replica ``r`` predicts
on :func:`batch` ``(r, k)``, at wall time ``start + k * interval``, so replicas stay in step
and the test can rebuild every row (and when it was served) afterwards. From call
``shift_at`` on, feature ``SHIFTED`` is moved by one training standard deviation.

    fleet_replica.py --baseline B.json --replica 2 --start 1700000000.0 --calls 60 ...

Writes a JSON summary at the end (--summary): the calls made and the wall time of each.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

FEATURES = [f"f{i:02d}" for i in range(20)]
#: The feature whose mean moves by one standard deviation in the drift phase.
SHIFTED = "f03"
MODEL = "fleet"
VERSION = "1"
OWNER = "team-fleet"
RUNBOOK = "https://runbooks.example/fleet-model"


def training(rows: int = 20_000) -> np.ndarray[Any, Any]:
    """The training inputs: 20 independent standard normal features."""
    return np.random.default_rng(12345).normal(size=(rows, len(FEATURES)))


def batch(replica: int, call: int, rows: int, shifted: bool) -> np.ndarray[Any, Any]:
    """The rows of one call: the training distribution, with SHIFTED moved by +1 sd."""
    x = np.random.default_rng([replica, call]).normal(size=(rows, len(FEATURES)))
    if shifted:
        x[:, FEATURES.index(SHIFTED)] += 1.0
    return x


def score(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The model: a logistic score of the first two features."""
    return np.asarray(1.0 / (1.0 + np.exp(-(x[:, 0] + 0.5 * x[:, 1]))))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--baseline", required=True)
    p.add_argument("--replica", type=int, required=True)
    p.add_argument("--start", type=float, required=True, help="wall time of call 0")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between calls")
    p.add_argument("--rows", type=int, default=5, help="rows per call")
    p.add_argument("--calls", type=int, required=True)
    p.add_argument("--shift-at", type=int, default=-1, help="first shifted call (-1: none)")
    p.add_argument("--summary", required=True, help="where to write the JSON summary")
    args = p.parse_args(argv)

    import pandas as pd

    import modelotel

    modelotel.configure()

    @modelotel.instrument(model=MODEL, version=VERSION, baseline=args.baseline, owner=OWNER,
                          runbook_url=RUNBOOK)
    def predict(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        return score(frame.to_numpy())

    times = []
    for k in range(args.calls):
        delay = args.start + k * args.interval - time.time()
        if delay > 0:
            time.sleep(delay)
        shifted = 0 <= args.shift_at <= k
        frame = pd.DataFrame(batch(args.replica, k, args.rows, shifted), columns=FEATURES)
        times.append(time.time())
        predict(frame)
    flushed = modelotel.shutdown(timeout=30.0)
    with open(args.summary, "w", encoding="utf-8") as fh:
        json.dump({"replica": args.replica, "calls": len(times), "times": times,
                   "flushed": bool(flushed)}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
