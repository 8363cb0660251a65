"""Audit: extreme values never turn into numpy warnings or FloatingPointErrors in modelotel.

pytest runs with ``filterwarnings = error`` (a warnings-as-errors host); each case also runs
with ``np.errstate(all="raise")`` as a host that set ``np.seterr(all="raise")`` would. Before
the fix:

- one output column holding -inf and +inf, or float16 values near 65504, warned in the
  per-call output check (``lo + hi``), and the call's statistics were lost;
- values near 1e308 or subnormals made the window merge at collection warn / raise: every
  stats callback of that collection failed (about 50 internal errors per collection, an
  error storm), and the window's counts were lost;
- a longdouble batch beyond the float64 range warned in the cast into the row buffer.

Now every case is counted exactly, with no internal error (strict mode, see conftest).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel.stats import Baseline
from modelotel.testing import capture

_rng = np.random.default_rng(7)
_BASE = Baseline.from_data(_rng.normal(size=(200, 2)), outputs=_rng.normal(size=200))
_LD_MAX = np.finfo(np.longdouble).max

# (id, inputs (rows x 2), outputs (1-D), count of finite + missing values per input feature)
CASES: list[tuple[str, Any, Any]] = [
    ("outputs_minus_inf_plus_inf", np.ones((2, 2)), np.array([-np.inf, np.inf])),
    ("float16_near_max", np.full((3, 2), 65504, dtype=np.float16),
     np.full(3, 65504, dtype=np.float16)),
    ("near_float64_max", np.array([[1e308, -1e308], [1e308, 1e308]]),
     np.array([1e308, 1e308, -1e308])),
    ("big_batch_near_max", np.full((3000, 2), 1e308), np.full(3000, 1e308)),
    ("subnormals", np.full((3, 2), 5e-324), np.full(3, 5e-324)),
    ("longdouble_beyond_float64", np.full((2, 2), _LD_MAX, dtype=np.longdouble),
     np.full(2, _LD_MAX, dtype=np.longdouble)),
    ("longdouble_big_batch", np.full((300, 2), _LD_MAX, dtype=np.longdouble),
     np.full(300, _LD_MAX, dtype=np.longdouble)),
]


@contextlib.contextmanager
def _host(mode: str) -> Iterator[None]:
    if mode == "seterr_raise":
        with np.errstate(all="raise"):
            yield
    else:  # filterwarnings = error already
        yield


@pytest.mark.parametrize("mode", ["warnings_as_errors", "seterr_raise"])
@pytest.mark.parametrize("baseline", [None, _BASE], ids=["no_baseline", "baseline"])
@pytest.mark.parametrize(("case", "x", "y"), CASES, ids=[c[0] for c in CASES])
def test_extreme_values_are_counted_without_internal_errors(
    case: str, x: Any, y: Any, baseline: Baseline | None, mode: str
) -> None:
    model = f"audit-num-{case}-{baseline is not None}-{mode}"

    @modelotel.instrument(model=model, baseline=baseline, row_cap=1000)
    def predict(a: Any) -> Any:
        return y

    calls = 3
    with capture() as cap, _host(mode):
        for _ in range(calls):
            assert predict(x) is y
        cap.collect()  # closes the window: the merge into the running totals
        assert predict(x) is y
        calls += 1
        points = cap.collect()
    rows_seen = min(x.shape[0], 1000) * calls
    outs_seen = min(y.shape[0], 1000) * calls

    def value(name: str, **attrs: str) -> Any:
        got = [p.value for p in points if p.name == name
               and p.attributes.get(A.ML_MODEL_NAME) == model
               and all(p.attributes.get(k) == v for k, v in attrs.items())]
        assert len(got) == 1, (name, attrs, got)
        return got[0]

    assert value(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "0"}) == rows_seen
    assert value(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "1"}) == rows_seen
    assert value(A.METRIC_OUTPUT_COUNT, **{A.ML_OUTPUT: "0"}) == outs_seen
    assert value(A.METRIC_PREDICTION_CALLS) == calls
    assert not [p for p in points if p.name == A.METRIC_TELEMETRY_ERRORS]


def test_infinite_outputs_still_fire_the_nonfinite_check() -> None:
    """The cheaper test in the 1-D output check must not hide what it is there to see."""

    @modelotel.instrument(model="audit-num-check")
    def predict(a: Any) -> Any:
        return np.array([-np.inf, np.inf])

    with capture() as cap, np.errstate(all="raise"):
        predict(np.ones((2, 2)))  # first call: plans the outputs (the general path)
        predict(np.ones((2, 2)))  # then the 1-D fast path
        got = cap.metric(A.METRIC_CHECK_VIOLATIONS, **{A.ML_CHECK: A.CHECK_OUTPUT_NONFINITE})
    assert got.value == 2
