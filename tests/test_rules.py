"""modelotel.rules and `modelotel rules`: the statistics written into the rules, the bins they
key on, the calibration of the drift gate, and the shipped example being current.

The PromQL itself is checked by promtool (collector-config/prometheus/*.test.yml) and against
a real fleet (tests/integration/test_fleet_drift.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats as sps

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel import cli, rules
from modelotel.stats import drift
from modelotel.stats.baseline import Baseline
from modelotel.testing import capture

EXAMPLES = Path(__file__).resolve().parents[1] / "collector-config" / "prometheus" / "examples"


@pytest.mark.parametrize("dof", [1, 2, 3, 5, 9, 19, 49, 199])
@pytest.mark.parametrize("p", [0.9, 0.99, 0.999, 0.9999])
def test_chi2_quantile_matches_scipy(dof: int, p: float) -> None:
    assert rules.chi2_quantile(p, dof) == pytest.approx(sps.chi2.ppf(p, dof), rel=1e-9)


def test_min_rows_is_cochrans_rule() -> None:
    assert rules.min_rows([0.0, 0.25, 0.25, 0.25, 0.25, 0.0]) == 20
    assert rules.min_rows([0.0] + [0.1] * 10 + [0.0]) == 50
    # 8 bins: one may fall below 5 expected (the 0.01 one), none below 1
    assert rules.min_rows([0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.02, 0.01, 0.0]) == 250
    assert rules.min_rows([0.0, 0.0]) == 0


def _many_psi(counts: np.ndarray[Any, Any], q: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """drift.psi over the rows of ``counts`` (checked against it below)."""
    eps = drift.PSI_EPS
    p = np.maximum(counts / counts.sum(1, keepdims=True), eps)
    p /= p.sum(1, keepdims=True)
    qs = np.maximum(q, eps)
    qs = qs / qs.sum()
    return np.asarray(((p - qs) * np.log(p / qs)).sum(1))


def _many_chi2(counts: np.ndarray[Any, Any], q: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """ml_fleet:*_chi2 of the rules: n * sum((p - q)^2 / max(q, eps))."""
    n = counts.sum(1, keepdims=True)
    return np.asarray((n * ((counts / n - q) ** 2 / np.maximum(q, drift.PSI_EPS))).sum(1))


SHAPES = {
    "deciles": np.r_[0.0, [0.1] * 10, 0.0],
    "twenty_bins": np.r_[0.0, [0.05] * 20, 0.0],
    "skewed_categories": np.r_[0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.02, 0.01, 0.0],
    "rare_categories": np.r_[0.97, 0.01, 0.01, 0.01, 0.0],
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_drift_gate_false_alarms_at_most_a_fraction_of_a_percent_at_any_sample_size(
    shape: str,
) -> None:
    """Under no drift (counts drawn from the baseline's own shares) the alert condition
    (PSI > 0.2, chi-square above its 0.999 quantile, rows >= Cochran's minimum) holds in at
    most 0.3% of windows, from tiny windows to large ones; PSI > 0.2 alone, the old rule,
    fires far more often on small windows."""
    q = SHAPES[shape]
    rng = np.random.default_rng(11)
    dof = int(np.count_nonzero(q)) - 1
    crit = rules.chi2_quantile(0.999, dof)
    floor = rules.min_rows(q.tolist())
    sample = rng.multinomial(200, q, size=3)
    assert _many_psi(sample.astype(float), q) == pytest.approx(
        [drift.psi(c, q) for c in sample], rel=1e-12
    )
    worst_old = 0.0
    for n in (5, 10, 20, 50, 100, 200, 500, 2000, 10_000):
        counts = rng.multinomial(n, q, size=20_000).astype(float)
        psi = _many_psi(counts, q)
        fires = (psi > 0.2) & (_many_chi2(counts, q) > crit) & (n >= floor)
        assert fires.mean() <= 0.003, (shape, n, fires.mean())
        worst_old = max(worst_old, float((psi > 0.2).mean()))
    assert worst_old > 0.25  # what PSI > 0.2 alone does on small windows


def test_drift_gate_detects_a_one_sd_shift_from_a_few_hundred_rows() -> None:
    rng = np.random.default_rng(5)
    train = rng.normal(size=(20_000, 1))
    base = Baseline.from_data(train, feature_names=["x"])
    (col,) = base.features
    q = np.array(col.shares)
    edges = np.array(col.edges)
    dof = int(np.count_nonzero(q)) - 1
    for n in (rules.min_rows(q.tolist()), 300, 3000):
        shifted = rng.normal(loc=1.0, size=(2_000, n))
        counts = np.stack([
            np.concatenate(([np.sum(s < edges[0])], np.histogram(s, edges)[0],
                            [np.sum(s > edges[-1])]))
            for s in shifted
        ]).astype(float)
        fires = (_many_psi(counts, q) > 0.2) & (_many_chi2(counts, q) > rules.chi2_quantile(
            0.999, dof))
        assert fires.mean() > (0.5 if n < 100 else 0.99), (n, fires.mean())


def test_column_bins_are_the_bins_the_sdk_exports() -> None:
    rng = np.random.default_rng(2)
    import pandas as pd

    train = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b", "z"], 500)})
    base = Baseline.from_data(train, outputs=(train["x"] > 0).astype(int))

    @modelotel.instrument(model="rules-bins", baseline=base)
    def predict(df: Any) -> Any:
        return (df["x"] > 0).astype(int).to_numpy()

    with capture() as cap:
        predict(pd.DataFrame({"x": [-9.0, 0.1, 9.0], "c": ["a", "new", "b"]}))
        points = cap.collect()
    for metric, attr, profiles in (
        (A.METRIC_FEATURE_BIN, A.ML_FEATURE, base.features),
        (A.METRIC_OUTPUT_BIN, A.ML_OUTPUT, base.outputs),
    ):
        for prof in profiles:
            exported = {
                p.attributes[A.ML_BIN]
                for p in points
                if p.name == metric and p.attributes.get(attr) == prof.name
                and p.attributes.get(A.ML_MODEL_NAME) == "rules-bins"
            }
            labels = [label for label, _ in rules.column_bins(prof)]
            assert exported <= set(labels), (prof.name, exported, labels)
            assert len(labels) == len(set(labels))
            shares = [s for _, s in rules.column_bins(prof)]
            assert sum(shares) == pytest.approx(1.0)
    (cat,) = [f for f in base.features if f.name == "c"]
    assert rules.column_bins(cat)[-1] == ("unseen", 0.0)


def _baseline(seed: int = 0) -> Baseline:
    rng = np.random.default_rng(seed)
    return Baseline.from_data(rng.normal(size=(300, 2)), feature_names=["a", "b"],
                              outputs=rng.integers(0, 2, 300))


def test_generate_writes_every_contract_name_per_range() -> None:
    base = _baseline()  # one profile: its hash covers the creation second
    text = rules.generate([rules.BaselineRef("churn", "3", base)], ranges=["30m", "1h"])
    doc = yaml.safe_load(text)
    records = {r.get("record") for g in doc["groups"] for r in g["rules"]}
    for rng in ("30m", "1h", "lifetime"):
        for side in ("feature", "output"):
            for what in ("bin", "rows", "psi", "js", "chi2"):
                assert f"ml_fleet:{side}_{what}:{rng}" in records
    assert "ml_fleet:version_output_psi:30m" in records
    alerts = {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}
    assert set(alerts) == {"ModelFeatureDrift", "ModelOutputDrift", "ModelBaselineRulesStale"}
    assert "ml_fleet:feature_psi:30m" in alerts["ModelFeatureDrift"]["expr"]
    for alert in alerts.values():
        assert "group_left (ml_model_owner, ml_model_runbook_url)" in alert["expr"]
        assert "runbook_url" in alert["annotations"]
    shares = [r for g in doc["groups"] for r in g["rules"]
              if r.get("record") == "ml_baseline:feature_bin_share"]
    assert len(shares) == 2 * 12  # two features, 10 deciles + below + above
    assert {r["labels"]["ml_baseline_hash"] for r in shares} == {base.hash}


def test_generate_refuses_what_it_cannot_do() -> None:
    ref = rules.BaselineRef("churn", "3", _baseline())
    with pytest.raises(rules.RulesError, match="at least one baseline"):
        rules.generate([])
    with pytest.raises(rules.RulesError, match="two different baselines"):
        rules.generate([ref, rules.BaselineRef("churn", "3", _baseline(1))])
    with pytest.raises(rules.RulesError, match="duration"):
        rules.generate([ref], ranges=["an hour"])
    with pytest.raises(rules.RulesError, match="alert range"):
        rules.generate([ref], ranges=["1h"], alert_range="2h")
    with pytest.raises(rules.RulesError, match="PSI threshold"):
        rules.generate([ref], psi_threshold=0.0)
    # the same baseline twice is one baseline
    assert rules.generate([ref, ref]) == rules.generate([ref])


def test_cli_writes_the_rule_file_and_names_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.json"
    base = _baseline()  # one profile: its hash covers the creation second
    base.save(path)
    out = tmp_path / "rules.yml"
    assert cli.main(["rules", f"churn@3={path}", "-o", str(out), "--range", "2h"]) == 0
    assert "ranges 2h, lifetime" in capsys.readouterr().out
    doc = yaml.safe_load(out.read_text())
    info = [r for g in doc["groups"] for r in g["rules"] if r.get("record") == "ml_baseline:info"]
    assert info[0]["labels"] == {"ml_model_name": "churn", "ml_model_version": "3",
                                 "ml_baseline_hash": base.hash}
    assert cli.main(["rules", str(path), "-o", str(out), "--model", "m"]) == 0
    assert cli.main(["rules", str(path), "-o", str(out)]) == 2
    assert "which model serves with this baseline" in capsys.readouterr().err
    assert cli.main(["rules", f"m={tmp_path / 'missing.json'}", "-o", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_shipped_example_is_what_modelotel_rules_writes(tmp_path: Path) -> None:
    """collector-config/prometheus/examples/drift-rules.yml (used by the promtool tests) is
    regenerated by: cd collector-config/prometheus/examples && modelotel rules
    churn@3=churn-v3.baseline.json churn@4=churn-v4.baseline.json -o drift-rules.yml"""
    specs = ["churn@3=churn-v3.baseline.json", "churn@4=churn-v4.baseline.json"]
    refs = [
        rules.BaselineRef("churn", v, Baseline.load(EXAMPLES / f"churn-v{v}.baseline.json"))
        for v in ("3", "4")
    ]
    expected = rules.generate(refs, sources=specs)
    assert (EXAMPLES / "drift-rules.yml").read_text() == expected
