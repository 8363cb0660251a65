"""Which code runs the statistics' two hot loops: the compiled kernel, or numpy.

Example:
    >>> from modelotel.stats import kernel
    >>> kernel.COMPILED in (True, False)
    True

``modelotel.stats._kernel`` (``_kernel.c``) is compiled when modelotel is installed with a C
compiler at hand; it is optional, and without it numpy does the same work. It does two
things, each in one call instead of many numpy operations:

- :data:`stage`: copy a small float64 batch and its float64 scores into the row buffers
  and tell whether every score is finite and inside the training range (per call);
- :data:`accumulate`: reduce a row buffer into a window (per buffer flush).

Inside an instrumented call each numpy operation costs about 1 us of cold interpreter and
numpy code, against ~0.2 us in a tight loop (benchmarks/stats.py, section 4, measures
the whole per-call cost with and without the kernel). The tests hold both to the same
results (``tests/test_stats_kernel.py``). ``MODELOTEL_STATS_KERNEL=numpy`` turns the kernel
off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from modelotel.environment_variables import MODELOTEL_STATS_KERNEL

_logger = logging.getLogger("modelotel")

#: The calling convention this code expects of ``_kernel`` (its ``ABI``; see ``_kernel.c``).
ABI = 2


def _load() -> Any:
    choice = os.environ.get(MODELOTEL_STATS_KERNEL, "auto").strip().lower()
    if choice == "numpy":
        return None
    if choice not in ("", "auto"):
        _logger.warning("%s=%r: expected 'auto' or 'numpy'; using 'auto'",
                        MODELOTEL_STATS_KERNEL, choice)
    try:
        from modelotel.stats import _kernel
    except ImportError:  # installed without a compiler: numpy does the work
        return None
    if getattr(_kernel, "ABI", None) != ABI:
        # a build left from another version of the source (an editable install not rebuilt)
        _logger.warning("modelotel: the compiled statistics kernel is from another version "
                        "(ABI %s, expected %s); using numpy. Reinstall modelotel to rebuild it.",
                        getattr(_kernel, "ABI", None), ABI)
        return None
    return _kernel


_compiled = _load()

#: True when the compiled kernel runs, False when numpy does.
COMPILED: bool = _compiled is not None

#: ``stage(in_dst, in_off, x, out_dst, out_off, y, lo, hi) -> bool | None`` (see
#: ``_kernel.c``), or None without the kernel.
stage: Callable[..., bool | None] | None = _compiled.stage if _compiled is not None else None

#: ``accumulate(X, n, d, T, K, count, mean, m2, nan, inf, lo, hi, ge) -> None`` (see
#: ``_kernel.c``), or None without the kernel.
accumulate: Callable[..., None] | None = (
    _compiled.accumulate if _compiled is not None else None
)
