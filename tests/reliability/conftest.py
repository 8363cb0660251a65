"""The reliability suite: short form in every test run, long form by hand with ``--long``.

    .venv/bin/python -m pytest tests/reliability                 # short form (CI: ~3 min)
    .venv/bin/python -m pytest tests/reliability --long          # by hand: ~45 min, then
                                                                 # RELIABILITY.md is rewritten
    .venv/bin/python -m pytest -m "not slow"                     # the quick local loop

Every test here is marked ``reliability``; those that take more than a few seconds also
``slow``, and those that start the real collector ``integration``. Each scenario hands its
figures to the ``figures`` fixture; at the end of a ``--long`` run they are written to
RELIABILITY.md at the repository root (a short run writes them next to pytest's temporary
files only: ``--figures PATH`` to keep them).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# the shared endpoints of tests/ and the process harness of tests/integration
for path in (HERE.parent, HERE.parent / "integration", HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

_FIGURES: list[dict[str, Any]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reliability")
    group.addoption("--long", action="store_true", default=False,
                    help="run the reliability suite's long form and rewrite RELIABILITY.md")
    group.addoption("--figures", default="",
                    help="write the reliability figures (JSON) to this file")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def long_form(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--long"))


@pytest.fixture(scope="session")
def figures() -> list[dict[str, Any]]:
    """Each scenario appends one dict: {"section": ..., ...its figures}."""
    return _FIGURES


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _FIGURES:
        return
    config = session.config
    out = config.getoption("--figures", default="")
    long_run = config.getoption("--long", default=False)
    meta = {
        "long": bool(long_run),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_at_end": _machine_load(),
        "commit": _git("rev-parse", "--short", "HEAD"),
    }
    data = {"meta": meta, "figures": _FIGURES}
    cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider
    if out:
        path = Path(out)
    elif cache is not None:
        path = Path(cache.mkdir("reliability")) / "figures.json"
    else:
        path = Path(tempfile.gettempdir()) / "modelotel-reliability-figures.json"
    path.write_text(json.dumps(data, indent=1, default=str))
    if long_run and exitstatus == 0:  # a failed run writes its figures, not RELIABILITY.md
        from report import write_reliability_md

        write_reliability_md(data, REPO / "RELIABILITY.md")


def _machine_load() -> str:
    try:
        return "load average " + ", ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "load average unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=False).stdout.strip()
    except OSError:
        return ""


@pytest.fixture
def otelcol_bin() -> Iterator[Path]:
    """The built collector (tests/run.sh builds it; $MODELOTEL_OTELCOL points at it)."""
    explicit = os.environ.get("MODELOTEL_OTELCOL")
    if explicit:
        path = Path(explicit)
    else:
        cp = subprocess.run(["bash", str(REPO / "collector-config" / "build.sh"), "--path"],
                            capture_output=True, text=True, check=True)
        path = Path(cp.stdout.strip())
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"the modelotel collector is not built ({path}): collector-config/build.sh",
                    pytrace=False)
    return path
