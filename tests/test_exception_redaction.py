"""Exception messages and stack traces leave the process only through the payload redaction.

With payload capture off the span's ``exception`` event carries the type only. With capture
on, the message and the stack trace are added after the model's pattern rules ran on them;
when the rules cannot vouch for free text (field rules, the user's own hook) or anything in
the redaction fails, the type alone is sent (fail closed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel._payload import redact
from modelotel._runtime import runtime
from modelotel.testing import Captured, capture, drain

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
SSN = "078-05-1120"
PHONE = "+44 20 7946 0958"
IP = "192.168.17.4"
SECRETS = (EMAIL, CARD, SSN, PHONE, IP, "4111", "jane.doe")


@pytest.fixture
def cap() -> Iterator[Captured]:
    with capture() as c:
        yield c


def _event(cap: Captured, model: str) -> dict[str, Any]:
    spans = [s for s in cap.spans() if s.attributes[A.ML_MODEL_NAME] == model]
    assert len(spans) == 1
    (event,) = spans[0].events
    assert event.name == A.EVENT_EXCEPTION
    return dict(event.attributes or {})


def _raise_with_row(model: str, **kw: Any) -> Any:
    @modelotel.instrument(model=model, **kw)
    def predict(row: dict[str, str]) -> int:
        raise ValueError(f"cannot score {row}")

    row = {"email": EMAIL, "card": CARD, "ssn": SSN, "phone": PHONE, "ip": IP}
    with pytest.raises(ValueError, match="cannot score") as info:
        predict(row)
    return info.value


def test_message_and_stack_pass_the_payload_patterns(cap: Captured) -> None:
    error = _raise_with_row("exc-patterns", payload_sample_rate=1.0)
    assert EMAIL in str(error)  # the user's exception itself is untouched
    attrs = _event(cap, "exc-patterns")
    text = attrs[A.EXCEPTION_MESSAGE] + attrs[A.EXCEPTION_STACKTRACE]
    for secret in SECRETS:
        assert secret not in text
    for name in ("email", "card", "ssn", "phone", "ip"):
        assert f"[REDACTED:{name}]" in attrs[A.EXCEPTION_MESSAGE]
    assert "ValueError: cannot score" in attrs[A.EXCEPTION_STACKTRACE]


def test_without_payload_capture_only_the_type_is_sent(cap: Captured) -> None:
    _raise_with_row("exc-off")
    assert _event(cap, "exc-off") == {A.EXCEPTION_TYPE: "ValueError"}


@pytest.mark.parametrize(
    "config",
    [
        {"deny_fields": {"password"}},
        {"allow_fields": {"age"}},
        {"redact": lambda payload: payload},
    ],
    ids=["deny_fields", "allow_fields", "redact_hook"],
)
def test_field_rules_cannot_pass_free_text_so_only_the_type_is_sent(
    cap: Captured, config: dict[str, Any]
) -> None:
    _raise_with_row("exc-fields", payload=modelotel.PayloadConfig(sample_rate=1.0, **config))
    assert _event(cap, "exc-fields") == {A.EXCEPTION_TYPE: "ValueError"}


def test_hash_fields_also_send_the_type_only(
    cap: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOTEL_PAYLOAD_HMAC_KEY", "k")
    runtime.reload_settings()
    cfg = modelotel.PayloadConfig(sample_rate=1.0, hash_fields={"email"})
    _raise_with_row("exc-hash", payload=cfg)
    assert _event(cap, "exc-hash") == {A.EXCEPTION_TYPE: "ValueError"}


def test_custom_patterns_apply_to_exception_text(cap: Captured) -> None:
    cfg = modelotel.PayloadConfig(sample_rate=1.0, patterns=(re.compile(r"acct-\d+"),))

    @modelotel.instrument(model="exc-custom", payload=cfg)
    def predict(x: str) -> None:
        raise KeyError(f"unknown account {x}")

    with pytest.raises(KeyError):
        predict("acct-12345")
    attrs = _event(cap, "exc-custom")
    assert "acct-12345" not in attrs[A.EXCEPTION_MESSAGE] + attrs[A.EXCEPTION_STACKTRACE]
    assert "[REDACTED:custom]" in attrs[A.EXCEPTION_MESSAGE]


def test_a_card_at_the_cap_is_redacted_before_it_is_cut(cap: Captured) -> None:
    @modelotel.instrument(model="exc-edge", payload_sample_rate=1.0)
    def predict(x: int) -> None:
        # the card starts 9 characters before the cap: cut first, its first 9 would be sent
        raise ValueError("x" * (redact.MAX_EXCEPTION_TEXT - 10) + " " + CARD + " " + "y" * 9999)

    with pytest.raises(ValueError):
        predict(1)
    message = _event(cap, "exc-edge")[A.EXCEPTION_MESSAGE]
    assert len(message) == redact.MAX_EXCEPTION_TEXT
    assert message.endswith("x [REDACTED")
    assert "4111" not in message


class _BadMessageError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ of the user's exception fails")


def test_an_exception_whose_str_raises_sends_the_type_and_propagates(cap: Captured) -> None:
    error = _BadMessageError()

    @modelotel.instrument(model="exc-bad-str", payload_sample_rate=1.0)
    def predict(x: int) -> None:
        raise error

    with pytest.raises(_BadMessageError) as info:
        predict(1)
    assert info.value is error
    assert _event(cap, "exc-bad-str") == {A.EXCEPTION_TYPE: "_BadMessageError"}


def test_a_failing_redaction_fails_closed(
    cap: Captured,
    monkeypatch: pytest.MonkeyPatch,
    expect_internal_errors: list[tuple[str, BaseException]],
) -> None:
    def broken(self: redact.Redactor, s: str) -> str:
        raise RuntimeError("pattern engine broke")

    monkeypatch.setattr(redact.Redactor, "text", broken)
    _raise_with_row("exc-broken", payload_sample_rate=1.0)
    assert _event(cap, "exc-broken") == {A.EXCEPTION_TYPE: "ValueError"}
    drain()  # the payload record is built on the payload worker
    # the payload record of the same call fails on the same broken rules: an internal
    # error of its own (and no record sent), not a leak
    assert [component for component, _ in expect_internal_errors] == ["payload"]
    assert not [r for r in cap.logs() if r.log_record.event_name == A.EVENT_PREDICTION_PAYLOAD]


def test_control_characters_and_lone_surrogates_are_cleaned(cap: Captured) -> None:
    @modelotel.instrument(model="exc-text", payload_sample_rate=1.0)
    def predict(x: int) -> None:
        raise ValueError("bad \x00 byte and \udcff half")

    with pytest.raises(ValueError):
        predict(1)
    message = _event(cap, "exc-text")[A.EXCEPTION_MESSAGE]
    assert message == "bad \ufffd byte and \ufffd half"
    message.encode("utf-8")  # valid for OTLP: a lone surrogate would fail the whole batch
