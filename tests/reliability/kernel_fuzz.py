"""Direct fuzzing of the compiled statistics kernel with odd buffers (run in its own process).

    python kernel_fuzz.py --seed 1 --iterations 20000

Each iteration calls ``stage`` or ``accumulate`` with valid arguments, or with one argument
made odd: another dtype (float32, float16, int32, bool, complex, big-endian), too short,
not contiguous, read-only, ``bytes``, a ``memoryview`` of another format, ``None``, a
negative, zero or huge count, an offset past the end. Every buffer the kernel may write
has guard cells after it. Invariants: a call returns or raises ``TypeError`` /
``ValueError`` / ``BufferError`` / ``OverflowError`` (nothing else); no guard cell and no
input changes; nothing is written when the call refuses; a valid call gives numpy's
results. A crash shows as the process's exit status. Prints one JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

import numpy as np

from modelotel.stats import kernel

CLEAN = (TypeError, ValueError, BufferError, OverflowError)
GUARD = 4
SENTINEL = -12345.0


class FuzzError(Exception):
    pass


def guarded(values: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``values`` in the front of a larger array; returns (whole, view of the front)."""
    whole = np.full(values.size + GUARD, SENTINEL if values.dtype.kind == "f" else -7,
                    dtype=values.dtype)
    whole[: values.size] = values.reshape(-1)
    return whole, whole[: values.size].reshape(values.shape)


def odd(rng: np.random.Generator, arr: np.ndarray[Any, Any]) -> Any:
    """One odd version of a buffer argument."""
    choice = rng.integers(11)
    with np.errstate(all="ignore"):
        return _odd(choice, rng, arr)


def _odd(choice: int, rng: np.random.Generator, arr: np.ndarray[Any, Any]) -> Any:
    if choice == 0:
        return arr.astype(np.float32)
    if choice == 1:
        return arr.astype(np.float16)
    if choice == 2:
        return arr.astype(np.int32)
    if choice == 3:
        return arr.astype(">f8") if arr.dtype.kind == "f" else arr.astype(">i8")
    if choice == 4:
        return arr.reshape(-1)[: max(0, arr.size - 1 - int(rng.integers(3)))].copy()
    if choice == 5:
        wide = np.repeat(arr.reshape(-1), 2)
        return wide[::2]  # not contiguous
    if choice == 6:
        ro = arr.copy()
        ro.setflags(write=False)
        return ro
    if choice == 7:
        return arr.tobytes()
    if choice == 8:
        return memoryview(arr.copy()).cast("B") if arr.size else b""
    if choice == 9:
        return arr.astype(np.complex128)
    return None


def odd_int(rng: np.random.Generator, value: int) -> int:
    return int(rng.choice([-1, 0, value + 1, value * 7 + 3, 2**31, 2**40, 2**62, 2**63 - 1]))


def fuzz_accumulate(rng: np.random.Generator, stats: Counter[str]) -> None:
    acc = kernel.accumulate
    assert acc is not None
    n, d, k = int(rng.integers(0, 40)), int(rng.integers(1, 6)), int(rng.integers(0, 4))
    x = rng.normal(size=(n, d))
    if n:
        x[rng.random(x.shape) < 0.1] = np.nan
        x[rng.random(x.shape) < 0.05] = np.inf
    t = np.sort(rng.normal(size=(k, d)), axis=0)
    outs = {
        "count": np.zeros(d, np.int64), "mean": np.zeros(d), "m2": np.zeros(d),
        "nan": np.zeros(d, np.int64), "inf": np.zeros(d, np.int64),
        "lo": np.full(d, np.inf), "hi": np.full(d, -np.inf), "ge": np.zeros((k, d), np.int64),
    }
    args: dict[str, Any] = {"X": x, "n": n, "d": d, "T": t, "K": k}
    wholes: dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}
    for name, arr in outs.items():
        wholes[name] = guarded(arr)
        args[name] = wholes[name][1]
    mutated = ""
    if rng.random() < 0.7:
        mutated = str(rng.choice(list(args)))
        if mutated in ("n", "d", "K"):
            args[mutated] = odd_int(rng, int(args[mutated]))
        else:
            args[mutated] = odd(rng, np.asarray(args[mutated]))
    x_before, t_before = x.copy(), t.copy()
    befores = {name: w.copy() for name, (w, _) in wholes.items()}
    try:
        acc(args["X"], args["n"], args["d"], args["T"], args["K"], args["count"],
            args["mean"], args["m2"], args["nan"], args["inf"], args["lo"], args["hi"],
            args["ge"])
        refused = None
    except CLEAN as exc:
        refused = type(exc).__name__
    stats["accumulate"] += 1
    stats[f"accumulate:{'refused:' + refused if refused else 'ok'}"] += 1
    if not np.array_equal(x, x_before, equal_nan=True) or not np.array_equal(t, t_before):
        raise FuzzError(f"accumulate changed an input ({mutated})")
    for name, (whole, _) in wholes.items():
        tail_now, tail_before = whole[-GUARD:], befores[name][-GUARD:]
        if not np.array_equal(tail_now, tail_before):
            raise FuzzError(f"accumulate wrote past {name} ({mutated})")
        if refused and not np.array_equal(whole, befores[name], equal_nan=True):
            raise FuzzError(f"accumulate refused ({refused}) but wrote {name} ({mutated})")
    if refused or mutated:
        return
    finite = np.isfinite(x)
    expect_count = finite.sum(axis=0)
    if not np.array_equal(outs_view(wholes, "count"), expect_count):
        raise FuzzError("count differs from numpy")
    if not np.array_equal(outs_view(wholes, "nan"), np.isnan(x).sum(axis=0)):
        raise FuzzError("nan count differs from numpy")
    if not np.array_equal(outs_view(wholes, "inf"), np.isinf(x).sum(axis=0)):
        raise FuzzError("inf count differs from numpy")
    xf = np.where(finite, x, np.nan)
    with np.errstate(all="ignore"), _Quiet():
        lo = np.where(expect_count > 0, np.nanmin(xf, axis=0) if n else np.inf, np.inf)
        hi = np.where(expect_count > 0, np.nanmax(xf, axis=0) if n else -np.inf, -np.inf)
        mean = np.where(expect_count > 0, np.nanmean(xf, axis=0) if n else 0.0, 0.0)
    if not (np.array_equal(outs_view(wholes, "lo"), lo)
            and np.array_equal(outs_view(wholes, "hi"), hi)):
        raise FuzzError("min / max differ from numpy")
    got_mean = outs_view(wholes, "mean")
    ok = expect_count > 0
    if not np.allclose(got_mean[ok], mean[ok], rtol=1e-9, atol=1e-12):
        raise FuzzError("mean differs from numpy")
    ge = np.array([[int(np.sum(xf[:, j] >= t[q, j])) for j in range(d)] for q in range(k)],
                  dtype=np.int64).reshape(k, d)
    if not np.array_equal(outs_view(wholes, "ge").reshape(k, d), ge):
        raise FuzzError("threshold counts differ from numpy")
    stats["accumulate:checked"] += 1


def outs_view(wholes: dict[str, Any], name: str) -> np.ndarray[Any, Any]:
    _whole, view = wholes[name]
    return np.asarray(view)


class _Quiet:
    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)


def fuzz_stage(rng: np.random.Generator, stats: Counter[str]) -> None:
    stage = kernel.stage
    assert stage is not None
    rows, d, k = int(rng.integers(1, 20)), int(rng.integers(1, 5)), int(rng.integers(0, 3))
    width = max(k, 1)
    x = rng.uniform(-2, 2, size=(rows, d))
    y = rng.uniform(-2, 2, size=(rows, k) if k else rows)
    lo, hi = np.full(width, -1.0), np.full(width, 1.0)
    cap_in, cap_out = rows + int(rng.integers(0, 4)), rows + int(rng.integers(0, 4))
    in_whole = np.full(cap_in * d + GUARD, SENTINEL)
    out_whole = np.full(cap_out * width + GUARD, SENTINEL)
    in_dst: Any = memoryview(in_whole[: cap_in * d]).cast("B")
    out_dst: Any = memoryview(out_whole[: cap_out * width]).cast("B")
    in_off = int(rng.integers(0, cap_in - rows + 1)) * d * 8
    out_off = int(rng.integers(0, cap_out - rows + 1)) * width * 8
    args: dict[str, Any] = {"in_dst": in_dst, "in_off": in_off, "x": x, "out_dst": out_dst,
                            "out_off": out_off, "y": y, "lo": lo, "hi": hi}
    mutated = ""
    if rng.random() < 0.7:
        mutated = str(rng.choice(list(args)))
        if mutated in ("in_off", "out_off"):
            args[mutated] = int(rng.choice([-8, -1, 3, 1 << 40, in_off + 8 * 1000]))
        elif mutated in ("in_dst", "out_dst"):
            others: list[Any] = [b"\x00" * 512, None, bytearray(8), 17]
            args[mutated] = (others[int(rng.integers(len(others)))] if rng.random() < 0.5
                             else odd(rng, np.zeros(4)))
        else:
            args[mutated] = odd(rng, np.asarray(args[mutated]))
    in_before, out_before = in_whole.copy(), out_whole.copy()
    x_before, y_before = x.copy(), y.copy()
    try:
        got = stage(args["in_dst"], args["in_off"], args["x"], args["out_dst"],
                    args["out_off"], args["y"], args["lo"], args["hi"])
        refused = None if got is not None else "declined"
    except CLEAN as exc:
        got, refused = None, type(exc).__name__
    stats["stage"] += 1
    stats[f"stage:{'refused:' + refused if refused else 'ok'}"] += 1
    if not (np.array_equal(x, x_before) and np.array_equal(y, y_before)):
        raise FuzzError(f"stage changed an input ({mutated})")
    if not (np.array_equal(in_whole[-GUARD:], in_before[-GUARD:])
            and np.array_equal(out_whole[-GUARD:], out_before[-GUARD:])):
        raise FuzzError(f"stage wrote past its buffers ({mutated})")
    if refused and not (np.array_equal(in_whole, in_before)
                        and np.array_equal(out_whole, out_before)):
        raise FuzzError(f"stage refused ({refused}) but wrote ({mutated})")
    if refused or mutated:
        return
    i0, o0 = in_off // 8, out_off // 8
    if not np.array_equal(in_whole[i0: i0 + rows * d], x.reshape(-1)):
        raise FuzzError("stage copied the batch wrongly")
    if not np.array_equal(out_whole[o0: o0 + rows * width], y.reshape(-1)):
        raise FuzzError("stage copied the scores wrongly")
    rest = np.ones(in_whole.size, bool)
    rest[i0: i0 + rows * d] = False
    if not np.array_equal(in_whole[rest], in_before[rest]):
        raise FuzzError("stage wrote outside the batch's place")
    inside = bool(np.all((y.reshape(rows, width) >= lo) & (y.reshape(rows, width) <= hi)))
    if got is not inside:
        raise FuzzError("stage's range check differs from numpy")
    stats["stage:checked"] += 1


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=2000)
    args = p.parse_args()
    if not kernel.COMPILED:
        print(json.dumps({"compiled": False}))
        return 0
    rng = np.random.default_rng(args.seed)
    stats: Counter[str] = Counter()
    failures: list[str] = []
    for _ in range(args.iterations):
        try:
            (fuzz_accumulate if rng.random() < 0.5 else fuzz_stage)(rng, stats)
        except FuzzError as exc:
            failures.append(str(exc))
        except Exception as exc:
            failures.append(f"unclean {type(exc).__name__}: {exc}")
    print(json.dumps({"compiled": True, "calls": dict(stats), "failures": failures[:20],
                      "failure_count": len(failures)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
