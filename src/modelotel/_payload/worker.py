"""The payload worker: one daemon thread per process that finishes payload records.

Example:
    >>> from modelotel._payload.worker import Worker
    >>> worker = Worker(capacity=2)
    >>> done = []
    >>> worker.submit(lambda: done.append("built"))
    True
    >>> worker.drain(5.0), done
    (True, ['built'])

A kept call's record is converted, redacted, serialized and emitted here, after the call
has returned, so the calling thread pays only for the sampling decision, the record
budgets and a copy of the values (:mod:`modelotel._payload.snapshot`). The queue is
bounded (:data:`QUEUE_CAPACITY` jobs): a full queue refuses the job at once and the caller
counts the drop (``payload_worker_queue_full``); the calling thread never waits, and holds
the lock only to append.

The thread starts with the first job, and again in a forked child (threads do not survive
a fork; the jobs the parent had queued are the parent's to finish) or if it ever died (the
queue is kept). :meth:`Worker.finish` drains the queue within a deadline and counts what
is left (``payload_worker_shutdown_timeout``): ``modelotel.shutdown()`` and
``force_flush()`` drain it before they flush the logger provider, and so does an ``atexit``
hook registered when the thread first starts.
"""

from __future__ import annotations

import atexit
import collections
import threading
import time
from collections.abc import Callable

from modelotel import attributes as tn
from modelotel._runtime import runtime
from modelotel._safety import count_dropped, guard, record_error

#: Jobs waiting at most. A job holds one record's capped copy (at most ``max_bytes`` of
#: JSON, 64 KiB by default); the record budgets (100 records per second per process by
#: default) are taken before a job is queued, so the queue absorbs bursts, not a flood.
QUEUE_CAPACITY = 256
#: Name of the runtime store holding the process's worker.
WORKER = "payload.worker"

Job = Callable[[], None]


class Worker:
    """A bounded queue of jobs and the one daemon thread that runs them, in order."""

    def __init__(self, capacity: int = QUEUE_CAPACITY) -> None:
        self.capacity = capacity
        self._new_state()

    def _new_state(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # a job was queued
        self._idle = threading.Condition(self._lock)  # queue empty, no job running
        self._jobs: collections.deque[Job] = collections.deque()
        self._running = 0
        self._thread: threading.Thread | None = None

    # --- calling thread ------------------------------------------------------------------
    def submit(self, job: Job) -> bool:
        """Queue ``job``; ``False`` at once if the queue is full (the caller counts it)."""
        with self._lock:
            if len(self._jobs) >= self.capacity:
                return False
            self._jobs.append(job)
            thread = self._thread
            if thread is None or not thread.is_alive():
                self._start()
            else:
                self._ready.notify()
        return True

    def pending(self) -> int:
        """Jobs queued or running now."""
        with self._lock:
            return len(self._jobs) + self._running

    # --- flush, shutdown, exit ------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Wait until every job queued so far has run, ``timeout`` seconds at most."""
        if threading.current_thread() is self._thread:
            return False  # a job that flushes must not wait for itself
        end = time.monotonic() + timeout
        with self._lock:
            while self._jobs or self._running:
                thread = self._thread
                if self._jobs and (thread is None or not thread.is_alive()):
                    self._start()  # a worker that died: its queue is not lost
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def finish(self, timeout: float) -> bool:
        """:meth:`drain`; what is still queued when ``timeout`` is up is dropped and counted."""
        if self.drain(timeout):
            return True
        with self._lock:
            left = len(self._jobs)
            self._jobs.clear()
        if left:
            count_dropped(tn.REASON_PAYLOAD_WORKER_SHUTDOWN_TIMEOUT, left)
        return False

    # --- process state (runtime store) -----------------------------------------------------
    def reset(self) -> None:
        """Finish the jobs queued so far (5 s at most), forget the rest (tests)."""
        self.drain(5.0)
        with self._lock:
            self._jobs.clear()

    def after_fork(self) -> None:
        """In a forked child: new locks, no thread yet; the parent's queued jobs are its own."""
        self._new_state()

    # --- the thread --------------------------------------------------------------------------
    def _start(self) -> None:
        # under self._lock; Thread.start() returns once the thread runs, before it takes it
        thread = threading.Thread(target=self._run, name="modelotel-payload", daemon=True)
        self._thread = thread
        thread.start()
        _register_exit_hook()

    def _run(self) -> None:
        lock, ready, idle, jobs = self._lock, self._ready, self._idle, self._jobs
        while True:
            with lock:
                while not jobs:
                    ready.wait()
                job = jobs.popleft()
                self._running += 1
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - the worker outlives anything a job does
                record_error("payload.worker", exc)
            finally:
                with lock:
                    self._running -= 1
                    if not jobs and not self._running:
                        idle.notify_all()


def payload_worker() -> Worker:
    """The process's payload worker (made on first use)."""
    return runtime.store(WORKER, Worker)


def finish_payloads(timeout: float) -> bool:
    """Drain the payload worker within ``timeout`` s, counting what is left; True if none made."""
    worker: Worker | None = runtime.existing_store(WORKER)
    return True if worker is None else worker.finish(timeout)


def drain_payloads(timeout: float) -> bool:
    """Wait for the payload worker's queued jobs within ``timeout`` s (nothing is dropped)."""
    worker: Worker | None = runtime.existing_store(WORKER)
    return True if worker is None else worker.drain(timeout)


_exit_hook: list[bool] = []


def _register_exit_hook() -> None:
    # atexit runs in reverse order of registration: registered when the first record is
    # queued, this runs before the OTel SDK's own exit hooks (registered with the providers
    # earlier) shut the logger provider down
    if not _exit_hook:
        _exit_hook.append(True)
        atexit.register(_at_exit)


def _at_exit() -> None:
    with guard("payload.atexit"):
        finish_payloads(runtime.settings.shutdown_timeout)
