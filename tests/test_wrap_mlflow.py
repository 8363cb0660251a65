"""model_uri= and wrap() of an MLflow pyfunc model: the model's name and version come from the
MLflow model registry (a real one: SQLite in a temporary directory), never typed by hand;
mlflow is imported only when a registry must be read."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import modelotel
from modelotel import attributes as tn
from modelotel._options import model_config
from modelotel._runtime import runtime
from modelotel.testing import Captured, capture

NAME = "churn-registry"
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def cap() -> Iterator[Captured]:
    with capture() as c:
        yield c


@pytest.fixture(scope="module")
def fitted() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))


def _served(cap: Captured) -> set[tuple[Any, Any]]:
    return {(s.attributes[tn.ML_MODEL_NAME], s.attributes[tn.ML_MODEL_VERSION])
            for s in cap.spans()}


# ----------------------------------------------------------- models:/NAME/VERSION, no mlflow
def test_versioned_uri_names_the_model_and_version(
    cap: Captured, fitted: LogisticRegression
) -> None:
    clf = modelotel.wrap(fitted, model_uri="models:/churn/3")
    x = np.zeros((4, 3))
    np.testing.assert_array_equal(clf.predict(x), fitted.predict(x))
    assert _served(cap) == {("churn", "3")}
    assert [s.name for s in cap.spans()] == ["predict churn"]


def test_versioned_uri_names_a_decorated_function_and_an_observe_block(cap: Captured) -> None:
    @modelotel.instrument(model_uri="models:/churn/4")
    def predict(x: Any) -> Any:
        return x

    predict([[1.0]])
    with modelotel.observe("churn", model_uri="models:/churn/5") as call:
        call.stop([1])
    assert _served(cap) == {("churn", "4"), ("churn", "5")}


def test_the_same_name_and_version_given_again_agree() -> None:
    cfg = model_config(model="churn", version=3, model_uri="models:/churn/3")
    assert (cfg.model, cfg.version) == ("churn", "3")


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"version": "2"}, "version='2' differs from version 3 of models:/churn/3"),
        ({"model": "churn-v3"}, "model='churn-v3' differs from the registered model 'churn'"),
    ],
)
def test_a_name_or_version_that_contradicts_the_uri_is_a_setup_error(
    fitted: LogisticRegression, extra: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValueError, match=r"drop (version|model)=") as err:
        modelotel.wrap(fitted, model_uri="models:/churn/3", **extra)
    assert says in str(err.value)


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("runs:/0a1b/model", "must name a registered model version"),
        ("models:/churn", "must name a registered model version"),
        ("models:/m-0123abcd", "must name a registered model version"),  # a logged model id
        ("models://databricks/churn/3", "must name a registered model version"),
        ("models:/churn/latest", "'latest' is not a version number"),
        ("models:/churn/Production", "'Production' is not a version number"),
        ("models:/churn/0", "'0' is not a version number"),
        ("models:/churn@", "must name a registered model version"),
    ],
)
def test_a_uri_that_pins_no_registered_version_is_rejected(uri: str, says: str) -> None:
    with pytest.raises(ValueError, match="models:/NAME/VERSION") as err:
        model_config(model_uri=uri)
    assert says in str(err.value)


def test_a_uri_that_is_not_text_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="model_uri= must be a str"):
        model_config(model_uri=3)  # type: ignore[typeddict-item]


def test_the_registry_version_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELOTEL_MODEL_VERSION", "7")
    runtime.reload_settings()
    try:
        assert model_config(model_uri="models:/churn/3").version == "3"
        assert model_config(model="churn").version == "7"
    finally:
        monkeypatch.delenv("MODELOTEL_MODEL_VERSION")
        runtime.reload_settings()


@pytest.mark.slow
def test_mlflow_is_imported_neither_by_modelotel_nor_by_a_pinned_uri() -> None:
    code = textwrap.dedent("""
        import sys
        import modelotel
        assert "mlflow" not in sys.modules, "import modelotel imported mlflow"
        from sklearn.linear_model import LogisticRegression
        clf = modelotel.wrap(LogisticRegression().fit([[0.0], [1.0]], [0, 1]),
                             model_uri="models:/churn/3")
        clf.predict([[0.5]])
        assert "mlflow" not in sys.modules, "a models:/NAME/VERSION uri imported mlflow"
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC), "MODELOTEL_DISABLED": "",
           "MODELOTEL_STATS_KERNEL": "numpy"}
    cp = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                        check=False, timeout=120)
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert cp.stdout.strip() == "ok"


# ----------------------------------------------------------- a real registry (mlflow needed)
class Registry:
    def __init__(self, mlflow: Any, root: Path) -> None:
        self.mlflow = mlflow
        self.root = root
        self.client = mlflow.MlflowClient()

    def log(self, model: Any, register_as: str | None = NAME) -> Any:
        """Log ``model`` in a new run (registered as ``register_as``); its ModelInfo."""
        with self.mlflow.start_run():
            return self.mlflow.sklearn.log_model(
                model, name="model", registered_model_name=register_as,
                # cloudpickle: skops' first import costs seconds; the format is not under test
                serialization_format="cloudpickle", pip_requirements=["scikit-learn"],
            )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A local MLflow registry with versions 1 and 2 of NAME; alias champion on version 1."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # no usage reports to MLflow's servers
        mlflow = pytest.importorskip("mlflow")
        root = tmp_path_factory.mktemp("mlflow")
        before = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        try:
            mlflow.set_experiment(experiment_id=mlflow.create_experiment(
                "tests", artifact_location=(root / "artifacts").as_uri()))
            reg = Registry(mlflow, root)
            rng = np.random.default_rng(0)
            x = rng.normal(size=(200, 3))
            y = (x[:, 0] > 0).astype(int)
            for c in (1.0, 0.01):
                reg.log(LogisticRegression(C=c).fit(x, y))
            reg.client.set_registered_model_alias(NAME, "champion", "1")
            yield reg
        finally:
            mlflow.set_tracking_uri(before)


# MLflow's own deprecation and safety warnings are not ours (pytest turns warnings into
# errors); a real registry takes seconds to create (its schema migrations): out of the quick loop
def registry_test(test: Any) -> Any:
    marks = pytest.mark.filterwarnings(
        "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")
    return pytest.mark.slow(marks(test))


@registry_test
def test_an_alias_is_resolved_to_the_version_it_points_at(
    registry: Registry, cap: Captured, fitted: LogisticRegression
) -> None:
    uri = f"models:/{NAME}@champion"
    modelotel.wrap(fitted, model_uri=uri).predict(np.zeros((2, 3)))
    registry.client.set_registered_model_alias(NAME, "champion", "2")
    try:
        modelotel.wrap(fitted, model_uri=uri).predict(np.zeros((2, 3)))
    finally:
        registry.client.set_registered_model_alias(NAME, "champion", "1")
    assert _served(cap) == {(NAME, "1"), (NAME, "2")}


@registry_test
def test_an_alias_the_registry_does_not_know_is_a_setup_error(registry: Registry) -> None:
    with pytest.raises(ValueError, match="has no alias 'nobody' of model") as err:
        model_config(model_uri=f"models:/{NAME}@nobody")
    assert "mlflow.db" in str(err.value)  # which registry was asked
    with pytest.raises(ValueError, match="version='2' differs from version 1"):
        model_config(model_uri=f"models:/{NAME}@champion", version="2")


@registry_test
@pytest.mark.parametrize("loaded_by", [f"models:/{NAME}/2", f"models:/{NAME}@champion"])
def test_a_loaded_pyfunc_model_is_named_by_the_version_it_was_registered_as(
    registry: Registry, cap: Captured, loaded_by: str
) -> None:
    loaded = registry.mlflow.pyfunc.load_model(loaded_by)
    model = modelotel.wrap(loaded)
    x = np.random.default_rng(1).normal(size=(6, 3))
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    expected = "2" if loaded_by.endswith("/2") else "1"
    assert _served(cap) == {(NAME, expected)}
    assert cap.spans()[0].attributes[tn.ML_INPUT_ROWS] == 6
    info = cap.metric(tn.METRIC_MODEL_INFO, **{tn.ML_MODEL_NAME: NAME})
    assert info.attributes[tn.ML_MODEL_FRAMEWORK] == "sklearn"  # the flavor under pyfunc


@registry_test
def test_a_given_version_or_uri_is_used_without_searching_the_registry(
    registry: Registry, cap: Captured
) -> None:
    loaded = registry.mlflow.pyfunc.load_model(f"models:/{NAME}/2")
    # a registry that cannot be opened: only a search would notice
    registry.mlflow.set_tracking_uri("nowhere://registry")
    try:
        with pytest.raises(ValueError, match=r"cannot open the MLflow registry .*nowhere://"):
            modelotel.wrap(loaded)
        modelotel.wrap(loaded, model="churn", version="9").predict(np.zeros((1, 3)))
        modelotel.wrap(loaded, model_uri=f"models:/{NAME}/2").predict(np.zeros((1, 3)))
    finally:
        registry.mlflow.set_tracking_uri(f"sqlite:///{registry.root / 'mlflow.db'}")
    assert _served(cap) == {("churn", "9"), (NAME, "2")}


@registry_test
def test_a_pyfunc_model_registered_twice_must_be_named_by_model_uri(
    registry: Registry, cap: Captured, fitted: LogisticRegression
) -> None:
    info = registry.log(fitted, register_as="twice-a")
    registry.mlflow.register_model(info.model_uri, "twice-b")
    loaded = registry.mlflow.pyfunc.load_model("models:/twice-a/1")
    with pytest.raises(ValueError, match=r"registered 2 times \(models:/twice-a/1, "
                                         r"models:/twice-b/1\); pass model_uri="):
        modelotel.wrap(loaded)
    modelotel.wrap(loaded, model_uri="models:/twice-b/1").predict(np.zeros((1, 3)))
    assert _served(cap) == {("twice-b", "1")}


@registry_test
def test_an_unregistered_pyfunc_model_keeps_the_defaults(
    registry: Registry, cap: Captured, fitted: LogisticRegression
) -> None:
    info = registry.log(fitted, register_as=None)
    loaded = registry.mlflow.pyfunc.load_model(info.model_uri)
    modelotel.wrap(loaded).predict(np.zeros((1, 3)))
    assert _served(cap) == {("PyFuncModel", "")}
