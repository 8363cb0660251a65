"""wrap(obj): model objects instrumented without editing their code (duck typing)."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator
from typing import Any

import cloudpickle
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import modelotel
from modelotel import attributes as tn
from modelotel._wrap import find_predict_methods
from modelotel.testing import Captured, capture


@pytest.fixture
def cap() -> Iterator[Captured]:
    with capture() as c:
        yield c


@pytest.fixture(scope="module")
def fitted() -> Pipeline:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)


def test_wrap_real_sklearn_model(cap: Captured, fitted: Pipeline) -> None:
    x = np.random.default_rng(1).normal(size=(5, 4))
    expected = fitted.predict(x)
    expected_proba = fitted.predict_proba(x)
    model = modelotel.wrap(fitted, model="churn", version="3")
    assert isinstance(model, Pipeline)
    np.testing.assert_array_equal(model.predict(x), expected)
    np.testing.assert_array_equal(model.predict_proba(x), expected_proba)
    # attributes and non-predict methods behave like the original
    assert model.steps is fitted.steps
    assert model.get_params()["logisticregression__C"] == 1.0
    spans = cap.spans()
    assert [s.name for s in spans] == ["predict churn", "predict churn"]
    for span in spans:
        assert span.attributes[tn.ML_INPUT_ROWS] == 5
        assert span.attributes[tn.ML_INPUT_FEATURES] == 4
        assert span.attributes[tn.ML_MODEL_VERSION] == "3"
    info = cap.metric(tn.METRIC_MODEL_INFO, **{tn.ML_MODEL_NAME: "churn"})
    assert info.attributes[tn.ML_MODEL_FRAMEWORK] == "sklearn"


def test_wrap_finds_sklearn_methods_and_skips_unavailable(fitted: Pipeline) -> None:
    assert find_predict_methods(fitted) == (
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
    )
    from sklearn.svm import SVC

    # SVC(probability=False) hides predict_proba (available_if): not instrumented
    assert find_predict_methods(SVC()) == ("predict", "decision_function")


def test_wrap_internal_calls_make_no_nested_spans(cap: Captured) -> None:
    class Model:
        def predict(self, x: list[float]) -> list[int]:
            return [int(p > 0.5) for p in self.predict_proba(x)]

        def predict_proba(self, x: list[float]) -> list[float]:
            return list(x)

    model = modelotel.wrap(Model(), model="wrap-internal")
    assert model.predict([0.2, 0.9]) == [0, 1]
    assert [s.name for s in cap.spans()] == ["predict wrap-internal"]


def _fake_class(module: str, qualname: str, **body: Any) -> type:
    cls = type(qualname, (), dict(body))
    cls.__module__ = module
    cls.__qualname__ = qualname
    return cls


def test_wrap_torch_like_module_instruments_call(cap: Captured) -> None:
    module_base = _fake_class(
        "torch.nn.modules.module",
        "Module",
        __call__=lambda self, x: self.forward(x),
    )

    class Net(module_base):  # type: ignore[valid-type, misc]
        def forward(self, x: list[float]) -> list[float]:
            return [v * 2 for v in x]

    net = Net()
    assert find_predict_methods(net) == ("__call__",)
    wrapped = modelotel.wrap(net, model="wrap-torch")
    assert isinstance(wrapped, Net)
    assert isinstance(wrapped, module_base)
    assert wrapped([1.0, 2.0]) == [2.0, 4.0]
    assert wrapped.forward([1.0]) == [2.0]  # forward itself is not instrumented
    (span,) = cap.spans()
    assert span.name == "predict wrap-torch"
    info = cap.metric(tn.METRIC_MODEL_INFO, **{tn.ML_MODEL_NAME: "wrap-torch"})
    assert info.attributes[tn.ML_MODEL_FRAMEWORK] == "pytorch"


def test_wrap_hf_pipeline_like(cap: Captured) -> None:
    pipeline_cls = _fake_class(
        "transformers.pipelines.text_classification",
        "TextClassificationPipeline",
        __call__=lambda self, texts: [{"label": "POS"} for _ in texts],
        predict=lambda self, texts: self(texts),
    )
    pipe = pipeline_cls()
    assert find_predict_methods(pipe) == ("__call__",)
    wrapped = modelotel.wrap(pipe, model="wrap-hf")
    assert wrapped(["good", "bad"]) == [{"label": "POS"}, {"label": "POS"}]
    (span,) = cap.spans()
    assert span.attributes[tn.ML_INPUT_ROWS] == 2


def test_wrap_xgboost_and_lightgbm_like_boosters(cap: Captured) -> None:
    xgb_booster = _fake_class(
        "xgboost.core",
        "Booster",
        predict=lambda self, d: [0.1],
        inplace_predict=lambda self, d: [0.2],
    )
    lgb_booster = _fake_class("lightgbm.basic", "Booster", predict=lambda self, d: [0.3])
    # a Booster's predict takes a DMatrix: inplace_predict, the serving call, is primary
    assert find_predict_methods(xgb_booster()) == ("inplace_predict", "predict")
    assert find_predict_methods(lgb_booster()) == ("predict",)
    xgb = modelotel.wrap(xgb_booster(), model="wrap-xgb")
    lgb = modelotel.wrap(lgb_booster(), model="wrap-lgb")
    assert xgb.predict([[1]]) == [0.1]
    assert xgb.inplace_predict([[1]]) == [0.2]
    assert lgb.predict([[1]]) == [0.3]
    assert [s.name for s in cap.spans()] == [
        "predict wrap-xgb",
        "predict wrap-xgb",
        "predict wrap-lgb",
    ]
    frameworks = {
        p.attributes[tn.ML_MODEL_NAME]: p.attributes[tn.ML_MODEL_FRAMEWORK]
        for p in cap.metrics()
        if p.name == tn.METRIC_MODEL_INFO
    }
    assert frameworks["wrap-xgb"] == "xgboost"
    assert frameworks["wrap-lgb"] == "lightgbm"


def test_wrap_plain_callables(cap: Captured) -> None:
    def score(x: list[int]) -> int:
        return sum(x)

    class Scorer:
        def __call__(self, x: list[int]) -> int:
            return len(x)

    f = modelotel.wrap(score, model="wrap-fn")
    s = modelotel.wrap(Scorer(), model="wrap-callable")
    assert f([1, 2]) == 3
    assert s([1, 2, 3]) == 3
    assert isinstance(s, Scorer)
    assert f.__name__ == "score"
    assert [sp.name for sp in cap.spans()] == ["predict wrap-fn", "predict wrap-callable"]


def test_wrap_explicit_methods_and_errors(cap: Captured) -> None:
    class Model:
        def infer(self, x: list[int]) -> list[int]:
            return x

        def predict(self, x: list[int]) -> list[int]:
            return x

    model = modelotel.wrap(Model(), model="wrap-explicit", methods=["infer"])
    model.infer([1])
    model.predict([1])  # not listed: not instrumented
    assert len(cap.spans()) == 1
    with pytest.raises(ValueError, match="no method 'nope'"):
        modelotel.wrap(Model(), methods=["nope"])
    with pytest.raises(TypeError, match="no predict-like method"):
        modelotel.wrap(object())
    with pytest.raises(TypeError, match="not one str"):
        modelotel.wrap(Model(), methods="predict")


def test_wrap_twice_is_a_noop(cap: Captured) -> None:
    class Model:
        def predict(self, x: list[int]) -> list[int]:
            return x

    once = modelotel.wrap(Model(), model="wrap-twice")
    twice = modelotel.wrap(once, model="wrap-twice-again")
    assert twice is once
    twice.predict([1])
    assert [s.name for s in cap.spans()] == ["predict wrap-twice"]


def test_wrapped_model_pickles_and_copies(cap: Captured, fitted: Pipeline) -> None:
    x = np.ones((2, 4))
    model = modelotel.wrap(fitted, model="wrap-pickle", version="9")
    for clone in (
        pickle.loads(pickle.dumps(model)),
        cloudpickle.loads(cloudpickle.dumps(model)),
        copy.copy(model),
        copy.deepcopy(model),
    ):
        assert isinstance(clone, Pipeline)
        np.testing.assert_array_equal(clone.predict(x), fitted.predict(x))
    spans = cap.spans()
    assert [s.name for s in spans] == ["predict wrap-pickle"] * 4
    assert {s.attributes[tn.ML_MODEL_VERSION] for s in spans} == {"9"}


def test_wrap_of_a_class_already_decorated_is_one_span(cap: Captured) -> None:
    class Model:
        @modelotel.instrument(model="wrap-decorated")
        def predict(self, x: list[int]) -> list[int]:
            return x

        def predict_proba(self, x: list[int]) -> list[float]:
            return [0.5 for _ in x]

    model = modelotel.wrap(Model(), model="wrap-decorated-proxy")
    model.predict([1])
    model.predict_proba([1])
    assert [s.name for s in cap.spans()] == [
        "predict wrap-decorated",
        "predict wrap-decorated-proxy",
    ]
