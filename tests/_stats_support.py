"""Shared checks of the statistics tests: a shortcut leaves what the general reader leaves.

Example:
    >>> fast, general, taken = shortcut_and_general(  # doctest: +SKIP
    ...     monkeypatch, [side_module], "block_columns", lambda *a: None,
    ...     lambda args, got: got is not None, run)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest


def use_kernel(monkeypatch: pytest.MonkeyPatch, compiled: bool) -> None:
    """Run the statistics with the compiled kernel (skip the test where it is not built) or,
    ``compiled=False``, with its numpy twin (every kernel function switched off)."""
    from modelotel.stats import kernel

    if not compiled:
        for name in kernel.FUNCTIONS:
            monkeypatch.setattr(kernel, name, None)
    elif not kernel.COMPILED:
        pytest.skip("the C kernel is not built here")


def same_side(a: Any, b: Any) -> None:
    """Two closed windows of one side agree in schema, statistics, drift, checks, totals."""
    assert a is not None
    assert b is not None
    assert a.plan.names == b.plan.names
    assert a.gauges == b.gauges
    assert a.drift == b.drift
    assert a.checks == b.checks
    ta, tb = a.totals, b.totals
    assert (ta.seen, ta.null, ta.nan, ta.inf) == (tb.seen, tb.null, tb.nan, tb.inf)
    assert ta.bins == tb.bins


def shortcut_and_general(
    monkeypatch: pytest.MonkeyPatch,
    modules: Sequence[Any],
    name: str,
    decline: Callable[..., Any],
    taken_if: Callable[[tuple[Any, ...], Any], bool],
    run: Callable[[], Any],
) -> tuple[Any, Any, int]:
    """``run()`` twice: with the shortcut function ``name`` of ``modules`` counted (how often
    ``taken_if(args, result)``), then with ``decline`` in its place (the general reader
    takes everything). Returns both results and the count."""
    real = getattr(modules[0], name)
    taken = [0]

    def counted(*args: Any) -> Any:
        got = real(*args)
        taken[0] += taken_if(args, got)
        return got

    for module in modules:
        monkeypatch.setattr(module, name, counted)
    fast = run()
    for module in modules:
        monkeypatch.setattr(module, name, decline)
    return fast, run(), taken[0]
