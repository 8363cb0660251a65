"""The contract with the host: telemetry never raises into it, never mutates its inputs, never
changes its results, and keeps its memory flat.

Each promise is checked for every entry point a user has: ``instrument`` on a function, a
coroutine function, a generator function and a method, ``wrap()`` on a model object, and
``observe()``. The 100,000-call memory checks are marked ``slow``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import modelotel
from modelotel import _safety
from modelotel import attributes as A  # noqa: N812
from modelotel.stats import reasons as R  # noqa: N812
from modelotel.testing import capture


class _Lazy:
    """A dask-like result: any attempt to materialise it is a failure of the test."""

    touched: list[str]

    def __init__(self) -> None:
        self.touched = []

    def _hit(self, what: str) -> Any:
        self.touched.append(what)
        raise AssertionError(f"modelotel called {what} on a lazy result")

    def compute(self) -> Any:
        return self._hit("compute")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        return self._hit("__array__")

    def __len__(self) -> int:
        return int(self._hit("__len__"))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._hit("__iter__"))

    def to_numpy(self) -> Any:
        return self._hit("to_numpy")


@pytest.mark.parametrize("payload", [False, True], ids=["payload_off", "payload_on"])
def test_generator_input_and_lazy_output_are_not_touched(payload: bool) -> None:
    pulled: list[int] = []

    def rows() -> Iterator[list[float]]:
        for i in range(3):
            pulled.append(i)
            yield [float(i)]

    lazy = _Lazy()
    rate = 1.0 if payload else None
    model = f"host-lazy-{payload}"

    @modelotel.instrument(model=model, payload_sample_rate=rate)
    def predict(x: Any) -> _Lazy:
        return lazy

    gen = rows()
    with capture() as cap:
        assert predict(gen) is lazy
        n_logs = len(cap.logs())
    assert pulled == []
    assert list(gen) == [[0.0], [1.0], [2.0]]  # the caller still gets every row
    assert [t for t in lazy.touched if t != "__repr__"] == []
    assert n_logs == (1 if payload else 0)
    assert _safety.health.skipped[R.SKIP_UNSUPPORTED] == 2  # the input and the output


def test_input_edited_after_the_call_does_not_change_its_statistics() -> None:
    """Small batches are buffered and reduced later: the buffer must hold copies."""

    @modelotel.instrument(model="host-edit")
    def predict(x: np.ndarray) -> np.ndarray:
        return x[:, 0]

    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    with capture() as cap:
        predict(x)
        x[:] = 1000.0  # the caller reuses its buffer before the window is reduced
        points = cap.collect()  # one collection: the gauges are per window
    mean = [p.value for p in points
            if p.name == A.METRIC_FEATURE_MEAN and p.attributes.get(A.ML_FEATURE) == "1"]
    out_max = [p.value for p in points
               if p.name == A.METRIC_OUTPUT_MAX and p.attributes.get(A.ML_OUTPUT) == "0"]
    assert mean == [20.0]
    assert out_max == [3.0]
