"""Schema checks name the feature and are reported once per window, not once per call."""

from __future__ import annotations

from typing import Any

import numpy as np

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel.testing import capture


def _violations(cap: Any) -> dict[tuple[str, str], float]:
    return {(p.attributes[A.ML_CHECK], p.attributes.get(A.ML_FEATURE, p.attributes.get(
        A.ML_OUTPUT))): p.value for p in cap.collect() if p.name == A.METRIC_CHECK_VIOLATIONS}


def _events(cap: Any) -> list[dict[str, Any]]:
    return [dict(e.attributes) for s in cap.spans() for e in s.events
            if e.name == A.EVENT_CHECK_VIOLATION]


def test_a_wider_batch_fires_one_check_naming_the_new_feature() -> None:
    rng = np.random.default_rng(0)

    @modelotel.instrument(model="schema-wider")
    def predict(x: Any) -> Any:
        return rng.random(len(x))

    with capture() as cap:
        predict(rng.random((4, 2)))  # the first batch fixes the schema: columns "0", "1"
        for _ in range(5):
            predict(rng.random((4, 3)))
        assert _events(cap) == [{A.ML_CHECK: A.CHECK_SCHEMA_UNEXPECTED_FEATURE,
                                 A.ML_FEATURE: "2"}]
        assert _violations(cap) == {(A.CHECK_SCHEMA_UNEXPECTED_FEATURE, "2"): 1}
        # a new window reports it again, once
        for _ in range(3):
            predict(rng.random((4, 3)))
        assert _violations(cap) == {(A.CHECK_SCHEMA_UNEXPECTED_FEATURE, "2"): 2}
        assert len(_events(cap)) == 2
        spans = cap.spans()
    fired = [s.attributes.get(A.ML_CHECKS_FIRED) for s in spans]
    assert fired.count((A.CHECK_SCHEMA_UNEXPECTED_FEATURE,)) == 2


def test_named_features_and_wider_outputs_are_named() -> None:
    rng = np.random.default_rng(1)

    @modelotel.instrument(model="schema-named", feature_names=["a", "b"])
    def predict(x: Any) -> Any:
        return rng.random((len(x), 1 if x.shape[1] == 2 else 2))

    with capture() as cap:
        predict(rng.random((2, 2)))
        predict(rng.random((2, 1)))
        predict(rng.random((2, 3)))
        predict(rng.random((2, 3)))
        got = _violations(cap)
    assert got == {
        (A.CHECK_SCHEMA_MISSING_FEATURE, "b"): 1,
        (A.CHECK_SCHEMA_UNEXPECTED_FEATURE, "2"): 1,
        (A.CHECK_SCHEMA_UNEXPECTED_FEATURE, "1"): 1,  # the output's second column
    }
    assert all(feature for _, feature in got)
