"""A predict function that returns one Python number (a dict record's score) gets the same
output statistics as one returning that number in an array, and an int too large for float64
is a counted skip, never an error."""

from __future__ import annotations

from typing import Any

import numpy as np

import modelotel
from modelotel.testing import capture


def _output_stats(model: str, values: list[object]) -> tuple[float, float, list[Any]]:
    @modelotel.instrument(model=model)
    def predict(record: dict[str, float]) -> object:
        return values[int(record["i"])]

    with capture() as cap:
        for i in range(len(values)):
            predict({"i": float(i)})
        count = cap.metric("ml.output.count", **{"ml.model.name": model}).value
        violations = sorted(
            (p.attributes.get("ml.check"), p.value) for p in cap.collect()
            if p.name == "ml.check.violations" and p.attributes.get("ml.model.name") == model)
        nan = cap.metric("ml.output.missing", **{"ml.model.name": model,
                                                 "ml.missing.kind": "nan"}).value
    return count, nan, violations


def test_python_float_outputs_match_array_outputs() -> None:
    scores = [0.25, 0.5, float("nan"), 1.0]
    plain = _output_stats("scalar-float", list(scores))
    arrays = _output_stats("scalar-array", [np.array([s]) for s in scores])
    assert plain == arrays
    count, nan, violations = plain
    assert (count, nan) == (4, 1)
    assert violations  # the NaN score fired the output check, the same way for both


def test_an_int_beyond_float64_does_not_raise() -> None:
    @modelotel.instrument(model="scalar-huge")
    def predict(record: dict[str, float]) -> object:
        return 0.5 if record["i"] < 1 else 10**400

    with capture():
        assert predict({"i": 0.0}) == 0.5
        assert predict({"i": 1.0}) == 10**400
