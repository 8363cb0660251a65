"""Serve examples/fastapi/app.py with gunicorn (2 uvicorn workers, --preload), send it requests
and feedback as a client would, stop it, and print a JSON summary as the last line.

    bash examples/run_example.sh fastapi                      # through the bundled collector
    .venv/bin/python examples/fastapi/main.py --requests 400  # to $OTEL_EXPORTER_OTLP_ENDPOINT

Every other prediction gets its true outcome posted to /feedback a moment later.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        answer: dict[str, Any] = json.load(r)
        return answer


def customer(i: int, rng: np.random.Generator) -> tuple[dict[str, Any], int]:
    """The record of customer ``i`` as the API receives it, and whether that customer churns."""
    record = {
        "customer_id": f"cust-{i:05d}",
        "email": f"customer{i}@example.com",
        "tenure_months": float(rng.gamma(2.0, 12.0)),
        "monthly_charges": float(rng.normal(70.0, 20.0)),
        "support_calls": float(rng.poisson(1.5)),
        "age": float(rng.normal(45.0, 12.0)),
    }
    logit = (0.04 * (record["monthly_charges"] - 70) + 0.6 * (record["support_calls"] - 1.5)
             - 0.05 * (record["tenure_months"] - 24))
    return record, int(rng.random() < 1 / (1 + np.exp(-logit)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    # the HMAC key of hash_fields: a real service reads it from its secret store
    env.setdefault("MODELOTEL_PAYLOAD_HMAC_KEY", "example-key-change-me")
    log = Path(os.environ.get("MODELOTEL_EXAMPLE_DIR") or tempfile.mkdtemp()) / "gunicorn.log"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with log.open("ab") as out:
        server = subprocess.Popen(
            [str(gunicorn), "app:app", "-k", "uvicorn.workers.UvicornWorker",
             "-w", str(args.workers), "--preload", "--bind", f"127.0.0.1:{port}",
             "--graceful-timeout", "20"],
            cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print(log.read_text()[-3000:], file=sys.stderr)
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.2)

        rng = np.random.default_rng(2024)
        pids: dict[int, int] = {}
        answers = []
        for i in range(args.requests):
            record, actual = customer(i, rng)
            answer = post(f"{base}/predict", record)
            pids[answer["pid"]] = pids.get(answer["pid"], 0) + 1
            answers.append((record["customer_id"], answer, actual))
        feedback = 0
        for _, answer, actual in answers[::2]:  # the labels of every other prediction arrive
            post(f"{base}/feedback", {"prediction_id": answer["prediction_id"],
                                      "actual": actual, "predicted": answer["churn"]})
            feedback += 1
    finally:
        server.send_signal(signal.SIGTERM)  # workers flush in the app's lifespan shutdown
        server.wait(timeout=60)
    correct = sum(a["churn"] == y for _, a, y in answers[::2])
    print(f"{args.requests} predictions served by {len(pids)} workers {sorted(pids.values())}; "
          f"{feedback} outcomes posted to /feedback, {correct} of them predicted right")
    print(json.dumps({
        "requests": args.requests, "workers": len(pids), "feedback": feedback,
        "correct": correct, "server_rc": server.returncode,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
