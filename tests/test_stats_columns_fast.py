"""The one-matrix shortcuts of ``extract`` for JSON-shaped inputs (records, a dict of
columns, one record) against the value-by-value path they skip: same names, same numbers,
same nulls, same skips, for whatever mix of values hypothesis draws."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelotel.stats import read
from modelotel.stats.read import extract
from modelotel.stats.schema import ColumnPlan

_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.sampled_from([None, "x", Decimal("1.5"), np.float32(2.5), np.int16(-3), np.nan]),
)
_NUMBERS = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-1000, 1000))


def _slow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read, "_records_fast", lambda x, first: None)
    monkeypatch.setattr(read, "_from_mapping_fast", lambda x: None)


def _seen(x: Any) -> tuple[Any, ...] | None:
    """What the statistics get from ``x``: names, kinds, the aligned matrix, nulls, skips."""
    skipped: dict[str, int] = {}
    table = extract(x, row_vector=False, skipped=skipped)
    if table is None:
        return None, skipped
    plan = ColumnPlan.from_table(table, None, 200, skipped)
    X, nulls, cats, issues = plan.align(table, skipped)
    skips = {k: v for k, v in skipped.items() if v}
    return (plan.numeric, plan.categorical, None if X is None else X.astype(np.float64),
            None if nulls is None else nulls.tolist(), [list(c) for c in cats], issues, skips)


def _same(a: Any, b: Any) -> None:
    if a is None or b is None or len(a) == 2:
        assert a == b
        return
    assert a[0] == b[0] and a[1] == b[1] and a[4] == b[4] and a[5] == b[5] and a[6] == b[6]
    if a[2] is None or b[2] is None:
        assert a[2] is None and b[2] is None
    else:
        np.testing.assert_array_equal(a[2], b[2])
    # nulls: the shortcut gives None where the careful path gives zeros
    assert (a[3] or [0] * len(a[0])) == (b[3] or [0] * len(b[0]))


def _compare(x: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _seen(x)
    with monkeypatch.context() as m:
        _slow(m)
        slow = _seen(x)
    _same(fast, slow)


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4, unique=True),
    rows=st.integers(1, 6),
    data=st.data(),
)
def test_records_shortcut_equals_the_careful_path(
    keys: list[str], rows: int, data: st.DataObject
) -> None:
    numeric_only = data.draw(st.booleans())
    values = _NUMBERS if numeric_only else _VALUES
    records = [{k: data.draw(values) for k in keys} for _ in range(rows)]
    if data.draw(st.booleans()) and rows > 1:  # a record with a key missing or one extra
        records[-1] = dict(list(records[-1].items())[:-1]) if len(keys) > 1 else {"z": 1.0}
    with pytest.MonkeyPatch.context() as mp:
        _compare(records, mp)


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
    rows=st.integers(0, 5),
    data=st.data(),
)
def test_dict_shortcuts_equal_the_careful_path(
    keys: list[str], rows: int, data: st.DataObject
) -> None:
    values = _NUMBERS if data.draw(st.booleans()) else _VALUES
    as_array = data.draw(st.booleans())
    columns = {k: [data.draw(values) for _ in range(rows)] for k in keys}
    if as_array:
        columns = {k: np.asarray(v) if all(isinstance(e, (int, float)) and not isinstance(e, bool)
                                            and abs(e) < 2**60 for e in v) else v
                   for k, v in columns.items()}
    if data.draw(st.booleans()) and rows:  # ragged
        first = keys[0]
        columns[first] = list(columns[first])[:-1]
    record = {k: data.draw(values) for k in keys}
    with pytest.MonkeyPatch.context() as mp:
        _compare(columns, mp)
        _compare(record, mp)


def test_shortcuts_are_taken_for_numbers() -> None:
    t = extract([{"a": 1, "b": 2.5}, {"a": 3, "b": True}])
    assert t is not None and t.matrix is not None and t.names == ("a", "b")
    t = extract({"a": [1.0, 2.0], "b": np.array([3, 4])})
    assert t is not None and t.matrix is not None and t.matrix.shape == (2, 2)
    t = extract({"a": 1.0, "b": 2})
    assert t is not None and t.matrix is not None and t.matrix.shape == (1, 2)
    t = extract([{"a": 1.0}, {"a": None}])  # a null: the careful path, which counts it
    assert t is not None and t.matrix is None and t.nulls == {"a": 1}
