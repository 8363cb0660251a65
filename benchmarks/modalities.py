"""Added cost per call of texts, token streams, embeddings and images, as ratios to a bare
OTel span.

Usage::

    .venv/bin/python benchmarks/modalities.py            # 2,000 calls per case, best of 7
    .venv/bin/python benchmarks/modalities.py --quick    # smoke run

Per case: CPU seconds (``time.process_time``, best of the repetitions) of the plain function,
of the same function inside a bare span (SDK TracerProvider, SimpleSpanProcessor, in-memory
exporter: S) and instrumented (inside ``testing.capture()``, the same kind of provider). The
figures are the added costs over the plain function and their ratio to S, all in one run.
Cases: one text, a batch of 32 texts, a generator of 50 tokens (time to first item, the
joined text's statistics), a 32 x 384 embedding output next to a 32 x 20 dense one, and a
batch of 32 images in (32 x 3 x 32 x 32 float32 NCHW, 32 x 32 x 32 x 3 uint8 NHWC, a list
of 32 PIL images; one score per image out) next to a 32 x 20 dense input with the same
scores out.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import modelotel
from modelotel.testing import capture

_exporter = InMemorySpanExporter()
_tp = TracerProvider()
_tp.add_span_processor(SimpleSpanProcessor(_exporter))
_tracer = _tp.get_tracer("bare")
_rng = np.random.default_rng(0)
_TEXT = "the quick brown fox jumps over the lazy dog"
_TOKENS = [" tok"] * 50
_X = _rng.normal(size=(32, 20))
_Y384 = _rng.normal(size=(32, 384))
_Y20 = _rng.normal(size=(32, 20))
_SCORES = _rng.random(32)
_NCHW = _rng.random((32, 3, 32, 32), dtype=np.float32)
_NHWC = (_rng.random((32, 32, 32, 3)) * 255).astype(np.uint8)


def _one(x: Any) -> int:
    return 1


def _stream(x: Any) -> Iterator[str]:
    yield from _TOKENS


def _embedding(x: Any) -> np.ndarray:
    return _Y384


def _dense(x: Any) -> np.ndarray:
    return _Y20


def _scores(x: Any) -> np.ndarray:
    return _SCORES


def _pil_images() -> list[Any] | None:
    try:
        from PIL import Image  # the benchmark's own input; modelotel never imports PIL
    except ImportError:
        return None
    return [Image.fromarray(img) for img in _NHWC]


def _in_span(fn: Callable[[Any], Any], stream: bool) -> Callable[[Any], Any]:
    if stream:
        def gen(x: Any) -> Iterator[Any]:
            with _tracer.start_as_current_span("bare"):
                yield from fn(x)
        return gen

    def call(x: Any) -> Any:
        with _tracer.start_as_current_span("bare"):
            return fn(x)
    return call


def _cpu(fn: Callable[[Any], Any], arg: Any, n: int, reps: int, stream: bool) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.process_time()
        if stream:
            for _ in range(n):
                for _ in fn(arg):
                    pass
        else:
            for _ in range(n):
                fn(arg)
        best = min(best, (time.process_time() - t) / n)
        _exporter.clear()
    return best


def main() -> None:
    quick = "--quick" in sys.argv
    n, reps = (200, 2) if quick else (2000, 7)
    cases: dict[str, tuple[Callable[[Any], Any], Any, bool]] = {
        "one text": (_one, _TEXT, False),
        "32 texts": (_one, [_TEXT] * 32, False),
        "stream of 50 tokens": (_stream, "prompt", True),
        "32x384 embedding out": (_embedding, _X, False),
        "32x20 dense out": (_dense, _X, False),
        "32x20 dense in": (_scores, _X, False),
        "32x3x32x32 f32 images": (_scores, _NCHW, False),
        "32x32x32x3 u8 images": (_scores, _NHWC, False),
    }
    pil = _pil_images()
    if pil is not None:
        cases["32 PIL images"] = (_scores, pil, False)
    else:
        print("32 PIL images: not measured (pillow is not installed)")
    with capture() as cap:
        for name, (fn, arg, stream) in cases.items():
            inst = modelotel.instrument(model="bench-" + name.replace(" ", "-"))(fn)
            bare = _in_span(fn, stream)
            for f in (inst, bare):  # warm: schemas, caches
                _cpu(f, arg, 50, 1, stream)
            plain = _cpu(fn, arg, n, reps, stream)
            span = _cpu(bare, arg, n, reps, stream) - plain
            added = _cpu(inst, arg, n, reps, stream) - plain
            cap.clear()
            print(f"{name:22s} S = {span * 1e6:6.1f} us  modelotel adds {added * 1e6:6.1f} us"
                  f"  = {added / span:5.2f} S")


if __name__ == "__main__":
    main()
