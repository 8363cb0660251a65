"""Fixtures for the integration tests: the built collector and Debian's Prometheus.

All must be present: tests/run.sh builds the collector (collector-config/build.sh, cached
outside the repository) and installs Prometheus and Alertmanager before running pytest. Run
alone:

    collector-config/build.sh && collector-config/install-prometheus.sh
    .venv/bin/pytest -m integration tests/integration
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import (
    COLLECTOR_CONFIG,
    RULE_FILES,
    Collector,
    Downstream,
    Prometheus,
    Stack,
    collector_env,
    kill_quietly,
)

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # every test here starts real processes (seconds each): out of the quick loop,
    # ``pytest -m "not slow"``; tests/run.sh and CI run them
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture(scope="session")
def alertmanager_binary(prometheus_binary: Path) -> Path:
    """Debian's Alertmanager (package prometheus-alertmanager), or $MODELOTEL_ALERTMANAGER."""
    found = (
        os.environ.get("MODELOTEL_ALERTMANAGER")
        or shutil.which("prometheus-alertmanager")
        or "/usr/bin/prometheus-alertmanager"
    )
    path = Path(found)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"Alertmanager is not installed ({path}): collector-config/install-prometheus.sh "
            "installs it (tests/run.sh runs that), or point MODELOTEL_ALERTMANAGER at one.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def amtool_binary(alertmanager_binary: Path) -> Path:
    path = alertmanager_binary.parent / "amtool"
    if not path.is_file():
        found = shutil.which("amtool")
        if found is None:
            pytest.fail("amtool is not installed (Debian's prometheus-alertmanager has it)",
                        pytrace=False)
        path = Path(found)
    return path


@pytest.fixture(scope="session")
def stack(
    otelcol_binary: Path, prometheus_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Downstream backend + Prometheus (our rules loaded, scraping the collector's own metrics)
    + our collector with collector-config/base.yaml, for the whole session."""
    wd = tmp_path_factory.mktemp("stack")
    downstream = Downstream(otelcol_binary, wd)
    collector: Collector | None = None
    prometheus: Prometheus | None = None
    try:
        downstream.start()
        env = collector_env(wd, MODELOTEL_COLLECTOR_TRACES_ENDPOINT=downstream.endpoint)
        env["MODELOTEL_COLLECTOR_LOGS_ENDPOINT"] = downstream.endpoint
        prometheus = Prometheus(
            prometheus_binary,
            wd,
            rule_files=RULE_FILES,
            scrape_targets=[f"127.0.0.1:{env['MODELOTEL_COLLECTOR_TELEMETRY_PORT']}"],
        )
        prometheus.start()
        env["MODELOTEL_COLLECTOR_PROMETHEUS_ENDPOINT"] = prometheus.remote_write_url
        collector = Collector(
            otelcol_binary, [COLLECTOR_CONFIG / "base.yaml"], env, wd, name="otelcol"
        )
        collector.start()
        yield Stack(wd, downstream, prometheus, collector)
    finally:
        kill_quietly(collector, downstream, prometheus)
