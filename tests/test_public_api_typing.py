"""The public API as typed code: tests/typecheck/usage.py runs, uses every public name, and
misuse of the API fails ``mypy --strict``.

``.venv/bin/mypy`` type-checks usage.py itself (pyproject's ``[tool.mypy] files``).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel.testing import capture

ROOT = Path(__file__).resolve().parents[1]
USAGE = ROOT / "tests" / "typecheck" / "usage.py"


def _usage() -> ModuleType:
    spec = importlib.util.spec_from_file_location("modelotel_usage", USAGE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_usage_uses_every_public_name() -> None:
    tree = ast.parse(USAGE.read_text())
    used = {n.attr for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "modelotel"}
    used |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
             and n.module == "modelotel" for a in n.names}
    assert sorted(set(modelotel.__all__) - used) == []


def test_usage_runs_as_typed(tmp_path: Path) -> None:
    usage = _usage()
    with capture() as cap:
        got = usage.serve(tmp_path / "churn.baseline.json")
        spans = {s.name for s in cap.spans()}
        outcomes = cap.metric(A.METRIC_OUTCOME_COUNT, **{A.ML_MODEL_NAME: "usage-churn"})
    assert got["version"] == modelotel.__version__
    assert isinstance(got["hash"], str)
    assert got["hash"].startswith("sha256:")  # of the baseline's content
    assert got["items"] == got["aitems"]
    assert len(got["items"]) == 8
    assert np.asarray(got["probabilities"]).shape == (8, 2)
    assert isinstance(got["block_id"], str)
    assert len(got["block_id"]) == 16
    assert got["model_attribute"] == "ml.model.name"
    assert outcomes.value == 8  # record_outcome matched the 8 labels of the last call
    assert spans >= {
        "predict usage-churn", "predict usage-churn-payloads", "predict usage-churn-options",
        "predict usage-churn-stream", "predict usage-churn-astream", "predict usage-churn-drift",
        "predict usage-churn-wrapped", "predict usage-churn-proba", "predict usage-churn-block",
    }
    with capture() as cap:
        assert usage.in_a_users_test() == 2  # one span, one call counted


# (snippet, the mypy error code it must raise)
MISUSE = [
    ('modelotel.instrument(model="m", unknown_option=1)', "call-overload"),
    ('modelotel.observe("m", version=3.5)', "arg-type"),
    ('modelotel.wrap(object(), model="m", payload_sample_rate="all")', "arg-type"),
    ("modelotel.record_outcome(12345, [1])", "arg-type"),
    ('x: str = modelotel.last_prediction_id()', "assignment"),
    ('modelotel.PayloadConfig(deny_fields="password", no_such_field=1)', "call-arg"),
]


@pytest.mark.slow
def test_misuse_fails_the_type_check(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    lines = ["import modelotel", *(snippet for snippet, _ in MISUSE)]
    snippet = tmp_path / "misuse.py"
    snippet.write_text("\n".join(lines) + "\n")
    stdout, stderr, status = api.run([
        "--config-file", str(ROOT / "pyproject.toml"), "--no-incremental", str(snippet),
    ])
    assert status == 1, (stdout, stderr)
    by_line: dict[int, list[str]] = {}
    for line in stdout.splitlines():
        parts = line.split(":", 3)
        if len(parts) == 4 and parts[2].strip() == "error":
            by_line.setdefault(int(parts[1]), []).append(parts[3])
    for i, (snippet, code) in enumerate(MISUSE, start=2):
        assert any(f"[{code}]" in e for e in by_line.get(i, [])), (snippet, by_line.get(i), stdout)
    assert 1 not in by_line  # the correct line passes
