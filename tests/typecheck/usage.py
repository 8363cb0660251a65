"""The public API used the way the README shows it, checked by ``mypy --strict``.

``.venv/bin/mypy`` checks this file with the package (pyproject's ``[tool.mypy] files``): a
change to a public signature that breaks the documented usage fails the type check.
``tests/test_public_api_typing.py`` also runs :func:`serve` under ``modelotel.testing.capture``
(so the code is not only well typed but works), and checks that misuse fails the type check.
Every name of ``modelotel.__all__`` is used here.
"""

# ruff: noqa: N803, N806 - X is the README's (and scikit-learn's) name for a batch of inputs
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

import modelotel
from modelotel import attributes

Array = npt.NDArray[np.float64]


def configure_service() -> bool:
    """Start-up and shut-down of a service (not run by the test: it would export to OTLP)."""
    modelotel.configure(service_name="churn-service", endpoint="http://localhost:4318")
    flushed: bool = modelotel.force_flush(timeout=2.0)
    return modelotel.shutdown(timeout=5.0) and flushed


class ChurnModel:
    """A model object, as ``wrap`` takes it (predict-like methods found by name)."""

    def predict(self, X: Array) -> Array:
        labels: Array = np.asarray(X.sum(axis=1) > 0, dtype=np.float64)
        return labels

    def predict_proba(self, X: Array) -> Array:
        p = 1.0 / (1.0 + np.exp(-X.sum(axis=1)))
        return np.stack([1.0 - p, p], axis=1)


OPTIONS: modelotel.ModelOptions = {"version": "3", "task": "classification", "owner": "risk"}


@modelotel.instrument
def bare(X: Array) -> Array:
    return X[:, 0]


@modelotel.instrument(model="usage-churn", version="3", task="classification")
def predict(X: Array) -> Array:
    return (X[:, 0] > 0).astype(np.float64)


@modelotel.instrument(
    model="usage-churn-payloads", version="3", task="classification",
    payload_sample_rate=0.01,
    payload=modelotel.PayloadConfig(deny_fields={"password"}, patterns=["email"]),
)
def predict_rows(rows: list[dict[str, float]]) -> list[int]:
    return [int(r["age"] > 40) for r in rows]


@modelotel.instrument(model="usage-churn-options", **OPTIONS)
async def predict_async(X: Array) -> Array:
    await asyncio.sleep(0)
    return X[:, 0]


@modelotel.instrument(model="usage-churn-stream")
def stream(X: Array) -> Iterator[float]:
    yield from X[:, 0].tolist()


@modelotel.instrument(model="usage-churn-astream")
async def astream(X: Array) -> AsyncIterator[float]:
    for v in X[:, 0].tolist():
        yield v


def serve(baseline_path: Path) -> dict[str, object]:
    """Every call form once; returns what a test can check."""
    rng = np.random.default_rng(0)
    X_train: Array = rng.normal(size=(200, 3))
    model = ChurnModel()
    baseline = modelotel.Baseline.from_data(X_train, outputs=model.predict(X_train))
    content_hash: str = baseline.save(baseline_path)
    loaded = modelotel.Baseline.load(baseline_path)

    with_drift = modelotel.instrument(
        model="usage-churn-drift", version="3", baseline=baseline_path
    )(model.predict)
    clf: ChurnModel = modelotel.wrap(
        model, model="usage-churn-wrapped", version="3", baseline=loaded
    )
    clf_proba = modelotel.wrap(
        ChurnModel(), model="usage-churn-proba", methods=["predict_proba", "predict"]
    )

    X: Array = rng.normal(size=(8, 3))
    labels: Array = predict(X)
    prediction_id: str | None = modelotel.last_prediction_id()
    if prediction_id is not None:
        modelotel.record_outcome(prediction_id, labels.tolist(), model="usage-churn", version="3")
    predict_rows([{"age": 42.0, "income": 1.0}])
    bare(X)
    with_drift(X)
    clf.predict(X)
    probabilities: Array = clf_proba.predict_proba(X)
    asyncio.run(predict_async(X))
    items: list[float] = list(stream(X))

    async def consume() -> list[float]:
        return [v async for v in astream(X)]

    aitems = asyncio.run(consume())

    call: modelotel.Prediction
    with modelotel.observe("usage-churn-block", version="3", task="classification") as call:
        call.record_inputs(X)
        call.record_outputs(clf.predict(X))
        call.set_attribute("app.tenant", "acme")
    block_id: str = call.prediction_id

    with modelotel.suppress():
        predict(X)  # recorded by nothing

    return {
        "version": modelotel.__version__,
        "hash": content_hash,
        "labels": labels,
        "probabilities": probabilities,
        "items": items,
        "aitems": aitems,
        "block_id": block_id,
        "model_attribute": attributes.ML_MODEL_NAME,
    }


def in_a_users_test() -> int:
    """``modelotel.testing`` as a user's own test would use it."""
    X: Array = np.ones((2, 3))
    with modelotel.testing.capture() as cap:
        predict(X)
        calls = cap.metric(
            attributes.METRIC_PREDICTION_CALLS, **{attributes.ML_MODEL_NAME: "usage-churn"}
        )
    return len(cap.spans()) + int(calls.value)
