"""Text columns: a string, a list of strings, a column of free text, read as numeric descriptors.

Example:
    >>> from modelotel.stats.text import TextColumns, text_table
    >>> t = TextColumns().expand(text_table(["a cat", "", "naïve"]))
    >>> t.names
    ('text.chars', 'text.words', 'text.blank', 'text.non_ascii')
    >>> t.matrix.tolist()
    [[5.0, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [5.0, 1.0, 0.0, 0.2]]

A text model's batch of N strings is one text column with N rows, never N features, and
free text is never profiled as categories (each training sentence would be a category of
its own, every serving sentence "unseen"). Instead each text column ``c`` becomes numeric
descriptor features, which get the bins, drift, checks and counters of any numeric feature:

- ``c.chars``: length in characters;
- ``c.words``: words (runs of non-whitespace);
- ``c.blank``: 1 for an empty or whitespace-only text, else 0;
- ``c.non_ascii``: share of the characters that are not ASCII (0 for an empty text);
- ``c.tokens``: tokens, when a tokenizer is given (a Hugging Face tokenizer, anything
  with ``encode``, or a callable from one text to its tokens).

A lone unnamed text column (a str, a list of str, generated text) is named ``text``.

Which string columns are text is decided once per column and side: from the baseline
(``c.chars`` among its profiles: text; ``c`` itself: categories), else from the first
batch that shows the column (:func:`looks_like_text`: long values, several words, or, over
enough rows, mostly distinct values). A value that is not a string (None, a number) is a
null of every descriptor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from modelotel.stats.table import CATEGORICAL, NUMERIC, Table

#: The kind of a column that :func:`text_table` read as text (always expanded).
TEXT = "text"
#: The descriptors of every text column, in order, then :data:`TOKENS` with a tokenizer.
CHARS, WORDS, BLANK, NON_ASCII, TOKENS = "chars", "words", "blank", "non_ascii", "tokens"
DESCRIPTORS = (CHARS, WORDS, BLANK, NON_ASCII)
#: The name of a lone unnamed text column.
TEXT_NAME = "text"

#: A column is text when its values average this many characters or more ...
LONG_CHARS = 24.0
#: ... or this many words or more ...
MANY_WORDS = 3.0
#: ... or when, over at least ``DISTINCT_ROWS`` values, this share of them are distinct.
DISTINCT_SHARE = 0.5
DISTINCT_ROWS = 50


class Text(str):
    """A str known to be free text (a stream's items joined): read as a text column on the
    output side too, where a plain str may be a class label."""

    __slots__ = ()


def join_stream(items: list[Any]) -> Any:
    """What a stream's yielded ``items`` are as one output: their text joined (a
    :class:`Text`) when every item is a str, else the list of items (numbers: one value per
    row; rows, records or arrays as a batch)."""
    if items and all(isinstance(i, str) for i in items):
        return Text("".join(items))
    return items


def text_table(values: object) -> Table | None:
    """One text column named ``text`` from a str or a list / tuple of str (None among them
    is a missing text); None for anything else (not text: the other readers have it)."""
    if isinstance(values, str):
        values = [values]
    elif not isinstance(values, (list, tuple)) or not values:
        return None
    if not isinstance(values[0], str):
        return None
    for v in values:
        if v is not None and not isinstance(v, str):
            return None
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return Table(len(arr), (TEXT_NAME,), columns={TEXT_NAME: arr}, kinds={TEXT_NAME: TEXT},
                 named=True)


def looks_like_text(values: Iterable[object]) -> bool:
    """True when a column of strings is free text rather than categories (see the module
    doc for the rule; values that are not strings are ignored)."""
    strs = [v for v in values if isinstance(v, str)]
    n = len(strs)
    if not n:
        return False
    chars = sum(map(len, strs))
    if chars >= LONG_CHARS * n:
        return True
    words = sum(len(s.split()) for s in strs)
    if words >= MANY_WORDS * n:
        return True
    return n >= DISTINCT_ROWS and len(set(strs)) >= DISTINCT_SHARE * n


def text_columns_of(names: Iterable[str]) -> set[str]:
    """The text columns a baseline's profile names describe (``c`` for ``c.chars``)."""
    suffix = "." + CHARS
    return {n[: -len(suffix)] for n in names if n.endswith(suffix)}


def _token_counts(tokenizer: Any, texts: list[str]) -> list[float] | None:
    """Tokens per text, or None when the tokenizer failed (a counted skip for the caller)."""
    try:
        if hasattr(tokenizer, "encode") and callable(tokenizer):
            # a Hugging Face tokenizer: one batched call (its fast path), no special tokens
            out = tokenizer(texts, add_special_tokens=False)
            ids = out["input_ids"] if isinstance(out, Mapping) or hasattr(out, "keys") else out
            return [float(len(i)) for i in ids]
        if hasattr(tokenizer, "encode"):
            return [float(len(tokenizer.encode(t))) for t in texts]
        return [float(len(tokenizer(t))) for t in texts]
    except Exception:  # noqa: BLE001 - the tokenizer is foreign code; its failure is a skip
        return None


def describe(
    values: Sequence[object], tokenizer: Any = None
) -> tuple[np.ndarray[Any, Any], int, bool]:
    """``(descriptors, nulls, tokenizer_failed)``: a rows x k float64 matrix (columns in the
    order of :data:`DESCRIPTORS`, then tokens with a tokenizer); a value that is not a
    string is a row of NaN, counted in ``nulls``."""
    n = len(values)
    k = len(DESCRIPTORS) + (tokenizer is not None)
    out = np.empty((n, k), dtype=np.float64)
    texts: list[str] = []
    rows: list[int] = []
    nulls = 0
    for i, v in enumerate(values):
        if not isinstance(v, str):
            out[i] = np.nan
            nulls += 1
            continue
        chars = len(v)
        words = len(v.split())
        # the characters that do not survive an ASCII encoding
        non_ascii = 0.0 if v.isascii() else (chars - len(v.encode("ascii", "ignore"))) / chars
        out[i, 0] = chars
        out[i, 1] = words
        out[i, 2] = 0.0 if words else 1.0  # no word: empty or whitespace only
        out[i, 3] = non_ascii
        if tokenizer is not None:
            texts.append(v)
            rows.append(i)
    failed = False
    if tokenizer is not None and texts:
        counts = _token_counts(tokenizer, texts)
        if counts is None or len(counts) != len(texts):
            failed = True
            out[rows, k - 1] = np.nan
        else:
            out[rows, k - 1] = counts
    return out, nulls, failed


class TextColumns:
    """Which string columns of one side are text, and their descriptors (see the module doc).

    Args:
        known: names of the side's baseline profiles (fixes the decisions), or None.
        tokenizer: adds the ``tokens`` descriptor, or None.

    Attributes:
        failed: batches whose tokenizer call failed since the last look (the caller counts
            them as skips and sets this back to 0).
    """

    __slots__ = ("decided", "failed", "tokenizer")

    def __init__(self, known: Iterable[str] | None = None, tokenizer: Any = None) -> None:
        self.tokenizer = tokenizer
        self.decided: dict[str, bool] = {}
        self.failed = 0
        if known is not None:
            names = list(known)
            for c in text_columns_of(names):
                self.decided[c] = True
            for c in names:
                self.decided.setdefault(c, False)

    def _is_text(self, name: str, col: np.ndarray[Any, Any], kind: str) -> bool:
        if kind == TEXT:
            return True
        if kind != CATEGORICAL or col.dtype.kind not in "OU":
            return False
        got = self.decided.get(name)
        if got is None:
            # the first batch that shows the column decides, once (a schema that changed
            # its mind from call to call would fire schema checks)
            got = self.decided[name] = looks_like_text(col.tolist())
        return got

    def expand(self, table: Table) -> Table:
        """``table`` with each text column replaced by its descriptor columns (the same
        table when it has none)."""
        if table.columns is None or table.kinds is None:
            return table
        names = table.names
        text = [
            (j, n) for j, n in enumerate(names)
            if self._is_text(n, table.columns[n], table.kinds[n])
        ]
        if not text:
            return table
        lone = len(names) == 1 and not table.named
        if lone and len(text) == 1 and not self.decided.get(TEXT_NAME, True):
            lone = False  # the baseline calls a lone column "text" categories: keep its name
        cols: dict[str, np.ndarray[Any, Any]] = {}
        kinds: dict[str, str] = {}
        nulls: dict[str, int] = {}
        text_at = dict(text)
        suffixes = DESCRIPTORS + ((TOKENS,) if self.tokenizer is not None else ())
        for j, n in enumerate(names):
            if j not in text_at:
                cols[n], kinds[n] = table.columns[n], table.kinds[n]
                nulls[n] = (table.nulls or {}).get(n, 0)
                continue
            base = TEXT_NAME if lone else n
            m, n_null, failed = describe(table.columns[n].tolist(), self.tokenizer)
            if failed:
                self.failed += 1
            for i, s in enumerate(suffixes):
                name = f"{base}.{s}"
                cols[name], kinds[name], nulls[name] = m[:, i], NUMERIC, n_null
        if len(cols) == len(suffixes) and len(text) == 1 and len(names) == 1:
            # the common case, one text column: one matrix (the row buffer takes it as is)
            matrix = np.column_stack(list(cols.values()))
            return Table(table.rows, tuple(cols), matrix=matrix, nulls=nulls, named=True)
        return Table(table.rows, tuple(cols), columns=cols, kinds=kinds, nulls=nulls, named=True)


__all__ = [
    "BLANK",
    "CHARS",
    "DESCRIPTORS",
    "NON_ASCII",
    "TEXT",
    "TEXT_NAME",
    "TOKENS",
    "WORDS",
    "Text",
    "TextColumns",
    "describe",
    "join_stream",
    "looks_like_text",
    "text_columns_of",
    "text_table",
]
