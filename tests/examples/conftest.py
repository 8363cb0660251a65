"""Fixtures for the examples' tests: the real collector, backend and Prometheus of
tests/integration (its harness and fixtures, shared rather than copied). The runner of the
examples is examples_support.py beside this file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(INTEGRATION))

_spec = importlib.util.spec_from_file_location("integration_fixtures", INTEGRATION / "conftest.py")
assert _spec is not None
assert _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
otelcol_binary = _fixtures.otelcol_binary
prometheus_binary = _fixtures.prometheus_binary
stack = _fixtures.stack

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # every example runs real processes (tens of seconds each): out of the quick loop,
    # ``pytest -m "not slow"``; tests/run.sh and CI run them
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
