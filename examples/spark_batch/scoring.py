"""What runs in Spark's Python workers (shipped to them with ``addPyFile``).

A Python worker process scores many partitions, one task after another. Its modelotel setup
is done once per process, here, the first time a task asks for it: ``configure()`` (each
worker process exports on its own, under its own ``service.instance.id``) and the
instrumented predict function. The module is imported once per worker process, so these
globals live as long as the worker; a function defined in the driver's script would be
unpickled anew for every task.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

_lock = threading.Lock()
_predictors: dict[str, Callable[[pd.DataFrame], np.ndarray[Any, Any]]] = {}


def predictor(model: Any, name: str, baseline_file: str) -> Callable[[pd.DataFrame], Any]:
    """The instrumented predict function of ``name`` in this worker process."""
    with _lock:
        if name not in _predictors:
            from pyspark import SparkFiles

            import modelotel

            # the pid tells which worker process sent what (service.instance.id is a UUID)
            modelotel.configure(service_name="spark-batch-scoring",
                                resource_attributes={"process.pid": os.getpid()})

            # row_cap: every row of an Arrow batch (Spark's default holds at most 10,000)
            # goes into the statistics (the default row-samples a batch of more than
            # 1,024), so the fleet's bins equal one process over all rows
            @modelotel.instrument(model=name, version="1", task="classification",
                                  baseline=SparkFiles.get(baseline_file), row_cap=10_000)
            def predict(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
                return np.asarray(model.predict_proba(frame)[:, 1])

            _predictors[name] = predict
        return _predictors[name]


def flush() -> None:
    """Export what this worker holds: Spark may end an idle worker without running atexit."""
    import modelotel

    modelotel.force_flush()  # within MODELOTEL_SHUTDOWN_TIMEOUT (5 s)
