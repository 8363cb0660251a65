"""Sampled payloads: sampling, redaction, caps, serialization and emission as OTel log records.

Example:
    >>> from modelotel._payload import PayloadConfig, resolve_payload
    >>> resolve_payload(0.01, None, env_rate=0.0)[0]
    0.01

See ``docs/payloads.md`` for the record shape, the rules and their costs.
"""

from __future__ import annotations

from modelotel._payload.config import BUILTIN_PATTERNS, PayloadConfig, resolve_payload
from modelotel._payload.emit import PayloadPart, payload_part

__all__ = [
    "BUILTIN_PATTERNS",
    "PayloadConfig",
    "PayloadPart",
    "payload_part",
    "resolve_payload",
]
