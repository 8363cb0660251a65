"""Soak: a long outage (black-holed collector) under steady load; memory and descriptors flat.

``--long``: 30 minutes, RSS and open file descriptors sampled every 30 s; after the first
2 minutes (the bounded queues filling) the RSS slope (least squares) stays below 1 MiB per
10 minutes, and the descriptors within the few sockets the exporters reconnect (no growth).
Short form: 40 s with small queues, sampled every 2 s: no descriptor growth and RSS
within a loose bound once the queues are full (a slope needs the long form).

Every record is still accounted for at the end (the identity of test_accounting_scenarios).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scenarios import (
    accounting,
    clean_env,
    machine_load,
    rss_slope_mib_per_10min,
    run_load,
    summary,
)

from _otlp_sink import BlackHole

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2700)]


def test_blackhole_soak_memory_and_descriptors_stay_flat(
    tmp_path: Path, long_form: bool, figures: list[dict[str, Any]]
) -> None:
    seconds, every, warmup = (1800.0, 30.0, 120.0) if long_form else (40.0, 2.0, 10.0)
    env = clean_env() if long_form else clean_env(
        OTEL_BSP_MAX_QUEUE_SIZE="256", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="64",
        OTEL_BLRP_MAX_QUEUE_SIZE="256", OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="64")
    with BlackHole() as hole:
        run = run_load(hole.url, timeout=seconds + 300, env=env, seconds=seconds, threads=4,
                       rate=50, sample_every=every, shutdown_timeout=3)
    assert run.returncode == 0, run.stderr[-3000:]
    r = run.result
    samples = [s for s in r["samples"] if s[0] <= seconds]  # the load, not the shutdown
    after = [s for s in samples if s[0] >= warmup]
    rss_after = [s[1] for s in after]
    fds = [s[2] for s in samples]
    slope = rss_slope_mib_per_10min(samples, warmup)
    acc = accounting(r, dict.fromkeys(("span", "payload", "outcome"), (0, 0)))
    row = summary("blackhole soak", f"4 threads x 50 calls/s for {seconds:g} s; {machine_load()}",
                  "accepts, never answers", run, acc)
    row.update(section="soak", seconds=seconds, sample_every=every, warmup=warmup,
               rss_slope_mib_per_10min=round(slope, 3),
               rss_at_warmup_mib=round(rss_after[0], 1), rss_end_mib=round(rss_after[-1], 1),
               rss_max_mib=round(max(rss_after), 1), fds_min=min(fds), fds_max=max(fds),
               fds_after_warmup=sorted({s[2] for s in after}),
               threads=sorted({s[3] for s in samples}),
               samples=samples)
    figures.append(row)
    assert r["internal_errors"] == {}
    assert r["unexpected"] == 0
    assert r["hangs"] == 0
    assert acc.unaccounted() == {}
    # descriptors: the exporters' sockets come and go (a timed-out request is closed and
    # reconnected), at most one per signal; nothing accumulates
    assert max(fds) - min(fds) <= 4, fds
    assert max(s[2] for s in after) <= max(s[2] for s in samples if s[0] < warmup) + 1, fds
    if long_form:
        assert slope < 1.0, (slope, samples)
    else:
        assert max(rss_after) - rss_after[0] < 16.0, samples
    assert np.isfinite(slope)
