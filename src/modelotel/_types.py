"""What the lifecycle of a prediction and its parts share: ``MISSING`` and two protocols.

Example:
    >>> from modelotel._types import MISSING
    >>> bool(MISSING), repr(MISSING)
    (False, 'MISSING')

This module sits at the bottom of the house: the prediction lifecycle
(:mod:`modelotel._prediction`) and the parts it runs when a prediction ends (statistics,
payloads, outcomes) all depend on it, and never on each other. A part sees an ended
prediction through :class:`Ended` and is built for one model; the lifecycle sees parts
through :class:`Part` only.
"""

from __future__ import annotations

from typing import Any, Protocol

from opentelemetry.trace import Span


class _Missing:
    """Sentinel for "no input / no output recorded" (``None`` is a valid model output)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Ended(Protocol):
    """A prediction as the parts see it when it ends (read it; append to ``checks_fired``).

    Attributes:
        prediction_id: 16 hex digits, also on the span (``""`` if none could be made).
        inputs: the model input, or :data:`MISSING`.
        outputs: the model output, or :data:`MISSING` (a failed call; a stream).
        error: the exception that ended the prediction, or None.
        checks_fired: names of the silent-failure checks that fired; parts append to it.
        span: the prediction's span (non-recording when not sampled).
    """

    prediction_id: str
    inputs: Any
    outputs: Any
    error: BaseException | None
    checks_fired: list[str]
    span: Span

    def set_attribute(self, key: str, value: Any) -> None:
        """Set an attribute on the prediction's span; never raises."""


class Part(Protocol):
    """One model's statistics, payloads or outcomes: fed by every prediction that ends.

    :meth:`end` runs inside the guard, in the order the model's parts were built, with the
    prediction's span still current (a log record emitted there is linked to it). It is
    not called for a secondary method of a wrapped model (spans and serving metrics only).
    """

    def end(self, prediction: Ended) -> None:
        """Take what this part needs from an ended prediction."""

    def reset(self) -> None:
        """Forget what was gathered (new providers, a forked child, a test capture)."""
