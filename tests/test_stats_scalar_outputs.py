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


def _category_counts(model: str, as_array: bool) -> list[Any]:
    texts = ["good service", "slow", "good service", "refund"]

    @modelotel.instrument(model=model)
    def predict(text: Any) -> Any:
        label = "positive" if "good" in str(text) else "negative"
        return np.array([label]) if as_array else label

    with capture() as cap:
        for t in texts:
            predict([t] if as_array else t)  # one text either way (a text column of one row)
        points = cap.collect()
    return sorted(
        (p.name, tuple(sorted((k, v) for k, v in p.attributes.items()
                              if k not in ("ml.model.name",))), p.value)
        for p in points
        if p.attributes.get("ml.model.name") == model
        and p.name.startswith(("ml.feature.", "ml.output.", "ml.check."))
    )


def test_a_str_input_and_label_count_as_a_one_text_list_and_a_one_label_array() -> None:
    assert _category_counts("text-str", False) == _category_counts("text-array", True)
    assert _category_counts("text-str-again", False)  # something is counted at all
