"""A Celery app that scores batches offline with an observed model.

    celery -A tasks worker --pool prefork --concurrency 2

The broker is kombu's filesystem transport (messages are files under
``$CELERY_EXAMPLE_DIR``): nothing to install or run besides Celery itself. With Redis or
RabbitMQ only ``broker_url`` changes.

The worker's main process imports this module, so ``modelotel.configure()`` runs there,
before the prefork pool forks its children: modelotel's fork hook gives every child process
its own exporters and its own ``service.instance.id`` (one exporter per worker process, no
telemetry buffered in the parent sent twice). A pool child may be ended without ``atexit``,
so it flushes on Celery's ``worker_process_shutdown`` signal.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from celery import Celery
from celery.signals import worker_process_shutdown

import modelotel

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age"]
DIR = Path(os.environ.get("CELERY_EXAMPLE_DIR", "/tmp/modelotel-celery"))
for sub in ("queue", "processed", "results", "control"):
    (DIR / sub).mkdir(parents=True, exist_ok=True)

app = Celery("tasks", broker="filesystem://", backend=f"file://{DIR / 'results'}")
app.conf.update(
    broker_transport_options={"data_folder_in": str(DIR / "queue"),
                              "data_folder_out": str(DIR / "queue"),
                              "data_folder_processed": str(DIR / "processed"),
                              "control_folder": str(DIR / "control")},
    worker_prefetch_multiplier=1,  # one task at a time per child: both children get work
    task_acks_late=True,
)


def training(rows: int = 5000) -> np.ndarray[Any, Any]:
    return np.random.default_rng(3).normal(size=(rows, len(FEATURES)))


WEIGHTS = np.array([-0.3, 1.0, 0.5, 0.0])
baseline = modelotel.Baseline.from_data(
    training(), outputs=1 / (1 + np.exp(-training() @ WEIGHTS)), feature_names=FEATURES)
modelotel.configure(service_name="celery-scoring")  # in the worker's main process


@modelotel.instrument(model="offline-churn", version="1", baseline=baseline,
                      feature_names=FEATURES)
def predict(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(1 / (1 + np.exp(-x @ WEIGHTS)))


@app.task
def score(seed: int, rows: int) -> dict[str, Any]:
    """Score one batch (rebuilt from its seed: a real task would read it from storage)."""
    x = np.random.default_rng(seed).normal(size=(rows, len(FEATURES)))
    scores = predict(x)
    time.sleep(0.05)  # the rest of a real task: writing the scores somewhere
    return {"pid": os.getpid(), "mean": float(scores.mean()),
            "prediction_id": modelotel.last_prediction_id()}


@worker_process_shutdown.connect
def _flush(**_: Any) -> None:
    modelotel.force_flush()  # within MODELOTEL_SHUTDOWN_TIMEOUT (5 s)
