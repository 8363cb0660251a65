"""modelotel against traceloop-sdk's ``@task`` on the same dict record, through one exporter.

Usage (traceloop-sdk is not a dependency of modelotel: use a separate environment)::

    python3.11 -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install -e ".[pandas]" -r benchmarks/requirements-peers.txt
    /tmp/peers-venv/bin/python benchmarks/peers.py                 # full run (about 30 s)
    /tmp/peers-venv/bin/python benchmarks/peers.py --quick         # smoke run
    /tmp/peers-venv/bin/python benchmarks/peers.py --json out.json # also write the figures

``MODELOTEL_OTELCOL`` names a collector binary already built (else collector-config/build.sh).

One process, one input: the "dict record" case of benchmarks/serving.py (a dict of 20 floats
``f0..f19`` scored by ``float(sum(r.values()))``), timed as

- the bare function;
- S, the reference: the function inside a bare span of the global tracer provider;
- ``modelotel.instrument(...)`` with default options, ``payload_sample_rate=0.01`` and a
  ``Baseline.from_data`` of the same 500 training records serving.py uses;
- traceloop-sdk's ``@task`` decorator with its defaults (it serialises the arguments and the
  result to JSON span attributes on every call: ``TRACELOOP_TRACE_CONTENT``, default on;
  ``--traceloop-content off`` turns that off).

Every span goes through the SAME pipeline: the bundled collector (serving.py's ``collector()``,
OTLP/HTTP in, discarding exporter) and ``modelotel.configure()``, which sets the global
tracer provider with its BatchSpanProcessor and OTLP exporter. traceloop is then initialised
so that it installs neither a provider nor an exporter: ``Traceloop.init`` reuses the global
SDK provider when one is set, and ``processor=[]`` (its list-of-processors form, empty) adds
no span processor to it, so its spans leave through modelotel's batch processor and
exporter. A side effect of that choice: traceloop's own ``on_start`` hook (which copies
workflow and association values from the context onto spans; there are none here) is not
installed. traceloop's metrics and logs are off (``TRACELOOP_METRICS_ENABLED=false``; logs are
off by default), its auto-instrumentation of other libraries is off (``instruments=set()``:
the function calls none, and the requests/urllib3 instrumentations would trace the
exporter's own requests), and its telemetry is off (``TRACELOOP_TELEMETRY=false``,
``telemetry_enabled=False``). Nothing is sent anywhere but the local collector. The script
checks that traceloop's tracer feeds the global provider's span processor before timing.

Sections, as serving.py (whose helpers this script imports):

(a) **paced**: calls interleaved in shuffled order, each preceded by cache-evicting numpy
    work and a short sleep; added p50 and p99 against the bare function, ratios to S's.
(b) **loop**: one worker thread calls back to back; added microseconds per call and process
    CPU per call (export threads and a flush included), ratios to S's.

The last lines compare the two libraries: modelotel's added cost over traceloop's (below 1:
modelotel is lower).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np
from serving import (
    BARE,
    SPAN,
    Variant,
    _inputs,
    _uptime,
    collector,
    loop,
    paced,
    report,
)

CASE = "dict record"
FN_BARE = f"{CASE} | bare function"
MODELOTEL = f"{CASE} | modelotel"
TRACELOOP = f"{CASE} | traceloop @task"
LABELS = [MODELOTEL, TRACELOOP]

MISSING_TRACELOOP = (
    "benchmarks/peers.py needs traceloop-sdk, which modelotel does not depend on. Install it "
    "in a separate environment:\n"
    "    python3.11 -m venv /tmp/peers-venv\n"
    '    /tmp/peers-venv/bin/pip install -e ".[pandas]" -r benchmarks/requirements-peers.txt\n'
    "    /tmp/peers-venv/bin/python benchmarks/peers.py"
)

def traceloop_missing() -> str | None:
    """None when traceloop-sdk can be imported, else the message that says how to install it."""
    try:
        import traceloop.sdk  # noqa: F401
    except ImportError as e:
        return f"{MISSING_TRACELOOP}\n(import failed: {e})"
    return None


TRACELOOP_ENV = ("TRACELOOP_TELEMETRY", "TRACELOOP_METRICS_ENABLED", "TRACELOOP_LOGGING_ENABLED",
                 "TRACELOOP_SUPPRESS_WARNINGS", "TRACELOOP_TRACE_CONTENT")


def _set_traceloop_env(content: bool) -> None:
    # read by traceloop at import, at init, or per call (TRACE_CONTENT): set before all three
    values = ("false", "false", "false", "true", "true" if content else "false")
    os.environ.update(zip(TRACELOOP_ENV, values, strict=True))


def init_traceloop(endpoint: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``Traceloop.init`` on the global provider, adding no processor; returns ``task``."""
    import contextlib
    import io

    from opentelemetry import trace
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import task
    from traceloop.sdk.tracing.tracing import TracerWrapper

    provider: Any = trace.get_tracer_provider()
    before = tuple(provider._active_span_processor._span_processors)
    # init prints coloured banners; keep the table readable
    with contextlib.redirect_stdout(io.StringIO()):
        Traceloop.init(
            app_name="modelotel-peers-bench",
            api_endpoint=endpoint,  # not the hosted default: no API key check, no client
            processor=[],
            disable_batch=False,
            telemetry_enabled=False,
            instruments=set(),
        )
    # its spans must reach the same processor (hence exporter) as S's and modelotel's
    tracer = TracerWrapper().get_tracer()
    if (trace.get_tracer_provider() is not provider
            or tuple(provider._active_span_processor._span_processors) != before
            or getattr(tracer, "span_processor", None) is not provider._active_span_processor):
        raise RuntimeError("traceloop did not reuse the global tracer provider as configured")
    return task


def build_variants(endpoint: str) -> list[Variant]:
    """bare, S, the bare function again under the case's label, modelotel, traceloop."""
    from opentelemetry import trace

    import modelotel

    make, score, train = _inputs(np.random.default_rng(7))[CASE]
    tracer = trace.get_tracer("bench")

    def spanned(record: Any) -> Any:
        with tracer.start_as_current_span("p"):
            return score(record)

    baseline = modelotel.Baseline.from_data(train, outputs=[score(t) for t in train])
    inst = modelotel.instrument(model="peers-dict-record", version="1", baseline=baseline,
                                payload_sample_rate=0.01)(score)
    task = init_traceloop(endpoint)
    tl = task(name="score_record")(score)
    record = make()
    if inst(record) != score(record) or tl(record) != score(record):  # also warms both
        raise RuntimeError("an instrumented function changed the result")
    # each call gets a record of its own, parsed from the request's JSON (serving.py's)
    return [
        (BARE, score, make),
        (SPAN, spanned, make),
        (FN_BARE, score, make),
        (MODELOTEL, inst, make),
        (TRACELOOP, tl, make),
    ]


def measure(
    variants: list[Variant], labels: list[str], quick: bool, rounds: int, pause_ms: float
) -> dict[str, Any]:
    """serving.py's paced and loop sections on ``variants``, with the peers comparison."""
    out: dict[str, Any] = {
        "paced": paced(variants, labels, 30 if quick else rounds, pause_ms / 1e3),
        "loop": loop(variants, labels, 2 if quick else 5, 0.02 if quick else 0.25),
    }
    if MODELOTEL in labels and TRACELOOP in labels:
        out["modelotel_over_traceloop"] = compare(out)
    return out


def compare(results: dict[str, Any]) -> dict[str, float]:
    """modelotel's added cost divided by traceloop's, per figure (below 1: modelotel lower)."""
    p, lp = results["paced"], results["loop"]
    return {
        "paced_p50": p[MODELOTEL]["added_p50_us"] / p[TRACELOOP]["added_p50_us"],
        "paced_p99": p[MODELOTEL]["added_p99_us"] / p[TRACELOOP]["added_p99_us"],
        "loop_us": lp[MODELOTEL]["added_us"] / lp[TRACELOOP]["added_us"],
        "loop_cpu": lp[MODELOTEL]["cpu_added_us"] / lp[TRACELOOP]["cpu_added_us"],
    }


def table(results: dict[str, Any]) -> str:
    """The markdown table of S, modelotel and traceloop, and the comparison line."""
    p, lp = results["paced"], results["loop"]
    rows = [("S: bare span", p["S"]["added_p50_us"], 1.0, p["S"]["added_p99_us"], 1.0,
             lp["S"]["added_us"], 1.0, lp["S"]["cpu_added_us"], 1.0)]
    for label in (k for k in p if k != "S"):
        a, b = p[label], lp[label]
        rows.append((label.split(" | ")[1], a["added_p50_us"], a["p50_ratio"], a["added_p99_us"],
                     a["p99_ratio"], b["added_us"], b["ratio"], b["cpu_added_us"],
                     b["cpu_ratio"]))
    lines = [
        f"{CASE}, {p['S']['calls']} paced calls per variant; bare function p50 "
        f"{p['S']['bare_p50_us']:.1f} us",
        "",
        "| added per call | paced p50 us | x S | paced p99 us | x S | loop us | x S "
        "| loop CPU us | x S |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, *v in rows:
        lines.append(f"| {name} | " + " | ".join(
            f"{x:.1f}" if i % 2 == 0 else f"{x:.2f}" for i, x in enumerate(v)) + " |")
    cmp_ = results.get("modelotel_over_traceloop")
    if cmp_:
        lines += ["", "modelotel / traceloop (added cost; below 1: modelotel lower): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in cmp_.items())]
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("modelotel", "traceloop-sdk", "opentelemetry-sdk",
                 "opentelemetry-exporter-otlp-proto-http"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--rounds", type=int, default=2000, help="paced calls per variant")
    p.add_argument("--pause-ms", type=float, default=1.0)
    p.add_argument("--traceloop-content", choices=("on", "off"), default="on",
                   help="TRACELOOP_TRACE_CONTENT: JSON of inputs/outputs on spans (its default)")
    args = p.parse_args(argv)
    _set_traceloop_env(args.traceloop_content == "on")
    missing = traceloop_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 2
    import modelotel

    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(1 << 20)  # nothing dropped: see serving.py
    os.environ["OTEL_BLRP_MAX_QUEUE_SIZE"] = str(1 << 18)
    results: dict[str, Any] = {"uptime": _uptime(), "python": sys.version.split()[0],
                               "versions": _versions(),
                               "traceloop_content": args.traceloop_content}
    with collector() as endpoint:
        modelotel.configure("modelotel-peers-bench", endpoint=endpoint,
                            protocol="http/protobuf",
                            export_interval_ms=1000 if args.quick else 2000)
        try:
            variants = build_variants(endpoint)
            results.update(measure(variants, LABELS, args.quick, args.rounds, args.pause_ms))
        finally:
            modelotel.shutdown()
    print(f"uptime: {results['uptime']}")
    return report(results, table(results), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
