"""After fork, payload budgets and the outcome lock start fresh in the child."""

from __future__ import annotations

import os

import pytest

from _payload_support import in_child
from modelotel import outcomes
from modelotel._monitor import get_monitor
from modelotel._options import model_config
from modelotel._payload import PayloadConfig

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_payload_budget_lock_held_at_fork_does_not_deadlock_the_child() -> None:
    mon = get_monitor(
        model_config(model="fork-payload", payload=PayloadConfig(max_records_per_second=1))
    )
    part = mon.payload
    assert part is not None
    bucket = part._records
    assert bucket.take()
    assert not bucket.take()  # empty in the parent
    bucket._lock.acquire()  # as if another thread were inside take() at fork time
    try:
        assert in_child(bucket.take, 5) == 0  # child: fresh lock, full bucket
    finally:
        bucket._lock.release()


def test_outcome_lock_held_at_fork_does_not_deadlock_the_child() -> None:
    book = outcomes.book()
    book.lock.acquire()
    try:
        assert in_child(lambda: book.accuracy() == [], 5) == 0
    finally:
        book.lock.release()
