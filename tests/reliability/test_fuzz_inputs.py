"""Fuzzing an instrumented predict with hypothesis: nested objects and arrays of every dtype.

Inputs are drawn from nested lists / tuples / dicts of scalars (ints of any size, floats
with NaN and infinities, text with lone surrogates and control characters, bytes, None,
numpy scalars of every dtype) and numpy arrays of every dtype and shape (zero-size and 0-d
included), and go through a model with statistics, payload capture (every call kept) and
the outcome cache, in strict mode (an internal error fails the test).

Invariants per call: the function's own result comes back (the same object), its input is
unchanged (same pickled bytes), nothing raises, and the call's payload record is emitted or
its drop counted. Short form: 150 examples; ``--long``: 10,000.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import modelotel
from modelotel import _safety
from modelotel import attributes as A  # noqa: N812
from modelotel.testing import capture

DTYPES = [np.dtype(t) for t in (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "longdouble", "complex64", "complex128", "clongdouble",
    "M8[ns]", "M8[D]", "m8[s]", "S4", "U4", ">f8", "<i4",
)]
# raw void: hypothesis draws no values of it; made from bytes
voids = st.one_of(
    st.binary(min_size=3, max_size=3).map(np.void),
    hnp.arrays(np.uint8, st.tuples(st.integers(0, 4), st.just(3))).map(
        lambda a: a.view("V3").reshape(-1)),
)
STRUCTURED = np.dtype([("a", "i4"), ("b", "f8"), ("c", "U3")])



def _values(d: np.dtype[Any]) -> st.SearchStrategy[Any]:
    # every value of every dtype, NaT included
    return hnp.from_dtype(d)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec=None, categories=None), max_size=20),
    st.binary(max_size=20), st.complex_numbers(),
    st.sampled_from(DTYPES).flatmap(_values), voids,
)
arrays = st.one_of(
    st.sampled_from(DTYPES).flatmap(lambda d: hnp.arrays(
        d, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
        elements=_values(d))),
    hnp.arrays(STRUCTURED, hnp.array_shapes(max_dims=1, max_side=4)),
)
nested = st.recursive(
    st.one_of(scalars, arrays),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=8), inner, max_size=5),
    ),
    max_leaves=20,
)


def _model(name: str = "fuzz", output: Any = None) -> Any:
    """A model that returns its input (``output`` None), or always ``output``."""
    cfg = modelotel.PayloadConfig(max_records_per_second=1e9, max_bytes_per_second=1e12)

    @modelotel.instrument(model=name, version="1", task="classification",
                          payload_sample_rate=1.0, payload=cfg)
    def predict(x: Any) -> Any:
        return x if output is None else output

    return predict


def _snapshot(value: Any) -> bytes:
    return pickle.dumps(value, protocol=5)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the long form: 10,000 examples, minutes on a loaded machine
def test_fuzzed_inputs_never_raise_change_or_get_lost(long_form: bool,
                                                      figures: list[dict[str, Any]]) -> None:
    echo = _model()
    constant = [1, 0]
    fixed = _model("fuzz-inputs-only", output=constant)
    seen = {"calls": 0, "records": 0, "dropped": 0}

    @settings(max_examples=10_000 if long_form else 150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(nested, st.booleans())
    def check(value: Any, as_output: bool) -> None:
        # the value as the input (the function returns a constant), or as input and output
        try:
            before = _snapshot(value)
        except Exception:
            before = None
        drops = sum(v for k, v in _safety.health.dropped.items() if k.startswith("payload"))
        errors_before = len(_safety.health.strict_errors)
        with capture() as cap:
            out = (echo if as_output else fixed)(value)
            records = [r for r in cap.logs()
                       if r.log_record.event_name == A.EVENT_PREDICTION_PAYLOAD]
        assert out is (value if as_output else constant)
        if before is not None:
            assert _snapshot(value) == before
        new_drops = sum(
            v for k, v in _safety.health.dropped.items() if k.startswith("payload")
        ) - drops
        assert len(records) + new_drops == 1
        new_errors = _safety.health.strict_errors[errors_before:]
        del _safety.health.strict_errors[errors_before:]  # each example stands alone
        assert not new_errors, new_errors
        seen["calls"] += 1
        seen["records"] += len(records)
        seen["dropped"] += new_drops

    check()
    figures.append({"section": "fuzz_inputs", "examples": seen["calls"],
                    "records": seen["records"], "counted_drops": seen["dropped"],
                    "exceptions": 0})
    assert seen["calls"] > 0


@pytest.mark.parametrize("dtype", [*DTYPES, np.dtype("V3"), STRUCTURED], ids=str)
def test_every_dtype_through_stats_and_payloads(dtype: np.dtype[Any]) -> None:
    predict = _model()
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 255, size=(6, 3) if dtype.names is None else 6, dtype=np.uint8)
    arr = np.frombuffer(np.repeat(raw.tobytes(), dtype.itemsize), dtype=np.uint8)
    arr = arr[: (arr.size // dtype.itemsize) * dtype.itemsize].view(dtype)
    with capture() as cap:
        out = predict(arr)
        assert out is arr
        assert len([r for r in cap.logs()
                    if r.log_record.event_name == A.EVENT_PREDICTION_PAYLOAD]) == 1


@pytest.mark.parametrize(
    "value",
    [(np.array(False), None), [np.array(1.0), np.array(2.0)], [np.array([1.0]), np.array(2.0)]],
    ids=["0d-then-none", "all-0d", "row-then-0d"],
)
def test_zero_dim_arrays_in_a_list_are_values_not_rows(value: Any) -> None:
    # found by the long fuzzing: the statistics took a 0-d array for a row and asked its len()
    predict = _model()
    with capture():
        assert predict(value) is value
    assert not _safety.health.errors


@pytest.mark.parametrize("value", [np.timedelta64(0, "s"), np.timedelta64("NaT", "s"),
                                   np.array([1, 2], dtype="m8[ms]")], ids=str)
def test_a_timedelta_output_is_no_internal_error(
    value: Any, expect_internal_errors: list[tuple[str, BaseException]],
) -> None:
    predict = _model("fuzz-timedelta-out")
    with capture():
        assert predict(value) is value
    assert expect_internal_errors == []


def test_nat_in_a_timedelta_input_counts_as_missing() -> None:
    @modelotel.instrument(model="fuzz-nat", version="1")
    def predict(x: Any) -> int:
        return 0

    with capture() as cap:
        predict(np.array([[1, "NaT"]], dtype="m8[s]"))
        missing = sum(p.value for p in cap.collect()
                      if p.name == A.METRIC_FEATURE_MISSING and p.attributes[A.ML_FEATURE] == "1")
    assert missing == 1
