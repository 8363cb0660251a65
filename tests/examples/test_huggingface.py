"""examples/huggingface: a Hugging Face text-classification pipeline (built in code) read as
text descriptors; no drift on reviews like the training ones, drift on the length of reviews
twice as long; what reaches the real collector and Prometheus."""

from __future__ import annotations

from typing import Any

import pytest
from examples_support import last_json, run_example
from harness import Stack, wait_until

pytestmark = pytest.mark.integration

TEXTS, BATCH = 1000, 100  # per phase: one window of ~1,000 texts, as the rule counts
DESCRIPTORS = {"text.chars", "text.words", "text.blank", "text.non_ascii", "text.tokens"}
LENGTH = ("text.chars", "text.words", "text.tokens")


def _value(stack: Stack, expr: str) -> float:
    result = stack.prometheus.query(expr).get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else -1.0


def _points(stack: Stack, selector: str) -> dict[str, list[float]]:
    """Every sample Prometheus holds for each ``ml_feature`` of ``selector``, oldest first."""
    result = stack.prometheus.query(f"{selector}[10m]").get("data", {}).get("result", [])
    return {r["metric"]["ml_feature"]: [float(v) for _, v in r["values"]] for r in result}


def test_pipeline_text_descriptors_arrive_and_only_the_long_reviews_drift(stack: Stack) -> None:
    summary = last_json(run_example(
        stack, "huggingface", ["--texts", str(TEXTS), "--batch-size", str(BATCH)]).stdout)
    model = summary["model"]
    rule = summary["psi_rule"]
    assert [(p["phase"], p["texts"]) for p in summary["phases"]] == [
        ("in-distribution", TEXTS), ("twice as long", TEXTS)]
    short_chars, long_chars = (p["mean_chars"] for p in summary["phases"])
    assert 1.9 < long_chars / short_chars < 2.1  # each review said twice: twice as long

    def spans() -> list[dict[str, Any]]:
        got = [s for s in stack.downstream.spans() if s["_resource"].get("service.name")
               == "review-sentiment"]
        return got if len(got) >= 2 * TEXTS // BATCH else []

    got = wait_until(spans, 30, what="the pipeline's spans at the backend")
    assert len(got) == 2 * TEXTS // BATCH
    assert {s["name"] for s in got} == {f"predict {model}"}
    assert {s["_attrs"]["ml.model.method"] for s in got} == {"__call__"}
    # a batch of reviews is one text column: its rows are the texts, not its words or chars
    assert [s["_attrs"]["ml.input.rows"] for s in got] == [BATCH] * (2 * TEXTS // BATCH)

    sel = f'ml_model_name="{model}",ml_model_version="1"'
    wait_until(lambda: _value(stack, f"ml_prediction_rows_total{{{sel}}}") == 2 * TEXTS, 30,
               what="the rows in Prometheus")
    counts = stack.prometheus.query(f"ml_feature_count_total{{{sel}}}")["data"]["result"]
    # the text descriptors, named as docs/telemetry.md says (text.tokens: the pipeline's
    # tokenizer), each counting every text; no feature per word or per string
    assert {r["metric"]["ml_feature"]: float(r["value"][1]) for r in counts} \
        == dict.fromkeys(DESCRIPTORS, 2 * TEXTS)
    assert _value(stack, f'sum(ml_feature_bin_total{{{sel},ml_feature="text.chars"}})') \
        == 2 * TEXTS
    outputs = stack.prometheus.query(f"ml_output_count_total{{{sel}}}")["data"]["result"]
    assert {r["metric"]["ml_output"] for r in outputs} == {"label", "score"}

    # one window per phase, so two drift points per descriptor: the reviews like the training
    # ones, then the long ones
    psi = f'ml_feature_drift{{{sel},ml_drift_method="psi"}}'

    def both_windows() -> dict[str, list[float]]:
        got = _points(stack, psi)
        return got if len(got.get("text.chars", [])) >= 2 else {}

    points = wait_until(both_windows, 30, what="two PSI points per descriptor")
    assert set(points) == DESCRIPTORS
    for feature, values in points.items():
        assert len(values) == 2, (feature, values)
        same, longer = values
        assert same < rule["no_drift_below"], (feature, values)
        if feature in LENGTH:
            assert longer > rule["drift_above"], (feature, values)
        else:  # the long reviews are neither blank nor less ASCII
            assert longer < rule["no_drift_below"], (feature, values)
