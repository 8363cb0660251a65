"""PayloadConfig validation and the resolution of payload_sample_rate / payload."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from modelotel._payload import PayloadConfig, resolve_payload


def test_defaults() -> None:
    cfg = PayloadConfig()
    assert cfg.sample_rate is None
    assert cfg.always_keep_errors is True
    assert cfg.always_keep_checks is True
    assert cfg.patterns == ("email", "card", "phone", "ssn", "ip")
    assert cfg.allow_fields is None
    assert cfg.deny_fields == frozenset()
    assert (cfg.max_rows, cfg.max_bytes, cfg.max_string_length, cfg.max_items) == (
        10,
        65_536,
        1_024,
        100,
    )


def test_field_names_are_normalized() -> None:
    cfg = PayloadConfig(allow_fields=["Age"], deny_fields=("PassWord",))
    assert cfg.allow_fields == frozenset({"age"})
    assert cfg.deny_fields == frozenset({"password"})


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"sample_rate": 1.5}, ValueError, "between 0 and 1"),
        ({"sample_rate": "0.1"}, TypeError, "number"),
        ({"sample_rate": True}, TypeError, "number"),
        ({"max_rows": 0}, ValueError, "max_rows"),
        ({"max_rows": 2.5}, TypeError, "max_rows"),
        ({"max_bytes": 10}, ValueError, "at least 64"),
        ({"max_records_per_second": -1}, ValueError, "max_records_per_second"),
        ({"max_bytes_per_second": float("inf")}, ValueError, "max_bytes_per_second"),
        ({"deny_fields": "password"}, TypeError, "collection of field names"),
        ({"allow_fields": [1]}, TypeError, "non-empty strings"),
        ({"patterns": ("emails",)}, ValueError, "unknown built-in pattern 'emails'"),
        ({"patterns": "email"}, TypeError, "sequence"),
        ({"patterns": (re.compile(rb"x"),)}, TypeError, "neither"),
        ({"redact": "yes"}, TypeError, "callable"),
        ({"sample_key": ""}, TypeError, "field name or a callable"),
        ({"always_keep_errors": 1}, TypeError, "True or False"),
    ],
)
def test_bad_values_fail_at_setup_with_a_message(
    kwargs: dict[str, Any], exc: type[Exception], message: str
) -> None:
    with pytest.raises(exc, match=re.escape(message)):
        PayloadConfig(**kwargs)


def test_resolution_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELOTEL_PAYLOAD_SAMPLE_RATE", raising=False)
    assert resolve_payload(None, None) == (0.0, None)  # off by default
    monkeypatch.setenv("MODELOTEL_PAYLOAD_SAMPLE_RATE", "0.05")
    rate, cfg = resolve_payload(None, None)
    assert rate == 0.05
    assert cfg == PayloadConfig()
    assert resolve_payload(0.5, None)[0] == 0.5  # argument beats the environment
    explicit = PayloadConfig(sample_rate=0.2)
    assert resolve_payload(None, explicit) == (
        0.2,
        explicit,
    )  # the config's rate beats the environment
    assert resolve_payload(0.2, explicit) == (0.2, explicit)
    with pytest.raises(ValueError, match="give the rate once"):
        resolve_payload(0.3, explicit)
    monkeypatch.setenv("MODELOTEL_PAYLOAD_SAMPLE_RATE", "0")
    keep_errors = PayloadConfig()
    assert resolve_payload(None, keep_errors) == (
        0.0,
        keep_errors,
    )  # explicit config: on for errors
    with pytest.raises(TypeError, match="PayloadConfig"):
        resolve_payload(None, {"sample_rate": 1})
    with pytest.raises(ValueError, match="between 0 and 1"):
        resolve_payload(2, None)


def test_bad_environment_value_warns_once_and_stays_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MODELOTEL_PAYLOAD_SAMPLE_RATE", "lots")
    with caplog.at_level(logging.DEBUG, logger="modelotel"):
        assert resolve_payload(None, None) == (0.0, None)
        assert resolve_payload(None, None) == (0.0, None)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "MODELOTEL_PAYLOAD_SAMPLE_RATE" in warnings[0].getMessage()
