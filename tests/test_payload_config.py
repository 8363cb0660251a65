"""PayloadConfig validation and the resolution of payload_sample_rate / payload."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from modelotel._options import model_config
from modelotel._payload import PayloadConfig, resolve_payload
from modelotel._runtime import runtime


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
    assert resolve_payload(None, None, 0.0) == (0.0, None)  # off by default
    rate, cfg = resolve_payload(None, None, 0.05)  # the environment's rate
    assert rate == 0.05
    assert cfg == PayloadConfig()
    assert resolve_payload(0.5, None, 0.05)[0] == 0.5  # argument beats the environment
    explicit = PayloadConfig(sample_rate=0.2)
    assert resolve_payload(None, explicit, 0.05) == (0.2, explicit)  # explicit config wins
    with pytest.raises(TypeError, match="PayloadConfig"):
        resolve_payload(None, {"sample_rate": 1}, 0.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        resolve_payload(2, None, 0.0)
    # the environment's rate is MODELOTEL_PAYLOAD_SAMPLE_RATE, through the settings
    monkeypatch.delenv("MODELOTEL_PAYLOAD_SAMPLE_RATE", raising=False)
    runtime.reload_settings()
    assert model_config(model="m").payload is None
    monkeypatch.setenv("MODELOTEL_PAYLOAD_SAMPLE_RATE", "0.05")
    runtime.reload_settings()
    cfg_env = model_config(model="m")
    assert (cfg_env.payload_sample_rate, cfg_env.payload) == (0.05, PayloadConfig())
    assert model_config(model="m", payload_sample_rate=0.5).payload_sample_rate == 0.5


def test_bad_environment_value_warns_once_and_stays_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MODELOTEL_PAYLOAD_SAMPLE_RATE", "lots")
    with caplog.at_level(logging.DEBUG, logger="modelotel"):
        runtime.reload_settings()
        assert model_config(model="m").payload is None
        runtime.reload_settings()
        assert model_config(model="m").payload is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "MODELOTEL_PAYLOAD_SAMPLE_RATE" in warnings[0].getMessage()
