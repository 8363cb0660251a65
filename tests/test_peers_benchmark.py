"""benchmarks/peers.py without traceloop-sdk: its figures are the added costs over the bare
function, divided by S's and by traceloop's, and a missing traceloop is a message, not a
traceback. (The real comparison needs traceloop-sdk: benchmarks/requirements-peers.txt.)"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def peers(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import their siblings
    import peers

    return peers


def _busy(n: int) -> None:
    sum(range(n))


def test_peers_figures_are_added_cost_divided_by_s_and_by_traceloop(peers: ModuleType) -> None:
    from serving import BARE, SPAN

    # stand-ins: S, "modelotel" and "traceloop" each do more work than the bare function
    def make() -> int:
        return 0

    variants = [
        (BARE, lambda x: None, make),
        (SPAN, lambda x: _busy(20_000), make),
        (peers.FN_BARE, lambda x: None, make),
        (peers.MODELOTEL, lambda x: _busy(10_000), make),
        (peers.TRACELOOP, lambda x: _busy(40_000), make),
    ]
    results = peers.measure(variants, peers.LABELS, quick=True, rounds=10_000, pause_ms=0.0)
    assert results["paced"]["S"]["calls"] == 30  # --quick semantics, whatever rounds says
    paced, loop = results["paced"], results["loop"]
    for label in peers.LABELS:
        assert paced[label]["p50_ratio"] == paced[label]["added_p50_us"] / paced["S"][
            "added_p50_us"]
        assert paced[label]["p99_ratio"] == paced[label]["added_p99_us"] / paced["S"][
            "added_p99_us"]
        assert loop[label]["ratio"] == loop[label]["added_us"] / loop["S"]["added_us"]
        assert loop[label]["cpu_ratio"] == loop[label]["cpu_added_us"] / loop["S"]["cpu_added_us"]
    cmp_ = results["modelotel_over_traceloop"]
    m, t = peers.MODELOTEL, peers.TRACELOOP
    assert cmp_ == {
        "paced_p50": paced[m]["added_p50_us"] / paced[t]["added_p50_us"],
        "paced_p99": paced[m]["added_p99_us"] / paced[t]["added_p99_us"],
        "loop_us": loop[m]["added_us"] / loop[t]["added_us"],
        "loop_cpu": loop[m]["cpu_added_us"] / loop[t]["cpu_added_us"],
    }
    assert all(math.isfinite(v) for v in cmp_.values())

    # the table prints those figures: a hand-made result, so every cell is known
    def row(a50: float, a99: float, lu: float, cpu: float) -> dict[str, float]:
        return {"added_p50_us": a50, "p50_ratio": a50 / 10, "added_p99_us": a99,
                "p99_ratio": a99 / 40, "added_us": lu, "ratio": lu / 5,
                "cpu_added_us": cpu, "cpu_ratio": cpu / 8}

    made = {
        "paced": {"S": {"added_p50_us": 10.0, "added_p99_us": 40.0, "bare_p50_us": 2.0,
                        "calls": 30},
                  m: row(15.0, 60.0, 0, 0), t: row(30.0, 20.0, 0, 0)},
        "loop": {"S": {"added_us": 5.0, "cpu_added_us": 8.0},
                 m: row(0, 0, 10.0, 12.0), t: row(0, 0, 20.0, 48.0)},
    }
    made["modelotel_over_traceloop"] = peers.compare(made)
    assert made["modelotel_over_traceloop"] == {
        "paced_p50": 0.5, "paced_p99": 3.0, "loop_us": 0.5, "loop_cpu": 0.25}
    text = peers.table(made)
    assert "| S: bare span | 10.0 | 1.00 | 40.0 | 1.00 | 5.0 | 1.00 | 8.0 | 1.00 |" in text
    assert "| modelotel | 15.0 | 1.50 | 60.0 | 1.50 | 10.0 | 2.00 | 12.0 | 1.50 |" in text
    assert "| traceloop @task | 30.0 | 3.00 | 20.0 | 0.50 | 20.0 | 4.00 | 48.0 | 6.00 |" in text
    assert "paced_p50 0.50, paced_p99 3.00, loop_us 0.50, loop_cpu 0.25" in text


def test_peers_without_traceloop_says_how_to_install_it(
    peers: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [k for k in sys.modules if k == "traceloop" or k.startswith("traceloop.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "traceloop", None)  # import traceloop.sdk -> ImportError
    for key in peers.TRACELOOP_ENV:  # main sets them: restored after the test
        monkeypatch.setenv(key, "set-by-test")

    assert peers.main(["--quick"]) == 2

    err = capsys.readouterr().err
    assert "needs traceloop-sdk" in err
    assert "pip install -e \".[pandas]\" -r benchmarks/requirements-peers.txt" in err
    assert "Traceback" not in err
