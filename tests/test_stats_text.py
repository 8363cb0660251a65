"""Text columns: one text column with one row per text, numeric descriptors with drift."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import modelotel
from _stats_support import use_kernel
from modelotel import attributes as A  # noqa: N812
from modelotel.stats.baseline import Baseline
from modelotel.stats.profiler import ABSENT, Profiler
from modelotel.stats.text import TextColumns, describe, looks_like_text, text_table
from modelotel.testing import capture

_VOCAB = ["the", "model", "served", "a", "prediction", "quickly", "café", "naïve", "résumé",
          "tokens", "stream", "of", "words", "and", "numbers", "x", "zebra", "über"]
_DESCRIPTORS = ("text.chars", "text.words", "text.blank", "text.non_ascii")


def _texts(rng: np.random.Generator, n: int, scale: int = 1) -> list[str]:
    out = []
    for _ in range(n):
        if rng.random() < 0.03:
            out.append("" if rng.random() < 0.5 else "   ")
            continue
        words = [_VOCAB[i] for i in rng.integers(len(_VOCAB), size=1 + rng.poisson(8))]
        out.append(" ".join(words * scale))
    return out


def _model(name: str, **kw: Any) -> Any:
    @modelotel.instrument(model=name, **kw)
    def predict(texts: Any) -> list[int]:
        return [1] * (1 if isinstance(texts, str) else len(texts))

    return predict


def _checks(cap: Any) -> list[Any]:
    return [p for p in cap.collect() if p.name == A.METRIC_CHECK_VIOLATIONS]


def test_a_list_of_texts_is_one_column_with_a_row_per_text() -> None:
    predict = _model("text-rows")
    with capture() as cap:
        predict(["a b", "c", "d e f", "", "g", "h", "i", "j"])
        span = cap.spans()[-1]
        assert span.attributes[A.ML_INPUT_ROWS] == 8
        chars = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "text.chars"})
        assert chars.value == 8
        features = {p.attributes[A.ML_FEATURE] for p in cap.collect()
                    if p.name == A.METRIC_FEATURE_COUNT}
        assert features == set(_DESCRIPTORS)


def test_batch_size_changes_never_fire_a_schema_check() -> None:
    predict = _model("text-batches")
    with capture() as cap:
        for n in (4, 3, 1, 9, 2):
            predict(["some words here"] * n)
        predict("one text on its own")
        assert _checks(cap) == []
        assert all(not s.events for s in cap.spans())
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "text.words"})
        assert count.value == 4 + 3 + 1 + 9 + 2 + 1


def test_descriptors_of_each_text() -> None:
    m, nulls, failed = describe(["héllo wörld", "", "  \t", None, "plain"])
    assert nulls == 1 and not failed
    assert m[0].tolist() == [11.0, 2.0, 0.0, pytest.approx(2 / 11)]
    assert m[1].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert m[2].tolist() == [3.0, 0.0, 1.0, 0.0]
    assert np.isnan(m[3]).all()
    assert m[4].tolist() == [5.0, 1.0, 0.0, 0.0]


def test_token_counts_come_from_the_given_tokenizer() -> None:
    m, _, failed = describe(["a b c", "d"], tokenizer=str.split)
    assert m[:, 4].tolist() == [3.0, 1.0] and not failed

    def broken(text: str) -> list[str]:
        raise RuntimeError("tokenizer down")

    m, _, failed = describe(["a b c"], tokenizer=broken)
    assert failed and np.isnan(m[0, 4])


def test_a_failing_tokenizer_is_a_counted_skip_at_serving() -> None:
    def broken(text: str) -> list[str]:
        raise RuntimeError("tokenizer down")

    p = Profiler(tokenizer=broken)
    rep = p.observe(["a b", "c"], np.array([0.5, 0.5]))
    assert rep is not None and rep.skipped == {"stats.tokenizer_failed": 1}
    assert p.inputs.plan is not None and "text.tokens" in p.inputs.plan.names


def test_labels_stay_categories_and_free_text_does_not() -> None:
    assert not looks_like_text(["positive", "negative", "positive"])
    assert not looks_like_text(["very positive", "negative"])
    assert looks_like_text(["this was a lovely film to watch"])
    assert looks_like_text(["a" * 30])
    ids = [f"id{i:05d}" for i in range(200)]
    assert looks_like_text(ids)  # high-cardinality: never categories
    assert not looks_like_text(["red", "green", "blue"] * 40)


def test_a_high_cardinality_string_column_is_text_in_baseline_and_serving() -> None:
    rng = np.random.default_rng(1)
    train = {"review": _texts(rng, 500), "n": rng.normal(size=500).tolist()}
    b = Baseline.from_data(train)
    names = [f.name for f in b.features]
    assert "review" not in names and "review.chars" in names and "n" in names
    assert all(not f.is_categorical for f in b.features)
    p = Profiler(b)
    assert p.observe({"review": ["short"], "n": [0.1]}, np.array([1.0])) is None
    snap = p.close()
    assert snap.inputs is not None
    assert dict(zip(snap.inputs.plan.names, snap.inputs.totals.seen, strict=True))[
        "review.chars"] == 1


def test_a_label_column_stays_categorical_when_the_baseline_says_so() -> None:
    b = Baseline.from_data({"colour": ["red", "green", "blue"] * 40, "n": [1.0] * 120})
    assert b.feature("colour").is_categorical
    t = TextColumns([f.name for f in b.features]).expand(
        text_table(["x"]) or pytest.fail("text_table"))
    assert t.names[0] == "text.chars"  # a list of str is always text


def test_generated_text_outputs_are_described_and_labels_are_not() -> None:
    p = Profiler()
    p.observe(np.zeros((2, 1)), ["this is a generated answer of many words", "another one here"])
    snap = p.close()
    assert snap.outputs is not None and snap.outputs.plan.names == _DESCRIPTORS
    p = Profiler()
    p.observe(np.zeros((2, 1)), ["cat", "dog"])
    snap = p.close()
    assert snap.outputs is not None and snap.outputs.plan.categorical == ("0",)


def _psi(cap: Any, feature: str) -> float:
    return float(cap.metric(A.METRIC_FEATURE_DRIFT, **{A.ML_FEATURE: feature,
                                                      A.ML_DRIFT_METHOD: A.DRIFT_PSI}).value)


def test_texts_from_training_do_not_drift_and_twice_as_long_ones_do() -> None:
    rng = np.random.default_rng(7)
    baseline = Baseline.from_data(_texts(rng, 5000))
    predict = _model("text-drift", baseline=baseline)
    with capture() as cap:
        for _ in range(50):
            predict(_texts(rng, 20))  # a window of 1,000 texts
        same = {f: _psi(cap, f) for f in _DESCRIPTORS}
        for _ in range(50):
            predict(_texts(rng, 20, scale=2))
        longer = _psi(cap, "text.chars")
        words = _psi(cap, "text.words")
    assert all(v < 0.1 for v in same.values()), same
    assert longer > 0.2 and words > 0.2, (longer, words)


def _word_tokenizer() -> Any:
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(_VOCAB)}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return tok


def test_a_real_tokenizer_gives_the_tokens_descriptor_in_baseline_and_serving() -> None:
    tok = _word_tokenizer()
    rng = np.random.default_rng(5)
    texts = _texts(rng, 400)
    b = Baseline.from_data(texts, tokenizer=tok)
    tokens = b.feature("text.tokens")
    assert tokens.mean == pytest.approx(np.mean([len(tok.encode(t)) for t in texts]))
    predict = _model("text-tokens", baseline=b, tokenizer=tok)
    with capture() as cap:
        predict(["the model, served!", "x"])  # 5 tokens (punctuation splits), 1 token
        mean = cap.metric(A.METRIC_FEATURE_MEAN, **{A.ML_FEATURE: "text.tokens"}).value
        assert _checks(cap) == []
    assert mean == 3.0


def test_tokenizer_option_must_count_tokens() -> None:
    with pytest.raises(TypeError, match="tokenizer= must be"):
        _model("text-bad-tokenizer", tokenizer=3)


# whitespace str.split() splits on beyond the ASCII space (the compiled reader must agree)
_ODD_TEXTS = ["a\u2003b\u00a0c", "x\x1cy\x1dz\x1e\x1f", "\u3000\u2028\x85", "\t\n\r\x0b\x0c",
              "emoji \U0001f600 here", "ß" * 30, "", " "]


@pytest.mark.parametrize("kernel_on", [True, False])
@pytest.mark.parametrize("with_baseline", [True, False])
def test_a_str_or_list_of_str_gives_the_statistics_of_the_general_reader(
    with_baseline: bool, kernel_on: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a str and a list of str take the hot path (the compiled put_texts, or describe()
    # without the kernel); the same texts as a tuple go through the general reader
    # (extract, expand, align): both must leave the same window and drift
    use_kernel(monkeypatch, kernel_on)
    rng = np.random.default_rng(7)
    baseline = Baseline.from_data(_texts(rng, 500)) if with_baseline else None
    fast, general = Profiler(baseline), Profiler(baseline)
    for i in range(40):
        batch = _texts(rng, 1 + i % 5, scale=1 + (i > 30))
        if i % 4 == 2:
            batch[-1] = _ODD_TEXTS[(i // 4) % len(_ODD_TEXTS)]
        if i % 3 == 0:
            batch = batch[:1]
            assert fast.observe(batch[0], ABSENT) == general.observe(tuple(batch), ABSENT)
        else:
            assert fast.observe(batch, ABSENT) == general.observe(tuple(batch), ABSENT)
    a, b = fast.close().inputs, general.close().inputs
    assert a is not None and b is not None
    assert a.plan.names == b.plan.names == _DESCRIPTORS
    assert len(a.gauges) == len(b.gauges) > 0
    assert a.gauges == b.gauges
    assert a.drift == b.drift
