"""Every ``MODELOTEL_*`` setting, parsed from the environment in one place.

Example:
    >>> from modelotel._settings import Settings, pick
    >>> s = Settings.from_environ({"MODELOTEL_ROW_CAP": "500", "MODELOTEL_ENABLED": "off"})
    >>> s.row_cap, s.enabled, s.max_features
    (500, False, 200)
    >>> pick(None, s.row_cap), pick(64, s.row_cap)     # an argument wins over the environment
    (500, 64)

Precedence, everywhere: an explicit argument > the environment > the default. The
environment side is resolved here, once, into a frozen :class:`Settings` (the runtime takes
it the first time modelotel needs a setting and again at ``configure()``; see
:mod:`modelotel._runtime`); the argument side is :func:`pick`, applied where the argument
is given (``instrument`` and friends through :mod:`modelotel._options`, ``configure()``).
A value that cannot be parsed warns once, naming the variable, and the default is used.
The standard ``OTEL_*`` variables are the OpenTelemetry SDK's: it reads them itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from modelotel import environment_variables as env
from modelotel._safety import health

T = TypeVar("T")

_TRUE = frozenset(("", "1", "true", "yes", "on"))
_FALSE = frozenset(("0", "false", "no", "off"))


class _InvalidValueError(ValueError):
    """A value of the environment that cannot be used; the message says what is expected."""


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _InvalidValueError("is not one of true/false")


def _text(raw: str) -> str:
    return raw.strip()


def _positive_int(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value <= 0:
        raise _InvalidValueError("is not a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise _InvalidValueError("is not a non-negative integer")
    return value


def _positive_number(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise _InvalidValueError("is not a positive number")
    return value


def _rate(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise _InvalidValueError("is not a number between 0 and 1")
    return value


def _kernel(raw: str) -> str:
    value = raw.strip().lower() or "auto"
    if value not in ("auto", "numpy"):
        raise _InvalidValueError("is not 'auto' or 'numpy'")
    return value


def _setting(name: str, parse: Callable[[str], Any], default: Any, **kw: Any) -> Any:
    return field(default=default, metadata={"env": name, "parse": parse}, **kw)


@dataclass(frozen=True)
class Settings:
    """The ``MODELOTEL_*`` environment, parsed (see :mod:`modelotel.environment_variables`)."""

    enabled: bool = _setting(env.MODELOTEL_ENABLED, _boolean, True)
    strict: bool = _setting(env.MODELOTEL_STRICT, _boolean, False)
    model_version: str = _setting(env.MODELOTEL_MODEL_VERSION, _text, "")
    model_owner: str = _setting(env.MODELOTEL_MODEL_OWNER, _text, "")
    model_runbook_url: str = _setting(env.MODELOTEL_MODEL_RUNBOOK_URL, _text, "")
    max_features: int = _setting(env.MODELOTEL_MAX_FEATURES, _positive_int, 200)
    row_cap: int = _setting(env.MODELOTEL_ROW_CAP, _positive_int, 1024)
    payload_sample_rate: float = _setting(env.MODELOTEL_PAYLOAD_SAMPLE_RATE, _rate, 0.0)
    # a secret: kept out of repr (and so out of logs and error messages)
    payload_hmac_key: str = _setting(env.MODELOTEL_PAYLOAD_HMAC_KEY, _text, "", repr=False)
    payload_process_records_per_second: float = _setting(
        env.MODELOTEL_PAYLOAD_PROCESS_RECORDS_PER_SECOND, _positive_number, 100.0
    )
    payload_process_bytes_per_second: float = _setting(
        env.MODELOTEL_PAYLOAD_PROCESS_BYTES_PER_SECOND, _positive_number, 2_097_152.0
    )
    outcome_cache_size: int = _setting(env.MODELOTEL_OUTCOME_CACHE_SIZE, _non_negative_int, 10_000)
    outcome_record_values: bool = _setting(env.MODELOTEL_OUTCOME_RECORD_VALUES, _boolean, True)
    outcome_max_classes: int = _setting(env.MODELOTEL_OUTCOME_MAX_CLASSES, _non_negative_int, 100)
    shutdown_timeout: float = _setting(env.MODELOTEL_SHUTDOWN_TIMEOUT, _positive_number, 5.0)
    stats_kernel: str = _setting(env.MODELOTEL_STATS_KERNEL, _kernel, "auto")
    window_gauges: bool = _setting(env.MODELOTEL_WINDOW_GAUGES, _boolean, True)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse ``environ`` (default ``os.environ``); a bad value warns once, then the default."""
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = source.get(name)
            if raw is None or not raw.strip():  # set but empty: as if unset
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except _InvalidValueError as exc:
                health.warn_once(
                    "env:" + name,
                    "modelotel: %s=%r %s; using the default %r",
                    name,
                    "<secret>" if not f.repr else raw,
                    exc,
                    f.default,
                )
        return cls(**values)


def pick(argument: T | None, environment: T) -> T:
    """Argument > environment (which already holds the default): the one precedence rule."""
    return environment if argument is None else argument
