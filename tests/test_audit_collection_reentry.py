"""Audit: an instrumented predict called from inside a metric collection never hangs.

A health gauge whose callback runs a canary prediction calls the model while the SDK holds
its collection lock. If that is the first call of the provider, modelotel creates its
statistics instruments, and the SDK registers an instrument under that same lock: before
the fix the predict call (and the metric reader) waited forever. The scenario runs in a
subprocess so that a regression fails on the timeout instead of hanging the suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent(
    """
    import time
    import numpy as np
    import modelotel
    from modelotel import _safety
    from modelotel._runtime import runtime
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    _safety.set_strict(True)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    runtime.set_providers(TracerProvider(), provider, None)

    @modelotel.instrument(model="canary")
    def predict(x):
        return np.array([1.0])

    def canary(options):
        assert predict(np.ones((1, 2)))[0] == 1.0   # the first call of the provider
        return [Observation(1)]

    provider.get_meter("app").create_observable_gauge("app.canary", callbacks=[canary])
    counts = []
    for _ in range(20):
        data = reader.get_metrics_data()
        counts = [p.value
                  for rm in data.resource_metrics for sm in rm.scope_metrics
                  for m in sm.metrics if m.name == "ml.feature.count"
                  for p in m.data.data_points]
        if counts:
            break
        time.sleep(0.05)
    print("counts", sorted(counts), "errors", len(_safety.health.strict_errors))
    """
)


def test_first_predict_inside_a_metric_callback_does_not_hang() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    # the statistics instruments were registered once the collection ended, and the counts
    # of the canary calls made so far are reported (2 features, 1 row per call)
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("counts [")
    assert line.endswith("errors 0")
    counts = [int(v) for v in line[len("counts ["):line.index("]")].split(", ")]
    assert len(counts) == 2
    assert counts[0] == counts[1] >= 2
