"""Audit: numpy complex scalars inside Python rows are not numbers to the statistics.

``float(np.complex64(1 + 2j))`` emits a ComplexWarning (an exception under ``-W error``, a
line on the user's stderr otherwise) and silently drops the imaginary part. numpy complex
scalars are ``np.number`` but not ``complex``, so before the fix they passed the
"is it a number?" tests of the column extraction and reached ``float()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import modelotel
from modelotel import _safety
from modelotel import attributes as A  # noqa: N812
from modelotel.stats import reasons as R  # noqa: N812
from modelotel.testing import capture


def test_numpy_complex_in_rows_is_not_a_number() -> None:
    @modelotel.instrument(model="audit-complex-rows")
    def predict(a: Any) -> float:
        return 1.0

    x = [[np.complex64(1 + 2j), 1.0], [np.complex64(3j), 2.0]]
    with capture() as cap:
        assert predict(x) == 1.0
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "1"})
    assert count.value == 2
    assert not _safety.health.errors


def test_numpy_complex_in_a_numeric_column_is_a_counted_skip() -> None:
    @modelotel.instrument(model="audit-complex-later")
    def predict(a: Any) -> float:
        return 1.0

    with capture() as cap:
        predict([[1.0, 2.0], [3.0, 4.0]])  # plans feature "0" as numeric
        predict([[np.complex64(1 + 2j), 2.0], [None, 4.0]])
        fired = cap.metric(A.METRIC_CHECK_VIOLATIONS, **{A.ML_CHECK: A.CHECK_SCHEMA_DTYPE_CHANGE})
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "0"})
        null = cap.metric(A.METRIC_FEATURE_MISSING,
                          **{A.ML_FEATURE: "0", A.ML_MISSING_KIND: A.MISSING_NULL})
    assert fired.value == 1
    assert count.value == 4
    assert null.value == 2  # the None, and the complex value that is no number
    assert _safety.health.skipped[R.SKIP_NON_NUMERIC] == 1
    assert not _safety.health.errors
