"""examples/spark_batch: PySpark (local mode, 2 Python worker processes) scoring through
mapInPandas; every worker exports through the real collector, and the fleet drift that
Prometheus computes from their summed bin counters (lifetime form of `modelotel rules`)
equals one process's drift over all rows."""

from __future__ import annotations

import re
from typing import Any

import pytest
from examples_support import assert_fleet_equals_one_process, last_json, run_example
from harness import Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

ROWS, REPEATS = 40_000, 1


def test_spark_workers_all_export_and_fleet_drift_equals_one_process(stack: Stack) -> None:
    cp = run_example(stack, "spark_batch", ["--rows", str(ROWS), "--repeats", str(REPEATS),
                                            "--partitions", "4"], timeout=400)
    summary = last_json(cp.stdout)
    passes = summary["instrumented_passes"]
    assert passes == REPEATS + 1  # the warm-up job is instrumented too
    assert len(summary["worker_pids"]) >= 2

    def spans() -> list[dict[str, Any]]:
        got = [s for s in stack.downstream.spans()
               if s["_resource"].get("service.name") == "spark-batch-scoring"]
        return got if sum(s["_attrs"]["ml.input.rows"] for s in got) >= ROWS * passes else []

    got = wait_until(spans, 60, what="every scored row in the workers' spans")
    assert sum(s["_attrs"]["ml.input.rows"] for s in got) == ROWS * passes
    assert {s["name"] for s in got} == {"predict batch-scorer"}
    # every worker process exported, each under its own instance id
    assert len({s["_resource"]["service.instance.id"] for s in got}) >= 2
    assert {s["_resource"]["process.pid"] for s in got} == set(summary["worker_pids"])

    assert_fleet_equals_one_process(summary["fleet"])
    assert summary["overhead_ratio_wall"] > 0
    assert summary["overhead_ratio_worker_cpu"] > 0
    assert re.search(r"overhead ratio \d+\.\d{3}", cp.stdout)
