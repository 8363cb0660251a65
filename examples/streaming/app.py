"""A token generator behind FastAPI's StreamingResponse, observed by modelotel, served by
uvicorn.

    uvicorn app:app --host 127.0.0.1 --port 8000

``POST /generate`` takes a prompt and streams the reply token by token, as a language model
server does. The generator is an async generator decorated with ``modelotel.instrument``:

- its span (``predict story-teller``) lasts from the first token asked for to the last one,
  with ``ml.stream.items`` and ``ml.stream.time_to_first_item``; the histogram
  ``ml.prediction.time_to_first_item`` (seconds) records the same wait: the model's
  ``FIRST_TOKEN_WAIT`` before its first token (story.py: the model's tokens and waits);
- the generator prints how long it waited before its first token, with its span's ids (the
  stream's span is the current one inside the generator): the same wait, as the model saw it;
- the prompt is the input (a text column: ``text.chars``, ``text.words``, ...) and the tokens
  it yielded, joined, are the output: one text per stream, read as the same text
  descriptors on ``ml.output``;
- every stream is kept as a payload log record (``payload_sample_rate=1.0``): the prompt and
  the whole streamed text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from opentelemetry import trace
from pydantic import BaseModel
from story import FIRST_TOKEN_WAIT, TOKEN_WAIT, reply

import modelotel

MODEL, VERSION = "story-teller", "1"

modelotel.configure(service_name="story-stream")


@modelotel.instrument(model=MODEL, version=VERSION, payload_sample_rate=1.0)
async def generate(prompt: str) -> AsyncIterator[str]:
    start = time.perf_counter()
    await asyncio.sleep(FIRST_TOKEN_WAIT)
    # the model's own account of its wait (a loaded machine wakes it late), with the ids of
    # the stream's span, which is the current span inside the generator
    ctx = trace.get_current_span().get_span_context()
    print(f"story: first token after {time.perf_counter() - start:.6f} s "
          f"(trace {ctx.trace_id:032x} span {ctx.span_id:016x})", flush=True)
    for i, token in enumerate(reply(prompt)):
        if i:
            await asyncio.sleep(TOKEN_WAIT)
        yield token


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    modelotel.force_flush()  # the server stops: export what it still holds


app = FastAPI(lifespan=lifespan)


class Prompt(BaseModel):
    prompt: str


@app.post("/generate")
async def generate_text(body: Prompt) -> StreamingResponse:
    # StreamingResponse iterates the instrumented generator: each token is sent as it comes
    return StreamingResponse(generate(body.prompt), media_type="text/plain; charset=utf-8")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
