"""The contract with the host: telemetry never raises into it, never mutates its inputs, never
changes its results, and keeps its memory flat.

Each promise is checked for every entry point a user has: ``instrument`` on a function, a
coroutine function, a generator function and a method, ``wrap()`` on a model object, and
``observe()``. Statistics and payload capture (every call sampled) run on each call, so every
part that reads the inputs and outputs does. The 100,000-call memory checks are marked
``slow``.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import gc
import itertools
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelotel
from modelotel import _safety
from modelotel import attributes as A  # noqa: N812
from modelotel.stats import reasons as R  # noqa: N812
from modelotel.testing import capture
from test_faults_injection import FAULTS

_ids = itertools.count()

ENTRIES = ("instrument_sync", "instrument_async", "instrument_generator", "instrument_method",
           "wrap", "observe")
# every part that touches the inputs and outputs runs: statistics, payloads on every call
OPTIONS: dict[str, Any] = {"payload_sample_rate": 1.0}


# the entry point as test_faults_injection's FAULTS name it (which steps run for which kind)
_FAULT_KIND = {"instrument_sync": "sync", "instrument_async": "async",
               "instrument_generator": "generator", "instrument_method": "sync", "wrap": "sync",
               "observe": "observe"}


class UserError(Exception):
    """The user's own exception."""


def _call(
    entry: str, x: Any, result: Any, error: BaseException | None = None
) -> tuple[Any, list[Any]]:
    """One prediction on ``x`` through ``entry``; the user's code returns ``result`` or raises
    ``error``. Returns what the host got and the arguments the user's code saw."""
    model = f"contract-{entry}-{next(_ids)}"
    seen: list[Any] = []

    def body(arg: Any) -> Any:
        seen.append(arg)
        if error is not None:
            raise error
        return result

    if entry == "instrument_sync":
        return modelotel.instrument(model=model, **OPTIONS)(body)(x), seen
    if entry == "instrument_async":

        @modelotel.instrument(model=model, **OPTIONS)
        async def apredict(arg: Any) -> Any:
            await asyncio.sleep(0)
            return body(arg)

        return asyncio.run(apredict(x)), seen
    if entry == "instrument_generator":

        @modelotel.instrument(model=model, **OPTIONS)
        def stream(arg: Any) -> Iterator[Any]:
            yield body(arg)
            yield result

        items = list(stream(x))
        assert len(items) == 2
        assert items[1] is result
        return items[0], seen
    if entry == "instrument_method":

        class Model:
            @modelotel.instrument(model=model, **OPTIONS)
            def predict(self, arg: Any) -> Any:
                return body(arg)

        return Model().predict(x), seen
    if entry == "wrap":

        class Estimator:
            def predict(self, arg: Any) -> Any:
                return body(arg)

        return modelotel.wrap(Estimator(), model=model, **OPTIONS).predict(x), seen
    assert entry == "observe"
    with modelotel.observe(model, **OPTIONS) as call:
        call.record_inputs(x)
        out = body(x)
        call.record_outputs(out)
    return out, seen


def _inputs() -> dict[str, Any]:
    rng = np.random.default_rng(3)
    arr = rng.normal(size=(6, 3))
    arr[1, 2] = np.nan
    frame = pd.DataFrame({
        "age": [31.0, np.nan, 45.0, 52.0],
        "city": ["paris", "lyon", None, "paris"],
        "n": np.array([1, 2, 3, 4], dtype=np.int32),
        "flag": [True, False, True, True],
    })
    frame["segment"] = pd.Categorical(["a", "b", "a", "c"])
    return {
        "numpy": arr,
        "numpy_float32_1d": rng.normal(size=8).astype(np.float32),
        "pandas": frame,
        "dict": {"age": [31.0, None, 45.0], "city": ["paris", "lyon", "paris"],
                 "email": ["jane.doe@example.com", "x@y.org", "z@w.net"]},
        "list": [[1.0, 2.0, "a"], [3.0, None, "b"], [5.0, 6.0, "a"]],
    }


def _assert_unchanged(before: Any, after: Any) -> None:
    assert type(after) is type(before)
    if isinstance(before, np.ndarray):
        assert after.dtype == before.dtype
        assert after.shape == before.shape
        assert after.flags.writeable == before.flags.writeable
        assert after.tobytes() == before.tobytes()
    elif isinstance(before, pd.DataFrame):
        pd.testing.assert_frame_equal(after, before, check_exact=True)
        assert after.attrs == before.attrs
    else:
        assert after == before


@pytest.mark.parametrize("kind", list(_inputs()))
@pytest.mark.parametrize("entry", ENTRIES)
def test_inputs_and_results_are_untouched(entry: str, kind: str) -> None:
    x = _inputs()[kind]
    x_before = copy.deepcopy(x)
    result = np.array([0.25, 0.75, 0.5, 0.125])
    result_before = result.copy()
    with capture() as cap:
        got, seen = _call(entry, x, result)
        cap.collect()  # the statistics of the window are reduced from what was buffered
        n_spans, n_logs = len(cap.spans()), len(cap.logs())
    assert got is result  # the very object the user's code returned
    assert len(seen) == 1
    assert seen[0] is x  # the user's code got the caller's object, not a copy
    _assert_unchanged(x_before, x)
    _assert_unchanged(result_before, result)
    # the parts that read them did run
    assert n_spans == 1
    assert n_logs == 1  # the sampled payload
    assert not _safety.health.errors


@pytest.mark.parametrize("outcome", ["return", "raise"])
@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_internal_faults_never_reach_the_host(
    fault: str, entry: str, outcome: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strict mode off, as in production: a failing step is swallowed and counted."""
    inject, runs = FAULTS[fault]
    x = [[1.0, 2.0], [3.0, 4.0]]
    x_before = copy.deepcopy(x)
    result = {"scores": [0.25, 0.75]}
    err = UserError("the user's own error") if outcome == "raise" else None
    _safety.set_strict(False)
    raised: BaseException | None = None
    got: Any = None
    with capture():
        inject(monkeypatch)
        try:
            # in a copy of the context: "context detach raises" leaves the span attached
            got, _ = contextvars.copy_context().run(_call, entry, x, result, err)
        except BaseException as exc:
            raised = exc
        finally:
            monkeypatch.undo()
    assert x == x_before
    if err is None:
        assert raised is None, repr(raised)
        assert got is result
        assert result == {"scores": [0.25, 0.75]}
    else:
        assert raised is err  # the very object the user's code raised, nothing else
        assert raised.__traceback__ is not None
    assert _safety.health.strict_errors == []  # strict mode was off: nothing was kept
    if runs(_FAULT_KIND[entry], outcome):
        assert sum(_safety.health.errors.values()) >= 1, f"{fault} was not counted"


class _Lazy:
    """A dask-like result: any attempt to materialise it is a failure of the test."""

    touched: list[str]

    def __init__(self) -> None:
        self.touched = []

    def _hit(self, what: str) -> Any:
        self.touched.append(what)
        raise AssertionError(f"modelotel called {what} on a lazy result")

    def compute(self) -> Any:
        return self._hit("compute")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        return self._hit("__array__")

    def __len__(self) -> int:
        return int(self._hit("__len__"))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._hit("__iter__"))

    def to_numpy(self) -> Any:
        return self._hit("to_numpy")


@pytest.mark.parametrize("payload", [False, True], ids=["payload_off", "payload_on"])
def test_generator_input_and_lazy_output_are_not_touched(payload: bool) -> None:
    pulled: list[int] = []

    def rows() -> Iterator[list[float]]:
        for i in range(3):
            pulled.append(i)
            yield [float(i)]

    lazy = _Lazy()
    rate = 1.0 if payload else None
    model = f"host-lazy-{payload}"

    @modelotel.instrument(model=model, payload_sample_rate=rate)
    def predict(x: Any) -> _Lazy:
        return lazy

    gen = rows()
    with capture() as cap:
        assert predict(gen) is lazy
        n_logs = len(cap.logs())
    assert pulled == []
    assert list(gen) == [[0.0], [1.0], [2.0]]  # the caller still gets every row
    assert [t for t in lazy.touched if t != "__repr__"] == []
    assert n_logs == (1 if payload else 0)
    assert _safety.health.skipped[R.SKIP_UNSUPPORTED] == 2  # the input and the output


def test_input_edited_after_the_call_does_not_change_its_statistics() -> None:
    """Small batches are buffered and reduced later: the buffer must hold copies."""

    @modelotel.instrument(model="host-edit")
    def predict(x: np.ndarray) -> np.ndarray:
        return x[:, 0]

    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    with capture() as cap:
        predict(x)
        x[:] = 1000.0  # the caller reuses its buffer before the window is reduced
        points = cap.collect()  # one collection: the gauges are per window
    mean = [p.value for p in points
            if p.name == A.METRIC_FEATURE_MEAN and p.attributes.get(A.ML_FEATURE) == "1"]
    out_max = [p.value for p in points
               if p.name == A.METRIC_OUTPUT_MAX and p.attributes.get(A.ML_OUTPUT) == "0"]
    assert mean == [20.0]
    assert out_max == [3.0]


def _live_context_vars() -> int:
    """ContextVar objects reachable from any object the garbage collector tracks.

    A ContextVar is not tracked itself (``gc.get_objects()`` never lists one), so this walks
    the referents of every tracked object, and of the untracked containers in between.
    """
    gc.collect()
    stack = gc.get_objects()
    seen: set[int] = set()
    found = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if type(obj) is contextvars.ContextVar:
            found += 1
        stack.extend(gc.get_referents(obj))
    return found


@pytest.mark.slow
def test_the_context_variable_count_sees_new_variables() -> None:
    """The counter of the flat-memory tests can fail: it sees variables held in tuples."""
    before = _live_context_vars()
    held = [(contextvars.ContextVar(f"v{i}"),) for i in range(100)]
    assert _live_context_vars() - before == 100
    del held


def _flat_memory(call: Callable[[], Any], calls: int = 100_000) -> tuple[int, int, int]:
    """Run ``call`` ``calls`` times under capture (spans dropped and metrics collected every
    5,000 calls, as an exporter would); returns (ContextVars added, bytes grown, spans).

    A collection observes every model the process has registered (the whole suite's, late in
    a full run): fewer collections keep the test's time its own."""
    with capture() as cap:
        for _ in range(2_000):  # warm up: monitors, instruments, buffers, caches
            call()
        cap.collect()
        cap.clear()
        vars_before = _live_context_vars()
        tracemalloc.start()
        try:
            first = 0
            spans = 0
            for i in range(calls):
                call()
                if i % 5_000 == 4_999:
                    spans += len(cap.spans())
                    cap.clear()
                    cap.collect()
                    if i == 9_999:  # after a few windows with tracemalloc on
                        first = tracemalloc.get_traced_memory()[0]
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - first
        finally:
            tracemalloc.stop()
        vars_added = _live_context_vars() - vars_before
    return vars_added, grown, spans


@pytest.mark.slow
def test_observe_memory_is_flat_over_100k_calls() -> None:
    x = np.ones((4, 3))
    y = np.zeros(4)

    def one() -> None:
        with modelotel.observe("contract-observe-memory") as call:
            call.record_inputs(x)
            call.record_outputs(y)

    vars_added, grown, spans = _flat_memory(one)
    assert spans == 100_000
    assert vars_added == 0
    assert grown < 256 * 1024, grown


@pytest.mark.slow
def test_instrument_memory_is_flat_over_100k_calls() -> None:
    x = np.ones((4, 3))
    y = np.zeros(4)

    @modelotel.instrument(model="contract-instrument-memory")
    def predict(a: Any) -> Any:
        return y

    vars_added, grown, spans = _flat_memory(lambda: predict(x))
    assert spans == 100_000
    assert vars_added == 0
    assert grown < 256 * 1024, grown
