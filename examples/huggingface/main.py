"""A Hugging Face text-classification pipeline observed by modelotel: text descriptors per
review, drift of the review length against the training texts. Prints a JSON summary as the
last line.

    bash examples/run_example.sh huggingface              # through the bundled collector
    .venv/bin/python examples/huggingface/main.py --texts 1000

The tokenizer and the (tiny, untrained) BERT model are built in code: nothing is downloaded.
Serving runs in two phases of ``--texts`` reviews each, and each phase is one statistics
window (the window closes at a metric collection; here ``modelotel.force_flush()`` collects
at the end of each phase): first reviews like the training ones, then reviews twice as long.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
import tokenizers
import torch
import transformers

import modelotel

WORDS = ["the", "a", "movie", "was", "good", "bad", "great", "awful", "plot", "actor",
         "acting", "boring", "loved", "it", "not"]
MODEL, VERSION = "review-sentiment", "1"
# PSI of a window against the baseline: below 0.1 no drift, above 0.2 significant drift
# (the usual rule of thumb, docs/telemetry.md)
NO_DRIFT_BELOW, DRIFT_ABOVE = 0.1, 0.2


def build_pipeline(batch_size: int) -> Any:
    """A text-classification pipeline: a word-level tokenizer and a one-layer BERT, in code."""
    vocab = {"[UNK]": 0, "[PAD]": 1, "[CLS]": 2, "[SEP]": 3,
             **{w: i + 4 for i, w in enumerate(WORDS)}}
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=128,
        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    model = transformers.BertForSequenceClassification(config).eval()
    return transformers.pipeline("text-classification", model=model, tokenizer=tokenizer,
                                 batch_size=batch_size)


def reviews(rng: np.random.Generator, n: int, repeat: int = 1) -> list[str]:
    """``n`` reviews of 2 + Poisson(5) words; ``repeat=2``: each one said twice (twice as long)."""
    return [" ".join([WORDS[i] for i in rng.integers(len(WORDS), size=2 + rng.poisson(5))]
                     * repeat) for _ in range(n)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--texts", type=int, default=1000, help="reviews per phase (one window)")
    p.add_argument("--batch-size", type=int, default=100, help="reviews per call")
    args = p.parse_args()

    torch.set_num_threads(1)  # a tiny model: more threads only contend
    rng = np.random.default_rng(11)
    classifier = build_pipeline(args.batch_size)
    training = reviews(rng, 2000)
    # the baseline profiles the training texts as the serving ones will be read: chars, words,
    # blank, non_ascii and, with the pipeline's tokenizer, tokens; and the outputs (label, score)
    baseline = modelotel.Baseline.from_data(training, outputs=classifier(training),
                                            tokenizer=classifier.tokenizer)

    # one window per phase: the phases close their windows themselves (force_flush below),
    # so no periodic collection may split one (60 s: longer than a phase takes)
    modelotel.configure(service_name="review-sentiment", export_interval_ms=60_000)
    sentiment = modelotel.wrap(classifier, model=MODEL, version=VERSION, baseline=baseline)

    summary: dict[str, Any] = {"model": MODEL, "batch_size": args.batch_size,
                               "psi_rule": {"no_drift_below": NO_DRIFT_BELOW,
                                            "drift_above": DRIFT_ABOVE}, "phases": []}
    for phase, repeat in (("in-distribution", 1), ("twice as long", 2)):
        chars, labels = [], []
        for start in range(0, args.texts, args.batch_size):
            batch = reviews(rng, min(args.batch_size, args.texts - start), repeat)
            labels += [r["label"] for r in sentiment(batch)]  # the pipeline's own results
            chars += [len(t) for t in batch]
        modelotel.force_flush()  # the metric collection that closes this phase's window
        positive = labels.count("positive") / len(labels)
        print(f"{phase}: {len(chars)} reviews in calls of {args.batch_size}, "
              f"{np.mean(chars):.1f} characters on average, {positive:.0%} positive")
        summary["phases"].append({"phase": phase, "texts": len(chars),
                                  "mean_chars": float(np.mean(chars))})
    print(f"In Prometheus: ml_feature_drift{{ml_model_name=\"{MODEL}\",ml_feature=\"text.chars\","
          f"ml_drift_method=\"psi\"}} has one point per phase: below {NO_DRIFT_BELOW} for the "
          f"in-distribution reviews, above {DRIFT_ABOVE} for the long ones.")
    modelotel.shutdown()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
