"""wrap(obj): methods that return the object itself hand back the proxy (no torch needed).

`model = modelotel.wrap(net).eval()` or `clf = modelotel.wrap(LogisticRegression()).fit(X, y)`
must keep the instrumentation; tests/test_torch_real.py checks the torch idioms for real.
"""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.linear_model import LogisticRegression

import modelotel
from modelotel import attributes as tn
from modelotel.testing import capture


class _Model:
    def __init__(self) -> None:
        self.mode = "train"
        self.other = _Model.__new__(_Model)

    def eval(self) -> _Model:
        self.mode = "eval"
        return self

    def sibling(self) -> _Model:
        return self.other

    def predict(self, x: list[int]) -> list[int]:
        return [v + 1 for v in x]


def test_methods_returning_the_model_return_the_proxy() -> None:
    obj = _Model()
    with capture() as cap:
        model = modelotel.wrap(obj, model="chain-plain").eval()
        assert obj.mode == "eval"
        assert isinstance(model, _Model)
        assert model.eval() is model
        assert model.sibling() is obj.other  # another object: returned as is
        assert inspect.ismethod(model.eval)
        assert list(inspect.signature(model.eval).parameters) == []
        assert model.predict([1]) == [2]
        assert [s.name for s in cap.spans()] == ["predict chain-plain"]


def test_sklearn_fit_chain_keeps_instrumentation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    y = (x[:, 0] > 0).astype(int)
    with capture() as cap:
        clf = modelotel.wrap(LogisticRegression(), model="chain-fit").fit(x, y)
        clf.predict(x[:3])
        (span,) = cap.spans()
        assert span.name == "predict chain-fit"
        assert span.attributes[tn.ML_INPUT_ROWS] == 3
