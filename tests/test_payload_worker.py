"""Payload records are finished on one background worker from call-time copies.

The calling thread decides, takes the record budgets and copies the values; the worker
converts, redacts, serializes and emits. These tests hold the worker on a gate (a job that
waits) so that what happens between a call's return and its record's build is under the
test's control.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelotel
from _payload_support import fake_call, in_child
from modelotel import attributes as tn
from modelotel._payload.emit import PayloadPart
from modelotel._payload.serialize import Converter, FrameCopy, input_rows
from modelotel._payload.snapshot import NOT_COPIED, Caps, rows_of, snapshot
from modelotel._payload.worker import Worker, payload_worker
from modelotel._safety import health
from modelotel.testing import Captured, capture

BIG = {"max_records_per_second": 1e6, "max_bytes_per_second": 1e9}


@pytest.fixture
def cap() -> Iterator[Captured]:
    with capture() as c:
        yield c


class Gate:
    """Holds the payload worker inside a job until :meth:`open` (or the test ends)."""

    def __init__(self, worker: Worker) -> None:
        self.entered = threading.Event()
        self._release = threading.Event()
        assert worker.submit(self._job)
        assert self.entered.wait(10)

    def _job(self) -> None:
        self.entered.set()
        self._release.wait(30)

    def open(self) -> None:
        self._release.set()


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate(payload_worker())
    try:
        yield g
    finally:
        g.open()


def _model(name: str, **cfg: Any) -> Any:
    def predict(x: Any) -> Any:
        return [0.5]

    return modelotel.instrument(
        model=name, payload=modelotel.PayloadConfig(sample_rate=1.0, **BIG, **cfg)
    )(predict)


def _builders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The threads that build records from now on, in order (a spy on ``complete``)."""
    builders: list[int] = []
    complete = PayloadPart.complete

    def spy(self: PayloadPart, pending: Any) -> Any:
        builders.append(threading.get_ident())
        return complete(self, pending)

    monkeypatch.setattr(PayloadPart, "complete", spy)
    return builders


def _call(inputs: Any, outputs: Any) -> Any:
    return fake_call(inputs=inputs, outputs=outputs, pid="0123456789abcdef")


def _records(cap: Captured) -> list[Any]:
    return [
        r.log_record
        for r in cap.logs()
        if r.log_record.event_name == tn.EVENT_PREDICTION_PAYLOAD
    ]


def _inputs(record: Any) -> dict[str, Any]:
    attrs = dict(record.attributes)
    if tn.ML_PAYLOAD_INPUTS in attrs:
        return {"": json.loads(attrs[tn.ML_PAYLOAD_INPUTS])}
    return {
        k[len(tn.ML_PAYLOAD_INPUT_PREFIX):]: json.loads(v)
        for k, v in attrs.items()
        if k.startswith(tn.ML_PAYLOAD_INPUT_PREFIX)
    }


def _frame() -> pd.DataFrame:
    df = pd.DataFrame({"f0": [1.5], "f1": [2.5]})
    df["cat"] = pd.Categorical(["a"], categories=["a", "b"])
    return df


def _mutate_array(x: Any) -> None:
    x[0, 0] = -1.0


def _mutate_dict(x: Any) -> None:
    x["f0"] = -1.0
    x["tags"].append("late")
    x["new"] = 1


def _mutate_records(x: Any) -> None:
    x[0]["f0"] = -1.0
    x.append({"f0": 9.0, "f1": 9.0})


def _mutate_frame(x: Any) -> None:
    x.loc[0, "f0"] = -1.0
    x["cat"] = pd.Categorical(["b"], categories=["a", "b"])
    x["extra"] = [0.0]


CASES = {
    "numpy": (
        lambda: np.array([[1.5, 2.5]]),
        _mutate_array,
        {"": [[1.5, 2.5]]},
    ),
    "dict": (
        lambda: {"f0": 1.5, "tags": ["a"]},
        _mutate_dict,
        {"f0": 1.5, "tags": ["a"]},
    ),
    "records": (
        lambda: [{"f0": 1.5, "f1": 2.5}],
        _mutate_records,
        {"f0": [1.5], "f1": [2.5]},
    ),
    "dataframe": (
        _frame,
        _mutate_frame,
        {"f0": [1.5], "f1": [2.5], "cat": ["a"]},
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_record_holds_the_call_time_values_when_the_input_is_mutated_after_the_call(
    cap: Captured, gate: Gate, kind: str
) -> None:
    make, mutate, expected = CASES[kind]
    predict = _model(f"mutated-{kind}")
    x = make()
    assert predict(x) == [0.5]
    mutate(x)  # the user's next line, before the worker builds the record
    gate.open()
    (record,) = _records(cap)
    assert _inputs(record) == expected


def test_a_record_holds_the_call_time_outputs_when_they_are_mutated_after_the_call(
    cap: Captured, gate: Gate
) -> None:
    out = np.array([0.25, 0.75])

    @modelotel.instrument(model="mutated-out", payload=modelotel.PayloadConfig(sample_rate=1.0))
    def predict(x: Any) -> Any:
        return out

    predict([1.0])
    out[:] = -1.0
    gate.open()
    (record,) = _records(cap)
    assert json.loads(record.attributes[tn.ML_PAYLOAD_OUTPUTS]) == [0.25, 0.75]


def test_the_span_says_sampled_and_the_record_carries_the_calls_ids_and_time(
    cap: Captured, gate: Gate
) -> None:
    predict = _model("linked")
    predict([1.0])
    (span,) = cap.spans()
    assert span.attributes is not None
    assert span.attributes[tn.ML_PAYLOAD_SAMPLED] is True  # set before the span ended
    assert cap.log_exporter.get_finished_logs() == ()  # not built yet: the worker waits
    gate.open()
    (record,) = _records(cap)
    assert record.trace_id == span.context.trace_id
    assert record.span_id == span.context.span_id
    assert record.attributes[tn.ML_PREDICTION_ID] == span.attributes[tn.ML_PREDICTION_ID]
    # the call's time, although the record was emitted after the span ended
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.start_time <= record.timestamp <= span.end_time
    assert record.observed_timestamp == record.timestamp


def test_with_the_queue_full_the_calling_thread_builds_the_record_and_none_is_lost(
    cap: Captured, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(payload_worker(), "capacity", 1)
    builders = _builders(monkeypatch)
    predict = _model("full-queue")
    assert predict([1.0]) == [0.5]  # queued: the one free place
    assert predict([2.0]) == [0.5]  # the queue is full: built here, at once
    assert builders == [threading.get_ident()]  # the first waits behind the gate
    first, second = cap.spans()
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes.get(tn.ML_PAYLOAD_SAMPLED) is True
    assert second.attributes.get(tn.ML_PAYLOAD_SAMPLED) is True
    gate.open()
    assert sorted(_inputs(r)[""][0] for r in _records(cap)) == [1.0, 2.0]
    assert len(builders) == 2
    assert builders[1] != threading.get_ident()  # the first, built by the worker
    assert not any(v for k, v in health.dropped.items() if k.startswith("payload"))


@pytest.mark.parametrize("finish", ["force_flush", "shutdown"])
def test_force_flush_and_shutdown_deliver_every_queued_record(
    cap: Captured, finish: str
) -> None:
    gate = Gate(payload_worker())
    predict = _model(f"flushed-{finish}")
    for i in range(5):
        predict([float(i)])
    assert cap.log_exporter.get_finished_logs() == ()
    threading.Timer(0.05, gate.open).start()
    assert getattr(modelotel, finish)(timeout=10.0) is True
    # read the exporter itself: capture's readers would wait for the worker themselves
    records = list(cap.log_exporter.get_finished_logs())
    assert len(records) == 5
    assert tn.REASON_PAYLOAD_WORKER_SHUTDOWN_TIMEOUT not in health.dropped


def test_records_still_queued_at_the_shutdown_deadline_are_counted_dropped(
    cap: Captured, gate: Gate
) -> None:
    predict = _model("cut-at-shutdown")
    for i in range(3):
        predict([float(i)])
    assert modelotel.shutdown(timeout=0.05) is False
    assert health.dropped[tn.REASON_PAYLOAD_WORKER_SHUTDOWN_TIMEOUT] == 3
    gate.open()
    assert _records(cap) == []


def test_the_calling_thread_never_builds_the_record(
    cap: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    builders = _builders(monkeypatch)
    predict = _model("off-thread")
    for i in range(3):
        predict({"f0": float(i)})
    assert len(_records(cap)) == 3
    assert len(builders) == 3
    assert threading.get_ident() not in builders


def test_the_worker_outlives_a_job_that_raises_anything(
    expect_internal_errors: list[Any],
) -> None:
    worker = Worker()
    done: list[int] = []

    def exits() -> None:
        raise SystemExit(3)  # e.g. from a user's redact hook

    assert worker.submit(exits)
    assert worker.submit(lambda: done.append(1))
    assert worker.drain(10.0)
    assert done == [1]
    assert [(c, type(e).__name__) for c, e in expect_internal_errors] == [
        ("payload.worker", "SystemExit")
    ]
    expect_internal_errors.clear()


def test_jobs_queued_for_a_worker_thread_that_died_are_still_run() -> None:
    worker = Worker()
    assert worker.submit(lambda: None)
    assert worker.drain(10.0)
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    done: list[int] = []
    worker._thread = dead  # as if the thread had died with a job in its queue
    worker._jobs.put(lambda: done.append(1))
    assert worker.drain(10.0)
    assert done == [1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_builds_its_records_on_its_own_worker(cap: Captured, gate: Gate) -> None:
    predict = _model("forked")
    predict([1.0])  # the parent's record, queued behind the gate
    parent_thread = payload_worker()._thread
    assert parent_thread is not None

    def child() -> bool:
        worker = payload_worker()
        if worker.pending():  # the parent's queued record is the parent's to finish
            return False
        builders: list[int] = []
        complete = PayloadPart.complete

        def spy(self: PayloadPart, pending: Any) -> Any:
            builders.append(threading.get_ident())
            return complete(self, pending)

        PayloadPart.complete = spy  # type: ignore[method-assign]
        predict([2.0])
        records = _records(cap)
        return (
            [_inputs(r) for r in records] == [{"": [2.0]}]
            and worker._thread is not None
            and worker._thread.is_alive()
            and builders == [worker._thread.ident]
            and threading.get_ident() not in builders
        )

    assert in_child(child) == 0
    gate.open()
    assert [_inputs(r) for r in _records(cap)] == [{"": [1.0]}]


# --- the copy converts exactly like the original ---------------------------------------

_atoms = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_values = st.recursive(
    _atoms,
    lambda inner: st.lists(inner, max_size=8)
    | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=6), inner, max_size=8),
    max_leaves=60,
)
_arrays = st.builds(
    lambda shape, seed: np.random.default_rng(seed).normal(size=shape),
    st.lists(st.integers(0, 6), min_size=1, max_size=3).map(tuple),
    st.integers(0, 1000),
)
_caps = st.fixed_dictionaries(
    {
        "max_rows": st.integers(1, 5),
        "max_items": st.integers(1, 6),
        "max_string_length": st.integers(1, 20),
        "max_depth": st.integers(1, 5),
        "max_bytes": st.integers(64, 3000),
    }
)


def _same_conversion(value: Any, caps: dict[str, Any]) -> None:
    copy = snapshot(
        value,
        Caps(caps["max_rows"], caps["max_items"], caps["max_depth"], max_elements=4096),
    )
    assert copy is not NOT_COPIED
    direct, copied = Converter(**caps), Converter(**caps)
    expected = direct.convert(value)
    assert copied.convert(copy) == expected
    assert copied.reasons == direct.reasons
    assert copied.cut_bytes == direct.cut_bytes
    assert copied.remaining == direct.remaining
    assert rows_of(copy) == input_rows(value)


@settings(max_examples=300, deadline=None)
@given(value=_values | st.dictionaries(st.text(max_size=4), _arrays, max_size=4) | _arrays,
       caps=_caps)
def test_a_call_time_copy_converts_exactly_like_the_original(value: Any, caps: Any) -> None:
    _same_conversion(value, caps)


@pytest.mark.parametrize("rows", [1, 3, 12])
@pytest.mark.parametrize("cols", [2, 7])
def test_a_call_time_copy_of_a_frame_converts_exactly_like_the_frame(rows: int, cols: int) -> None:
    rng = np.random.default_rng(rows * 10 + cols)
    df = pd.DataFrame(rng.normal(size=(rows, cols)), columns=[f"f{j}" for j in range(cols)])
    df["cat"] = pd.Categorical(rng.choice(["a", "b"], size=rows))
    df["s"] = pd.Series([f"t{i}" for i in range(rows)], dtype=object)
    df["n"] = pd.array(range(rows), dtype="Int64")
    for max_rows, max_items in ((10, 100), (2, 4)):
        _same_conversion(
            df,
            {"max_rows": max_rows, "max_items": max_items, "max_string_length": 50,
             "max_depth": 4, "max_bytes": 65536},
        )


@pytest.mark.parametrize("rows", [0, 1, 3, 12])
@pytest.mark.parametrize(
    "dtype", [np.float64, np.float32, np.int64, np.uint8, np.bool_], ids=lambda d: d.__name__
)
def test_a_copy_of_a_one_block_frame_converts_exactly_like_the_frame(rows: int, dtype: Any) -> None:
    # read from its one block (no DataFrame.copy()); labels that need the converter's
    # renaming (a duplicate, an int, a long one) and frames beyond the caps included
    rng = np.random.default_rng(rows)
    labels: list[Any] = ["f0", "f0", 7, "x" * 60, "f4"]
    df = pd.DataFrame(rng.normal(size=(rows, 5)).astype(dtype), columns=labels)
    _frame_copies_convert_like(df, ((12, 100), (2, 4)))
    copy = snapshot(df, Caps(12, 100, 4, max_elements=4096))
    # the user's later change cannot reach the copy: it holds memory of its own
    assert not any(np.shares_memory(c, b.values) for c in copy.columns for b in df._mgr.blocks)


@pytest.mark.parametrize("rows", [0, 1, 3, 12])
@pytest.mark.parametrize("missing", [False, True])
def test_a_copy_of_a_frame_of_numbers_categories_and_strings_converts_like_the_frame(
    rows: int, missing: bool
) -> None:
    # read from its blocks: floats, ints (two numpy blocks), a categorical of str and one
    # of ints, pandas' "str" and "string" (Arrow) columns, with missing values, in an order
    # that interleaves the blocks; cut by the caps and not
    rng = np.random.default_rng(rows + 100 * missing)
    df = pd.DataFrame({"a": rng.normal(size=rows)})
    df["city"] = pd.array(rng.choice(["Oslo", "Lyon"], size=rows), dtype="str")
    df["n"] = rng.integers(0, 9, size=rows)
    df["cat"] = pd.Categorical(rng.choice(["u", "v"], size=rows), categories=["u", "v", "w"])
    df["b"] = rng.normal(size=rows)
    df["code"] = pd.Categorical(rng.integers(1, 4, size=rows))
    df["note"] = pd.array([f"n{i}" for i in range(rows)], dtype="string")
    if missing and rows:
        for col in ("city", "cat", "code", "note"):
            df.loc[0, col] = None
        df.loc[0, "b"] = np.nan
        df.loc[rows - 1, "a"] = np.inf
    _frame_copies_convert_like(df, ((12, 100), (2, 4), (1, 2)))
    # columns picked in another order: blocks placed by arrays of positions, not slices
    picked = df[["b", "note", "a", "cat", "n", "city", "code"]]
    picked = picked.assign(c=picked["b"] * 2)[["c", *picked.columns]]._consolidate()
    assert any(type(b._mgr_locs.indexer) is not slice for b in picked._mgr.blocks)
    _frame_copies_convert_like(picked, ((12, 100), (2, 4), (1, 2)))


def _frame_copies_convert_like(df: pd.DataFrame, caps: tuple[tuple[int, int], ...]) -> None:
    """Under each (max_rows, max_items), and a byte budget that holds the record or runs
    out inside it, ``df``'s copy is read from its blocks (cut or not) and converts exactly
    like the frame."""
    rows, cols = df.shape
    for max_rows, max_items in caps:
        got = snapshot(df, Caps(max_rows, max_items, 4, max_elements=4096))
        cut = max_rows < rows or max_items < cols
        assert type(got.value if cut else got) is FrameCopy
        for max_bytes in (65536, 150, 40):
            _same_conversion(
                df,
                {"max_rows": max_rows, "max_items": max_items, "max_string_length": 50,
                 "max_depth": 4, "max_bytes": max_bytes},
            )


def test_values_without_a_faithful_copy_are_converted_on_the_calling_thread() -> None:
    caps = Caps(max_rows=10, max_items=100, max_depth=8, max_elements=50)
    loop: list[Any] = []
    loop.append(loop)
    df = pd.DataFrame({"o": [[1, 2]]})  # a mutable object in a column
    for value in (
        {1, 2},
        loop,
        np.array([[1], [2]], dtype=object),
        df,
        bytearray(b"x"),
        [[0.0] * 51],  # more values than the copy's budget
    ):
        assert snapshot(value, caps) is NOT_COPIED, value


MIXED = {
    "array in, list out": (np.arange(30.0).reshape(15, 2), [0.1] * 12),
    "records in, set out": ([{"a": i, "b": "x" * 30} for i in range(12)], {1, 2}),
    "set in, array out": ({3, 4}, np.arange(4)),
    "nested dict in, frame out": (
        {"a": {"b": [1, 2, {"c": list(range(200))}]}, "e": "y" * 50},
        pd.DataFrame({"s": [0.5] * 12}),
    ),
    "frame in, scalar out": (_frame(), np.float32(0.5)),
}


@pytest.mark.parametrize("case", sorted(MIXED))
def test_a_record_from_call_time_copies_equals_the_record_from_the_originals(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs, outputs = MIXED[case]
    cfg = modelotel.PayloadConfig(max_rows=10, max_items=20, max_string_length=20,
                                  max_depth=3, max_bytes=600, **BIG)
    part = PayloadPart(model="m", version="1", rate=1.0, config=cfg, logger=lambda: None)
    copied = part.build(_call(inputs, outputs), tn.PAYLOAD_REASON_RATE)  # type: ignore[arg-type]
    skipped = dict(health.skipped)
    health.reset()
    # the reference: no copies, every side converted from the user's objects on the spot
    monkeypatch.setattr("modelotel._payload.emit.snapshot", lambda value, caps: NOT_COPIED)
    direct = part.build(_call(inputs, outputs), tn.PAYLOAD_REASON_RATE)  # type: ignore[arg-type]
    assert copied == direct
    assert skipped == dict(health.skipped)


def test_every_kept_call_of_many_threads_is_delivered(
    cap: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(payload_worker(), "capacity", 8)  # small: often full
    predict = _model("threads")
    calls_per_thread, threads = 60, 6

    def work(t: int) -> None:
        for i in range(calls_per_thread):
            assert predict([float(t * 1000 + i)]) == [0.5]

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    delivered = [_inputs(r)[""][0] for r in _records(cap)]
    assert sorted(delivered) == sorted(
        float(t * 1000 + i) for t in range(threads) for i in range(calls_per_thread))
    assert not any(v for k, v in health.dropped.items() if k.startswith("payload"))
    sampled = [s for s in cap.spans() if (s.attributes or {}).get(tn.ML_PAYLOAD_SAMPLED)]
    assert len(sampled) == len(delivered)
