"""Baselines: profiles, save/load round trip, clear errors for bad files, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelotel.cli import main
from modelotel.stats.baseline import FORMAT_VERSION, Baseline, BaselineError, resolve


def _frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(10, 2, n),
        "const": np.full(n, 3.0),
        "flag": rng.integers(0, 2, n),
        "ties": np.where(rng.random(n) < 0.6, 0.0, rng.exponential(1, n)),
        "city": rng.choice(["a", "b", "c", "d"], n, p=[0.5, 0.3, 0.15, 0.05]),
        "withnan": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
    })


def test_numeric_profile_deciles_and_moments() -> None:
    df = _frame()
    b = Baseline.from_data(df)
    x = b.feature("x")
    assert x.kind == "numeric" and x.dtype == "float64"
    assert len(x.edges) == 11
    assert x.edges[0] == df["x"].min() and x.edges[-1] == df["x"].max()
    assert x.shares[0] == 0.0 and x.shares[-1] == 0.0   # below / above: nothing in training
    assert all(abs(s - 0.1) < 0.002 for s in x.shares[1:-1])
    assert sum(x.shares) == pytest.approx(1.0)
    assert x.mean == pytest.approx(df["x"].mean(), rel=1e-12)
    assert x.std == pytest.approx(df["x"].std(), rel=1e-9)
    assert (x.min, x.max) == (df["x"].min(), df["x"].max())
    assert x.missing_rate == 0.0


def test_ties_constant_and_low_cardinality() -> None:
    b = Baseline.from_data(_frame())
    const = b.feature("const")
    assert const.edges == (3.0, float(np.nextafter(3.0, np.inf)))
    assert const.shares == (0.0, 1.0, 0.0)
    assert const.std == 0.0
    flag = b.feature("flag")
    assert flag.edges[:2] == (0.0, 1.0) and len(flag.edges) == 3  # one bin per value
    assert flag.shares[0] == 0.0 and flag.shares[-1] == 0.0
    ties = b.feature("ties")
    assert len(set(ties.edges)) == len(ties.edges)  # duplicate quantiles collapsed
    assert ties.shares[1] == pytest.approx(0.6, abs=0.03)  # the zeros share one bin
    wn = b.feature("withnan")
    assert wn.nan > 0 and wn.missing_rate == pytest.approx(wn.nan / 2000)


def test_categorical_top_k_other_and_known_other() -> None:
    b = Baseline.from_data(_frame(), top_k=2)
    city = b.feature("city")
    assert city.kind == "categorical"
    assert city.categories == ("a", "b")
    assert len(city.shares) == 3 and sum(city.shares) == pytest.approx(1.0)
    assert city.known_other == ("c", "d")


def test_outputs_scores_and_classes() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 3))
    b = Baseline.from_data(X, outputs=(X[:, 0] > 0).astype(int), feature_names=["a", "b", "c"])
    assert b.feature_names == ("a", "b", "c")
    assert b.outputs[0].kind == "categorical"
    assert b.outputs[0].categories in (("0", "1"), ("1", "0"))
    b2 = Baseline.from_data(X, outputs=rng.random((500, 2)))
    assert [o.kind for o in b2.outputs] == ["numeric", "numeric"]
    assert [o.name for o in b2.outputs] == ["0", "1"]


def test_round_trip_and_hash(tmp_path: Path) -> None:
    b = Baseline.from_data(_frame(), outputs=np.arange(2000) % 3)
    path = tmp_path / "b.json"
    digest = b.save(path)
    assert digest == b.hash and digest.startswith("sha256:")
    loaded = Baseline.load(path)
    assert loaded == b
    assert loaded.hash == b.hash
    doc = json.loads(path.read_text())
    assert doc["format"] == "modelotel.baseline" and doc["version"] == FORMAT_VERSION
    assert resolve(str(path)) == b and resolve(b) is b and resolve(None) is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t[: len(t) // 2], "not valid JSON"),
        (lambda t: t.replace('"rows": 2000', '"rows": 2001'), "hash mismatch"),
        (lambda t: t.replace(f'"version": {FORMAT_VERSION}', '"version": 99'), "format version 99"),
        (lambda t: '{"hello": 1}', r"not a modelotel baseline"),
        (lambda t: "", "not valid JSON"),
    ],
)
def test_bad_files_fail_with_a_clear_error(tmp_path: Path, mutate: object, message: str) -> None:
    path = tmp_path / "b.json"
    Baseline.from_data(_frame()).save(path)
    path.write_text(mutate(path.read_text()))  # type: ignore[operator]
    with pytest.raises(BaselineError, match=message):
        Baseline.load(path)


def test_missing_file_and_wrong_type() -> None:
    with pytest.raises(BaselineError, match="does not exist"):
        Baseline.load("/nonexistent/baseline.json")
    with pytest.raises(BaselineError, match=r"path or a modelotel\.Baseline"):
        resolve(42)


def test_from_data_argument_errors() -> None:
    with pytest.raises(BaselineError, match="bins"):
        Baseline.from_data(np.ones((3, 2)), bins=0)
    with pytest.raises(BaselineError, match="feature_names has 1 names"):
        Baseline.from_data(np.ones((3, 2)), feature_names=["a"])
    with pytest.raises(BaselineError, match="cannot profile"):
        Baseline.from_data([])


def test_cli_profile_csv_parquet_npy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = _frame(300)
    df["label"] = np.arange(300) % 2
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet")
    np.save(tmp_path / "d.npy", np.random.default_rng(0).normal(size=(100, 3)))
    assert main(["profile", str(tmp_path / "d.csv"), "-o", str(tmp_path / "c.json"),
                 "--target", "label"]) == 0
    c = Baseline.load(tmp_path / "c.json")
    assert "label" not in c.feature_names and c.outputs[0].name == "label"
    assert main(["profile", str(tmp_path / "d.parquet"), "-o", str(tmp_path / "p.json")]) == 0
    p = Baseline.load(tmp_path / "p.json")
    assert p.feature("city").categories[0] == "a"
    assert main(["profile", str(tmp_path / "d.npy"), "-o", str(tmp_path / "n.json"),
                 "--feature-names", "u,v,w", "--bins", "4"]) == 0
    n = Baseline.load(tmp_path / "n.json")
    assert n.feature_names == ("u", "v", "w") and len(n.feature("u").edges) == 5
    out = capsys.readouterr().out
    assert out.count("wrote ") == 3 and "sha256:" in out


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "x.json")]) == 2
    (tmp_path / "d.xyz").write_text("1")
    assert main(["profile", str(tmp_path / "d.xyz"), "-o", str(tmp_path / "x.json")]) == 2
    pd.DataFrame({"a": [1.0]}).to_csv(tmp_path / "d.csv", index=False)
    assert main(["profile", str(tmp_path / "d.csv"), "-o", str(tmp_path / "x.json"),
                 "--target", "zz"]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "unknown data format" in err and "zz" in err
    with pytest.raises(SystemExit):
        main([])
