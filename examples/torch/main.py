"""A small PyTorch CNN observed by modelotel: image descriptors per image, drift of the
brightness against the training images and of the scores against the training scores. Prints
a JSON summary as the last line.

    bash examples/run_example.sh torch                # through the bundled collector
    .venv/bin/python examples/torch/main.py --images 1000

The network is built in code and trained for a second on synthetic 16x16 RGB images (four
classes: a red, green or blue tint, or none): nothing is downloaded. It is wrapped twice: as
``cifar-cnn`` with a baseline of the training images and their scores, and as
``cifar-cnn-outputs-only`` with a baseline of the scores alone (``X=None``: all that is kept
when the training images are not), which still gives drift on the outputs. Serving runs in
two phases of ``--images`` images each, and each phase is one statistics window (the window
closes at a metric collection; here ``modelotel.force_flush()`` collects at the end of each
phase): first images like the training ones, then the same images brighter.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
import torch
from torch import nn

import modelotel

MODEL, OUTPUTS_ONLY, VERSION = "cifar-cnn", "cifar-cnn-outputs-only", "1"
CLASSES = ("red", "green", "blue", "grey")
SIZE = 16  # pixels a side: small images keep the example (and its test) quick
# PSI of a window against the baseline: below 0.1 no drift, above 0.2 significant drift
# (the usual rule of thumb, docs/telemetry.md)
NO_DRIFT_BELOW, DRIFT_ABOVE = 0.1, 0.2


def images(rng: np.random.Generator, n: int, lift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 ``(3, SIZE, SIZE)`` images in [0, 1] and their classes: a grey level
    between 0.2 and 0.45, the class's tint (+0.2 on its channel; none for grey), pixel noise;
    ``lift`` is added to every pixel (brighter images: the same scene, more exposure)."""
    labels = rng.integers(len(CLASSES), size=n)
    tints = np.eye(4, 3, dtype=np.float32)[labels] * 0.2  # grey: the 4th row, all zero
    level = rng.uniform(0.2, 0.45, size=(n, 1, 1, 1)).astype(np.float32)
    noise = rng.normal(0.0, 0.05, size=(n, 3, SIZE, SIZE)).astype(np.float32)
    pixels = level + tints[:, :, np.newaxis, np.newaxis] + noise + lift
    return np.clip(pixels, 0.0, 1.0).astype(np.float32), labels


def build_network() -> nn.Module:
    """Two convolutions, global average pooling, one score (logit) per class."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, len(CLASSES)))


def train(network: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 5) -> None:
    """A few epochs of Adam on the synthetic images (about a second on one CPU thread)."""
    optimizer = torch.optim.Adam(network.parameters(), lr=0.01)
    network.train()
    for _ in range(epochs):
        for start in range(0, len(x), 100):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(network(x[start:start + 100]),
                                               y[start:start + 100])
            loss.backward()
            optimizer.step()
    network.eval()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1000, help="images per phase (one window)")
    p.add_argument("--batch-size", type=int, default=100, help="images per call")
    p.add_argument("--lift", type=float, default=0.25,
                   help="added to every pixel in the second phase (brighter images)")
    args = p.parse_args()

    torch.set_num_threads(1)  # a tiny network: more threads only contend
    rng = np.random.default_rng(7)
    network = build_network()
    x_train, y_train = images(rng, 2000)
    train(network, torch.from_numpy(x_train), torch.from_numpy(y_train))
    # the baseline: held-out images of the training distribution, and the network's scores on
    # them; 10,000 of them, because output_out_of_range checks every call against their
    # minimum and maximum (a few thousand would put some of every other batch out of range)
    validation = torch.from_numpy(images(rng, 10_000)[0])
    with torch.no_grad():
        scores = network(validation)
    # a (N,3,H,W) tensor is a batch of images: the baseline profiles each image's
    # descriptors (image.channel.{c}.mean/std, image.brightness, image.height/width) and
    # keeps the shape; the scores are 4 numeric outputs, one per class ("0" .. "3")
    baseline = modelotel.Baseline.from_data(validation, outputs=scores)
    # the scores alone: no input drift, but the outputs' distribution to compare with
    outputs_only = modelotel.Baseline.from_data(None, outputs=scores)

    # one window per phase: the phases close their windows themselves (force_flush below),
    # so no periodic collection may split one (60 s: longer than a phase takes)
    modelotel.configure(service_name="cifar-cnn", export_interval_ms=60_000)
    classifier = modelotel.wrap(network, model=MODEL, version=VERSION, baseline=baseline)
    scorer = modelotel.wrap(network, model=OUTPUTS_ONLY, version=VERSION, baseline=outputs_only)

    summary: dict[str, Any] = {"models": [MODEL, OUTPUTS_ONLY], "batch_size": args.batch_size,
                               "psi_rule": {"no_drift_below": NO_DRIFT_BELOW,
                                            "drift_above": DRIFT_ABOVE}, "phases": []}
    for phase, lift in (("training-like", 0.0), ("brighter", args.lift)):
        brightness, correct, unchanged = [], 0, True
        for start in range(0, args.images, args.batch_size):
            x, y = images(rng, min(args.batch_size, args.images - start), lift)
            batch = torch.from_numpy(x)
            with torch.no_grad():
                logits = classifier(batch)
                # both wrappers hand back the network's own results, unchanged
                unchanged = unchanged and torch.equal(logits, network(batch)) \
                    and torch.equal(scorer(batch), logits)
            correct += int((logits.argmax(dim=1).numpy() == y).sum())
            brightness += (x.mean(axis=(2, 3)) @ np.array([0.299, 0.587, 0.114])).tolist()
        modelotel.force_flush()  # the metric collection that closes this phase's window
        print(f"{phase}: {len(brightness)} images in calls of {args.batch_size}, brightness "
              f"{np.mean(brightness):.3f} on average, {correct / len(brightness):.0%} classified "
              "right")
        summary["phases"].append({"phase": phase, "images": len(brightness),
                                  "mean_brightness": float(np.mean(brightness)),
                                  "accuracy": correct / len(brightness),
                                  "results_unchanged": unchanged})
    print(f"In Prometheus: ml_feature_drift{{ml_model_name=\"{MODEL}\",ml_feature="
          f"\"image.brightness\",ml_drift_method=\"psi\"}} has one point per phase: below "
          f"{NO_DRIFT_BELOW} for the training-like images, above {DRIFT_ABOVE} for the brighter "
          f"ones; ml_output_drift{{ml_model_name=\"{OUTPUTS_ONLY}\"}} shows the scores moving "
          "with no training images kept.")
    modelotel.shutdown()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
