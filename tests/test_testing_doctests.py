"""The usage example in every module's docstring runs and is right."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import modelotel
from modelotel._runtime import runtime

MODULES = sorted(
    ["modelotel"]
    + [m.name for m in pkgutil.walk_packages(modelotel.__path__, "modelotel.")
       if not m.name.endswith("._kernel")]
)


def test_every_module_is_listed() -> None:
    assert {"modelotel._prediction", "modelotel.stats.drift", "modelotel.testing"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(
    name: str, expect_internal_errors: list[tuple[str, BaseException]]
) -> None:
    saved = runtime.providers()
    try:
        result = doctest.testmod(importlib.import_module(name), verbose=False)
    finally:
        runtime.set_providers(*saved)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no usage example in its docstring"
    # the guard's own example swallows an error on purpose; nothing else may
    swallowed = [(c, str(e)) for c, e in expect_internal_errors]
    assert swallowed == ([("stats", "a bug of ours")] if name == "modelotel._safety" else [])
