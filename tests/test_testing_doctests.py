"""The usage examples in the core modules' docstrings run and are right."""

from __future__ import annotations

import doctest
import importlib

import pytest

from modelotel import _state

MODULES = [
    "modelotel",
    "modelotel._call",
    "modelotel._instrument",
    "modelotel._monitor",
    "modelotel._observe",
    "modelotel._state",
    "modelotel._suppress",
    "modelotel.config",
    "modelotel.environment_variables",
    "modelotel.rules",
    "modelotel.testing",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    saved = _state.providers()
    try:
        result = doctest.testmod(importlib.import_module(name), verbose=False)
    finally:
        _state.set_providers(*saved)
    assert result.failed == 0
    assert result.attempted > 0
