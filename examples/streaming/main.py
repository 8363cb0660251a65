"""Serve examples/streaming/app.py with uvicorn, ask it for stories as a client would (each
reply read as it streams in), stop it, and print a JSON summary as the last line.

    bash examples/run_example.sh streaming                       # through the bundled collector
    .venv/bin/python examples/streaming/main.py --requests 20    # to $OTEL_EXPORTER_OTLP_ENDPOINT
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

from story import FIRST_TOKEN_WAIT, reply

HERE = Path(__file__).resolve().parent
HEROES = ["a dragon", "the old lighthouse keeper", "two robots", "a very small cat",
          "the queen of the northern islands"]
DEEDS = ["learned to sing", "found a map", "lost the key to the moon",
         "built a boat out of letters"]


def prompt(i: int) -> str:
    return f"{HEROES[i % len(HEROES)]} {DEEDS[i % len(DEEDS)]}"


def stream(url: str, text: str) -> tuple[str, float]:
    """The streamed reply to ``text``, and the seconds until its first bytes arrived."""
    req = urllib.request.Request(url, data=json.dumps({"prompt": text}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as r:
        chunks = [r.read1()]  # blocks until the first token arrives
        first = time.perf_counter() - start
        while chunk := r.read1():
            chunks.append(chunk)
    return b"".join(chunks).decode(), first


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20)
    args = p.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(os.environ.get("MODELOTEL_EXAMPLE_DIR") or tempfile.mkdtemp()) / "uvicorn.log"
    with log.open("ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=HERE, stdout=out, stderr=subprocess.STDOUT)
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
                    raise SystemExit("uvicorn did not start") from None
                time.sleep(0.2)
        replies, firsts = [], []
        for i in range(args.requests):  # one at a time: each wait is the model's own
            text, first = stream(f"{base}/generate", prompt(i))
            replies.append({"prompt": prompt(i), "reply": text,
                            "as_told": text == "".join(reply(prompt(i)))})
            firsts.append(first)
    finally:
        server.send_signal(signal.SIGTERM)  # uvicorn's shutdown runs the app's lifespan: flush
        server.wait(timeout=60)
    firsts.sort()
    print(f"{len(replies)} stories streamed; first bytes at the client after "
          f"{firsts[len(firsts) // 2] * 1000:.0f} ms (median); e.g. {replies[0]['reply']!r}")
    # uvicorn ends its graceful shutdown by raising the signal it got again: rc -SIGTERM
    print(json.dumps({"requests": len(replies), "server_rc": server.returncode,
                      "first_token_wait": FIRST_TOKEN_WAIT, "replies": replies}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
