"""Runs an example of examples/ against the tests' collector, as examples/run_example.sh
does, and reads the JSON summary it prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest
from harness import REPO, Stack

EXAMPLES = REPO / "examples"


def run_example(
    stack: Stack,
    name: str,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 240.0,
) -> subprocess.CompletedProcess[str]:
    """Run examples/NAME/main.py against ``stack``'s collector (OTLP/HTTP), with the variables
    examples/run_example.sh sets; fails the test with the example's output if it fails."""
    full = dict(os.environ)
    full.update(stack.otlp_env("http/protobuf"))
    full.pop("OTEL_SERVICE_NAME", None)  # each example names its service
    full.update(
        MODELOTEL_EXAMPLE_DIR=str(stack.workdir / name),
        MODELOTEL_EXAMPLE_PROMETHEUS=stack.prometheus.url,
        MODELOTEL_EXAMPLE_RULES_DIR=str(stack.prometheus.rules_dir),
    )
    # an example exports its last metrics at shutdown; on this shared, loaded machine the
    # default 5 s deadline can cut that export, which every assertion on totals counts on
    full.setdefault("MODELOTEL_SHUTDOWN_TIMEOUT", "30")
    (stack.workdir / name).mkdir(exist_ok=True)
    full.update(env or {})
    cp = subprocess.run(
        [sys.executable, str(EXAMPLES / name / "main.py"), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    (stack.workdir / name / "main.out").write_text(cp.stdout)  # kept for a failure's reader
    (stack.workdir / name / "main.err").write_text(cp.stderr)
    if cp.returncode != 0:
        pytest.fail(f"examples/{name}/main.py failed (rc={cp.returncode}):\n"
                    f"{cp.stdout[-3000:]}\n{cp.stderr[-5000:]}", pytrace=False)
    return cp


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON summary an example prints as its last line."""
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def assert_fleet_equals_one_process(fleet: dict[str, Any]) -> None:
    """The fleet check of examples/fleet.py (spark_batch, ray_data): the bins summed over the
    replicas in Prometheus equal one process over all rows, and only the shifted column drifts."""
    assert fleet["bins"] == 5 * 12  # 10 deciles, below and above, per column
    assert fleet["mismatched_bins"] == 0
    assert fleet["max_abs_error"] <= 1e-9
    assert len(fleet["columns"]) == 5  # 4 features and the output
    psi = {c: v["fleet_psi"] for c, v in fleet["columns"].items()}
    assert psi["feature:monthly_charges"] > 0.1  # shifted by half a standard deviation
    for column in ("feature:tenure_months", "feature:support_calls", "feature:age"):
        assert psi[column] < 0.05
