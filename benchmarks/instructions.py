"""Instructions per call, counted by valgrind (callgrind): a cost figure that load cannot blur.

Usage::

    python benchmarks/instructions.py            # every case, about 3 minutes
    python benchmarks/instructions.py --case core-100

Wall-clock ratios (``overhead.py``, ``stats.py``) move by tens of percent when other
processes share the machine's cores. Instruction counts do not: the same interpreter, code
and inputs execute the same instructions whatever else runs (cache misses and frequency
are not counted, so this is not a substitute for timing; it is what to compare when a
change to the hot path must be shown "no worse" on a busy machine). Each case runs twice
under ``valgrind --tool=callgrind`` in a fresh interpreter, with a short and a long loop
after the same warm-up, and the difference of the two totals divided by the difference of
the loop lengths is the cost of one call; the ratio is against S, a bare OTel span with the
SDK's TracerProvider + BatchSpanProcessor + a discarding exporter, counted the same way.
Needs valgrind (Debian's package); prints nothing else than the table.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

SHORT, LONG = 2_000, 12_000
WARM = 1_000

CASES = {
    "span": "S: bare OTel span (100%, BSP, discard)",
    "core-100": "modelotel 100% sampled, no parts (spans + serving metrics)",
    "all-100": "modelotel 100% sampled, default parts (statistics of a (1, 20) input)",
    "core-1": "modelotel 1% sampled, no parts",
    "stats-32x20": "modelotel 100% sampled, statistics of a 32 x 20 batch, baseline",
}


def _child(case: str, calls: int) -> None:
    """Set the case up, warm it up, then run ``calls`` calls (under valgrind)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np
    from _harness import discarding_meter_provider, discarding_tracer_provider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    import modelotel
    from modelotel._monitor import get_monitor
    from modelotel._runtime import runtime

    rate = 0.01 if case == "core-1" else 1.0
    tp = discarding_tracer_provider(ParentBased(TraceIdRatioBased(rate)))
    mp = discarding_meter_provider()
    x: Any = np.zeros((1, 20))

    def f(v: Any) -> Any:
        return v

    if case == "span":
        tracer = tp.get_tracer("bench")

        def call() -> Any:
            with tracer.start_as_current_span("predict bench"):
                return f(x)

    else:
        options: dict[str, Any] = {}
        if case == "stats-32x20":
            rng = np.random.default_rng(1)
            train = rng.normal(size=(2000, 20))
            options["baseline"] = modelotel.Baseline.from_data(train, outputs=train[:, 0] * 0.3)
            x = rng.normal(size=(32, 20))

            def f(v: Any) -> Any:
                return v[:, 0] * 0.3

        predict = modelotel.instrument(model=f"bench-{case}", version="1", **options)(f)
        runtime.set_providers(tp, mp, None)
        predict(x)
        if case in ("core-100", "core-1"):
            mon = next(iter(runtime.models.values()))
            mon.ends = ()

        def call() -> Any:
            return predict(x)

        del get_monitor
    for _ in range(WARM):
        call()
    for _ in range(calls):
        call()


def _instructions(case: str, calls: int, valgrind: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, os.path.abspath(__file__), "--child", case, str(calls)],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        with open(out) as fh:
            text = fh.read()
    found = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
    if found is None:
        raise RuntimeError("no instruction total in the callgrind output")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return 0
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    cases = args.case or list(CASES)
    if "span" not in cases:
        cases = ["span", *cases]
    per_call: dict[str, float] = {}
    for case in cases:
        short = _instructions(case, SHORT, valgrind)
        long = _instructions(case, LONG, valgrind)
        per_call[case] = (long - short) / (LONG - SHORT)
    s = per_call["span"]
    print(f"instructions per call (callgrind; {LONG - SHORT} calls; ratio to S)")
    for case in cases:
        print(f"{CASES[case]:<74} {per_call[case]:>10.0f}  {per_call[case] / s:6.3f} S")
    return 0


if __name__ == "__main__":
    sys.exit(main())
