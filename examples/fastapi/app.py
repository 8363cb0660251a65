"""A churn model behind FastAPI, observed by modelotel, served by gunicorn.

    gunicorn app:app -k uvicorn.workers.UvicornWorker -w 2 --preload --bind 127.0.0.1:8000

With ``--preload`` this module is imported once, in gunicorn's master: the model is fitted
and ``modelotel.configure()`` runs there, before the workers are forked. Each worker then
builds its own exporters and gets its own ``service.instance.id`` (modelotel's fork hook).

- ``POST /predict`` takes one customer record (``customer_id``, ``email`` and four numeric
  features) and returns the churn prediction with its ``prediction_id``. OpenTelemetry's
  FastAPI instrumentation opens the request span; modelotel's ``predict churn`` span is its
  child.
- 1% of the calls (by customer: ``sample_key``) are kept as payload log records, redacted in
  the process: ``email`` is removed, ``customer_id`` replaced by its HMAC-SHA256 (key:
  ``MODELOTEL_PAYLOAD_HMAC_KEY``), emails, phone numbers and card numbers in any other text
  masked.
- ``POST /feedback`` takes the true outcome later (``prediction_id``, ``actual`` and the
  ``predicted`` value the client got back: the feedback may reach another worker than the
  prediction did) and records it with ``modelotel.record_outcome``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from pydantic import BaseModel
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import modelotel

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age"]
MODEL, VERSION = "churn", "1"


def training_data(rows: int = 5000, seed: int = 7) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    """Customer records as they arrive at the API, and whether each churned."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({
        "tenure_months": rng.gamma(2.0, 12.0, rows),
        "monthly_charges": rng.normal(70.0, 20.0, rows),
        "support_calls": rng.poisson(1.5, rows).astype(float),
        "age": rng.normal(45.0, 12.0, rows),
    })
    logit = 0.04 * (x.monthly_charges - 70) + 0.6 * (x.support_calls - 1.5) - 0.05 * (
        x.tenure_months - 24)
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    # the identifiers travel with the records (the baseline knows these columns too)
    x.insert(0, "email", [f"customer{i}@example.com" for i in range(rows)])
    x.insert(0, "customer_id", [f"train-{i}" for i in range(rows)])
    return x, y.to_numpy()


def fit() -> tuple[Pipeline, modelotel.Baseline]:
    x, y = training_data()
    # the identifiers of a record are dropped by the pipeline, never seen by the model
    model = Pipeline([
        ("features", ColumnTransformer([("scale", StandardScaler(), FEATURES)],
                                       remainder="drop")),
        ("classify", LogisticRegression()),
    ]).fit(x, y)
    baseline = modelotel.Baseline.from_data(x, outputs=model.predict(x))
    return model, baseline


class Record(BaseModel):
    customer_id: str
    email: str
    tenure_months: float
    monthly_charges: float
    support_calls: float
    age: float


class Feedback(BaseModel):
    prediction_id: str
    actual: int
    predicted: int


model, baseline = fit()
modelotel.configure(service_name="churn-api")  # in the master, before the fork (--preload)


@modelotel.instrument(
    model=MODEL, version=VERSION, task="classification", baseline=baseline,
    payload_sample_rate=float(os.environ.get("CHURN_PAYLOAD_RATE", "0.01")),
    payload=modelotel.PayloadConfig(
        deny_fields={"email"}, hash_fields={"customer_id"}, sample_key="customer_id",
    ),
)
def predict(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    return np.asarray(model.predict(frame[FEATURES]))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # a worker's exit: export what it still holds (gunicorn may end it without atexit)
    modelotel.force_flush()  # within MODELOTEL_SHUTDOWN_TIMEOUT (5 s)


app = FastAPI(lifespan=lifespan)
FastAPIInstrumentor.instrument_app(app)


@app.post("/predict")
def predict_one(record: Record) -> dict[str, Any]:
    frame = pd.DataFrame([record.model_dump()])[["customer_id", "email", *FEATURES]]
    churn = int(predict(frame)[0])
    return {"churn": churn, "prediction_id": modelotel.last_prediction_id(), "pid": os.getpid()}


@app.post("/feedback")
def feedback(fb: Feedback) -> dict[str, str]:
    modelotel.record_outcome(fb.prediction_id, fb.actual, model=MODEL, version=VERSION,
                             predicted=fb.predicted)
    return {"status": "recorded"}


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
