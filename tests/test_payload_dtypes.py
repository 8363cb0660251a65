"""Every numpy scalar type and dtype becomes a payload value (or a counted skip), never an error.

The payload walk turns numpy data into plain JSON-compatible values. ``item()`` is not enough
for that: it returns a ``longdouble`` / ``clongdouble`` as itself, ``bytes`` for raw ``void``,
numpy scalars inside ``tolist()`` of a longdouble array. Each such value once made the walk
recurse without end (the record was lost) or made the final JSON encoding raise (an internal
error). Here every scalar type numpy has, and arrays of each dtype, go through the converter,
the record builder and a whole instrumented call.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pytest

import modelotel
from _payload_support import fake_call
from modelotel import _safety
from modelotel import attributes as A  # noqa: N812
from modelotel._payload.emit import PayloadPart, _dumps
from modelotel._payload.serialize import Converter
from modelotel.testing import capture

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the overflow of a too-large literal is the point
    _HUGE = np.longdouble("1e4000") if np.finfo(np.longdouble).max > 1e308 else np.longdouble(1e308)


def _instance(t: type) -> Any:
    """One value of numpy scalar type ``t`` (the interesting end of its range where cheap)."""
    kind = np.dtype(t).kind
    if t is np.void:
        return np.void(b"\x00\xff\x10")
    if t is np.object_:
        return np.array([{"k": 1}], dtype=object)[0]
    if kind == "M":
        return t("2024-02-29T12:34:56")
    if kind == "m":
        return t(90, "s")
    if kind == "S":
        return t(b"ab\xff")
    if kind == "U":
        return t("\u00e9t\u00e9")
    if kind == "b":
        return t(True)
    if kind in "iu":
        return np.iinfo(t).max
    if kind == "f":
        return np.finfo(t).max
    if kind == "c":
        return t(complex(1.5, -2.0))
    raise AssertionError(f"numpy scalar type without a test value: {t}")


SCALAR_TYPES = sorted(set(np.sctypeDict.values()), key=lambda t: t.__name__)

ARRAYS: dict[str, Any] = {
    "longdouble": np.array([1.5, np.inf, -np.inf, np.nan], dtype=np.longdouble),
    "longdouble_huge": np.array([_HUGE, -_HUGE], dtype=np.longdouble),
    # arbitrary bytes: invalid x87 encodings, whose cast to float64 warns (an error under -W error)
    "longdouble_raw_bits": np.frombuffer(bytes(range(7, 7 + 16 * 6)), dtype=np.longdouble),
    "clongdouble": np.array([1 + 2j, complex(np.nan, 1)], dtype=np.clongdouble),
    "float16": np.array([[1.0, np.nan], [65504.0, -np.inf]], dtype=np.float16),
    "complex64": np.array([1 + 1j, 2 - 3j], dtype=np.complex64),
    "datetime64_ns": np.array(["2024-01-01T00:00:00.000000001", "NaT"], dtype="M8[ns]"),
    "datetime64_generic": np.array(["NaT"], dtype="M8"),
    "timedelta64": np.array([1, -5, "NaT"], dtype="m8[ms]"),
    "bytes": np.array([b"a", b"\xff\xfe"]),
    "str": np.array(["x", "\udcff lone surrogate"]),
    "void": np.zeros((2, 2), dtype="V4"),
    "structured": np.zeros(3, dtype=[("a", "i4"), ("b", "f8", (2,)), ("c", "M8[s]")]),
    "object": np.array([None, 1.5, "s", b"b", np.longdouble(2)], dtype=object),
    "big_endian": np.arange(4, dtype=">f8"),
    "zero_size": np.zeros((0, 3)),
    "zero_dim_longdouble": np.array(np.longdouble(3.25)),
    "uint64": np.array([np.iinfo(np.uint64).max], dtype=np.uint64),
    "bool": np.array([True, False]),
}


def _converter() -> Converter:
    return Converter(max_rows=10, max_items=100, max_string_length=1024, max_depth=8,
                     max_bytes=65_536)


def _plain_json(value: Any) -> Any:
    """The converted value must encode as strict JSON (no NaN) and decode to the same."""
    text = _dumps(value)
    return json.loads(text)


@pytest.mark.parametrize("scalar_type", SCALAR_TYPES, ids=lambda t: t.__name__)
def test_every_numpy_scalar_type_converts_to_a_plain_value(scalar_type: type) -> None:
    value = _instance(scalar_type)
    out = _converter().convert(value)
    assert out is None or isinstance(out, (bool, int, float, str, list, dict))
    assert _plain_json(out) == out


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_arrays_of_every_dtype_convert_to_plain_values(name: str) -> None:
    arr = ARRAYS[name]
    before = arr.copy()
    out = _converter().convert(arr)
    _plain_json(out)
    assert arr.dtype == before.dtype
    np.testing.assert_array_equal(arr, before)  # the user's array is not touched


def test_values_keep_their_meaning() -> None:
    conv = _converter()
    assert conv.convert(np.longdouble(1.5)) == 1.5
    assert conv.convert(np.float16(0.5)) == 0.5
    assert conv.convert(np.clongdouble(1 + 2j)) == "(1+2j)"
    assert conv.convert(np.datetime64("NaT")) == "NaT"
    assert conv.convert(np.timedelta64(5, "s")) == "5 seconds"
    assert conv.convert(np.void(b"\x00\x01")) == "0x0001"
    assert conv.convert(ARRAYS["longdouble"]) == [1.5, "Infinity", "-Infinity", "NaN"]
    assert conv.convert(ARRAYS["longdouble_huge"]) == (
        ["Infinity", "-Infinity"] if _HUGE > 1e308 else [1e308, -1e308]
    )
    assert conv.convert(ARRAYS["void"]) == [["0x00000000"] * 2] * 2
    assert conv.convert(ARRAYS["zero_dim_longdouble"]) == 3.25
    assert conv.convert(np.uint64(2**64 - 1)) == 2**64 - 1


def test_a_raw_void_longer_than_the_string_cap_is_cut_and_counted() -> None:
    conv = Converter(max_rows=10, max_items=10, max_string_length=8, max_depth=4, max_bytes=1000)
    out = conv.convert(np.void(bytes(range(32))))
    assert out == "0x000102"  # 8 characters: the string cap holds for the hex text too
    assert A.REASON_PAYLOAD_STRING in conv.reasons


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_records_of_every_dtype_are_built(name: str) -> None:
    part = PayloadPart(model="m", version="1", rate=1.0, logger=lambda: None,
                       config=modelotel.PayloadConfig(max_records_per_second=1e9))
    attrs = part.build(fake_call(inputs={"x": ARRAYS[name]}, outputs=ARRAYS[name]),  # type: ignore[arg-type]
                       A.PAYLOAD_REASON_RATE)
    assert attrs is not None
    assert attrs[A.ML_PAYLOAD_BYTES] > 0
    for key, value in attrs.items():
        if key.startswith((A.ML_PAYLOAD_INPUT_PREFIX, A.ML_PAYLOAD_OUTPUT_PREFIX)):
            json.loads(value)


def test_an_instrumented_call_with_every_dtype_emits_every_record() -> None:
    @modelotel.instrument(model="dtypes", version="1", payload_sample_rate=1.0,
                          payload=modelotel.PayloadConfig(max_records_per_second=1e6,
                                                          max_bytes_per_second=1e9))
    def predict(x: Any) -> Any:
        return x

    values: list[Any] = [_instance(t) for t in SCALAR_TYPES] + list(ARRAYS.values())
    with capture() as cap:
        results = [predict(v) for v in values]
        records = [r for r in cap.logs()
                   if r.log_record.event_name == A.EVENT_PREDICTION_PAYLOAD]
    assert all(r is v for r, v in zip(results, values, strict=True))
    assert len(records) == len(values)
    assert not _safety.health.errors
    dropped = {k: v for k, v in _safety.health.dropped.items() if k.startswith("payload")}
    assert not dropped


def test_nan_and_inf_never_reach_the_json_as_bare_literals() -> None:
    out = _converter().convert({"a": [math.nan, np.float16("inf"), np.longdouble("-inf")]})
    assert _dumps(out) == '{"a":["NaN","Infinity","-Infinity"]}'
