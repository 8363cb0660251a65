"""Embeddings and wide unnamed batches: a fixed-size summary with drift, not one series per
dimension."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel.stats.baseline import Baseline, BaselineError
from modelotel.stats.profiler import ABSENT, Profiler
from modelotel.stats.wide import NAMES
from modelotel.testing import capture


def _embedder(name: str, dim: int, shift: dict[str, float], **kw: Any) -> Any:
    rng = np.random.default_rng(dim)

    @modelotel.instrument(model=name, **kw)
    def embed(x: Any) -> np.ndarray:
        return rng.normal(size=(len(x), dim)) + shift["by"]

    return embed


def _points_per_collection(dim: int) -> int:
    embed = _embedder(f"wide-points-{dim}", dim, {"by": 0.0})
    with capture() as cap:
        for _ in range(3):
            embed(np.zeros((32, 20)))
        return sum(1 for p in cap.collect()
                   if p.attributes.get(A.ML_MODEL_NAME) == f"wide-points-{dim}")


def test_metric_points_do_not_grow_with_the_width() -> None:
    assert _points_per_collection(384) == _points_per_collection(100) == _points_per_collection(
        1024)


def test_a_shifted_centroid_drifts_and_a_resample_does_not() -> None:
    rng = np.random.default_rng(0)
    baseline = Baseline.from_data(rng.normal(size=(5000, 20)),
                                  outputs=rng.normal(size=(5000, 384)))
    assert [o.name for o in baseline.outputs] == list(NAMES)
    shift = {"by": 0.0}
    embed = _embedder("wide-drift", 384, shift, baseline=baseline)

    def psi(cap: Any) -> dict[str, float]:
        return {p.attributes[A.ML_OUTPUT]: p.value for p in cap.collect()
                if p.name == A.METRIC_OUTPUT_DRIFT
                and p.attributes[A.ML_DRIFT_METHOD] == A.DRIFT_PSI}

    with capture() as cap:
        for _ in range(32):
            embed(np.zeros((32, 20)))  # 1,024 rows
        same = psi(cap)
        shift["by"] = 0.3
        for _ in range(32):
            embed(np.zeros((32, 20)))
        moved = psi(cap)
    assert set(same) == set(NAMES)
    assert all(v < 0.1 for v in same.values()), same
    assert moved["embedding.centroid_distance"] > 0.2, moved


def test_the_summary_is_saved_with_the_baseline(tmp_path: Any) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 128))
    b = Baseline.from_data(X)
    b.save(tmp_path / "b.json")
    loaded = Baseline.load(tmp_path / "b.json")
    assert loaded == b
    p, q = Profiler(b), Profiler(loaded)
    p.observe(X[:50], ABSENT)
    q.observe(X[:50], ABSENT)
    a, c = p.close().inputs, q.close().inputs
    assert a is not None and c is not None
    assert a.gauges == c.gauges
    doc = json.loads((tmp_path / "b.json").read_text())
    doc["meta"]["wide"]["inputs"]["projections"] = [[1.0]]
    body = {k: v for k, v in doc.items() if k not in ("format", "version", "hash")}
    from modelotel.stats.baseline import _hash  # the file's own hash, re-made after the edit
    doc["hash"] = _hash(body)
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(BaselineError, match="wide summary of inputs is malformed"):
        Baseline.load(tmp_path / "bad.json")


def test_per_dimension_statistics_on_request_and_for_named_columns() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 80))
    per_dim = Baseline.from_data(X, wide=0)
    assert len(per_dim.features) == 80
    p = Profiler(per_dim)
    p.observe(X[:10], ABSENT)
    snap = p.close().inputs
    assert snap is not None and len(snap.plan.names) == 80
    named = Profiler(feature_names=[f"f{i}" for i in range(80)])
    named.observe(X[:10], ABSENT)
    snap = named.close().inputs
    assert snap is not None and snap.plan.names[0] == "f0" and len(snap.plan.names) == 80


def test_a_wider_embedding_fires_one_check_naming_the_first_new_position() -> None:
    p = Profiler()
    rng = np.random.default_rng(3)
    assert p.observe(rng.normal(size=(4, 100)), ABSENT) is None
    rep = p.observe(rng.normal(size=(4, 120)), ABSENT)
    assert rep is not None and rep.checks == [(A.CHECK_SCHEMA_UNEXPECTED_FEATURE, "100", False)]
    assert p.observe(rng.normal(size=(4, 120)), ABSENT) is None  # once per window


def _assert_same_window(a: Any, b: Any) -> None:
    """The hot path's window ``a`` equals the general reader's ``b`` (float rounding aside)."""
    assert a.plan.names == b.plan.names == NAMES
    assert len(a.gauges) == len(b.gauges) > 0
    for (ka, na, va), (kb, nb, vb) in zip(a.gauges, b.gauges, strict=True):
        assert (ka, na) == (kb, nb)
        assert va == pytest.approx(vb, rel=1e-12, abs=1e-12, nan_ok=True)


@pytest.mark.parametrize("with_baseline", [True, False])
def test_an_embedding_array_gives_the_statistics_of_the_general_reader(
    with_baseline: bool,
) -> None:
    # an ndarray of the summary's width takes the hot path; the same rows as nested lists go
    # through the general reader: both must leave the same window, checks and drift
    rng = np.random.default_rng(4)
    train = rng.normal(size=(2000, 96))
    baseline = Baseline.from_data(train) if with_baseline else None
    fast, general = Profiler(baseline), Profiler(baseline)
    for i in range(12):
        X = rng.normal(size=(16, 96)) + (0.5 if i > 6 else 0.0)
        if i == 3:
            X[2, 5] = np.nan
        if i == 4:
            X[7, 9] = np.inf
        rf = fast.observe(X, ABSENT)
        rg = general.observe(X.tolist(), ABSENT)
        assert (rf and rf.checks) == (rg and rg.checks)
    a, b = fast.close().inputs, general.close().inputs
    assert a is not None and b is not None
    _assert_same_window(a, b)


def test_row_norms_agree_on_every_numpy_the_summary_supports() -> None:
    # numpy >= 2.0 takes vecdot, older numpy einsum: the same squared norms either way
    from modelotel.stats import wide

    X = np.random.default_rng(5).normal(size=(32, 384))
    expected = (X * X).sum(axis=1)
    np.testing.assert_allclose(wide._einsum_row_dots(X), expected, rtol=1e-12)
    if hasattr(np, "vecdot"):
        np.testing.assert_allclose(wide._vecdot_row_dots(X), expected, rtol=1e-12)


@pytest.mark.parametrize("with_baseline", [True, False])
def test_an_embedding_output_gives_the_statistics_of_the_general_reader(
    with_baseline: bool,
) -> None:
    # float inputs with an embedding output take the fused step (the kernel's, when built)
    # on the output's summary; the same output as nested lists goes through the general
    # reader: same output window, checks and drift
    rng = np.random.default_rng(6)
    X_train, Y_train = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 96))
    baseline = Baseline.from_data(X_train, outputs=Y_train) if with_baseline else None
    fast, general = Profiler(baseline), Profiler(baseline)
    for i in range(12):
        X = rng.normal(size=(16, 8))
        Y = rng.normal(size=(16, 96)) * (3.0 if i > 8 else 1.0)
        if i == 3:
            Y[2, 5] = np.nan
        rf, rg = fast.observe(X, Y), general.observe(X, Y.tolist())
        assert (rf and rf.checks) == (rg and rg.checks)
    a, b = fast.close().outputs, general.close().outputs
    assert a is not None and b is not None
    _assert_same_window(a, b)
    assert len(a.drift) == len(b.drift) == (len(b.drift) if with_baseline else 0)
    assert not with_baseline or len(a.drift) > 0
    for (fa, ma, da), (fb, mb, db) in zip(a.drift, b.drift, strict=True):
        assert (fa, ma) == (fb, mb)
        assert da == pytest.approx(db, rel=1e-9, abs=1e-12)
