"""After fork, payload budgets and the outcome lock start fresh in the child."""

from __future__ import annotations

import os
import signal
import sys
import warnings

import pytest

from modelotel import outcomes
from modelotel._monitor import get_monitor
from modelotel._options import model_config
from modelotel._payload import PayloadConfig

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _in_child(body: object) -> int:
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads (pytest's, the SDK's)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            signal.alarm(5)  # a deadlock fails the test instead of hanging it
            code = 0 if body() else 2  # type: ignore[operator]
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


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
        assert _in_child(bucket.take) == 0  # child: fresh lock, full bucket
    finally:
        bucket._lock.release()


def test_outcome_lock_held_at_fork_does_not_deadlock_the_child() -> None:
    book = outcomes.book()
    book.lock.acquire()
    try:
        assert _in_child(lambda: book.accuracy() == []) == 0
    finally:
        book.lock.release()
