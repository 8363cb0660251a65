"""The registry of models: a retired registry is empty, and a model still in use comes back
at its next call with its metrics."""

from __future__ import annotations

import numpy as np

import modelotel
from modelotel._runtime import runtime
from modelotel.testing import capture


def test_a_retired_model_in_use_comes_back_at_its_next_call() -> None:
    @modelotel.instrument(model="registry-comeback")
    def predict(x: np.ndarray) -> np.ndarray:
        return x[:, 0]

    with capture() as cap:
        predict(np.ones((3, 2)))
        assert [k for k in runtime.models if k[0] == "registry-comeback"]
        runtime.retire_models()
        assert runtime.models == {}
        predict(np.ones((2, 2)))
        assert [k for k in runtime.models if k[0] == "registry-comeback"]
        assert cap.metric("ml.prediction.rows", **{"ml.model.name": "registry-comeback"}).value == 5


def test_a_retired_model_that_is_not_called_again_costs_collections_nothing() -> None:
    @modelotel.instrument(model="registry-idle")
    def predict(x: np.ndarray) -> np.ndarray:
        return x[:, 0]

    with capture() as cap:
        predict(np.ones((3, 2)))
        before = {p.attributes.get("ml.model.name") for p in cap.collect()}
    assert "registry-idle" in before
    runtime.retire_models()
    with capture() as cap:
        after = {p.attributes.get("ml.model.name") for p in cap.collect()}
    assert "registry-idle" not in after
