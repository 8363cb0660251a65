"""Audit: inputs whose ``.shape`` / ``len()`` / ``[0]`` raise or lie still get their span.

Reading the rows and features of an input runs user code (a ``shape`` property, a
``__getattr__`` that raises ``KeyError`` as attribute-dicts often do, a list subclass's
``__len__``). Before the fix, whatever that code raised aborted ``start_call``: the call got
no span at all and the failure was counted as an internal error of modelotel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import modelotel
from modelotel import _safety
from modelotel import attributes as A  # noqa: N812
from modelotel.stats import reasons as R  # noqa: N812
from modelotel.testing import capture


class _AttrDict(dict[str, Any]):
    """The common attribute-dict: ``__getattr__`` raises KeyError, not AttributeError."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


class _ShapeRaises:
    @property
    def shape(self) -> tuple[int, int]:
        raise RuntimeError("lazy shape not computed")


class _ShapeInfinite:
    shape = (float("inf"), 2)


class _ShapeIterRaises:
    class _Dims:
        def __len__(self) -> int:
            return 2

        def __iter__(self) -> Any:
            raise RuntimeError("dims")

    shape = _Dims()


class _ShapeString:
    shape = "3x2"


class _ShapeNoDtype:
    shape = (3,)


# (id, input factory, ml.input.rows, ml.input.features, skips of the shape reader)
CASES: list[tuple[str, Callable[[], Any], int | None, int | None, int]] = [
    ("attrdict", lambda: _AttrDict(a=[1.0, 2.0]), None, None, 1),
    ("shape_property_raises", _ShapeRaises, None, None, 1),
    ("shape_infinite", _ShapeInfinite, None, 2, 0),
    ("shape_iter_raises", _ShapeIterRaises, None, None, 1),
    ("shape_is_a_string", _ShapeString, None, None, 0),
    ("shape_without_dtype", _ShapeNoDtype, 3, None, 0),
]


@pytest.mark.parametrize(("case", "factory", "rows", "features", "skips"), CASES,
                         ids=[c[0] for c in CASES])
def test_lying_shape_keeps_the_span(
    case: str, factory: Callable[[], Any], rows: int | None, features: int | None, skips: int
) -> None:
    x = factory()

    @modelotel.instrument(model=f"audit-shape-{case}")
    def predict(a: Any) -> Any:
        return 1.0

    with capture() as cap:
        assert predict(x) == 1.0
        (span,) = cap.spans()
    assert span.name == f"predict audit-shape-{case}"
    assert span.attributes is not None
    assert span.attributes.get(A.ML_INPUT_ROWS) == rows
    assert span.attributes.get(A.ML_INPUT_FEATURES) == features
    assert _safety.health.skipped.get(A.REASON_INPUT_SHAPE, 0) == skips
    assert not _safety.health.errors  # none of it is modelotel's own error


def test_list_whose_len_raises_keeps_span_and_metrics(
    expect_internal_errors: list[tuple[str, BaseException]],
) -> None:
    class _LenRaises(list[Any]):
        def __len__(self) -> int:
            raise ZeroDivisionError("len")

    x = _LenRaises([[1.0, 2.0]])

    @modelotel.instrument(model="audit-shape-len")
    def predict(a: Any) -> float:
        return 0.5

    with capture() as cap:
        assert predict(x) == 0.5
        (span,) = cap.spans()
        calls = cap.metric(A.METRIC_PREDICTION_CALLS, **{A.ML_MODEL_NAME: "audit-shape-len"})
    assert calls.value == 1
    assert span.attributes is not None
    assert A.ML_INPUT_ROWS not in span.attributes
    assert _safety.health.skipped[A.REASON_INPUT_SHAPE] == 1
    # the statistics' extraction of the same object still reports it as its own error
    # (see the audit report): only the span part is fixed here
    assert {c for c, _ in expect_internal_errors} <= {"StatsPart.end"}


def test_observe_with_a_shape_that_raises_keeps_serving_metrics() -> None:
    """``observe``: the shape is read at finish; it used to skip the serving metrics."""
    with capture() as cap:
        with modelotel.observe("audit-shape-observe") as call:
            call.record_inputs(_ShapeRaises())
            call.record_outputs(np.array([1.0]))
        calls = cap.metric(A.METRIC_PREDICTION_CALLS, **{A.ML_MODEL_NAME: "audit-shape-observe"})
        (span,) = cap.spans()
    assert calls.value == 1
    assert span.attributes is not None
    assert span.attributes[A.ML_MODEL_NAME] == "audit-shape-observe"
    assert _safety.health.skipped[A.REASON_INPUT_SHAPE] == 1
    assert _safety.health.skipped[R.SKIP_UNSUPPORTED] == 1  # the statistics skip it too
