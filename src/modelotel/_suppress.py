"""Turn modelotel off for a block: ``modelotel.suppress()``, and the OTel contrib key.

Example:
    >>> import modelotel
    >>> with modelotel.suppress():
    ...     pass    # instrumented models called here emit nothing

Inside the block every instrumented call is a pure pass-through. modelotel also honours
the suppression key of ``opentelemetry-instrumentation`` (``suppress_instrumentation()``
sets ``opentelemetry.context._SUPPRESS_INSTRUMENTATION_KEY``, and older code the plain
``"suppress_instrumentation"`` key), so a block that suppresses all OTel instrumentation
suppresses modelotel too. ``modelotel.suppress()`` uses a key of its own: it silences
modelotel only, not the HTTP or database instrumentations running inside the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context

from modelotel._safety import record_error

try:  # the key the contrib packages and the SDK's exporters use
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _OTEL_KEY
except ImportError:  # pragma: no cover - very old API
    _OTEL_KEY = "suppress_instrumentation"

#: Back-compat plain key that ``opentelemetry-instrumentation`` also checks.
_OTEL_PLAIN_KEY = "suppress_instrumentation"
_MODELOTEL_KEY = otel_context.create_key("modelotel_suppress")

_get_current = otel_context.get_current


def is_suppressed() -> bool:
    """Whether instrumentation is suppressed in the current context (per call; cheap)."""
    try:
        ctx = _get_current()
        return bool(ctx.get(_MODELOTEL_KEY) or ctx.get(_OTEL_KEY) or ctx.get(_OTEL_PLAIN_KEY))
    except Exception as exc:  # noqa: BLE001 - a broken context must not break the user's call
        record_error("suppress.check", exc)
        return False


@contextmanager
def suppress() -> Iterator[None]:
    """Context manager: modelotel records nothing for calls made inside the block.

    Works across threads and tasks that copy the context (``run_in_executor`` with
    ``contextvars.copy_context``, asyncio tasks created inside the block).
    """
    token = otel_context.attach(otel_context.set_value(_MODELOTEL_KEY, True))
    try:
        yield
    finally:
        otel_context.detach(token)
