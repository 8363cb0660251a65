"""Why the statistics skip or drop input: the reasons they return, and how they add them up.

Example:
    >>> from modelotel.stats import reasons
    >>> skipped: dict[str, int] = {}
    >>> reasons.add(skipped, reasons.SKIP_EMPTY)
    >>> reasons.add(skipped, reasons.SKIP_EMPTY, 2)
    >>> skipped
    {'stats.empty_batch': 3}

The statistics never count anything globally: every stage that skips input adds its reason
to a ``dict`` the caller passed in (reason -> count), and the caller decides what to do with
it (the OTel adapter exports them as ``ml.telemetry.skipped`` / ``ml.telemetry.dropped``
with the reason as ``ml.telemetry.reason``). The values are part of the telemetry contract
(docs/telemetry.md): low cardinality by construction.
"""

from __future__ import annotations

# a whole batch (or one column of it) that the reading stage cannot use
SKIP_EMPTY = "stats.empty_batch"
SKIP_NONE = "stats.none_input"
SKIP_RAGGED = "stats.ragged_rows"
SKIP_ZERO_DIM = "stats.zero_dim_object"
SKIP_HIGH_RANK = "stats.high_rank_array"
SKIP_COMPLEX = "stats.complex_dtype"
SKIP_UNSUPPORTED = "stats.unsupported_type"
SKIP_GPU = "stats.gpu_tensor"
SKIP_TENSOR = "stats.unconvertible_tensor"
SKIP_NON_TABULAR = "stats.non_tabular_column"
SKIP_SPARSE = "stats.sparse_matrix"
#: An ML library's own data container (an XGBoost ``DMatrix``, a CatBoost ``Pool``) that the
#: library did not hand the values of (xgboost < 2.0, a ``Pool`` with categorical features).
SKIP_FRAMEWORK_DATA = "stats.unreadable_framework_data"
#: Values of a numeric column that are not numbers (counted per value; they become nulls).
SKIP_NON_NUMERIC = "stats.non_numeric_value"
#: Columns beyond ``max_features`` (counted per column, once, when the schema is decided).
SKIP_MAX_FEATURES = "stats.max_features"
#: The input's own code raised while it was read (a ``__len__``, ``__iter__``, ``__str__``
#: or property of the user's object): the batch is skipped, not counted as our error.
SKIP_UNREADABLE = "stats.unreadable_input"
#: The tokenizer given for text columns raised (the batch's token counts are nulls).
SKIP_TOKENIZER = "stats.tokenizer_failed"
#: Images with a NaN or inf pixel (counted per image; their pixel descriptors are nulls).
SKIP_NONFINITE_IMAGE = "stats.nonfinite_image"

#: Rows left out of a batch larger than ``row_cap`` (a uniform sample is kept): dropped on
#: purpose, ``ml.telemetry.dropped``.
DROP_ROW_CAP = "stats.row_cap"


def add(counts: dict[str, int], reason: str, n: int = 1) -> None:
    """Add ``n`` to ``counts[reason]``."""
    counts[reason] = counts.get(reason, 0) + n


__all__ = [
    "DROP_ROW_CAP",
    "SKIP_COMPLEX",
    "SKIP_EMPTY",
    "SKIP_FRAMEWORK_DATA",
    "SKIP_GPU",
    "SKIP_HIGH_RANK",
    "SKIP_MAX_FEATURES",
    "SKIP_NONE",
    "SKIP_NONFINITE_IMAGE",
    "SKIP_NON_NUMERIC",
    "SKIP_NON_TABULAR",
    "SKIP_RAGGED",
    "SKIP_SPARSE",
    "SKIP_TENSOR",
    "SKIP_TOKENIZER",
    "SKIP_UNREADABLE",
    "SKIP_UNSUPPORTED",
    "SKIP_ZERO_DIM",
    "add",
]
