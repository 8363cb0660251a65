"""Read pandas DataFrames and Series into columns, without importing pandas.

Example:
    >>> import pandas as pd
    >>> from modelotel.stats.frames import FrameHint, from_frame
    >>> hint, skipped = FrameHint(), {}
    >>> t = from_frame(pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]}), hint, skipped)
    >>> t.names, t.matrix.shape, hint.numeric, skipped
    (('a', 'b'), (2, 2), True, {})

pandas is recognised by the module of the object's type and never imported here. A frame
whose columns are all numeric (numpy or pandas' nullable dtypes) becomes one matrix in one
``to_numpy()`` call; anything else is read column by column. A :class:`FrameHint` remembers
what the last frame of a monitor side was like, so a stream of similar frames takes the
shortest path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelotel.stats.reasons import SKIP_EMPTY, SKIP_NON_TABULAR, SKIP_UNSUPPORTED, add
from modelotel.stats.table import CATEGORICAL, DATETIME, NUMERIC, Table, array_kind

_F64 = np.dtype(np.float64)


def pandas_column(s: Any) -> tuple[np.ndarray[Any, Any], str, int] | None:
    """(values, kind, nulls) of a pandas Series, without importing pandas."""
    if type(s).__name__ != "Series" or not type(s).__module__.startswith("pandas"):
        return None
    dtype = s.dtype
    dkind = getattr(dtype, "kind", "O")
    name = type(dtype).__name__
    if name == "CategoricalDtype":
        codes = np.asarray(s.cat.codes.to_numpy())
        cats = np.asarray(s.cat.categories.to_numpy(), dtype=object)
        values = np.empty(codes.shape[0], dtype=object)
        ok = codes >= 0
        values[ok] = cats[codes[ok]]
        values[~ok] = None
        return values, CATEGORICAL, int((~ok).sum())
    if isinstance(dtype, np.dtype):
        arr = s.to_numpy()  # a view for numpy-backed columns
        kind = array_kind(arr)
        if kind is None:
            return None
        n_null = int(np.isnat(arr).sum()) if dkind in "Mm" else 0
        if kind == CATEGORICAL:
            n_null = int(s.isna().sum())
        return arr, kind, n_null
    # extension dtypes: nullable Int64/Float64/boolean, tz-aware datetimes, strings, ...
    if dkind in "iufb":
        # the extension array itself: its isna() / to_numpy() skip the Series layer
        arr_ext = s.array
        n_null = int(np.asarray(arr_ext.isna()).sum())
        out = arr_ext.to_numpy(dtype="float64", na_value=np.nan)
        return out, NUMERIC, n_null
    na = s.isna().to_numpy()
    n_null = int(na.sum())
    if dkind == "M":
        out = s.to_numpy(dtype="datetime64[ns]", na_value=np.datetime64("NaT"))
        return out, DATETIME, n_null
    return np.asarray(s.to_numpy(dtype=object, na_value=None), dtype=object), CATEGORICAL, n_null


#: The DataFrame types :func:`from_frame` has read (an identity test for :func:`frame_shape`'s
#: callers, cheaper inside a call than recognising pandas by the type's name and module).
FRAME_TYPES: set[type] = set()


def is_frame(x: object) -> bool:
    """Is ``x`` a pandas DataFrame? (A type read before: one set lookup.)"""
    t = type(x)
    return t in FRAME_TYPES or (t.__name__ == "DataFrame" and t.__module__.startswith("pandas"))


def frame_shape(x: Any) -> tuple[int, int] | None:
    """(rows, columns) of a frame with at least one 2-D numpy block, read from its blocks:
    ~6 us inside a call against ~13-16 us for ``x.shape`` (pandas' Python code, cold there).
    The blocks share the rows and split the columns between them. None for any other
    frame (extension columns only, another pandas)."""
    try:
        blocks = x._mgr.blocks
        if type(blocks) is not tuple:
            return None
        rows = None
        columns = 0
        for b in blocks:
            v = b.values
            if type(v) is np.ndarray and v.ndim == 2:
                rows = v.shape[1]  # a numpy block is columns x rows
                columns += v.shape[0]
            else:
                # (an extension array's columns: its placement, the attribute behind
                # pandas' mgr_locs property, whose Python code is cold inside a call)
                columns += len(b._mgr_locs)
        return None if rows is None else (rows, columns)
    except Exception:  # noqa: BLE001 - pandas internals, read defensively: .shape instead
        return None


class FrameHint:
    """What one monitor side learnt from the last DataFrame it read (a per-call shortcut).

    ``numeric``: its columns were all numpy numeric dtypes, so ``to_numpy()`` is one numeric
    matrix (None: not known yet; False: some were not, and the dtypes are checked each
    time). ``columns`` / ``labels``: its column index and the labels as strings, reused while
    the frames share the index object.
    """

    __slots__ = ("blocks", "categories", "columns", "frame_type", "labels", "layout",
                 "numeric")

    def __init__(self) -> None:
        #: the type of the last frame read (pandas' DataFrame: an identity test per call)
        self.frame_type: type | None = None
        self.numeric: bool | None = None
        self.columns: object = None
        self.labels: tuple[str, ...] = ()
        #: False once a frame's blocks could not be read (:func:`_from_blocks`): don't retry
        self.blocks = True
        #: column -> (its last CategoricalDtype, what :func:`category_array` made of its
        #: categories)
        self.categories: dict[str, tuple[object, Resolved]] = {}
        #: how the last frame read from its blocks was laid out (:func:`block_columns`),
        #: None when it was not (or not in a way that can be checked per call)
        self.layout: FrameLayout | None = None


class FrameLayout:
    """The blocks of a frame of one float64 block and categorical / string columns, as
    :func:`_from_blocks` found them: ``labels`` (the frame's columns) and, per block, its
    kind (``"f"``: the float64 block, ``"c"``: a Categorical, ``"s"``: strings), its
    placement (pandas' slice of column positions) and its column name ("" for the block)."""

    __slots__ = ("labels", "specs")

    def __init__(self, labels: tuple[str, ...], specs: tuple[tuple[str, slice, str], ...]):
        self.labels = labels
        self.specs = specs


def _frame_labels(x: Any, hint: FrameHint | None) -> tuple[str, ...]:
    try:
        # (the manager's first axis: the columns property is ~5 us of cold code in a call)
        cols = x._mgr.axes[0]
    except Exception:  # noqa: BLE001 - pandas internals, read defensively: the public way
        cols = x.columns
    stored = None
    if hint is not None:
        if cols is hint.columns:
            return hint.labels
        stored = _stored_labels(cols)
        if stored is not None and stored == hint.labels:
            hint.columns = cols
            return hint.labels
    labels = stored if stored is not None else tuple(str(c) for c in cols.tolist())
    if hint is not None:
        hint.columns, hint.labels = cols, labels
    return labels


def _numeric_layout(x: Any) -> tuple[str, list[int]]:
    """``("numpy", [])`` when every column has a numpy numeric dtype; ``("masked", idx)``
    when every column is numeric and those at ``idx`` are pandas' nullable ones (Int64,
    Float64, boolean); ``("columns", [])`` otherwise."""
    masked: list[int] = []
    for i, dt in enumerate(x.dtypes.tolist()):
        if isinstance(dt, np.dtype):
            if dt.kind not in "fiub":
                return "columns", []
        elif getattr(dt, "kind", "O") in "iufb" and type(dt).__name__ in _MASKED_DTYPES:
            masked.append(i)
        else:
            return "columns", []
    return ("masked", masked) if masked else ("numpy", masked)


#: pandas' nullable numeric dtypes: ``to_numpy(float64, na_value=nan)`` turns pd.NA to NaN
_MASKED_DTYPES = frozenset(
    ("Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype", "UInt8Dtype", "UInt16Dtype",
     "UInt32Dtype", "UInt64Dtype", "Float32Dtype", "Float64Dtype", "BooleanDtype")
)


def _stored_labels(index: Any) -> tuple[str, ...] | None:
    """The labels of an index as a tuple of str, read where pandas stores them: a pyarrow
    array (pandas' str dtype from 3.0, a private attribute read defensively) or an object
    array. None when a label is anything but a str (1 == 1.0 and True == 1, but their labels
    are "1", "1.0", "True"; a missing one) or they are stored otherwise.

    Each request's frame has a column index of its own; pandas' ``tolist()`` costs ~130 us
    inside a call (its and pyarrow's code is cold there), this ~5-10 us. It holds the GIL, as
    an array's ``to_pylist`` does; a chunked array's ``equals`` releases it, and a call then
    waits for the GIL behind whichever thread took it (~100 us behind a busy export thread).
    """
    try:
        held = index._data  # (_values: a property of cold Python code, ~1-2 us)
        if type(held) is np.ndarray:
            if held.dtype != np.dtype(object):
                return None
            labels = tuple(held.tolist())
            for v in labels:  # (a loop, not all(): a generator is one more cold frame)
                if type(v) is not str:
                    return None
            return labels
        arrow = held._pa_array
        labels = tuple(arrow.chunk(0).to_pylist() if arrow.num_chunks == 1
                       else arrow.to_pylist())
        return None if None in labels else labels
    except Exception:  # noqa: BLE001 - another pandas: the public way
        return None


def from_frame(x: Any, hint: FrameHint | None, skipped: dict[str, int]) -> Table | None:
    """A pandas DataFrame as a :class:`Table` (None: skipped, its reason added to ``skipped``)."""
    rows, width = x.shape
    if rows == 0 or width == 0:
        add(skipped, SKIP_EMPTY)
        return None
    if hint is not None:
        hint.frame_type = type(x)
    FRAME_TYPES.add(type(x))
    labels = _frame_labels(x, hint)
    unique = len(set(labels)) == len(labels)
    if unique:
        # numpy-typed numeric columns (float, int, bool; one dtype or several): to_numpy()
        # is one (rows x cols) matrix, a Fortran-ordered view for a single dtype, one
        # interleaving copy in C for several (ints and floats meet in float64). Cheaper
        # than any per-column path by far (pandas costs 5-15 us per column accessed).
        # The hint skips the dtype check (~10 us) while the frames stay numeric.
        if hint is not None and hint.numeric:
            layout, masked = "numpy", list[int]()
        elif hint is not None and hint.numeric is False and hint.blocks:
            # a stream of mixed frames whose blocks read: skip the dtype check (~10 us)
            table = _from_blocks(x, int(rows), labels, hint)
            if table is not None:
                return table
            hint.blocks = False
            layout, masked = _numeric_layout(x)
        else:
            layout, masked = _numeric_layout(x)
            if hint is not None:
                hint.numeric = layout == "numpy"
        if layout == "numpy":
            m = x.to_numpy()
            if m.ndim == 2 and m.dtype.kind in "fiub":
                return Table(int(rows), labels, matrix=m, named=True)
            # bool and float columns together interleave to object
            layout, masked = _numeric_layout(x)
            if hint is not None:
                hint.numeric = False
        if layout == "masked":
            # nullable numeric columns (and plain ones): one float64 matrix, pd.NA as NaN;
            # a nullable column holds no NaN of its own, so its NaN are its nulls
            m = x.to_numpy(dtype=np.float64, na_value=np.nan)
            counts = np.isnan(m[:, masked]).sum(axis=0).tolist()
            nulls_m = {labels[i]: int(c) for i, c in zip(masked, counts, strict=True)}
            return Table(int(rows), labels, matrix=m, nulls=nulls_m, named=True)
        if hint is None or hint.blocks:
            table = _from_blocks(x, int(rows), labels, hint)
            if table is not None:
                return table
            if hint is not None:
                hint.blocks = False
    names: list[str] = []
    cols: dict[str, np.ndarray[Any, Any]] = {}
    kinds: dict[str, str] = {}
    nulls: dict[str, int] = {}
    # items(): ~2x cheaper per column than x.iloc[:, i]
    for name, (_, series) in zip(labels, x.items(), strict=True):
        if name in cols:
            add(skipped, SKIP_NON_TABULAR)  # duplicate column label: keep the first
            continue
        got = pandas_column(series)
        if got is None:
            add(skipped, SKIP_NON_TABULAR)
            continue
        cols[name], kinds[name], nulls[name] = got
        names.append(name)
    return Table(int(rows), tuple(names), columns=cols, kinds=kinds, nulls=nulls, named=True)


def _from_blocks(
    x: Any, rows: int, labels: tuple[str, ...], hint: FrameHint | None
) -> Table | None:
    """A frame of numpy numeric blocks, categorical and string columns, read from its blocks.

    pandas keeps a frame as a few 2-D blocks (one per dtype) plus one array per extension
    column; reading them costs about 0.5 us, where a Series per column costs 5-15 us each
    (a mixed 20-column frame: ~200 us). The blocks are pandas' internal layout (``_mgr``,
    stable from pandas 1.x to 3.x but not public), so anything unexpected returns None and
    the caller reads column by column, the public way. Nothing is copied but the
    categories' labels; the numeric columns are views of the blocks.

    The numeric columns also come back as one ``block`` (rows x k, a view) with their
    names when a single float64 block holds them all, so the schema can take them at once.
    """
    try:
        blocks = x._mgr.blocks
    except AttributeError:
        return None
    if type(blocks) is not tuple:
        return None
    cols: dict[str, np.ndarray[Any, Any]] = {}
    kinds: dict[str, str] = {}
    nulls: dict[str, int] = {}
    block: np.ndarray[Any, Any] | None = None
    block_names: tuple[str, ...] = ()
    specs: list[tuple[str, slice, str]] | None = []  # the layout, None if it has none
    for b in blocks:
        placement = b.mgr_locs
        locs = placement.as_array.tolist()
        where = placement.indexer
        v = b.values
        kind = ("f" if type(v) is np.ndarray and v.dtype == np.float64 and block is None
                else "c" if type(v).__name__ == "Categorical" else "s")
        if specs is not None and type(where) is slice:
            specs.append((kind, where, labels[locs[0]] if kind != "f" else ""))
        else:
            specs = None
        if type(v) is np.ndarray:
            if v.ndim != 2 or v.dtype.kind not in "fiub" or v.shape[1] != rows:
                return None
            names = tuple(labels[i] for i in locs)
            for name, col in zip(names, v, strict=True):
                cols[name] = col
                kinds[name] = NUMERIC
                nulls[name] = 0
            if v.dtype != np.float64:
                specs = None  # (an int or bool block: the layout holds one float64 block)
            else:
                if block is None:
                    block, block_names = v.T, names
                else:
                    block_names = ()  # two float blocks: no single one
        elif type(v).__name__ == "Categorical" and len(locs) == 1:
            name = labels[locs[0]]
            codes = np.asarray(v.codes)
            cats = _category_labels(v, name, hint)
            ok = codes >= 0
            n_null = codes.shape[0] - int(np.count_nonzero(ok))
            if n_null:
                values = np.empty(codes.shape[0], dtype=object)
                values[ok] = cats[codes[ok]]
                values[~ok] = None
            else:
                values = cats[codes]
            cols[name] = values
            kinds[name] = CATEGORICAL
            nulls[name] = n_null
        elif type(v.dtype).__name__ == "StringDtype" and len(locs) == 1:
            # a string column (pandas' default for str from 3.0: a JSON record's text
            # fields), as pandas_column reads it: objects, missing values as None
            name = labels[locs[0]]
            cols[name] = np.asarray(v.to_numpy(dtype=object, na_value=None), dtype=object)
            kinds[name] = CATEGORICAL
            nulls[name] = int(np.asarray(v.isna()).sum())
        else:
            return None
    if len(cols) != len(labels):
        return None
    table = Table(rows, labels, columns=cols, kinds=kinds, nulls=nulls, named=True)
    if block is not None and block_names:
        table.block = block
        table.block_names = block_names
    if hint is not None:
        hint.layout = FrameLayout(labels, tuple(specs)) if specs and block_names else None
    return table


def _categories_index(v: Any) -> Any:
    """Categorical ``v``'s categories (an Index, its dtype's), read from the dtype: a private
    attribute read in ~0.3 us inside a call, where the public ``categories`` (two properties
    of pandas' cold Python code) costs ~15 us."""
    index = getattr(getattr(v, "_dtype", None), "_categories", None)
    return v.categories if index is None else index


#: what :func:`category_array` resolves a Categorical's categories to
Resolved = tuple[Any, np.ndarray[Any, Any], tuple[str, ...] | None]


def category_array(index: Any, known: Resolved | None) -> Resolved:
    """``(index, its labels as an object array, its labels as str or None)`` for a
    Categorical's categories ``index``: the ``known`` array when ``index`` holds the same
    labels, so that what was keyed on that array (the counts' slot of each code) carries
    over to each request's frame, whose Categorical has a dtype, and categories, of its
    own. (It runs under the calls' lock when the waiting columns reach their cap: it holds
    the GIL, :func:`_stored_labels`.)"""
    if known is not None:
        if known[0] is index:
            return known
        labels = _stored_labels(index)
        if labels is not None and labels == known[2]:
            return index, known[1], labels
    else:
        labels = _stored_labels(index)
    return index, np.asarray(index.to_numpy(), dtype=object), labels


def _category_labels(v: Any, name: str, hint: FrameHint | None) -> np.ndarray[Any, Any]:
    """The categories of Categorical ``v`` (column ``name``) as an object array: the hint's
    last one while the frames share the dtype, or hold the same categories
    (:func:`category_array`)."""
    known = hint.categories.get(name) if hint is not None else None
    dtype = getattr(v, "_dtype", None)
    if known is not None and dtype is not None and known[0] is dtype:
        return known[1][1]
    resolved = category_array(_categories_index(v), None if known is None else known[1])
    if hint is not None:
        hint.categories[name] = (dtype, resolved)
    return resolved[1]


def block_columns(
    x: Any, hint: FrameHint, layout: FrameLayout
) -> tuple[np.ndarray[Any, Any], dict[str, Any]] | None:
    """The float64 block (rows x k, a view) and each other column's values of a frame
    laid out as ``layout`` (a string column's as a list, None for a missing value, or as
    its pyarrow array, which :meth:`~.accumulate.CategoricalAccumulator.add_later` takes; a
    categorical's as its categories' Index and its list of codes, -1 for a missing value,
    which :meth:`~.accumulate.CategoricalAccumulator.add_later` takes), while that
    is the last layout read from a frame's blocks (``hint.layout``): what :func:`from_frame`
    and the schema's alignment make of it, without the table. None for any other frame (the
    general reader takes it).

    A mixed frame's general read touches enough of pandas' Python code to make the rest
    of the call measurably colder; this reads the blocks and nothing else.
    """
    if hint.layout is not layout:
        return None
    try:
        labels = _frame_labels(x, hint)
        if labels is not layout.labels and labels != layout.labels:
            return None
        blocks = x._mgr.blocks
        specs = layout.specs
        if type(blocks) is not tuple or len(blocks) != len(specs):
            return None
        X: np.ndarray[Any, Any] | None = None
        cols: dict[str, Any] = {}
        for b, (kind, where, name) in zip(blocks, specs, strict=True):
            placed = b._mgr_locs.indexer  # (mgr_locs: a property of cold Python code)
            if type(placed) is not slice or placed != where:
                return None
            v = b.values
            if kind == "f":
                # (is: numpy's float64 dtype is one object; a compare converts np.float64)
                if type(v) is not np.ndarray or v.dtype is not _F64 or v.ndim != 2:
                    return None
                X = v.T
            elif kind == "c":
                if type(v).__name__ != "Categorical":
                    return None
                # its categories' Index (immutable, its dtype's), made an array of labels
                # when the window settles (category_array): comparing it with the last
                # frame's runs ~7 us of cold pyarrow code inside the call
                index = _categories_index(v)
                # (the private codes array: .codes makes a read-only view per call, and
                # ._codes is a property of pandas' cold Python code)
                codes = getattr(v, "_ndarray", None)
                cols[name] = (index, (v.codes if type(codes) is not np.ndarray else codes)
                              .tolist())
            elif type(getattr(v, "_dtype", None) or v.dtype).__name__ == "StringDtype":
                pa = getattr(v, "_pa_array", None)
                if pa is None:
                    cols[name] = v.to_numpy(dtype=object, na_value=None).tolist()
                else:
                    # the pyarrow array itself: immutable (pandas swaps in a new one when
                    # the column is set), its values read when the window settles
                    # (CategoricalAccumulator.add_later). Reading them here would run
                    # ~15-30 us of cold pyarrow code inside the call. Its length is the
                    # frame's: pandas keeps its blocks the same length.
                    cols[name] = pa
            else:
                return None
        if X is None:
            return None
        rows = X.shape[0]
        for c in cols.values():  # (a loop, not any(): a generator is one more cold frame)
            t = type(c)
            if (t is list or t is tuple) and len(c if t is list else c[1]) != rows:
                return None
        return X, cols
    except Exception:  # noqa: BLE001 - pandas internals, read defensively: the general reader
        return None


def numeric_matrix(x: Any, names: tuple[str, ...], hint: FrameHint) -> Any:
    """The (rows x columns) matrix of a frame whose columns are ``names`` in order and were
    all numpy numeric in the last frame (the hint), as :func:`from_frame` reads it; ``x``
    itself for any other frame (the general reader takes it).

    What it skips is the general reader's table and schema alignment, which for such a
    frame are the identity; what it keeps is the same ``to_numpy()`` and its dtype test.
    """
    if not hint.numeric or _frame_labels(x, hint) != names:
        return x
    m = _single_block(x, len(names))
    if m is None:
        m = x.to_numpy()
    if m.ndim == 2 and m.dtype.kind in "fiub" and m.shape[0]:
        return m
    return x


def _single_block(x: Any, width: int) -> Any:
    """What ``to_numpy()`` returns for a frame held in one numpy block whose columns are in
    order (the block's transpose, a view), read from the block: ~25 us inside a call against
    ~50 us for ``to_numpy()``. None for anything else (pandas internals, read defensively)."""
    try:
        blocks = x._mgr.blocks
        if len(blocks) != 1:
            return None
        block = blocks[0]
        v = block.values
        if type(v) is not np.ndarray or v.ndim != 2 or v.shape[0] != width:
            return None
        # (_mgr_locs: mgr_locs is a property of cold Python code)
        if block._mgr_locs.indexer != slice(0, width, 1):
            return None
        return v.T
    except Exception:  # noqa: BLE001 - another pandas: to_numpy()
        return None


def from_series(x: Any, skipped: dict[str, int]) -> Table | None:
    """A pandas Series as a one-column :class:`Table` (None: skipped, reason added)."""
    got = pandas_column(x)
    if got is None:
        add(skipped, SKIP_UNSUPPORTED)
        return None
    arr, kind, n_null = got
    if arr.shape[0] == 0:
        add(skipped, SKIP_EMPTY)
        return None
    label = getattr(x, "name", None)
    name = "0" if label is None else str(label)
    return Table(arr.shape[0], (name,), columns={name: arr}, kinds={name: kind},
                 nulls={name: n_null}, named=label is not None)


__all__ = ["FRAME_TYPES", "FrameHint", "FrameLayout", "block_columns", "category_array",
           "frame_shape", "from_frame", "from_series", "is_frame", "numeric_matrix",
           "pandas_column"]
