"""Streams: time to first item, and the yielded items as the stream's outputs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel.testing import capture

_WAIT = 0.2


def test_time_to_first_item_of_a_generator_is_the_wait_before_it() -> None:
    waited: list[float] = []

    @modelotel.instrument(model="stream-ttfi")
    def generate(prompt: str) -> Any:
        t0 = time.perf_counter()
        time.sleep(_WAIT)
        waited.append(time.perf_counter() - t0)
        yield "Hello"
        for tok in (",", " world", "!"):
            time.sleep(0.01)
            yield tok

    with capture() as cap:
        assert "".join(generate("hi")) == "Hello, world!"
        ttfi = cap.metric(A.METRIC_PREDICTION_TIME_TO_FIRST_ITEM,
                          **{A.ML_MODEL_NAME: "stream-ttfi"})
        duration = cap.metric(A.METRIC_PREDICTION_DURATION, **{A.ML_MODEL_NAME: "stream-ttfi"})
        span = cap.spans()[-1]
    assert ttfi.count == 1
    assert ttfi.unit == "s"
    assert abs(ttfi.value - waited[0]) <= 0.05 * waited[0], (ttfi.value, waited)
    assert ttfi.value < duration.value  # the three later tokens come after it
    assert span.attributes[A.ML_STREAM_TIME_TO_FIRST_ITEM] == ttfi.value
    assert ttfi.attributes == duration.attributes


def test_time_to_first_item_of_an_async_generator() -> None:
    waited: list[float] = []

    @modelotel.instrument(model="stream-ttfi-async")
    async def generate(prompt: str) -> Any:
        t0 = time.perf_counter()
        await asyncio.sleep(_WAIT)
        waited.append(time.perf_counter() - t0)
        for tok in ("a", "b"):
            yield tok

    async def consume() -> str:
        return "".join([t async for t in generate("x")])

    with capture() as cap:
        assert asyncio.run(consume()) == "ab"
        ttfi = cap.metric(A.METRIC_PREDICTION_TIME_TO_FIRST_ITEM,
                          **{A.ML_MODEL_NAME: "stream-ttfi-async"})
    assert abs(ttfi.value - waited[0]) <= 0.05 * waited[0], (ttfi.value, waited)


def test_yielded_tokens_are_the_outputs_of_statistics_and_payloads() -> None:
    tokens = ["The", " answer", " is", " forty", "-two", " ", "é"]

    @modelotel.instrument(model="stream-text", payload_sample_rate=1.0)
    def generate(prompt: str) -> Any:
        yield from tokens

    with capture() as cap:
        list(generate("question"))
        list(generate("question"))
        chars = cap.metric(A.METRIC_OUTPUT_MEAN, **{A.ML_OUTPUT: "text.chars"}).value
        words = cap.metric(A.METRIC_OUTPUT_MEAN, **{A.ML_OUTPUT: "text.words"}).value
        count = cap.metric(A.METRIC_OUTPUT_COUNT, **{A.ML_OUTPUT: "text.chars"}).value
        logs = cap.logs()
    joined = "".join(tokens)
    assert (chars, words, count) == (len(joined), 5, 2)  # one text per stream
    assert len(logs) == 2
    assert logs[0].log_record.attributes[A.ML_PAYLOAD_OUTPUTS] == f'"{joined}"'


def test_numeric_items_are_outputs_one_value_per_item() -> None:
    @modelotel.instrument(model="stream-numbers")
    def scores(n: int) -> Any:
        for i in range(n):
            yield i / 10

    with capture() as cap:
        list(scores(5))
        count = cap.metric(A.METRIC_OUTPUT_COUNT, **{A.ML_OUTPUT: "0"}).value
        mx = cap.metric(A.METRIC_OUTPUT_MAX, **{A.ML_OUTPUT: "0"}).value
        span = cap.spans()[-1]
    assert (count, mx) == (5, 0.4)
    assert span.attributes[A.ML_STREAM_ITEMS] == 5


def test_a_stream_closed_early_keeps_what_it_yielded() -> None:
    @modelotel.instrument(model="stream-early")
    def generate() -> Any:
        yield from ["one ", "two ", "three ", "four"]

    with capture() as cap:
        gen = generate()
        assert next(gen) == "one "
        next(gen)
        gen.close()
        words = cap.metric(A.METRIC_OUTPUT_MEAN, **{A.ML_OUTPUT: "text.words"}).value
    assert words == 2
