"""``PayloadConfig``: what to sample, how to redact and how much to send.

Example:
    >>> from modelotel import PayloadConfig
    >>> cfg = PayloadConfig(sample_rate=0.01, deny_fields={"password"}, max_rows=5)
    >>> cfg.max_rows
    5

Everything is validated when the config is made (a bad value raises ``TypeError`` or
``ValueError`` saying what to fix), so nothing is checked per call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelotel._runtime import runtime
from modelotel.environment_variables import MODELOTEL_PAYLOAD_HMAC_KEY

#: Names of the built-in redaction patterns (see ``docs/payloads.md``).
BUILTIN_PATTERNS: tuple[str, ...] = ("email", "card", "phone", "ssn", "ip")


def _names(value: object, what: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, Collection):
        raise TypeError(
            f"PayloadConfig.{what} must be a collection of field names, e.g. {{'email'}}"
        )
    out = set()
    for name in value:
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"PayloadConfig.{what}: field names must be non-empty strings, got {name!r}"
            )
        out.add(name.lower())
    return frozenset(out)


def _positive(value: object, what: str, *, integer: bool) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"PayloadConfig.{what} must be a positive {'int' if integer else 'number'}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"PayloadConfig.{what} must be > 0, got {value!r}")


def check_rate(value: object, what: str) -> float:
    """Validate a sample rate in ``[0, 1]`` (setup time)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"modelotel: {what} must be a number between 0 and 1, got {value!r}")
    rate = float(value)
    if not (0.0 <= rate <= 1.0):
        raise ValueError(f"modelotel: {what} must be between 0 and 1, got {value!r}")
    return rate


@dataclass(frozen=True)
class PayloadConfig:
    """How sampled payloads are chosen, redacted and capped. All fields are optional.

    Args:
        sample_rate: Fraction of calls kept, in ``[0, 1]``. ``None``: the
            ``payload_sample_rate=`` argument, else ``MODELOTEL_PAYLOAD_SAMPLE_RATE``, else 0.
        sample_key: Name of an input field, or ``callable(inputs) -> key``: the sampling
            decision is made on this key instead of the prediction id, so the same entity is
            always kept (or never). For a batch the first row's value is used.
        always_keep_errors: Keep calls that raised an ``Exception``, regardless of the rate
            (within budget); a cancelled or interrupted call (``asyncio.CancelledError``,
            ``KeyboardInterrupt``) is not an error.
        always_keep_checks: Keep calls where a silent-failure check fired (within budget).
        max_records_per_second: Token-bucket budget of records per model version per process
            (the process's own budget, all models together, applies too: docs/payloads.md).
        max_bytes_per_second: Token-bucket budget of payload bytes per model version per
            process (and the process's, likewise).
        max_rows: Rows kept per record (outer list items, array rows, DataFrame rows).
        max_bytes: UTF-8 bytes of all payload values in one record.
        max_string_length: Characters kept per string.
        max_items: Entries kept per nested list / dict / inner array axis; named fields per side.
        max_depth: Nesting depth kept.
        allow_fields: If given, only these named fields are sent (fail closed: inputs without
            field names are dropped).
        deny_fields: Field names removed at any depth.
        patterns: Built-in pattern names (``email``, ``card``, ``phone``, ``ssn``, ``ip``) and
            compiled ``re.Pattern`` objects; matches in strings are replaced.
        hash_fields: Field names whose values are replaced by HMAC-SHA256 (key from
            ``MODELOTEL_PAYLOAD_HMAC_KEY``; required when this is not empty).
        redact: ``callable({"inputs": ..., "outputs": ...}) -> dict | None``, run first on
            plain capped copies. ``None`` drops the record; an exception drops it too (counted).
    """

    sample_rate: float | None = None
    sample_key: str | Callable[[Any], object] | None = None
    always_keep_errors: bool = True
    always_keep_checks: bool = True
    max_records_per_second: float = 10.0
    max_bytes_per_second: float = 262_144.0
    max_rows: int = 10
    max_bytes: int = 65_536
    max_string_length: int = 1_024
    max_items: int = 100
    max_depth: int = 8
    allow_fields: Collection[str] | None = None
    deny_fields: Collection[str] = ()
    patterns: Sequence[str | re.Pattern[str]] = BUILTIN_PATTERNS
    hash_fields: Collection[str] = ()
    redact: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    _hmac_key: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.sample_rate is not None:
            object.__setattr__(
                self, "sample_rate", check_rate(self.sample_rate, "PayloadConfig.sample_rate")
            )
        if self.sample_key is not None and not (
            (isinstance(self.sample_key, str) and self.sample_key) or callable(self.sample_key)
        ):
            raise TypeError(
                "PayloadConfig.sample_key must be a field name or a callable(inputs) -> key"
            )
        for flag in ("always_keep_errors", "always_keep_checks"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"PayloadConfig.{flag} must be True or False")
        _positive(self.max_records_per_second, "max_records_per_second", integer=False)
        _positive(self.max_bytes_per_second, "max_bytes_per_second", integer=False)
        for name in ("max_rows", "max_bytes", "max_string_length", "max_items", "max_depth"):
            _positive(getattr(self, name), name, integer=True)
        if self.max_bytes < 64:
            raise ValueError("PayloadConfig.max_bytes must be at least 64")
        allow = None if self.allow_fields is None else _names(self.allow_fields, "allow_fields")
        object.__setattr__(self, "allow_fields", allow)
        object.__setattr__(self, "deny_fields", _names(self.deny_fields, "deny_fields"))
        object.__setattr__(self, "hash_fields", _names(self.hash_fields, "hash_fields"))
        if isinstance(self.patterns, (str, re.Pattern)) or not isinstance(self.patterns, Sequence):
            raise TypeError(
                "PayloadConfig.patterns must be a sequence, e.g. ('email', re.compile(...))"
            )
        for p in self.patterns:
            if isinstance(p, str):
                if p not in BUILTIN_PATTERNS:
                    raise ValueError(
                        f"PayloadConfig.patterns: unknown built-in pattern {p!r} (built-ins: "
                        f"{', '.join(BUILTIN_PATTERNS)}); pass re.compile(...) for your own"
                    )
            elif not isinstance(p, re.Pattern) or not isinstance(p.pattern, str):
                raise TypeError(
                    f"PayloadConfig.patterns: {p!r} is neither a built-in name nor a str re.Pattern"
                )
        object.__setattr__(self, "patterns", tuple(self.patterns))
        if self.redact is not None and not callable(self.redact):
            raise TypeError("PayloadConfig.redact must be a callable(payload) -> payload | None")
        if self.hash_fields:
            key = runtime.settings.payload_hmac_key
            if not key:
                raise ValueError(
                    "PayloadConfig.hash_fields needs a secret key: set the environment variable "
                    f"{MODELOTEL_PAYLOAD_HMAC_KEY} (keep it out of code; the same key keeps "
                    "hashes joinable)"
                )
            object.__setattr__(self, "_hmac_key", key.encode("utf-8"))


def resolve_payload(
    payload_sample_rate: object, payload: object, env_rate: float
) -> tuple[float, PayloadConfig | None]:
    """Resolve ``(rate, config)`` once, at decoration time.

    Precedence: ``payload_sample_rate`` argument > ``payload.sample_rate`` >
    ``MODELOTEL_PAYLOAD_SAMPLE_RATE`` (``env_rate``, from the settings) > 0. The config is
    ``None`` when payloads are off (rate 0 and no ``PayloadConfig`` given); otherwise a
    ``PayloadConfig`` (the default one when only a rate was given).

    Raises:
        TypeError: ``payload`` is not a ``PayloadConfig``, or the rate is not a number.
        ValueError: the rate is outside ``[0, 1]``, or two different rates were given.
    """
    if payload is not None and not isinstance(payload, PayloadConfig):
        raise TypeError(
            f"modelotel: payload= must be a modelotel.PayloadConfig, got {type(payload).__name__}"
        )
    arg_rate = (
        None
        if payload_sample_rate is None
        else check_rate(payload_sample_rate, "payload_sample_rate=")
    )
    cfg_rate = payload.sample_rate if payload is not None else None
    if arg_rate is not None and cfg_rate is not None and arg_rate != cfg_rate:
        raise ValueError(
            f"modelotel: payload_sample_rate={arg_rate} and PayloadConfig(sample_rate={cfg_rate}) "
            "disagree; give the rate once"
        )
    rate = arg_rate if arg_rate is not None else cfg_rate if cfg_rate is not None else env_rate
    if payload is None:
        return rate, (PayloadConfig() if rate > 0 else None)
    return rate, payload
