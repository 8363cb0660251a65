"""wrap() on real models of each framework: the primary method is the serving call, its calls
feed the statistics (rows, features, names); an XGBoost DMatrix and a CatBoost Pool are read;
what cannot be read is a counted skip; explicit ``methods=`` wins; the choice is logged once."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

# xgboost and lightgbm come with the examples' requirements (tests/run.sh installs them);
# catboost, torch and transformers are optional here: the tests that need one skip without it
lgb = pytest.importorskip("lightgbm")
xgb = pytest.importorskip("xgboost")

import modelotel  # noqa: E402
from modelotel import _wrap  # noqa: E402
from modelotel import attributes as A  # noqa: E402, N812
from modelotel._frameworks import choose  # noqa: E402
from modelotel._instrument import PLAN_ATTR  # noqa: E402
from modelotel._safety import health  # noqa: E402
from modelotel.stats.read import extract  # noqa: E402
from modelotel.stats.reasons import SKIP_EMPTY, SKIP_FRAMEWORK_DATA  # noqa: E402
from modelotel.testing import Captured, capture  # noqa: E402

FEATURES = ["tenure", "charges", "calls", "age"]
ROWS = 7
_ids = itertools.count()


def _name(prefix: str) -> str:
    return f"fw-{prefix}-{next(_ids)}"


@pytest.fixture
def cap() -> Iterator[Captured]:
    with capture() as c:
        yield c


@pytest.fixture(autouse=True)
def _fresh_log_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # wrap() logs its choice once per class per process: each test starts with none logged
    monkeypatch.setattr(_wrap, "_described", set())


def _train() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(60, len(FEATURES))), columns=FEATURES)
    y = (x["charges"] - x["tenure"] > 0).astype(int).to_numpy()
    return x, y


def _serving(rows: int = ROWS) -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(1).normal(size=(rows, len(FEATURES))),
                        columns=FEATURES)


# ------------------------------------------------------------------------- models
def _xgb_booster() -> Any:
    x, y = _train()
    return xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
                     xgb.DMatrix(x, label=y), num_boost_round=3)


def _lgb_booster() -> Any:
    x, y = _train()
    return lgb.train({"objective": "binary", "num_leaves": 4, "min_data_in_leaf": 5,
                      "verbose": -1, "num_threads": 1}, lgb.Dataset(x, label=y),
                     num_boost_round=3)


def _xgb_classifier() -> Any:
    x, y = _train()
    return xgb.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1).fit(x, y)


def _lgb_classifier() -> Any:
    x, y = _train()
    return lgb.LGBMClassifier(n_estimators=3, num_leaves=4, min_child_samples=5, verbose=-1,
                              n_jobs=1).fit(x, y)


def _catboost() -> Any:
    return pytest.importorskip("catboost")


def _torch() -> Any:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)  # tiny models: threads only contend on a shared machine
    return torch


def _catboost_classifier() -> Any:
    catboost = _catboost()
    x, y = _train()
    return catboost.CatBoostClassifier(iterations=3, depth=2, verbose=0, thread_count=1,
                                       allow_writing_files=False).fit(x, y)


def _catboost_regressor() -> Any:
    catboost = _catboost()
    x, y = _train()
    return catboost.CatBoostRegressor(iterations=3, depth=2, verbose=0, thread_count=1,
                                      allow_writing_files=False).fit(x, y.astype(float))


def _sklearn_pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _train()
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)


def _sklearn_regressor() -> Any:
    from sklearn.linear_model import LinearRegression

    x, y = _train()
    return LinearRegression().fit(x, y)


_SK = ("predict", "predict_proba", "predict_log_proba", "decision_function")

#: model -> (framework, methods in order, the rule that chose them)
DEFAULTS: dict[str, tuple[Callable[[], Any], str, tuple[str, ...], str]] = {
    "xgb-booster": (_xgb_booster, "xgboost", ("inplace_predict", "predict"), "xgboost.Booster"),
    "lgb-booster": (_lgb_booster, "lightgbm", ("predict",), "lightgbm.Booster"),
    "xgb-sklearn": (_xgb_classifier, "xgboost", ("predict", "predict_proba"),
                    "XGBoost scikit-learn API"),
    "lgb-sklearn": (_lgb_classifier, "lightgbm", ("predict", "predict_proba",
                                                  "decision_function"),
                    "LightGBM scikit-learn API"),
    "catboost-classifier": (_catboost_classifier, "catboost",
                            ("predict", "predict_proba", "predict_log_proba"), "CatBoost"),
    "catboost-regressor": (_catboost_regressor, "catboost", ("predict",), "CatBoost"),
    "sklearn-pipeline": (_sklearn_pipeline, "sklearn", _SK, "scikit-learn API"),
    "sklearn-regressor": (_sklearn_regressor, "sklearn", ("predict",), "scikit-learn API"),
}


@pytest.mark.parametrize("key", list(DEFAULTS))
def test_each_framework_default_puts_the_serving_call_first(key: str) -> None:
    build, framework, methods, rule = DEFAULTS[key]
    choice = choose(build())
    assert (choice.framework, choice.methods, choice.rule) == (framework, methods, rule)


@pytest.mark.parametrize("key", list(DEFAULTS))
def test_the_primary_serving_call_feeds_statistics_with_names(cap: Captured, key: str) -> None:
    build, _, methods, _ = DEFAULTS[key]
    raw = build()
    name = _name(key)
    model = modelotel.wrap(raw, model=name)
    frame = _serving()
    out = getattr(model, methods[0])(frame)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(getattr(raw, methods[0])(frame)))
    for other in methods[1:]:  # secondary methods: a span each, no statistics
        getattr(model, other)(xgb.DMatrix(frame) if key == "xgb-booster" else frame)
    spans = cap.spans()
    assert [s.attributes[A.ML_MODEL_METHOD] for s in spans] == list(methods)
    assert {s.attributes[A.ML_INPUT_ROWS] for s in spans} == {ROWS}
    counts = {p.attributes[A.ML_FEATURE]: p.value for p in cap.collect()
              if p.name == A.METRIC_FEATURE_COUNT and p.attributes[A.ML_MODEL_NAME] == name}
    assert counts == dict.fromkeys(FEATURES, ROWS)  # once, by name: only the primary counts
    info = cap.metric(A.METRIC_MODEL_INFO, **{A.ML_MODEL_NAME: name})
    assert info.attributes[A.ML_MODEL_METHOD] == methods[0]


def test_torch_module_primary_is_calling_it(cap: Captured) -> None:
    torch = _torch()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Softmax(dim=1)).eval()
    assert (choose(net).framework, choose(net).methods) == ("pytorch", ("__call__",))
    name = _name("torch")
    model = modelotel.wrap(net, model=name)
    x = torch.randn(ROWS, 4)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
        model.forward(x)  # not instrumented: calling forward skips the module's hooks
    (span,) = cap.spans()
    assert span.attributes[A.ML_MODEL_METHOD] == "__call__"
    assert (span.attributes[A.ML_INPUT_ROWS], span.attributes[A.ML_INPUT_FEATURES]) == (ROWS, 4)
    counts = {p.attributes[A.ML_FEATURE]: p.value for p in cap.collect()
              if p.name == A.METRIC_FEATURE_COUNT and p.attributes[A.ML_MODEL_NAME] == name}
    assert counts == {"0": ROWS, "1": ROWS, "2": ROWS, "3": ROWS}
    outputs = cap.metric(A.METRIC_OUTPUT_COUNT, **{A.ML_MODEL_NAME: name, A.ML_OUTPUT: "1"})
    assert outputs.value == ROWS


def test_hugging_face_pipeline_primary_is_calling_it(cap: Captured) -> None:
    torch = _torch()
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "[PAD]": 1, "[CLS]": 2, "[SEP]": 3, "good": 4, "bad": 5, "plot": 6}
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=16,
                                     max_position_embeddings=16)
    pipe = transformers.pipeline(
        "text-classification", model=transformers.BertForSequenceClassification(config).eval(),
        tokenizer=tok)
    choice = choose(pipe)
    assert (choice.framework, choice.methods, choice.rule) == (
        "transformers", ("__call__",), "Hugging Face pipeline")
    name = _name("hf")
    model = modelotel.wrap(pipe, model=name)
    assert len(model(["good plot", "bad", "good good bad"])) == 3
    (span,) = cap.spans()
    assert span.attributes[A.ML_MODEL_METHOD] == "__call__"
    tokens = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_MODEL_NAME: name,
                                                   A.ML_FEATURE: "text.tokens"})
    assert tokens.value == 3


# ------------------------------------------------------------------------ DMatrix
def _with_gaps(rows: int = ROWS) -> pd.DataFrame:
    frame = _serving(rows)
    frame.iloc[0, 1] = np.nan
    frame.iloc[2, 3] = np.nan
    frame.iloc[1, 0] = 0.0  # a stored zero is a value, not a missing one
    return frame


def test_dmatrix_inputs_are_read_with_their_names(cap: Captured) -> None:
    booster = _xgb_booster()
    name = _name("dmatrix")
    # explicit methods= wins over the default (inplace_predict first)
    model = modelotel.wrap(booster, model=name, methods=["predict", "inplace_predict"])
    frame = _with_gaps()
    dmat = xgb.DMatrix(frame)
    np.testing.assert_array_equal(model.predict(dmat), booster.predict(dmat))
    model.inplace_predict(frame)  # secondary now: not counted
    spans = cap.spans()
    assert [s.attributes[A.ML_MODEL_METHOD] for s in spans] == ["predict", "inplace_predict"]
    assert (spans[0].attributes[A.ML_INPUT_ROWS], spans[0].attributes[A.ML_INPUT_FEATURES]) == (
        ROWS, len(FEATURES))
    points = [p for p in cap.collect() if p.attributes.get(A.ML_MODEL_NAME) == name]
    counts = {p.attributes[A.ML_FEATURE]: p.value for p in points
              if p.name == A.METRIC_FEATURE_COUNT}
    assert counts == dict.fromkeys(FEATURES, ROWS)
    nans = {p.attributes[A.ML_FEATURE]: p.value for p in points
            if p.name == A.METRIC_FEATURE_MISSING and p.attributes[A.ML_MISSING_KIND] == "nan"
            and p.value}
    assert nans == {"charges": 1, "age": 1}  # absent from the DMatrix: missing, not 0
    means = {p.attributes[A.ML_FEATURE]: p.value for p in points
             if p.name == A.METRIC_FEATURE_MEAN}
    # xgboost keeps float32 values
    expected = frame.astype(np.float32).astype(np.float64).mean(skipna=True)
    assert means == pytest.approx(expected.to_dict())
    info = cap.metric(A.METRIC_MODEL_INFO, **{A.ML_MODEL_NAME: name})
    assert info.attributes[A.ML_MODEL_METHOD] == "predict"
    assert health.skipped == {}


def test_the_default_booster_primary_is_inplace_predict_not_predict(cap: Captured) -> None:
    booster = _xgb_booster()
    name = _name("booster-default")
    model = modelotel.wrap(booster, model=name)
    plans = {m: getattr(f, PLAN_ATTR) for m, f in model._self_methods.items()}
    assert [m for m, p in plans.items() if p.primary] == ["inplace_predict"]
    model.predict(xgb.DMatrix(_serving()))  # secondary: a span, no statistics
    assert [p for p in cap.collect() if p.name == A.METRIC_FEATURE_COUNT
            and p.attributes[A.ML_MODEL_NAME] == name] == []
    model.inplace_predict(_serving())
    count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_MODEL_NAME: name, A.ML_FEATURE: "age"})
    assert count.value == ROWS


def test_dmatrix_without_names_and_with_category_codes() -> None:
    table = extract(xgb.DMatrix(np.array([[1.0, np.nan], [0.0, 2.0]])))
    assert table is not None
    assert table.matrix is not None
    assert (table.names, table.named) == (("0", "1"), False)
    np.testing.assert_array_equal(table.matrix, [[1.0, np.nan], [0.0, 2.0]])
    frame = pd.DataFrame({"amount": [1.5, 2.5, np.nan],
                          "plan": pd.Categorical(["basic", "pro", None])})
    table = extract(xgb.DMatrix(frame, enable_categorical=True))
    assert table is not None
    assert table.columns is not None
    assert table.kinds == {"amount": "numeric", "plan": "categorical"}
    assert table.columns["plan"].tolist() == [0, 1, None]  # xgboost's codes; NaN code: null
    assert table.nulls == {"amount": 0, "plan": 1}


def test_a_large_dmatrix_is_row_sampled_before_it_is_made_dense(
    cap: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelotel.stats import containers

    made: list[tuple[int, int]] = []
    real = containers._dense

    def spy(csr: Any, sample: slice | None) -> Any:
        out = real(csr, sample)
        made.append(out.shape)
        return out

    monkeypatch.setattr(containers, "_dense", spy)
    name = _name("row-cap")
    model = modelotel.wrap(_xgb_booster(), model=name, methods=["predict"], row_cap=10)
    model.predict(xgb.DMatrix(_serving(50)))
    assert made == [(10, len(FEATURES))]  # never the 50 rows
    count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_MODEL_NAME: name, A.ML_FEATURE: "age"})
    assert count.value == 10
    dropped = cap.metric(A.METRIC_TELEMETRY_DROPPED, **{A.ML_TELEMETRY_REASON: "stats.row_cap"})
    assert dropped.value == 40 + 40  # the 50 inputs and the 50 scores, each down to 10


@pytest.mark.parametrize("how", ["missing", "raises"])
def test_an_unreadable_dmatrix_is_a_counted_skip_and_wrap_says_why(
    cap: Captured, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    booster = _xgb_booster()
    dmat = xgb.DMatrix(_serving())
    expected = booster.predict(dmat)
    if how == "missing":  # xgboost < 2.0: no DMatrix.get_data
        monkeypatch.delattr(xgb.DMatrix, "get_data")
    else:
        def refuse(self: Any) -> Any:
            raise RuntimeError("xgboost refused")

        monkeypatch.setattr(xgb.DMatrix, "get_data", refuse)
    name = _name(f"dmatrix-{how}")
    with caplog.at_level(logging.INFO, logger="modelotel"):
        model = modelotel.wrap(booster, model=name, methods=["predict"])
    np.testing.assert_array_equal(model.predict(dmat), expected)  # never an exception
    skipped = cap.metric(A.METRIC_TELEMETRY_SKIPPED, **{A.ML_TELEMETRY_REASON: SKIP_FRAMEWORK_DATA})
    assert skipped.value == 1
    (span,) = cap.spans()
    assert span.attributes[A.ML_INPUT_ROWS] == ROWS
    lines = [r.getMessage() for r in caplog.records if r.name == "modelotel"]
    if how == "missing":  # known at wrap() time: one INFO line saying what to do
        (line,) = lines
        assert "primary method predict, chosen by methods=" in line
        assert "get_data()" in line
        assert SKIP_FRAMEWORK_DATA in line
    else:
        assert lines == []


def test_an_empty_dmatrix_is_an_empty_batch() -> None:
    skipped: dict[str, int] = {}
    assert extract(xgb.DMatrix(np.empty((0, 3))), skipped=skipped) is None
    assert skipped == {SKIP_EMPTY: 1}


# ---------------------------------------------------------------------- CatBoost Pool
def test_catboost_pool_inputs_are_read_with_their_names(cap: Captured) -> None:
    catboost = _catboost()
    clf = _catboost_classifier()
    name = _name("pool")
    model = modelotel.wrap(clf, model=name)
    pool = catboost.Pool(_serving())
    np.testing.assert_array_equal(model.predict(pool), clf.predict(pool))
    (span,) = cap.spans()
    assert (span.attributes[A.ML_INPUT_ROWS], span.attributes[A.ML_INPUT_FEATURES]) == (
        ROWS, len(FEATURES))
    counts = {p.attributes[A.ML_FEATURE]: p.value for p in cap.collect()
              if p.name == A.METRIC_FEATURE_COUNT and p.attributes[A.ML_MODEL_NAME] == name}
    assert counts == dict.fromkeys(FEATURES, ROWS)


def test_a_pool_with_categorical_features_is_a_counted_skip() -> None:
    catboost = _catboost()
    pool = catboost.Pool(pd.DataFrame({"plan": ["basic", "pro"], "x": [1.0, 2.0]}),
                         cat_features=["plan"])
    skipped: dict[str, int] = {}
    assert extract(pool, skipped=skipped) is None
    assert skipped == {SKIP_FRAMEWORK_DATA: 1}


# ------------------------------------------------------------- overrides and the log
def test_explicit_methods_win_over_the_framework_default(cap: Captured) -> None:
    name = _name("override")
    clf = _xgb_classifier()
    model = modelotel.wrap(clf, model=name, methods=["predict_proba", "predict"])
    frame = _serving()
    model.predict(frame)
    model.predict_proba(frame)
    outputs = {p.attributes[A.ML_OUTPUT]: p.value for p in cap.collect()
               if p.name == A.METRIC_OUTPUT_COUNT and p.attributes[A.ML_MODEL_NAME] == name}
    assert outputs == {"0": ROWS, "1": ROWS}  # the two probability columns, not labels
    info = cap.metric(A.METRIC_MODEL_INFO, **{A.ML_MODEL_NAME: name})
    assert info.attributes[A.ML_MODEL_METHOD] == "predict_proba"


def test_a_moved_primary_is_logged_once_at_info(caplog: pytest.LogCaptureFixture) -> None:
    booster = _xgb_booster()
    with caplog.at_level(logging.DEBUG, logger="modelotel"):
        modelotel.wrap(booster, model=_name("log"))
        modelotel.wrap(booster, model=_name("log"))  # the same class and methods: no repeat
        modelotel.wrap(_sklearn_regressor(), model="fw-log-sk")
    mine = [r for r in caplog.records if r.name == "modelotel"
            and r.getMessage().startswith("modelotel.wrap:")]
    assert [(r.levelno, r.getMessage().split(":")[1].split("(")[0].strip()) for r in mine] == [
        (logging.INFO, "Booster"), (logging.DEBUG, "LinearRegression")]
    assert ("primary method inplace_predict, chosen by the xgboost.Booster default "
            "(also instrumented: predict); only inplace_predict calls feed the statistics"
            ) in mine[0].getMessage()
    assert "chosen by the scikit-learn API default" in mine[1].getMessage()


def test_a_lightgbm_dataset_is_never_served_its_error_passes_unchanged(cap: Captured) -> None:
    # why the statistics need no Dataset reader: lightgbm refuses one for prediction
    x, _ = _train()
    model = modelotel.wrap(_lgb_booster(), model=_name("lgb-dataset"))
    with pytest.raises(TypeError, match="Cannot use Dataset instance for prediction"):
        model.predict(lgb.Dataset(x))
    (span,) = cap.spans()
    assert span.attributes[A.ERROR_TYPE] == "TypeError"
