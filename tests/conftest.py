"""Shared fixtures: every test runs in modelotel's strict mode.

The quick local loop leaves out what takes more than about 2 s alone (every test under
tests/integration, the reliability scenarios, subprocess and build tests, 100,000-call
memory checks: marked ``slow``)::

    .venv/bin/python -m pytest -m "not slow"

``bash tests/run.sh`` (and CI) runs everything.

A test that changes a ``MODELOTEL_*`` variable calls ``runtime.reload_settings()`` after it:
modelotel parses its environment once (``modelotel._settings``), not at every use.

A swallowed internal error (anything that went through ``modelotel._safety``'s guard) fails
the test that caused it, unless the test asks for ``expect_internal_errors`` and checks what
it got.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from modelotel import _safety
from modelotel._payload.worker import drain_payloads
from modelotel._runtime import runtime

# CI replays the same examples every run (no flakes from a new random draw on a clean clone);
# locally hypothesis explores fresh examples each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _strict_mode(request: pytest.FixtureRequest) -> Iterator[None]:
    _safety.set_strict(True)
    _safety.health.reset()
    yield
    # payload records of the test's calls are finished (and their errors counted) now
    drain_payloads(30.0)
    # the settings are the environment as modelotel parsed it: a test that changed the
    # environment (monkeypatch, already undone here) leaves them as they were before it
    runtime.reload_settings()
    # each test's models leave the registry (a model in use comes back at its next call):
    # every collection reads every registered model, and a session registers thousands
    runtime.retire_models()
    _safety.set_strict(True)
    errors = list(_safety.health.strict_errors)
    _safety.health.reset()
    if errors and "expect_internal_errors" not in request.fixturenames:
        details = "; ".join(f"{component}: {exc!r}" for component, exc in errors)
        pytest.fail(f"modelotel swallowed internal errors: {details}")


@pytest.fixture
def expect_internal_errors() -> list[tuple[str, BaseException]]:
    """The list of internal errors swallowed during the test (the test must assert on it)."""
    return _safety.health.strict_errors
