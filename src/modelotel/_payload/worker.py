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
builds that record itself (a burst is paid for by the calls that make it, and nothing is
lost); the calling thread never waits and takes no lock of ours (a ``queue.SimpleQueue``:
``qsize`` and ``put`` are single C calls).

The thread starts with the first job, and again in a forked child (threads do not survive
a fork; the jobs the parent had queued are the parent's to finish) or if it ever died (the
queue is kept). :meth:`Worker.finish` drains the queue within a deadline and counts what
is left (``payload_worker_shutdown_timeout``): ``modelotel.shutdown()`` and
``force_flush()`` drain it before they flush the logger provider, and so does an ``atexit``
hook registered when the thread first starts.
"""

from __future__ import annotations

import atexit
import contextlib
import queue
import threading
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


class _Marker:
    """A job of the worker's own (a drain's wake-up): never counted as a record."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self) -> None:
        self.event.set()


class Worker:
    """A bounded queue of jobs and the one daemon thread that runs them, in order."""

    def __init__(self, capacity: int = QUEUE_CAPACITY) -> None:
        self.capacity = capacity
        self._new_state()

    def _new_state(self) -> None:
        # SimpleQueue: put and qsize are single C calls, atomic under the GIL; the calling
        # thread takes no lock of ours and runs no Condition's Python code
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- calling thread ------------------------------------------------------------------
    def submit(self, job: Job) -> bool:
        """Queue ``job``; ``False`` at once if the queue is full (the caller runs it).

        Two threads that find one free place may both take it: the bound is exceeded by at
        most the number of threads submitting at that instant.
        """
        jobs = self._jobs
        if jobs.qsize() >= self.capacity:
            return False
        jobs.put(job)
        if self._thread is None:
            self._start()
        return True

    def pending(self) -> int:
        """Jobs queued now (not counting the one running)."""
        return self._jobs.qsize()

    # --- flush, shutdown, exit ------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Wait until every job queued so far has run, ``timeout`` seconds at most."""
        thread = self._thread
        if thread is None and not self._jobs.qsize():
            return True  # nothing was ever queued here: no thread to start for it
        if thread is not None and thread is threading.current_thread():
            return False  # a job that flushes must not wait for itself
        marker = _Marker()
        self._jobs.put(marker)  # FIFO and one thread: when it runs, the jobs before it ran
        if thread is None or not thread.is_alive():
            self._start()  # none yet, or one that died: the queue is not lost
        return marker.event.wait(timeout)

    def finish(self, timeout: float) -> tuple[bool, int]:
        """:meth:`drain`; what is still queued when ``timeout`` is up is dropped and counted.

        Returns:
            Whether every job ran in time, and how many were dropped.
        """
        if self.drain(timeout):
            return True, 0
        left = sum(not isinstance(job, _Marker) for job in self._take_all())
        if left:
            count_dropped(tn.REASON_PAYLOAD_WORKER_SHUTDOWN_TIMEOUT, left)
        return False, left

    def _take_all(self) -> list[Job]:
        taken: list[Job] = []
        with contextlib.suppress(queue.Empty):
            while True:
                taken.append(self._jobs.get_nowait())
        return taken

    # --- process state (runtime store) -----------------------------------------------------
    def reset(self) -> None:
        """Finish the jobs queued so far (5 s at most), forget the rest (tests)."""
        if not self.drain(5.0):
            self._take_all()

    def after_fork(self) -> None:
        """In a forked child: a new queue, no thread yet; the parent's queued jobs are its own."""
        self._new_state()

    # --- the thread --------------------------------------------------------------------------
    def _start(self) -> None:
        with self._start_lock:
            thread = self._thread
            if thread is not None and thread.is_alive():
                return
            thread = threading.Thread(target=self._run, name="modelotel-payload", daemon=True)
            self._thread = thread
            thread.start()
        _register_exit_hook()

    def _run(self) -> None:
        jobs = self._jobs
        try:
            while True:
                job = jobs.get()
                try:
                    job()
                except BaseException as exc:  # noqa: BLE001 - the worker outlives any job
                    record_error("payload.worker", exc)
        finally:
            # never reached but by a failure of the loop itself: the next submit() or
            # drain() starts a new thread on the same queue
            if self._thread is threading.current_thread():
                self._thread = None


def payload_worker() -> Worker:
    """The process's payload worker (made on first use)."""
    return runtime.store(WORKER, Worker)


def finish_payloads(timeout: float) -> tuple[bool, int]:
    """Drain the payload worker within ``timeout`` s; (drained in time, records dropped)."""
    worker: Worker | None = runtime.existing_store(WORKER)
    return (True, 0) if worker is None else worker.finish(timeout)


def drain_payloads(timeout: float) -> bool:
    """Wait for the payload worker's queued jobs within ``timeout`` s (nothing is dropped)."""
    worker: Worker | None = runtime.existing_store(WORKER)
    return True if worker is None else worker.drain(timeout)


_exit_hook: list[bool] = []
_exit_drain_deferred = False


def defer_exit_drain() -> None:
    """``modelotel.configure()``'s exit hook runs ``shutdown()``, which drains this worker
    first within the one deadline it has: the worker's own exit hook leaves it to that one
    (two hooks each waiting their own deadline would make an exit take twice as long)."""
    global _exit_drain_deferred
    _exit_drain_deferred = True


def _register_exit_hook() -> None:
    # atexit runs in reverse order of registration: registered when the first record is
    # queued, this runs before the OTel SDK's own exit hooks (registered with the providers
    # earlier) shut the logger provider down
    if not _exit_hook:
        _exit_hook.append(True)
        atexit.register(_at_exit)


def _at_exit() -> None:
    if _exit_drain_deferred:
        return
    with guard("payload.atexit"):
        finish_payloads(runtime.settings.shutdown_timeout)
