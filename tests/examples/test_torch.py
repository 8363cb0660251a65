"""examples/torch: a PyTorch CNN (built in code) on (N,3,16,16) images read as image
descriptors; no drift on images like the training ones, drift on the brightness and the scores
of brighter images, the scores' drift also from a baseline of the outputs alone; what reaches
the real collector and Prometheus."""

from __future__ import annotations

from typing import Any

import pytest
from examples_support import last_json, run_example
from harness import Stack, wait_until

pytestmark = pytest.mark.integration

IMAGES, BATCH = 1000, 100  # per phase: one window of ~1,000 images, as the rule counts
CALLS = 2 * IMAGES // BATCH  # per wrapped model
DESCRIPTORS = {*(f"image.channel.{c}.{s}" for c in range(3) for s in ("mean", "std")),
               "image.brightness", "image.height", "image.width"}
SCORES = {"0", "1", "2", "3"}  # one logit per class: the columns of a (N,4) tensor
JOB = "cifar-cnn"  # the example's service name


def _value(stack: Stack, expr: str) -> float:
    result = stack.prometheus.query(expr).get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else -1.0


def _points(stack: Stack, selector: str, label: str) -> dict[str, list[float]]:
    """Every sample Prometheus holds for each ``label`` value of ``selector``, oldest first."""
    result = stack.prometheus.query(f"{selector}[10m]").get("data", {}).get("result", [])
    return {r["metric"][label]: [float(v) for _, v in r["values"]] for r in result}


def _two_windows(stack: Stack, selector: str, label: str, key: str) -> dict[str, list[float]]:
    def both() -> dict[str, list[float]]:
        got = _points(stack, selector, label)
        return got if len(got.get(key, [])) >= 2 else {}

    return wait_until(both, 30, what=f"two points of {selector}")


def test_cnn_image_descriptors_arrive_and_brighter_images_drift_inputs_and_scores(
    stack: Stack,
) -> None:
    summary = last_json(run_example(
        stack, "torch", ["--images", str(IMAGES), "--batch-size", str(BATCH)]).stdout)
    model, outputs_only = summary["models"]
    rule = summary["psi_rule"]
    assert [(p["phase"], p["images"]) for p in summary["phases"]] == [
        ("training-like", IMAGES), ("brighter", IMAGES)]
    same, brighter = summary["phases"]
    assert brighter["mean_brightness"] > same["mean_brightness"] + 0.2
    # both wrappers hand back the network's own results (compared with a call of it)
    assert [p["results_unchanged"] for p in summary["phases"]] == [True, True]

    def spans() -> list[dict[str, Any]]:
        got = [s for s in stack.downstream.spans() if s["_resource"].get("service.name") == JOB]
        return got if len(got) >= 2 * CALLS else []

    got = wait_until(spans, 30, what="the network's spans at the backend")
    assert len(got) == 2 * CALLS
    assert sorted(s["name"] for s in got) == sorted(
        [f"predict {model}"] * CALLS + [f"predict {outputs_only}"] * CALLS)
    assert {s["_attrs"]["ml.model.method"] for s in got} == {"__call__"}
    # a batch of images is one row per image; its channels are no features
    assert [s["_attrs"]["ml.input.rows"] for s in got] == [BATCH] * (2 * CALLS)
    assert not [s for s in got if "ml.input.features" in s["_attrs"]]
    # output_out_of_range (a score outside the baseline's min / max, per call): the brighter
    # images push the scores out of the range of the training-like ones on every call
    ours = sorted((s for s in got if s["name"] == f"predict {model}"),
                  key=lambda s: int(s["startTimeUnixNano"]))
    fired = ["output_out_of_range" in (s["_attrs"].get("ml.checks.fired") or ()) for s in ours]
    calls = CALLS // 2
    assert sum(fired[:calls]) <= 2, fired
    assert fired[calls:] == [True] * calls, fired

    sel = f'job="{JOB}",ml_model_name="{model}",ml_model_version="1"'
    only = f'job="{JOB}",ml_model_name="{outputs_only}",ml_model_version="1"'
    for s in (sel, only):
        wait_until(lambda s=s: _value(stack, f"ml_prediction_rows_total{{{s}}}") == 2 * IMAGES,
                   30, what=f"the rows of {s} in Prometheus")
    for s in (sel, only):
        # the image descriptors, named as docs/telemetry.md says, each counting every image
        # (the outputs-only baseline's model reads them too, its schema from the first batch)
        counts = stack.prometheus.query(f"ml_feature_count_total{{{s}}}")["data"]["result"]
        assert {r["metric"]["ml_feature"]: float(r["value"][1]) for r in counts} \
            == dict.fromkeys(DESCRIPTORS, 2 * IMAGES), s
        outputs = stack.prometheus.query(f"ml_output_count_total{{{s}}}")["data"]["result"]
        assert {r["metric"]["ml_output"]: float(r["value"][1]) for r in outputs} \
            == dict.fromkeys(SCORES, 2 * IMAGES), s
    assert _value(stack, f'sum(ml_feature_bin_total{{{sel},ml_feature="image.brightness"}})') \
        == 2 * IMAGES

    # one window per phase, so two drift points per descriptor: the training-like images,
    # then the brighter ones
    inputs = _two_windows(stack, f'ml_feature_drift{{{sel},ml_drift_method="psi"}}',
                          "ml_feature", "image.brightness")
    assert set(inputs) == DESCRIPTORS
    for feature, values in inputs.items():
        assert len(values) == 2, (feature, values)
        assert values[0] < rule["no_drift_below"], (feature, values)
    assert inputs["image.brightness"][1] > rule["drift_above"], inputs
    for c in range(3):  # every channel is lifted alike
        assert inputs[f"image.channel.{c}.mean"][1] > rule["drift_above"], inputs
        # a lift moves every pixel alike: the spread within a channel stays
        assert inputs[f"image.channel.{c}.std"][1] < rule["no_drift_below"], inputs
    for size in ("image.height", "image.width"):  # same 16x16 images
        assert inputs[size][1] < rule["no_drift_below"], inputs

    # the outputs-only baseline has no inputs to compare with, but the scores' distribution
    scores = _two_windows(stack, f'ml_output_drift{{{only},ml_drift_method="psi"}}',
                          "ml_output", "0")
    assert set(scores) == SCORES
    for output, values in scores.items():
        assert len(values) == 2, (output, values)
        assert values[0] < rule["no_drift_below"], (output, values)
    assert max(values[1] for values in scores.values()) > rule["drift_above"], scores
    # the same scores against the same training scores: the same drift as with the images
    full = _points(stack, f'ml_output_drift{{{sel},ml_drift_method="psi"}}', "ml_output")
    assert set(full) == SCORES
    for output, values in scores.items():
        assert full[output] == pytest.approx(values, rel=1e-9), output
    assert _points(stack, f"ml_feature_drift{{{only}}}", "ml_feature") == {}
