"""Load for the collector sizing: the contrib load generator ``telemetrygen``.

    proc = start("4317", "spans", rate=5000, seconds=10)   # OTLP/gRPC to 127.0.0.1:4317

Items are shaped like modelotel's (span and data point attributes ``ml.model.name`` ...;
payload records with the event name ``ml.prediction.payload`` and input / output attributes,
so that they take the collector's redacted payload pipeline), sent in requests of 512 items.
telemetrygen is installed with ``go install`` at the collector's release into the collector's
cache directory when it is missing (or taken from ``$MODELOTEL_TELEMETRYGEN``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VERSION = "v0.161.0"  # the collector's release (builder.yaml)
SUBCOMMANDS = {"spans": "traces", "metric_points": "metrics", "payload_records": "logs"}

#: attributes like modelotel's (docs/telemetry.md); telemetrygen sets them on every item
SPAN_ATTRS = [
    'ml.model.name="churn"', 'ml.model.version="3"', 'ml.prediction.id="5f1c2e9a7b3d4c01"',
    "ml.input.rows=16", "ml.input.features=12", "ml.payload.sampled=false",
]  # fmt: skip
POINT_ATTRS = ['ml.model.name="churn"', 'ml.model.version="3"', 'ml.feature="income"']
PAYLOAD_ATTRS = [
    'event.name="ml.prediction.payload"', 'ml.model.name="churn"', 'ml.model.version="3"',
    'ml.prediction.id="5f1c2e9a7b3d4c01"', 'ml.payload.sample_reason="random"',
    "ml.payload.bytes=412", 'ml.input.age="[34, 51, 29, 62]"',
    'ml.input.income="[4100.5, 7200.0, 3900.25, 12000.0]"',
    'ml.input.note="[\\"customer key sk_live_ABCDEFGH12345678\\", \\"renewal\\", \\"\\", \\"\\"]"',
    'ml.input.email="[\\"a.b@example.com\\", \\"\\", \\"\\", \\"\\"]"',
    'ml.output="[0.12, 0.87, 0.45, 0.03]"',
]  # fmt: skip


def telemetrygen_binary() -> Path:
    explicit = os.environ.get("MODELOTEL_TELEMETRYGEN")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("MODELOTEL_CACHE", Path.home() / ".cache" / "modelotel"))
    gobin = cache / "bin" / f"telemetrygen-{VERSION}"
    binary = gobin / "telemetrygen"
    if not binary.exists():
        print(f"installing telemetrygen {VERSION} into {gobin}", file=sys.stderr)
        module = "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen"
        subprocess.run(
            ["go", "install", f"{module}@{VERSION}"],
            env={**os.environ, "GOBIN": str(gobin)},
            check=True,
        )
    return binary


def start(
    grpc_port: str, kind: str, rate: float, seconds: float, workers: int = 8
) -> subprocess.Popen[bytes]:
    sub = SUBCOMMANDS[kind]
    argv = [
        str(telemetrygen_binary()), sub, "--otlp-endpoint", f"127.0.0.1:{grpc_port}",
        "--otlp-insecure", "--workers", str(workers), "--rate", f"{rate / workers:.3f}",
        "--duration", f"{seconds}s", "--batch-size", "512", "--allow-export-failures",
        "--service", "sizing-model",
    ]  # fmt: skip
    attrs = {"spans": SPAN_ATTRS, "metric_points": POINT_ATTRS, "payload_records": PAYLOAD_ATTRS}
    for a in attrs[kind]:
        argv += ["--telemetry-attributes", a]
    if kind == "spans":
        argv += ["--child-spans", "0", "--span-duration", "3ms"]
    elif kind == "metric_points":
        argv += ["--metric-type", "Sum", "--aggregation-temporality", "cumulative"]
    else:
        argv += ["--body", "prediction payload"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
