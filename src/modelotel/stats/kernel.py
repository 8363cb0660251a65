"""Which code runs the statistics' hot loops: the compiled kernel, or numpy; and why.

Example:
    >>> from modelotel.stats import kernel
    >>> kernel.COMPILED == (kernel.STATUS == "compiled")
    True
    >>> kernel.STATUS in kernel.STATUSES
    True

``modelotel.stats._kernel`` (``_kernel.c``) is an optional accelerator, compiled when
modelotel is built with a working C compiler (``setup.py``; ``MODELOTEL_BUILD_KERNEL=0``
builds the pure wheel without it). Without it numpy does the same work with the same
results (``tests/test_stats_kernel.py`` holds them to each other), slower per call
(docs/kernel.md has the figures). It does two things, each in one call instead of many
numpy operations:

- :data:`stage`: copy a small float64 batch and its float64 scores into the row buffers
  and tell whether every score is finite and inside the training range (per call);
- :data:`accumulate`: reduce a row buffer into a window (per buffer flush);
- :data:`put_records`, :data:`put_scores`, :data:`put_texts`: write dict records, Python
  scores and the descriptors of texts straight into a row buffer (per call), where numpy
  would first build an array from the Python objects.

The choice is made once, at import. ``MODELOTEL_STATS_KERNEL=numpy`` chooses numpy. An
install without the kernel, or with a kernel built from other sources (a stale editable
install) or one that does not load, logs one warning saying so and what to do; ``modelotel
doctor`` reports :data:`STATUS` and :data:`REASON`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from modelotel._safety import health
from modelotel._settings import Settings
from modelotel.environment_variables import MODELOTEL_STATS_KERNEL

#: The calling convention this code expects of ``_kernel`` (its ``ABI``; see ``_kernel.c``).
ABI = 6

#: What :data:`STATUS` can be: the kernel runs; numpy runs because the environment asks
#: for it; because the kernel was not built; because the one built is from other sources;
#: because it is there but does not load.
STATUSES = ("compiled", "numpy-chosen", "not-built", "stale", "unloadable")

_HINT = "modelotel doctor explains; MODELOTEL_STATS_KERNEL=numpy silences this warning"


def _choice() -> str:
    # the one parser of MODELOTEL_* (a bad value warns once there), for this one variable
    raw = os.environ.get(MODELOTEL_STATS_KERNEL)
    only = {} if raw is None else {MODELOTEL_STATS_KERNEL: raw}
    return Settings.from_environ(only).stats_kernel


def _load() -> tuple[Any, str, str]:
    """``(module or None, status, reason)``; warns once when numpy runs for want of it."""
    if _choice() == "numpy":
        return None, "numpy-chosen", f"{MODELOTEL_STATS_KERNEL}=numpy"
    try:
        # (not ``from modelotel.stats import _kernel``: that hides which module was missing)
        _kernel = importlib.import_module("modelotel.stats._kernel")
    except ImportError as exc:
        if not (isinstance(exc, ModuleNotFoundError) and exc.name == "modelotel.stats._kernel"):
            # there, but built for another platform or interpreter, or missing a library
            reason = f"the compiled statistics kernel does not load ({exc})"
            health.warn_once("stats.kernel", "modelotel: %s; numpy computes the statistics. "
                             "Reinstall modelotel to rebuild it. %s.", reason, _HINT)
            return None, "unloadable", reason
        reason = ("the compiled statistics kernel is not installed (modelotel was built "
                  "without a working C compiler or Python headers, or with "
                  "MODELOTEL_BUILD_KERNEL=0)")
        health.warn_once("stats.kernel", "modelotel: %s; numpy computes the statistics: same "
                         "results, higher cost per call. For the kernel, reinstall where a C "
                         "compiler works (pip install --no-cache-dir --force-reinstall "
                         "modelotel). %s.", reason, _HINT)
        return None, "not-built", reason
    abi = getattr(_kernel, "ABI", None)
    if abi != ABI:
        # a build left from other sources (an editable install not rebuilt after a change)
        reason = (f"the compiled statistics kernel is from another version of modelotel "
                  f"(ABI {abi}, expected {ABI})")
        health.warn_once("stats.kernel", "modelotel: %s; numpy computes the statistics. "
                         "Reinstall modelotel to rebuild it. %s.", reason, _HINT)
        return None, "stale", reason
    return _kernel, "compiled", f"ABI {ABI}, {getattr(_kernel, '__file__', '?')}"


_compiled, _status, _reason = _load()

#: One of :data:`STATUSES`: why the compiled kernel runs or numpy does.
STATUS: str = _status

#: One line for people: what runs and why (``modelotel doctor`` prints it).
REASON: str = _reason

#: True when the compiled kernel runs, False when numpy does.
COMPILED: bool = _compiled is not None

#: The kernel's functions below, each None without it (numpy, or the general reader, runs
#: then); setting them to None switches the kernel off at run time (tests, benchmarks).
FUNCTIONS = ("stage", "accumulate", "put_records", "put_scores", "put_texts")

#: ``stage(in_dst, in_off, x, out_dst, out_off, y, lo, hi) -> bool | None`` (see
#: ``_kernel.c``), or None without the kernel.
stage: Callable[..., bool | None] | None = _compiled.stage if _compiled is not None else None

#: ``accumulate(X, n, d, T, K, count, mean, m2, nan, inf, lo, hi, ge) -> None`` (see
#: ``_kernel.c``), or None without the kernel.
accumulate: Callable[..., None] | None = (
    _compiled.accumulate if _compiled is not None else None
)

#: ``put_records(dst, off, keys, x) -> int`` (see ``_kernel.c``), or None without the kernel.
put_records: Callable[[Any, int, tuple[str, ...], Any], int] | None = (
    _compiled.put_records if _compiled is not None else None
)

#: ``put_scores(dst, off, y, lo, hi) -> int`` (see ``_kernel.c``), or None without the kernel.
put_scores: Callable[[Any, int, Any, float, float], int] | None = (
    _compiled.put_scores if _compiled is not None else None
)

#: ``put_texts(dst, off, x) -> int`` (see ``_kernel.c``), or None without the kernel.
put_texts: Callable[[Any, int, Any], int] | None = (
    _compiled.put_texts if _compiled is not None else None
)
