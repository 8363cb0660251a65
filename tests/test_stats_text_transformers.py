"""A real Hugging Face text-classification pipeline (tiny model and tokenizer built in code,
nothing downloaded): texts are one column with token counts from the pipeline's tokenizer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel.stats.baseline import Baseline
from modelotel.testing import capture

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
tokenizers = pytest.importorskip("tokenizers")
torch.set_num_threads(1)  # a tiny model: threads only contend on a shared machine

_WORDS = ["the", "a", "movie", "was", "good", "bad", "great", "awful", "plot", "actor"]


def _pipeline() -> Any:
    vocab = {"[UNK]": 0, "[PAD]": 1, "[CLS]": 2, "[SEP]": 3,
             **{w: i + 4 for i, w in enumerate(_WORDS)}}
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64)
    model = transformers.BertForSequenceClassification(config).eval()
    return transformers.pipeline("text-classification", model=model, tokenizer=tok)


def _reviews(rng: np.random.Generator, n: int, scale: int = 1) -> list[str]:
    return [" ".join([_WORDS[i] for i in rng.integers(len(_WORDS), size=2 + rng.poisson(5))]
                     * scale) for _ in range(n)]


def test_a_wrapped_pipeline_reads_texts_as_rows_with_its_tokenizers_counts() -> None:
    clf = _pipeline()
    texts = ["the movie was good", "bad plot", "x"]
    expected_tokens = np.mean([len(clf.tokenizer(t, add_special_tokens=False)["input_ids"])
                               for t in texts])
    model = modelotel.wrap(clf, model="hf-text")
    with capture() as cap:
        out = model(texts)
        assert len(out) == 3
        tokens = cap.metric(A.METRIC_FEATURE_MEAN, **{A.ML_FEATURE: "text.tokens"}).value
        labels = cap.metric(A.METRIC_OUTPUT_COUNT, **{A.ML_OUTPUT: "label"}).value
        scores = cap.metric(A.METRIC_OUTPUT_COUNT, **{A.ML_OUTPUT: "score"}).value
        span = cap.spans()[-1]
        assert [p for p in cap.collect() if p.name == A.METRIC_CHECK_VIOLATIONS] == []
    assert tokens == pytest.approx(expected_tokens)
    assert (labels, scores) == (3, 3)
    assert span.attributes[A.ML_INPUT_ROWS] == 3


def test_pipeline_texts_drift_only_when_they_change() -> None:
    clf = _pipeline()
    rng = np.random.default_rng(11)
    baseline = Baseline.from_data(_reviews(rng, 3000), tokenizer=clf.tokenizer)
    model = modelotel.wrap(clf, model="hf-text-drift", baseline=baseline)

    def psi(cap: Any, feature: str) -> float:
        return float(cap.metric(A.METRIC_FEATURE_DRIFT, **{
            A.ML_FEATURE: feature, A.ML_DRIFT_METHOD: A.DRIFT_PSI}).value)

    with capture() as cap:
        for _ in range(10):
            model(_reviews(rng, 100))  # 1,000 texts
        same = {f: psi(cap, f"text.{f}") for f in ("chars", "words", "tokens")}
        for _ in range(10):
            model(_reviews(rng, 100, scale=2))
        longer = {f: psi(cap, f"text.{f}") for f in ("chars", "words", "tokens")}
    assert all(v < 0.1 for v in same.values()), same
    assert all(v > 0.2 for v in longer.values()), longer
