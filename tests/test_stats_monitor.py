"""Statistics exported as OTel metrics through a real instrumented model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelotel
from modelotel import _monitor
from modelotel import attributes as A  # noqa: N812
from modelotel._options import model_config
from modelotel._runtime import runtime
from modelotel._stats_part import StatsPart
from modelotel.stats import Baseline
from modelotel.testing import Captured, MetricPoint, capture

_counter = [0]


def _name(prefix: str) -> str:
    _counter[0] += 1
    return f"{prefix}-{_counter[0]}"


def _stats(model: str) -> StatsPart:
    mon = runtime.models[(model, "")]
    sm = mon.stats
    assert sm is not None  # built with the model's parts
    assert mon.ends[0] == sm.end  # statistics run first
    return sm


def _model(fn: Callable[..., Any], **options: Any) -> tuple[Callable[..., Any], str]:
    name = _name("stats")
    wrapped = modelotel.instrument(model=name, **options)(fn)
    _monitor.get_monitor(model_config(model=name, **options))  # built now, shared with calls
    _stats(name)
    return wrapped, name


def _points(
    cap: Captured | list[MetricPoint], metric: str, model: str
) -> dict[tuple[tuple[str, Any], ...], Any]:
    """Data points of ``metric`` for ``model``. Each ``cap.collect()`` closes a stats window,
    so pass one collection's points to read several metrics of the same window."""
    out = {}
    for p in cap if isinstance(cap, list) else cap.collect():
        if p.name == metric and p.attributes.get(A.ML_MODEL_NAME) == model:
            key = tuple(sorted((k, v) for k, v in p.attributes.items()
                               if k not in (A.ML_MODEL_NAME, A.ML_MODEL_VERSION)))
            out[key] = p.value
    return out


def test_counts_missing_moments_exported() -> None:
    predict, model = _model(lambda X: X[:, 0] * 2.0, feature_names=["a", "b"])
    with capture() as cap:
        X = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, np.inf]])
        predict(X[:1])
        predict(X)
        counts = _points(cap, A.METRIC_FEATURE_COUNT, model)
        assert counts == {((A.ML_FEATURE, "a"),): 4, ((A.ML_FEATURE, "b"),): 4}
        missing = _points(cap, A.METRIC_FEATURE_MISSING, model)
        assert missing[((A.ML_FEATURE, "b"), (A.ML_MISSING_KIND, "nan"))] == 1
        assert missing[((A.ML_FEATURE, "b"), (A.ML_MISSING_KIND, "inf"))] == 1
        assert missing[((A.ML_FEATURE, "a"), (A.ML_MISSING_KIND, "nan"))] == 0
        # the previous collection closed the window: gauges describe X only
        predict(X)
        window = cap.collect()
        mean = _points(window, A.METRIC_FEATURE_MEAN, model)
        assert mean == {((A.ML_FEATURE, "a"),): 3.0, ((A.ML_FEATURE, "b"),): 2.0}
        mx = _points(window, A.METRIC_FEATURE_MAX, model)
        assert mx == {((A.ML_FEATURE, "a"),): 5.0, ((A.ML_FEATURE, "b"),): 2.0}
        mn = _points(window, A.METRIC_FEATURE_MIN, model)
        assert mn == {((A.ML_FEATURE, "a"),): 1.0, ((A.ML_FEATURE, "b"),): 2.0}
        std = _points(window, A.METRIC_FEATURE_STDDEV, model)
        assert std[((A.ML_FEATURE, "a"),)] == pytest.approx(np.std([1.0, 3.0, 5.0]))
        out_count = _points(window, A.METRIC_OUTPUT_COUNT, model)
        assert out_count == {((A.ML_OUTPUT, "0"),): 7}
        # a second look without a call in between sees the same window, not an empty one
        assert _points(cap, A.METRIC_FEATURE_MEAN, model) == mean


def _train(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f"f{i}": rng.normal(0, 1, n) for i in range(6)})


def test_shifted_features_cross_the_drift_threshold_others_do_not() -> None:
    train = _train(20000, 0)
    baseline = Baseline.from_data(train, outputs=train["f0"].to_numpy() * 0.5)
    predict, model = _model(lambda df: df["f0"].to_numpy() * 0.5, baseline=baseline)
    serve = _train(5000, 1)
    serve["f2"] = serve["f2"] + 1.0        # shifted mean
    serve["f4"] = serve["f4"] * 3.0        # widened spread
    with capture() as cap:
        for start in range(0, 5000, 100):
            predict(serve.iloc[start : start + 100])
        window = cap.collect()
        psi = _points(window, A.METRIC_FEATURE_DRIFT, model)
        by_feature = {dict(k)[A.ML_FEATURE]: v for k, v in psi.items()
                      if dict(k)[A.ML_DRIFT_METHOD] == A.DRIFT_PSI}
        assert set(by_feature) == {f"f{i}" for i in range(6)}
        over = {f for f, v in by_feature.items() if v > 0.2}
        assert over == {"f2", "f4"}, by_feature
        assert all(by_feature[f] < 0.05 for f in ("f0", "f1", "f3", "f5"))
        js = {dict(k)[A.ML_FEATURE]: v for k, v in psi.items()
              if dict(k)[A.ML_DRIFT_METHOD] == A.DRIFT_JS}
        assert {f for f, v in js.items() if v > 0.1} == {"f2", "f4"}
        ks = {dict(k)[A.ML_FEATURE]: v for k, v in psi.items()
              if dict(k)[A.ML_DRIFT_METHOD] == A.DRIFT_KS}
        assert {f for f, v in ks.items() if v > 0.1} == {"f2", "f4"}
        # output drift is exported too (f0 is not shifted, neither is the output)
        out_psi = _points(window, A.METRIC_OUTPUT_DRIFT, model)
        assert out_psi[((A.ML_DRIFT_METHOD, A.DRIFT_PSI), (A.ML_OUTPUT, "0"))] < 0.05
        # bins are additive counters over the baseline's deciles: 5000 rows per feature
        bins = _points(window, A.METRIC_FEATURE_BIN, model)
        f2 = {dict(k)[A.ML_BIN]: v for k, v in bins.items() if dict(k)[A.ML_FEATURE] == "f2"}
        assert sum(f2.values()) == 5000
        assert set(f2) == {"below", "above", *(str(i) for i in range(10))}
        assert f2["9"] > 1500  # the top decile holds ~38% of N(1, 1) instead of 10%


def test_bins_match_an_offline_merge() -> None:
    train = _train(4000, 2)
    baseline = Baseline.from_data(train)
    # (a row_cap above the big batch: its every row is counted, as the offline merge's)
    predict, model = _model(lambda df: np.zeros(len(df)), baseline=baseline, row_cap=3000)
    serve = _train(3000, 3)
    with capture() as cap:
        for start in range(0, 3000, 7):
            predict(serve.iloc[start : start + 7])
        predict(serve)  # one big batch reduced directly
        bins = _points(cap, A.METRIC_FEATURE_BIN, model)
    for i in range(6):
        name = f"f{i}"
        got = {dict(k)[A.ML_BIN]: v for k, v in bins.items() if dict(k)[A.ML_FEATURE] == name}
        prof = baseline.feature(name)
        col = np.concatenate([serve[name].to_numpy()] * 2)
        e = np.asarray(prof.edges)
        inner, _ = np.histogram(col[(col >= e[0]) & (col <= e[-1])], bins=e)
        assert sum(got.values()) == 2 * 3000  # every served value lands in one bin
        assert got["below"] == int((col < e[0]).sum())
        assert got["above"] == int((col > e[-1]).sum())
        assert [got[str(j)] for j in range(10)] == inner.tolist()


def test_output_checks_mark_the_span_and_count() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 3))
    baseline = Baseline.from_data(X, outputs=rng.random(500))

    def predict_fn(X: np.ndarray) -> np.ndarray:
        out = np.full(len(X), 0.5)
        if X[0, 0] > 100:
            out[0] = np.nan
        if X[0, 0] < -100:
            out[0] = 7.0
        return out

    predict, model = _model(predict_fn, baseline=baseline)
    with capture() as cap:
        ok = predict(X[:4])
        bad = X[:4].copy()
        bad[0, 0] = 1000.0
        res = predict(bad)
        assert np.isnan(res[0])
        far = X[:4].copy()
        far[0, 0] = -1000.0
        predict(far)
        spans = cap.spans()
        assert ok.tolist() == [0.5] * 4
        assert spans[0].attributes is not None and A.ML_CHECKS_FIRED not in spans[0].attributes
        assert spans[1].attributes is not None
        assert list(spans[1].attributes[A.ML_CHECKS_FIRED]) == [A.CHECK_OUTPUT_NONFINITE]
        assert [e.name for e in spans[1].events] == [A.EVENT_CHECK_VIOLATION]
        assert dict(spans[1].events[0].attributes or {}) == {
            A.ML_CHECK: A.CHECK_OUTPUT_NONFINITE, A.ML_OUTPUT: "0"}
        assert list(spans[2].attributes[A.ML_CHECKS_FIRED]) == [A.CHECK_OUTPUT_OUT_OF_RANGE]
        _stats(model)
        v = _points(cap, A.METRIC_CHECK_VIOLATIONS, model)
        assert v == {
            ((A.ML_CHECK, A.CHECK_OUTPUT_NONFINITE), (A.ML_OUTPUT, "0")): 1,
            ((A.ML_CHECK, A.CHECK_OUTPUT_OUT_OF_RANGE), (A.ML_OUTPUT, "0")): 1,
        }
        for _ in range(10):
            predict(X[:4])  # 40 identical outputs: constant over the window
        v = _points(cap, A.METRIC_CHECK_VIOLATIONS, model)
        assert v[((A.ML_CHECK, A.CHECK_OUTPUT_CONSTANT), (A.ML_OUTPUT, "0"))] == 1


def test_class_collapse_and_schema_checks() -> None:
    rng = np.random.default_rng(6)
    train = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    baseline = Baseline.from_data(train, outputs=(train["a"] > 0).astype(int).to_numpy())
    predict, model = _model(lambda df: np.ones(len(df), dtype=int), baseline=baseline)
    with capture() as cap:
        predict(train.iloc[:50])
        predict(pd.DataFrame({"a": [1.0], "c": [2.0]}))  # b missing, c unexpected
        predict(pd.DataFrame({"a": ["x"], "b": [1.0]}))   # a is now a string
        spans = cap.spans()
        assert set(spans[1].attributes[A.ML_CHECKS_FIRED]) == {  # type: ignore[index]
            A.CHECK_SCHEMA_MISSING_FEATURE, A.CHECK_SCHEMA_UNEXPECTED_FEATURE}
        assert list(spans[2].attributes[A.ML_CHECKS_FIRED]) == [  # type: ignore[index]
            A.CHECK_SCHEMA_DTYPE_CHANGE]
        _stats(model)
        v = _points(cap, A.METRIC_CHECK_VIOLATIONS, model)
        assert v[((A.ML_CHECK, A.CHECK_SCHEMA_MISSING_FEATURE), (A.ML_FEATURE, "b"))] == 1
        assert v[((A.ML_CHECK, A.CHECK_SCHEMA_UNEXPECTED_FEATURE), (A.ML_FEATURE, "c"))] == 1
        assert v[((A.ML_CHECK, A.CHECK_SCHEMA_DTYPE_CHANGE), (A.ML_FEATURE, "a"))] == 1
        assert v[((A.ML_CHECK, A.CHECK_OUTPUT_CLASS_COLLAPSE), (A.ML_OUTPUT, "0"))] == 1
        cls = _points(cap, A.METRIC_OUTPUT_BIN, model)
        assert cls[((A.ML_BIN, "1"), (A.ML_OUTPUT, "0"))] == 52


def test_max_features_cap_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    from modelotel import _safety

    predict, model = _model(lambda X: X.sum(axis=1), max_features=3)
    with capture() as cap:
        predict(np.ones((2, 5)))
        _stats(model)
        predict(np.ones((2, 5)))
        counts = _points(cap, A.METRIC_FEATURE_COUNT, model)
    assert sorted(dict(k)[A.ML_FEATURE] for k in counts) == ["0", "1", "2"]
    assert _safety.health.skipped["stats.max_features"] == 2
    assert sum("max_features" in r.getMessage() for r in caplog.records) == 1


def test_row_cap_samples_large_batches() -> None:
    predict, model = _model(lambda X: X[:, 0], row_cap=100)
    with capture() as cap:
        predict(np.arange(2000.0).reshape(1000, 2))
        _stats(model)
        counts = _points(cap, A.METRIC_FEATURE_COUNT, model)
        assert counts[((A.ML_FEATURE, "0"),)] == 100
        span = cap.spans()[-1]
        assert span.attributes is not None
        assert span.attributes[A.ML_STATS_SAMPLE_RATE] == pytest.approx(0.1)


def test_config_validates_baseline_and_feature_names(tmp_path: Any) -> None:
    from modelotel.stats.baseline import BaselineError

    with pytest.raises(BaselineError, match=r"baseline=.*does not exist"):
        modelotel.instrument(model=_name("cfg"), baseline=str(tmp_path / "none.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "modelotel.baseline", "version": 7')
    with pytest.raises(BaselineError, match="not valid JSON"):
        modelotel.instrument(model=_name("cfg"), baseline=bad)
    with pytest.raises(TypeError, match=r"path or a modelotel\.Baseline"):
        modelotel.instrument(model=_name("cfg"), baseline=42)
    b = Baseline.from_data(np.ones((5, 2)), feature_names=["a", "b"])
    with pytest.raises(ValueError, match="differ from the baseline"):
        modelotel.instrument(model=_name("cfg"), baseline=b, feature_names=["x", "y"])
    with pytest.raises(ValueError, match="duplicate"):
        modelotel.instrument(model=_name("cfg"), feature_names=["x", "x"])
    good = tmp_path / "good.json"
    b.save(good)
    cfg = model_config(model="m", baseline=str(good))
    assert cfg.baseline == b
    assert isinstance(modelotel.Baseline, type) and "Baseline" in modelotel.__all__


def test_baseline_hash_on_model_info() -> None:
    b = Baseline.from_data(np.random.default_rng(0).normal(size=(50, 2)))
    predict, model = _model(lambda X: X[:, 0], baseline=b)
    with capture() as cap:
        predict(np.zeros((2, 2)))
        info = _points(cap, A.METRIC_MODEL_INFO, model)
    assert [dict(k)[A.ML_BASELINE_HASH] for k in info] == [b.hash]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_forked_child_reports_its_own_statistics() -> None:
    import json
    import os

    from modelotel import _safety

    predict, model = _model(lambda X: X[:, 0], feature_names=["a", "b"])
    with capture() as cap:
        predict(np.ones((5, 2)))
        predict(np.ones((5, 2)))
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                predict(np.ones((3, 2)))
                counts = _points(cap, A.METRIC_FEATURE_COUNT, model)
                out = {
                    "counts": sorted(v for v in counts.values()),
                    "errors": [repr(e) for _, e in _safety.health.strict_errors],
                }
                os.write(write_fd, json.dumps(out).encode())
            finally:
                os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd) as fh:
            child = json.loads(fh.read())
        os.waitpid(pid, 0)
        parent = _points(cap, A.METRIC_FEATURE_COUNT, model)
    assert child == {"counts": [3, 3], "errors": []}  # the child's own rows only
    assert sorted(parent.values()) == [10, 10]


def test_row_cap_samples_records_before_converting_and_checks_every_output() -> None:
    from modelotel import _safety

    records = [{"a": float(i), "b": "x" if i % 2 else None} for i in range(1000)]

    def predict_fn(rows: list[dict[str, Any]]) -> np.ndarray:
        out = np.zeros(len(rows))
        out[3] = np.nan  # a single bad output, most likely outside the sample
        return out

    predict, model = _model(predict_fn, row_cap=50)
    with capture() as cap:
        predict(records)
        window = cap.collect()
        span = cap.spans()[-1]
    counts = _points(window, A.METRIC_FEATURE_COUNT, model)
    assert counts == {((A.ML_FEATURE, "a"),): 50, ((A.ML_FEATURE, "b"),): 50}
    assert span.attributes is not None
    assert span.attributes[A.ML_STATS_SAMPLE_RATE] == pytest.approx(0.05)
    assert list(span.attributes[A.ML_CHECKS_FIRED]) == [A.CHECK_OUTPUT_NONFINITE]
    assert _safety.health.dropped["stats.row_cap"] == 2 * 950  # inputs and outputs


def test_windows_close_per_collection_even_if_a_view_drops_the_first_instrument() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import DropAggregation, View

    from modelotel._runtime import runtime
    from modelotel.testing import _flatten

    reader = InMemoryMetricReader()
    mp = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_name=A.METRIC_FEATURE_COUNT, aggregation=DropAggregation())],
    )
    predict, model = _model(lambda X: X[:, 0], feature_names=["a"])
    saved = runtime.providers()
    runtime.set_providers(mp=mp)
    try:
        means = []
        for value in (1.0, 5.0):
            predict(np.full((4, 1), value))
            points = _flatten(reader.get_metrics_data())
            means.append(_points(points, A.METRIC_FEATURE_MEAN, model))
        assert all(p.name != A.METRIC_FEATURE_COUNT for p in points)
    finally:
        runtime.set_providers(*saved)
        mp.shutdown()
    assert means == [{((A.ML_FEATURE, "a"),): 1.0}, {((A.ML_FEATURE, "a"),): 5.0}]


def test_window_gauges_off_leaves_only_the_additive_counters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    train = rng.normal(size=(500, 2))
    baseline = Baseline.from_data(train, outputs=train[:, 0] > 0, feature_names=["a", "b"])
    predict, model = _model(lambda X: X[:, 0] > 0, baseline=baseline)
    window_metrics = {
        A.METRIC_FEATURE_MEAN, A.METRIC_FEATURE_STDDEV, A.METRIC_FEATURE_MIN,
        A.METRIC_FEATURE_MAX, A.METRIC_FEATURE_DRIFT, A.METRIC_OUTPUT_MEAN,
        A.METRIC_OUTPUT_STDDEV, A.METRIC_OUTPUT_MIN, A.METRIC_OUTPUT_MAX, A.METRIC_OUTPUT_DRIFT,
    }
    seen: dict[str, set[str]] = {}
    for setting in ("true", "false"):
        monkeypatch.setenv("MODELOTEL_WINDOW_GAUGES", setting)
        runtime.reload_settings()  # read when a provider's instruments are made
        with capture() as cap:
            predict(rng.normal(size=(50, 2)))
            seen[setting] = {
                p.name for p in cap.collect() if p.attributes.get(A.ML_MODEL_NAME) == model
            }
    assert window_metrics & seen["true"] == {A.METRIC_FEATURE_MEAN, A.METRIC_FEATURE_STDDEV,
                                             A.METRIC_FEATURE_MIN, A.METRIC_FEATURE_MAX,
                                             A.METRIC_FEATURE_DRIFT, A.METRIC_OUTPUT_DRIFT}
    assert window_metrics & seen["false"] == set()
    assert seen["true"] - window_metrics == seen["false"]
    assert {A.METRIC_FEATURE_BIN, A.METRIC_OUTPUT_BIN, A.METRIC_FEATURE_COUNT} <= seen["false"]


def test_categorical_drift_is_cramers_v() -> None:
    base_rows = [{"c": c} for c in ["a"] * 50 + ["b"] * 30 + ["z"] * 20]
    baseline = Baseline.from_data(base_rows)
    predict, model = _model(lambda rows: [0 for _ in rows], baseline=baseline)
    with capture() as cap:
        predict(base_rows)  # the training data again: no drift at all
        same = _points(cap, A.METRIC_FEATURE_DRIFT, model)
        predict([{"c": "new"}] * 100)
        unseen = _points(cap, A.METRIC_FEATURE_DRIFT, model)
    key = ((A.ML_DRIFT_METHOD, A.DRIFT_CRAMERS_V), (A.ML_FEATURE, "c"))
    assert same[key] == 0.0
    assert unseen[key] == 1.0


# A health gauge whose callback runs a canary prediction calls the model while the SDK holds
# its collection lock; the first call of a provider creates the statistics instruments, which
# the SDK registers under that same lock. In a subprocess, so a hang fails on the timeout.
_SCRIPT = textwrap.dedent(
    """
    import time
    import numpy as np
    import modelotel
    from modelotel import _safety
    from modelotel._runtime import runtime
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    _safety.set_strict(True)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    runtime.set_providers(TracerProvider(), provider, None)

    @modelotel.instrument(model="canary")
    def predict(x):
        return np.array([1.0])

    def canary(options):
        assert predict(np.ones((1, 2)))[0] == 1.0   # the first call of the provider
        return [Observation(1)]

    provider.get_meter("app").create_observable_gauge("app.canary", callbacks=[canary])
    counts = []
    for _ in range(20):
        data = reader.get_metrics_data()
        counts = [p.value
                  for rm in data.resource_metrics for sm in rm.scope_metrics
                  for m in sm.metrics if m.name == "ml.feature.count"
                  for p in m.data.data_points]
        if counts:
            break
        time.sleep(0.05)
    print("counts", sorted(counts), "errors", len(_safety.health.strict_errors))
    """
)


def test_first_predict_inside_a_metric_callback_does_not_hang() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    # the statistics instruments were registered once the collection ended, and the counts
    # of the canary calls made so far are reported (2 features, 1 row per call)
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("counts [")
    assert line.endswith("errors 0")
    counts = [int(v) for v in line[len("counts ["):line.index("]")].split(", ")]
    assert len(counts) == 2
    assert counts[0] == counts[1] >= 2
