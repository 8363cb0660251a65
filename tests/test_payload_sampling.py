"""Payload sampling: deterministic decisions, binomial rate, sample keys, token-bucket budget."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from _payload_support import fake_call, run
from modelotel import attributes as tn
from modelotel._payload import PayloadConfig, PayloadPart
from modelotel._payload.sampling import (
    TokenBucket,
    hex_limit,
    id_hash,
    key_hash,
    threshold,
)
from modelotel._runtime import runtime
from modelotel._safety import health


class FakeLogger:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, **kw: Any) -> None:
        self.records.append(kw)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _hook(
    rate: float, cfg: PayloadConfig | None = None, clock: Any = None
) -> tuple[PayloadPart, FakeLogger]:
    log = FakeLogger()
    hook = PayloadPart(
        model="m",
        version="1",
        rate=rate,
        config=cfg or PayloadConfig(max_records_per_second=1e9, max_bytes_per_second=1e12),
        logger=lambda: log,
        clock=clock or Clock(),
    )
    return hook, log


def test_threshold_endpoints() -> None:
    assert threshold(0.0) == 0
    assert threshold(1.0) == 1 << 64
    assert threshold(0.5) == 1 << 63
    never, always = _hook(0.0)[0], _hook(1.0)[0]
    assert never.decide(fake_call(pid="0" * 16)) is None
    assert always.decide(fake_call(pid="f" * 16)) == "rate"


def test_id_hash_parses_hex_and_hashes_the_rest() -> None:
    assert id_hash("00000000000000ff") == 255
    assert id_hash("00000000000000ffXYZ") == key_hash("00000000000000ffXYZ")
    assert id_hash("00000000000000FF") == key_hash("00000000000000FF")  # not lowercase
    assert id_hash("not-a-hex-id-at-all") == key_hash("not-a-hex-id-at-all")
    assert id_hash("abc") == key_hash("abc")  # too short to be uniform: hashed
    assert key_hash("customer-7") == key_hash("customer-7")
    assert key_hash("customer-7") != key_hash("customer-8")
    assert 0 <= key_hash("x") < 1 << 64


def test_text_compare_equals_integer_compare() -> None:
    rng = random.Random(11)
    for rate in (0.0, 1e-9, 0.01, 0.5, 0.999, 1.0):
        limit = threshold(rate)
        lim_hex = hex_limit(limit)
        values = [rng.getrandbits(64) for _ in range(2000)]
        values += [0, (1 << 64) - 1] + [
            v for v in (limit - 1, limit, limit + 1) if 0 <= v < 1 << 64
        ]
        for v in values:
            pid = f"{v:016x}"
            assert (pid < lim_hex) == (v < limit) == (id_hash(pid) < limit)


def test_hook_fast_path_agrees_with_the_pure_sampler() -> None:
    hook, log = _hook(0.3)
    ids = [f"{i * 0x9E3779B97F4A7C15 % (1 << 64):016x}" for i in range(1, 3000)]
    ids += [f"req-{i}" for i in range(500)]  # other ids take the hashed path
    for pid in ids:
        run(hook, fake_call(pid=pid, inputs=[1], outputs=[2]))
    kept = [r["attributes"][tn.ML_PREDICTION_ID] for r in log.records]
    assert kept == [pid for pid in ids if id_hash(pid) < threshold(0.3)]
    assert any(k.startswith("req-") for k in kept)


@pytest.mark.parametrize("rate", [0.01, 0.3])
def test_rate_within_binomial_bounds_over_100k_ids(rate: float) -> None:
    rng = random.Random(20261125)
    decide = _hook(rate)[0].decide  # what every ended prediction goes through
    n = 100_000
    kept = sum(decide(fake_call(pid=f"{rng.getrandbits(64):016x}")) == "rate" for _ in range(n))
    sigma = math.sqrt(n * rate * (1 - rate))
    # 4.4 sigma: a false failure once in ~100k runs.
    assert abs(kept - n * rate) <= 4.4 * sigma, (kept, n * rate, sigma)


def test_rate_of_non_hex_ids_within_binomial_bounds() -> None:
    n, rate = 20_000, 0.1
    decide = _hook(rate)[0].decide
    kept = sum(decide(fake_call(pid=f"request-{i}")) == "rate" for i in range(n))
    assert abs(kept - n * rate) <= 4.4 * math.sqrt(n * rate * (1 - rate))


def test_same_id_same_decision_in_every_hook() -> None:
    hook_a, log_a = _hook(0.2)
    hook_b, log_b = _hook(0.2)
    rng = random.Random(7)
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(2000)]
    for pid in ids + ids:
        run(hook_a, fake_call(pid=pid, inputs=[1], outputs=[2]))
    for pid in ids:
        run(hook_b, fake_call(pid=pid, inputs=[1], outputs=[2]))
    kept_a = [r["attributes"][tn.ML_PREDICTION_ID] for r in log_a.records]
    kept_b = [r["attributes"][tn.ML_PREDICTION_ID] for r in log_b.records]
    assert kept_a[: len(kept_b)] == kept_b
    assert kept_a[len(kept_b) :] == kept_b  # the repeated ids got the same decisions
    expected = [pid for pid in ids if id_hash(pid) < threshold(0.2)]
    assert kept_b == expected
    assert 300 <= len(expected) <= 500
    assert {r["attributes"][tn.ML_PAYLOAD_SAMPLE_REASON] for r in log_a.records} == {"rate"}


def test_sample_key_field_keeps_the_same_entity_whatever_the_id() -> None:
    cfg = PayloadConfig(
        sample_key="customer", max_records_per_second=1e9, max_bytes_per_second=1e12
    )
    hook, log = _hook(0.5, cfg)
    customers = [f"c{i}" for i in range(200)]
    for rep in range(3):
        for c in customers:
            run(hook, fake_call(inputs={"customer": [c, "other"], "x": [rep, 0]}, outputs=[0]))
    per_customer: dict[str, int] = {}
    for r in log.records:
        cust = r["attributes"]["ml.payload.input.customer"]
        per_customer[cust] = per_customer.get(cust, 0) + 1
    assert set(per_customer.values()) == {3}  # kept all three times or never
    expected = {c for c in customers if key_hash(c) < threshold(0.5)}
    assert {k.split('"')[1] for k in per_customer} == expected


def test_sample_key_callable_and_records() -> None:
    cfg = PayloadConfig(
        sample_key=lambda x: x[0]["user"], max_records_per_second=1e9, max_bytes_per_second=1e12
    )
    hook, _ = _hook(0.5, cfg)
    keep = [u for u in ("a", "b", "c", "d", "e", "f") if key_hash(u) < threshold(0.5)]
    for u in ("a", "b", "c", "d", "e", "f"):
        assert (hook.decide(fake_call(inputs=[{"user": u}])) == "rate") == (u in keep)
    field_cfg = PayloadConfig(sample_key="user")
    field_hook, _ = _hook(0.5, field_cfg)
    for u in ("a", "b", "c", "d", "e", "f"):
        assert (field_hook.decide(fake_call(inputs=[{"user": u}, {"user": "z"}])) == "rate") == (
            u in keep
        )


def test_errors_and_checks_always_kept_and_can_be_turned_off() -> None:
    hook, log = _hook(0.0, PayloadConfig(max_records_per_second=100))
    run(hook, fake_call(inputs=[1], outputs=[2]))
    run(hook, fake_call(inputs=[1], error=ValueError("boom")))
    run(hook, fake_call(inputs=[1], outputs=[2], checks=["nan_output"]))
    reasons = [r["attributes"][tn.ML_PAYLOAD_SAMPLE_REASON] for r in log.records]
    assert reasons == ["error", "check"]
    assert log.records[0]["attributes"][tn.ERROR_TYPE] == "ValueError"
    assert log.records[1]["attributes"][tn.ML_CHECKS_FIRED] == ["nan_output"]
    off, off_log = _hook(0.0, PayloadConfig(always_keep_errors=False, always_keep_checks=False))
    run(off, fake_call(inputs=[1], error=ValueError("boom")))
    run(off, fake_call(inputs=[1], outputs=[2], checks=["nan_output"]))
    assert off_log.records == []


def test_token_bucket_refills_at_rate_and_caps_at_capacity() -> None:
    clock = Clock()
    b = TokenBucket(rate=4.0, clock=clock)
    assert [b.take() for _ in range(5)] == [True] * 4 + [False]
    clock.t += 0.5
    assert [b.take() for _ in range(3)] == [True, True, False]
    clock.t += 100.0  # a long idle period refills only up to capacity
    assert sum(b.take() for _ in range(10)) == 4
    big = TokenBucket(rate=10.0, capacity=100.0, clock=clock)
    assert big.take(100.0)
    assert not big.take(1.0)


def test_budget_holds_under_an_error_storm() -> None:
    clock = Clock()
    budget = 20.0
    cfg = PayloadConfig(max_records_per_second=budget, max_bytes_per_second=1e12)
    hook, log = _hook(0.0, cfg, clock)
    emitted_at: list[float] = []
    orig_emit = log.emit

    def emit(**kw: Any) -> None:
        emitted_at.append(clock.t)
        orig_emit(**kw)

    log.emit = emit  # type: ignore[method-assign]
    calls = 0
    # 10 simulated seconds of 1,000 failing calls per second (1 ms apart).
    for _ in range(10_000):
        run(hook, fake_call(inputs=[1.0], error=RuntimeError("storm")))
        calls += 1
        clock.t += 0.001
    start = 1000.0
    for w in range(10):
        in_window = sum(start + w <= t < start + w + 1 for t in emitted_at)
        assert in_window <= budget + budget  # budget + one bucket (capacity = 1 s of budget)
    # sliding windows too, not only aligned ones
    for i, t0 in enumerate(emitted_at):
        n = sum(1 for t in emitted_at[i:] if t < t0 + 1.0)
        assert n <= 2 * budget
    assert len(emitted_at) <= budget * 10 + budget
    assert len(emitted_at) >= budget * 10 - 1  # the budget is used, not starved
    assert health.dropped[tn.REASON_PAYLOAD_BUDGET] == calls - len(emitted_at)


def test_bytes_budget_drops_and_counts() -> None:
    clock = Clock()
    cfg = PayloadConfig(max_records_per_second=1000, max_bytes_per_second=2000, max_bytes=1000)
    hook, log = _hook(1.0, cfg, clock)
    for _ in range(10):
        run(hook, fake_call(inputs=["x" * 600], outputs=[1]))
    sent = sum(r["attributes"][tn.ML_PAYLOAD_BYTES] for r in log.records)
    assert sent <= 2000
    assert len(log.records) == 3
    assert health.dropped[tn.REASON_PAYLOAD_BUDGET_BYTES] == 7
    clock.t += 1.0
    run(hook, fake_call(inputs=["x" * 600], outputs=[1]))
    assert len(log.records) == 4


def test_sample_key_that_cannot_be_read_falls_back_and_is_counted() -> None:
    def bad_key(inputs: Any) -> Any:
        raise KeyError("no such field")

    hook, log = _hook(1.0, PayloadConfig(sample_key=bad_key, max_records_per_second=100))
    run(hook, fake_call(inputs={"x": 1}, outputs=[1]))
    run(hook, fake_call(inputs={"x": 1}, error=ValueError("e")))
    assert [r["attributes"][tn.ML_PAYLOAD_SAMPLE_REASON] for r in log.records] == ["error"]
    assert health.skipped[tn.REASON_PAYLOAD_SAMPLE_KEY] == 2
    field_hook, field_log = _hook(1.0, PayloadConfig(sample_key="user", max_records_per_second=100))
    run(field_hook, fake_call(inputs={"x": 1}, outputs=[1]))  # field absent: key None, hashed
    assert len(field_log.records) == 1


def test_the_part_keeps_the_sampled_ids_then_errors_and_checks() -> None:
    hook, log = _hook(0.3)
    ids = [f"{i * 0x9E3779B97F4A7C15 % (1 << 64):016x}" for i in range(1, 2000)] + ["x-1", "x-2"]
    for pid in ids:
        run(hook, fake_call(pid=pid, inputs=[1], outputs=[2]))
    run(hook, fake_call(pid="f" * 16, inputs=[1], error=ValueError("e")))
    run(hook, fake_call(pid="f" * 16, inputs=[1], checks=["constant_output"]))
    kept = [r["attributes"][tn.ML_PREDICTION_ID] for r in log.records]
    assert kept == [pid for pid in ids if id_hash(pid) < threshold(0.3)] + ["f" * 16] * 2
    reasons = [r["attributes"][tn.ML_PAYLOAD_SAMPLE_REASON] for r in log.records[-2:]]
    assert reasons == ["error", "check"]


def test_sample_key_from_frames_and_arrays_uses_the_first_row() -> None:
    import numpy as np
    import pandas as pd

    hook, _ = _hook(0.5, PayloadConfig(sample_key="user"))
    for users in (["a", "b"], ["c", "d"], [7, 8]):
        want = "rate" if key_hash(users[0]) < threshold(0.5) else None
        assert hook.decide(fake_call(inputs=pd.DataFrame({"user": users}))) == want
        assert hook.decide(fake_call(inputs={"user": np.array(users)})) == want
        assert hook.decide(fake_call(inputs={"user": tuple(users)})) == want
    assert hook.decide(fake_call(inputs="no fields")) == (
        "rate" if key_hash(None) < threshold(0.5) else None
    )


def test_process_budget_caps_every_model_together(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelotel._payload import emit as emit_mod

    clock = Clock()
    process = 30.0
    monkeypatch.setitem(runtime._stores, emit_mod.PROCESS_BUDGET,
                        emit_mod.ProcessBudget(process, 1e12, clock=clock))
    # 12 models at the default budget of their own (10 records/s each: 120/s together)
    hooks = [_hook(0.0, PayloadConfig(), clock) for _ in range(12)]
    emitted_at: list[float] = []
    for _, log in hooks:
        log.emit = lambda **kw: emitted_at.append(clock.t)  # type: ignore[method-assign]
    for _ in range(5000):  # 5 simulated seconds; every model fails every millisecond
        for hook, _ in hooks:
            run(hook, fake_call(inputs=[1.0], error=RuntimeError("storm")))
        clock.t += 0.001
    for i, t0 in enumerate(emitted_at):  # any 1 s window: the rate plus one bucket
        assert sum(1 for t in emitted_at[i:] if t < t0 + 1.0) <= 2 * process
    assert process * 5 - 1 <= len(emitted_at) <= process * 5 + process
    assert health.dropped[tn.REASON_PAYLOAD_BUDGET_PROCESS] > 0
    assert health.dropped[tn.REASON_PAYLOAD_BUDGET] > 0  # each model's own budget too


def test_process_budget_from_the_environment_and_raised_by_an_explicit_model_budget(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from modelotel._payload import emit as emit_mod

    monkeypatch.delitem(runtime._stores, emit_mod.PROCESS_BUDGET, raising=False)
    monkeypatch.setenv("MODELOTEL_PAYLOAD_PROCESS_RECORDS_PER_SECOND", "7")
    monkeypatch.setenv("MODELOTEL_PAYLOAD_PROCESS_BYTES_PER_SECOND", "lots")
    runtime.reload_settings()
    budget = emit_mod.process_budget()
    assert budget.records.rate == 7.0
    assert budget.bytes.rate == 2_097_152.0  # not a number: the default, with a warning
    assert "MODELOTEL_PAYLOAD_PROCESS_BYTES_PER_SECOND='lots'" in caplog.text
    _hook(1.0, PayloadConfig(max_records_per_second=500, max_bytes=4_000_000))
    assert emit_mod.process_budget().records.rate == 500.0  # an explicit setting is not capped
    assert emit_mod.process_budget().bytes.capacity >= 4_000_000  # one record always fits
    _hook(1.0, PayloadConfig(max_records_per_second=2))
    assert emit_mod.process_budget().records.rate == 500.0  # never lowered by a smaller one
