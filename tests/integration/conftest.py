"""Fixtures for the integration tests: the built collector and Debian's Prometheus.

Both must be present: tests/run.sh builds the collector (collector-config/build.sh, cached
outside the repository) and installs Prometheus before running pytest. Run alone:

    collector-config/build.sh && apt-get install -y prometheus
    .venv/bin/pytest -m integration tests/integration
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from harness import COLLECTOR_CONFIG


@pytest.fixture(scope="session")
def otelcol_binary() -> Path:
    """The otelcol-modelotel binary: $MODELOTEL_OTELCOL, else build.sh's cache path."""
    explicit = os.environ.get("MODELOTEL_OTELCOL")
    if explicit:
        path = Path(explicit)
    else:
        out = subprocess.run(
            ["bash", str(COLLECTOR_CONFIG / "build.sh"), "--path"],
            capture_output=True,
            text=True,
            check=True,
        )
        path = Path(out.stdout.strip())
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"the modelotel collector is not built: no executable at {path}. Build it with "
            "collector-config/build.sh (tests/run.sh does this), or point MODELOTEL_OTELCOL at "
            "an otelcol-modelotel binary.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def prometheus_binary() -> Path:
    """Debian's Prometheus (apt-get install prometheus), or $MODELOTEL_PROMETHEUS."""
    found = (
        os.environ.get("MODELOTEL_PROMETHEUS")
        or shutil.which("prometheus")
        or "/usr/bin/prometheus"
    )
    path = Path(found)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"Prometheus is not installed ({path}): apt-get install -y prometheus "
            "(tests/run.sh does this), or point MODELOTEL_PROMETHEUS at a prometheus binary.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def promtool_binary(prometheus_binary: Path) -> Path:
    path = prometheus_binary.parent / "promtool"
    if not path.is_file():
        found = shutil.which("promtool")
        if found is None:
            pytest.fail(
                "promtool is not installed (Debian's prometheus package has it)", pytrace=False
            )
        path = Path(found)
    return path
