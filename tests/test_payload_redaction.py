"""In-process redaction: patterns, field rules, keyed hashing, user hook, canary sweep."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import uuid
from typing import Any

import numpy as np
import pytest

from _payload_support import Sink, fake_call, no_logger, run
from modelotel import attributes as tn
from modelotel._payload import PayloadConfig, PayloadPart
from modelotel._payload.redact import Redactor, luhn_ok
from modelotel._runtime import runtime
from modelotel._safety import health

BIG = {"max_records_per_second": 1e9, "max_bytes_per_second": 1e12}
ALL = Redactor(patterns=("email", "card", "phone", "ssn", "ip"))


@pytest.fixture
def sink() -> Any:
    with Sink() as s:
        yield s


def _emit(sink: Sink, cfg: PayloadConfig, **kw: Any) -> dict[str, Any] | None:
    hook = PayloadPart(model="m", version="1", rate=1.0, config=cfg, logger=no_logger)
    before = len(sink.logs())
    run(hook, fake_call(logger=sink.logger, **kw))
    logs = sink.logs()
    return dict(logs[-1].attributes) if len(logs) > before else None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to Bob.Smith+x@mail.example.co.uk now", "write to [REDACTED:email] now"),
        ("card 4111111111111111.", "card [REDACTED:card]."),
        ("card 4111 1111 1111 1111 exp 12/29", "card [REDACTED:card] exp 12/29"),
        ("amex 3782-822463-10005", "amex [REDACTED:card]"),
        ("id 4111 1111 1111 1111 42", "id [REDACTED:card] 42"),
        ("not luhn 4111 1111 1111 1112", "not luhn 4111 1111 1111 1112"),
        ("long number 123456789012345678901234", "long number 123456789012345678901234"),
        ("ssn 078-05-1120", "ssn [REDACTED:ssn]"),
        ("ssn 078 05 1120", "ssn [REDACTED:ssn]"),
        (
            "never issued 000-12-3456 666-12-3456 912-12-3456",
            "never issued 000-12-3456 666-12-3456 912-12-3456",
        ),
        ("call (555) 123-4567", "call [REDACTED:phone]"),
        ("call 555-123-4567 or 555.123.4567", "call [REDACTED:phone] or [REDACTED:phone]"),
        ("call +44 20 7946 0958", "call [REDACTED:phone]"),
        ("call +14155552671", "call [REDACTED:phone]"),
        ("version +1 2", "version +1 2"),
        ("from 192.168.0.17 via 10.0.0.1", "from [REDACTED:ip] via [REDACTED:ip]"),
        ("v6 2001:db8::8a2e:370:7334 and ::1", "v6 [REDACTED:ip] and [REDACTED:ip]"),
        ("time 12:30:45 version 1.2.3 ratio 3:2", "time 12:30:45 version 1.2.3 ratio 3:2"),
        ("not an ip 999.1.1.1", "not an ip 999.1.1.1"),
    ],
)
def test_builtin_patterns(text: str, expected: str) -> None:
    assert ALL.text(text) == expected


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")


def test_only_selected_patterns_and_custom_ones() -> None:
    r = Redactor(patterns=("email", re.compile(r"EMP-\d{6}")))
    assert (
        r.text("a@b.io 4111111111111111 EMP-123456")
        == "[REDACTED:email] 4111111111111111 [REDACTED:custom]"
    )


def test_card_numbers_as_integers_are_redacted() -> None:
    r = ALL.session()
    assert r.walk({"n": 4111111111111111, "small": 42, "flag": True}) == {
        "n": "[REDACTED:card]",
        "small": 42,
        "flag": True,
    }
    assert r.changed


def test_deny_fields_at_any_depth_case_insensitive(sink: Sink) -> None:
    cfg = PayloadConfig(deny_fields={"Password"}, **BIG)
    attrs = _emit(
        sink,
        cfg,
        inputs={"user": "ann", "PASSWORD": "x1", "nested": [{"password": "x2", "k": 1}]},
        outputs=1,
    )
    assert attrs is not None
    assert "ml.payload.input.PASSWORD" not in attrs
    assert json.loads(attrs["ml.payload.input.nested"]) == [{"k": 1}]
    assert attrs[tn.ML_PAYLOAD_REDACTED] is True


def test_allow_fields_fail_closed(sink: Sink) -> None:
    cfg = PayloadConfig(allow_fields={"age"}, **BIG)
    attrs = _emit(
        sink,
        cfg,
        inputs={"age": [30, 40], "name": ["ann", "bob"]},
        outputs={"score": 0.5, "name": "ann"},
    )
    assert attrs is not None
    assert [k for k in attrs if k.startswith("ml.payload.input")] == ["ml.payload.input.age"]
    assert [k for k in attrs if k.startswith("ml.payload.output")] == []
    unnamed = _emit(sink, cfg, inputs=["free text about ann"], outputs=[0.5])
    assert unnamed is not None
    assert tn.ML_PAYLOAD_INPUTS not in unnamed  # unnamed inputs dropped under an allow-list
    assert unnamed[tn.ML_PAYLOAD_OUTPUTS] == "[0.5]"  # unnamed predictions kept
    assert unnamed[tn.ML_PAYLOAD_REDACTED] is True


def test_hash_fields_need_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELOTEL_PAYLOAD_HMAC_KEY", raising=False)
    runtime.reload_settings()
    with pytest.raises(ValueError, match="MODELOTEL_PAYLOAD_HMAC_KEY"):
        PayloadConfig(hash_fields={"customer_id"})


def test_hash_fields_are_keyed_hmac_and_joinable(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOTEL_PAYLOAD_HMAC_KEY", "k3y")
    runtime.reload_settings()
    cfg = PayloadConfig(hash_fields={"customer_id"}, **BIG)
    assert "k3y" not in repr(cfg)
    attrs = _emit(
        sink, cfg, inputs={"customer_id": ["c-1", "c-2", "c-1"], "n": [1, 2, 3]}, outputs=[0, 1, 0]
    )
    assert attrs is not None
    hashed = json.loads(attrs["ml.payload.input.customer_id"])
    want = "hmac-sha256:" + hmac.new(b"k3y", b"c-1", hashlib.sha256).hexdigest()
    assert hashed[0] == want
    assert hashed[2] == want
    assert hashed[1] != want
    assert attrs["ml.payload.input.n"] == "[1,2,3]"
    again = _emit(sink, cfg, inputs={"customer_id": 7}, outputs=0)
    assert again is not None
    assert json.loads(again["ml.payload.input.customer_id"]) == (
        "hmac-sha256:" + hmac.new(b"k3y", b"7", hashlib.sha256).hexdigest()
    )


def test_user_hook_changes_the_record(sink: Sink) -> None:
    seen: list[Any] = []

    def hook(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(copy.deepcopy(payload))
        payload["inputs"] = {k: v for k, v in payload["inputs"].items() if k != "note"}
        return payload

    attrs = _emit(
        sink,
        PayloadConfig(redact=hook, **BIG),
        inputs={"note": "private", "x": np.array([1, 2])},
        outputs=[1],
    )
    assert attrs is not None
    assert seen == [{"inputs": {"note": "private", "x": [1, 2]}, "outputs": [1]}]  # plain copies
    assert "ml.payload.input.note" not in attrs
    assert attrs["ml.payload.input.x"] == "[1,2]"


def test_user_hook_returning_none_drops_the_record(sink: Sink) -> None:
    assert _emit(sink, PayloadConfig(redact=lambda p: None, **BIG), inputs=[1], outputs=[1]) is None
    assert health.dropped[tn.REASON_PAYLOAD_REDACT_HOOK_DROPPED] == 1


@pytest.mark.parametrize("bad", [ZeroDivisionError, KeyError, "not a dict"])
def test_user_hook_that_fails_drops_the_record_never_sends_unredacted(sink: Sink, bad: Any) -> None:
    def hook(payload: dict[str, Any]) -> Any:
        if isinstance(bad, str):
            return bad
        raise bad("hook bug")

    assert (
        _emit(sink, PayloadConfig(redact=hook, **BIG), inputs={"email": "x@y.io"}, outputs=[1])
        is None
    )
    assert sink.logs() == []
    assert health.dropped[tn.REASON_PAYLOAD_REDACT_HOOK_ERROR] == 1
    assert health.errors == {}  # the user's bug, not ours: counted as a drop


def test_field_names_that_look_like_secrets_are_renamed(sink: Sink) -> None:
    attrs = _emit(sink, PayloadConfig(**BIG), inputs={"bob@example.com": 1, "ok": 2}, outputs=0)
    assert attrs is not None
    assert "ml.payload.input.redacted_0" in attrs
    assert "ml.payload.input.ok" in attrs
    assert not any("example.com" in k for k in attrs)


@pytest.mark.slow
def test_canary_sweep_10k_calls_zero_occurrences_in_exported_bytes(sink: Sink) -> None:
    canary = "CANARY-" + uuid.uuid4().hex
    cfg = PayloadConfig(
        deny_fields={"secret_note"},
        patterns=("email", "card", "phone", "ssn", "ip", re.compile(r"CANARY-[0-9a-f]{32}")),
        max_rows=5,
        **BIG,
    )
    hook = PayloadPart(model="m", version="1", rate=1.0, config=cfg, logger=no_logger)
    emails = [f"user{i}.{canary[7:15]}@corp-mail.example.org" for i in range(50)]
    cards = ["4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009", "6011000000000004"]
    for i in range(10_000):
        kind = i % 5
        if kind == 0:
            inputs: Any = {
                "email": emails[i % 50],
                "card": cards[i % 4],
                "secret_note": canary,
                "x": i,
            }
        elif kind == 1:
            inputs = [{"contact": f"mail {emails[i % 50]} card {cards[i % 4]}", "v": 1.0}] * 3
        elif kind == 2:
            inputs = np.array([[emails[i % 50], cards[i % 4], f"note {canary}"]], dtype=object)
        elif kind == 3:
            inputs = {
                "nested": {"deep": [f"{canary}", {"secret_note": canary}]},
                "card_int": 4111111111111111,
            }
        else:
            inputs = f"free text {emails[i % 50]} {cards[i % 4]} {canary} 078-05-1120"
        run(
            hook,
            fake_call(
                inputs=inputs, outputs={"echo": f"{emails[i % 50]} {canary}"}, logger=sink.logger
            ),
        )
    logs = sink.logs()
    assert len(logs) == 10_000
    secrets = [canary, *emails, *cards, "4111111111111111", "078-05-1120", canary[7:15]]
    text = "\n".join(f"{k}={v}" for r in logs for k, v in r.attributes.items())
    otlp = sink.otlp_bytes()
    assert len(otlp) > 1_000_000
    for s in secrets:
        assert text.count(s) == 0, s
        assert otlp.count(s.encode()) == 0, s
    assert "[REDACTED:email]" in text
    assert "[REDACTED:card]" in text
    assert "[REDACTED:custom]" in text
