"""Training baselines: build once from training data, save, load, compare serving data to it.

Example:
    >>> import numpy as np
    >>> from modelotel.stats.baseline import Baseline
    >>> X = np.random.default_rng(0).normal(size=(1000, 3))
    >>> b = Baseline.from_data(X, outputs=X[:, 0] > 0, feature_names=["a", "b", "c"])
    >>> [f.name for f in b.features], len(b.features[0].edges)
    (['a', 'b', 'c'], 11)
    >>> b.outputs[0].categories
    ('False', 'True')

The statistics of a baseline are computed by the same code (:mod:`.read`, :mod:`.schema`,
:mod:`.accumulate`) that computes the serving windows, so training and serving cannot
disagree on what a bin, a null or a category is. Numeric features get quantile bin edges
(deciles by default; ties collapse, and a column with few distinct values gets one bin per
value); categorical features get their ``top_k`` categories and an ``other`` share. Model
outputs are profiled the same way: float outputs as a score distribution, integer, bool and
string outputs as class shares.

The file format is versioned JSON with a SHA-256 content hash. :meth:`Baseline.load` refuses,
with a :class:`BaselineError` that says what is wrong, a file that is missing, not JSON,
truncated, edited (hash mismatch), from a newer modelotel, or not a baseline at all.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelotel.stats.accumulate import CategoricalAccumulator, NumericAccumulator, category_key
from modelotel.stats.image import ImageTable
from modelotel.stats.read import extract
from modelotel.stats.schema import ColumnPlan, output_specs
from modelotel.stats.table import CATEGORICAL, Table
from modelotel.stats.text import TextColumns, text_table
from modelotel.stats.wide import WIDE, WideSummary, is_wide

FORMAT = "modelotel.baseline"
#: Version of the file format this code writes; it reads this version and older ones.
FORMAT_VERSION = 1
#: At most this many non-top categories are remembered per column (to tell "other" from
#: "unseen" at serving time); beyond it, every non-top value counts as "other".
KNOWN_OTHER_CAP = 1000
_NA_TYPES = ("NAType", "NaTType")


class BaselineError(ValueError):
    """A baseline file or object cannot be used; the message says what to fix."""


def _f(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class FeatureProfile:
    """The training profile of one column (input feature or model output).

    Numeric columns: ``edges`` (k + 1 sorted values, k bins; the first bin is ``[e0, e1)``,
    the last ``[e_k-1, e_k]``) and ``shares`` of ``[below, bin_0 .. bin_k-1, above]``.
    Categorical columns: ``categories`` (top-k) and ``shares`` of ``[*categories, other]``.
    """

    name: str
    kind: str
    dtype: str
    count: int
    null: int = 0
    nan: int = 0
    inf: int = 0
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    edges: tuple[float, ...] = ()
    shares: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    known_other: tuple[str, ...] | None = None

    @property
    def missing_rate(self) -> float:
        total = self.count + self.null + self.nan + self.inf
        return (self.null + self.nan + self.inf) / total if total else 0.0

    @property
    def is_categorical(self) -> bool:
        return self.kind == CATEGORICAL

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "count": self.count,
            "missing": {"null": self.null, "nan": self.nan, "inf": self.inf},
        }
        if self.is_categorical:
            d["categories"] = list(self.categories)
            d["shares"] = list(self.shares)
            d["known_other"] = None if self.known_other is None else list(self.known_other)
        else:
            d.update(mean=self.mean, std=self.std, min=self.min, max=self.max,
                     edges=list(self.edges), shares=list(self.shares))
        return d

    @classmethod
    def from_json(cls, d: Any, where: str) -> FeatureProfile:
        if not isinstance(d, dict):
            raise BaselineError(f"{where}: expected an object, got {type(d).__name__}")
        try:
            miss = d.get("missing", {})
            kind = str(d["kind"])
            if kind == CATEGORICAL:
                ko = d.get("known_other")
                prof = cls(
                    name=str(d["name"]), kind=kind, dtype=str(d.get("dtype", "")),
                    count=int(d["count"]), null=int(miss.get("null", 0)),
                    nan=int(miss.get("nan", 0)), inf=int(miss.get("inf", 0)),
                    categories=tuple(str(c) for c in d["categories"]),
                    shares=tuple(float(s) for s in d["shares"]),
                    known_other=None if ko is None else tuple(str(c) for c in ko),
                )
                if len(prof.shares) != len(prof.categories) + 1:
                    raise BaselineError(f"{where}: needs one share per category plus 'other'")
            else:
                prof = cls(
                    name=str(d["name"]), kind=kind, dtype=str(d.get("dtype", "")),
                    count=int(d["count"]), null=int(miss.get("null", 0)),
                    nan=int(miss.get("nan", 0)), inf=int(miss.get("inf", 0)),
                    mean=_opt(d.get("mean")), std=_opt(d.get("std")),
                    min=_opt(d.get("min")), max=_opt(d.get("max")),
                    edges=tuple(float(e) for e in d["edges"]),
                    shares=tuple(float(s) for s in d["shares"]),
                )
                if prof.edges and len(prof.shares) != len(prof.edges) + 1:
                    raise BaselineError(f"{where}: needs len(edges) + 1 shares")
                if any(b < a for a, b in zip(prof.edges, prof.edges[1:], strict=False)):
                    raise BaselineError(f"{where}: edges are not sorted")
        except BaselineError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BaselineError(f"{where}: malformed feature entry ({exc!r})") from exc
        return prof


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)


def _numeric_edges(values: np.ndarray[Any, Any], bins: int) -> np.ndarray[Any, Any]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return np.empty(0)
    uniq = np.unique(v)
    if uniq.size <= bins:
        # few distinct values (flags, counts, constants): one bin per value
        return np.append(uniq, np.nextafter(uniq[-1], np.inf))
    return np.unique(np.quantile(v, np.linspace(0.0, 1.0, bins + 1)))


def _dtype_name(table: Table, name: str) -> str:
    if table.matrix is not None:
        return str(table.matrix.dtype)
    assert table.columns is not None
    return str(table.columns[name].dtype)


def _profile_side(table: Table, plan: ColumnPlan, bins: int, top_k: int) -> list[FeatureProfile]:
    X, nulls, cats, _ = plan.align(table)
    out: dict[str, FeatureProfile] = {}
    if plan.numeric:
        assert X is not None
        Xf = np.asarray(X, dtype=np.float64)
        edges = [_numeric_edges(Xf[:, j], bins) for j in range(Xf.shape[1])]
        acc = NumericAccumulator(Xf.shape[1], edges)
        acc.add(Xf, nulls)
        std = acc.std(ddof=1)
        for j, name in enumerate(plan.numeric):
            bc = acc.bin_counts(j)
            total = bc.sum()
            shares = tuple(float(c) / float(total) for c in bc) if total else tuple(0.0 for _ in bc)
            has = acc.count[j] > 0
            out[name] = FeatureProfile(
                name=name, kind=plan.kinds[name], dtype=_dtype_name(table, _src(table, plan, name)),
                count=int(acc.count[j]), null=int(acc.null[j]), nan=int(acc.nan[j]),
                inf=int(acc.inf[j]),
                mean=_f(acc.mean[j]) if has else None, std=_f(std[j]) if has else None,
                min=_f(acc.min[j]) if has else None, max=_f(acc.max[j]) if has else None,
                edges=tuple(float(e) for e in edges[j]), shares=shares,
            )
    for name, values in zip(plan.categorical, cats, strict=True):
        counter: Counter[str] = Counter()
        probe = CategoricalAccumulator(())
        probe.add(values)  # same null rules as serving
        for v in values.tolist():
            if v is None or (type(v) is float and v != v) or type(v).__name__ in _NA_TYPES:
                continue
            try:
                counter[category_key(v)] += 1
            except Exception:  # noqa: BLE001 - a value whose str() fails is not a category
                continue
        ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
        top = ranked[:top_k]
        rest = ranked[top_k:]
        total = probe.count
        cat_shares = [c / total if total else 0.0 for _, c in top]
        cat_shares.append(sum(c for _, c in rest) / total if total else 0.0)
        out[name] = FeatureProfile(
            name=name, kind=CATEGORICAL, dtype=_dtype_name(table, _src(table, plan, name)),
            count=int(total), null=int(probe.null),
            categories=tuple(k for k, _ in top), shares=tuple(cat_shares),
            known_other=tuple(sorted(k for k, _ in rest)) if len(rest) <= KNOWN_OTHER_CAP else None,
        )
    return [out[n] for n in plan.names]


#: What a skip reason of the reader means, for a person building a baseline.
_WHY = {
    "stats.empty_batch": "it is empty",
    "stats.none_input": "it is None",
    "stats.high_rank_array": "it has more than 2 dimensions (images and tensors are not "
                             "profiled yet)",
    "stats.complex_dtype": "complex numbers have no distribution to compare",
    "stats.unsupported_type": "this type is not read (pass a numpy array, a DataFrame, a "
                              "dict of columns, a list of rows, records, numbers or texts)",
    "stats.gpu_tensor": "it is a tensor on a GPU (move it to the CPU first)",
    "stats.sparse_matrix": "sparse matrices are not read (pass a dense array)",
    "stats.ragged_rows": "its rows have different lengths or mixed types",
    "stats.non_tabular_column": "a column holds lists, dicts or objects",
}


def _read(side: str, data: object, tokenizer: Any) -> Table:
    """One side's training data as a table, text columns as their descriptors."""
    skipped: dict[str, int] = {}
    # inputs: a str or list of str is a batch of texts (as served); outputs: maybe labels
    table = text_table(data) if side == "inputs" else None
    if table is None:
        table = extract(data, row_vector=False, skipped=skipped)
    if table is None:
        why = "; ".join(_WHY.get(r, r) for r in skipped) or "it holds no column"
        raise BaselineError(f"cannot profile {side} of type {type(data).__name__}: {why}")
    return TextColumns(None, tokenizer).expand(table)


def _image_meta(table: ImageTable) -> dict[str, int]:
    """What a baseline keeps of a side's images besides their descriptors: their shape, which
    serving batches are checked against (``schema_shape_change``)."""
    height, width, channels = table.shape
    return {"height": int(height), "width": int(width), "channels": int(channels)}


def _src(table: Table, plan: ColumnPlan, name: str) -> str:
    if table.named:
        return name
    return table.names[plan.positions[name]]


@dataclass(frozen=True, eq=False)
class Baseline:
    """A training profile of a model's inputs and outputs. See the module docstring.

    Two baselines are equal when their content hashes are (cheap after the first call).
    """

    features: tuple[FeatureProfile, ...]
    outputs: tuple[FeatureProfile, ...] = ()
    rows: int = 0
    bins: int = 10
    created: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    # ---- building ------------------------------------------------------------------
    @classmethod
    def from_data(
        cls,
        X: object = None,
        outputs: object = None,
        feature_names: Sequence[str] | None = None,
        bins: int = 10,
        top_k: int = 20,
        max_features: int = 200,
        tokenizer: Any = None,
        wide: int = WIDE,
    ) -> Baseline:
        """Profile training (or validation) data.

        Args:
            X: the model's inputs, in any form that predict would receive (DataFrame, 2-D
                array, dict of columns, list of records, a list of texts ...). A 1-D array
                is one feature. None: an outputs-only baseline (the inputs' schema is then
                taken from the first served batch, without input drift).
            outputs: the model's outputs on ``X`` (scores, class labels, generated texts),
                or None.
            feature_names: names for unnamed columns (numpy arrays, lists of rows).
            bins: quantile bins per numeric feature (10 = deciles).
            top_k: categories kept per categorical feature; the rest share "other".
            max_features: columns beyond this many are not profiled.
            tokenizer: adds a token count to the descriptors of text columns
                (:mod:`.text`); pass the one the model is served with.
            wide: unnamed numeric data wider than this many columns (embeddings) is
                profiled as a fixed-size summary (:mod:`.wide`); 0 profiles every column.
                Images (a 4-D array or tensor, a list of PIL images) are profiled as their
                descriptors (:mod:`.image`), and their shape is kept.

        Raises:
            BaselineError: when neither ``X`` nor ``outputs`` is given, when one holds no
                usable column, or an argument is invalid.
        """
        if not isinstance(bins, int) or isinstance(bins, bool) or not 1 <= bins <= 1000:
            raise BaselineError(f"bins must be an int between 1 and 1000, got {bins!r}")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise BaselineError(f"top_k must be a positive int, got {top_k!r}")
        if X is None and outputs is None:
            raise BaselineError(
                "nothing to profile: pass the training inputs (X), the model's outputs "
                "(outputs=), or both"
            )
        features: list[FeatureProfile] = []
        summaries: dict[str, Any] = {}
        images: dict[str, Any] = {}
        rows = 0
        if X is not None:
            table = _read("inputs", X, tokenizer)
            if type(table) is ImageTable:
                images["inputs"] = _image_meta(table)
            elif feature_names is None and is_wide(table, wide):
                summary = WideSummary.fit(table.matrix)  # type: ignore[arg-type]
                table = summary.apply(table)
                summaries["inputs"] = summary.to_json()
            if feature_names is not None:
                feature_names = [str(n) for n in feature_names]
                if len(feature_names) != len(table.names):
                    raise BaselineError(
                        f"feature_names has {len(feature_names)} names but the data has "
                        f"{len(table.names)} columns"
                    )
                if table.named and list(table.names) != feature_names:
                    raise BaselineError("feature_names differ from the column names of the data")
            plan = ColumnPlan.from_table(table, feature_names, max_features)
            features = _profile_side(table, plan, bins, top_k)
            rows = table.rows
        elif feature_names is not None:
            raise BaselineError("feature_names= names input columns, but no inputs (X) were given")
        outs: list[FeatureProfile] = []
        if outputs is not None:
            otable = _read("outputs", outputs, tokenizer)
            if type(otable) is ImageTable:
                images["outputs"] = _image_meta(otable)
            elif is_wide(otable, wide):
                osummary = WideSummary.fit(otable.matrix)  # type: ignore[arg-type]
                otable = osummary.apply(otable)
                summaries["outputs"] = osummary.to_json()
            if X is not None and otable.rows != rows:
                raise BaselineError(
                    f"outputs has {otable.rows} rows but the inputs have {rows}: pass the "
                    "model's outputs on exactly these inputs"
                )
            oplan = ColumnPlan(output_specs(otable, max_features))
            outs = _profile_side(otable, oplan, bins, top_k)
            rows = rows or otable.rows
        meta: dict[str, Any] = {}
        if summaries:
            meta["wide"] = summaries
        if images:
            meta["image"] = images
        return cls(
            features=tuple(features), outputs=tuple(outs), rows=rows, bins=bins,
            created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            meta=meta,
        )

    def wide_summary(self, side: str) -> WideSummary | None:
        """The summary of ``side``'s (``"inputs"`` / ``"outputs"``) wide batches, or None.

        Raises:
            BaselineError: the stored summary is malformed.
        """
        stored = (self.meta.get("wide") or {}).get(side)
        if stored is None:
            return None
        try:
            return WideSummary.from_json(stored)
        except (KeyError, TypeError, ValueError) as exc:
            raise BaselineError(f"the baseline's wide summary of {side} is malformed: {exc!r}") \
                from exc

    def image_shape(self, side: str) -> tuple[int, int, int] | None:
        """The (height, width, channels) of ``side``'s images (``"inputs"`` / ``"outputs"``),
        or None when that side was not profiled from images.

        Raises:
            BaselineError: the stored shape is malformed.
        """
        stored = (self.meta.get("image") or {}).get(side)
        if stored is None:
            return None
        try:
            shape = (int(stored["height"]), int(stored["width"]), int(stored["channels"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BaselineError(f"the baseline's image shape of {side} is malformed: {exc!r}") \
                from exc
        if min(shape) < 1:
            raise BaselineError(f"the baseline's image shape of {side} is malformed: {shape}")
        return shape

    # ---- identity ------------------------------------------------------------------
    def _body(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "bins": self.bins,
            "created": self.created,
            "meta": self.meta,
            "features": [f.to_json() for f in self.features],
            "outputs": [f.to_json() for f in self.outputs],
        }

    @functools.cached_property
    def hash(self) -> str:
        """``sha256:<hex>`` of the profile's canonical JSON (what ``ml.baseline.hash`` carries)."""
        return _hash(self._body())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Baseline):
            return NotImplemented
        return self is other or self.hash == other.hash

    def __hash__(self) -> int:
        return hash(self.hash)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> FeatureProfile:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    # ---- files ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        body = self._body()
        return {"format": FORMAT, "version": FORMAT_VERSION, "hash": _hash(body), **body}

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the baseline as JSON (atomically: a temp file then rename). Returns the hash."""
        doc = self.to_json()
        text = json.dumps(doc, indent=1, sort_keys=True, allow_nan=False)
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.write("\n")
        os.replace(tmp, path)
        return str(doc["hash"])

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Baseline:
        """Read a baseline file written by :meth:`save`.

        Raises:
            BaselineError: the file is missing, unreadable, not JSON (e.g. truncated), not a
                modelotel baseline, from a newer format version, or its content hash does
                not match (edited or corrupted).
        """
        p = os.fspath(path)
        try:
            with open(p, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError as exc:
            raise BaselineError(f"baseline file {p!r} does not exist") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise BaselineError(f"baseline file {p!r} cannot be read: {exc}") from exc
        return cls.from_json_text(text, source=p)

    @classmethod
    def from_json_text(cls, text: str, source: str = "<string>") -> Baseline:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise BaselineError(
                f"baseline {source!r} is not valid JSON (truncated or corrupted?): {exc}"
            ) from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise BaselineError(
                f"{source!r} is not a modelotel baseline (no \"format\": \"{FORMAT}\"); "
                "create one with Baseline.from_data(...).save(path) or `modelotel profile`"
            )
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise BaselineError(f"baseline {source!r} has no integer format version")
        if version > FORMAT_VERSION:
            raise BaselineError(
                f"baseline {source!r} has format version {version}, but this modelotel reads "
                f"versions up to {FORMAT_VERSION}: upgrade modelotel or re-create the baseline"
            )
        if version < 1:
            raise BaselineError(f"baseline {source!r} has an invalid format version {version}")
        body = {k: v for k, v in doc.items() if k not in ("format", "version", "hash")}
        expected = doc.get("hash")
        actual = _hash(body)
        if expected != actual:
            raise BaselineError(
                f"baseline {source!r} content hash mismatch (file says {expected!r}, content is "
                f"{actual!r}): the file was edited or corrupted; re-create it"
            )
        try:
            features = tuple(
                FeatureProfile.from_json(f, f"{source}: features[{i}]")
                for i, f in enumerate(body["features"])
            )
            outputs = tuple(
                FeatureProfile.from_json(f, f"{source}: outputs[{i}]")
                for i, f in enumerate(body.get("outputs", []))
            )
            loaded = cls(
                features=features, outputs=outputs, rows=int(body.get("rows", 0)),
                bins=int(body.get("bins", 10)), created=str(body.get("created", "")),
                meta=dict(body.get("meta") or {}),
            )
            loaded.wide_summary("inputs")  # a malformed summary is refused here, not at a call
            loaded.wide_summary("outputs")
            loaded.image_shape("inputs")
            loaded.image_shape("outputs")
            return loaded
        except BaselineError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise BaselineError(f"baseline {source!r} is malformed: {exc!r}") from exc


def _hash(body: dict[str, Any]) -> str:
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()


def resolve(baseline: object) -> Baseline | None:
    """A :class:`Baseline` from a path, a Baseline or None (config time; raises BaselineError)."""
    if baseline is None or isinstance(baseline, Baseline):
        return baseline
    if isinstance(baseline, (str, os.PathLike)):
        return Baseline.load(baseline)
    raise BaselineError(
        f"baseline must be a path or a modelotel.Baseline, got {type(baseline).__name__}"
    )


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Baseline",
    "BaselineError",
    "FeatureProfile",
    "resolve",
]
