"""Types of the optional compiled kernel (src/modelotel/stats/_kernel.c)."""

from typing import Any

ABI: int

def stage(
    in_dst: Any, in_off: int, x: Any, out_dst: Any, out_off: int, y: Any, lo: Any, hi: Any
) -> bool | None: ...
def accumulate(
    X: Any,
    n: int,
    d: int,
    T: Any,
    K: int,
    count: Any,
    mean: Any,
    m2: Any,
    nan: Any,
    inf: Any,
    lo: Any,
    hi: Any,
    ge: Any,
) -> None: ...
def put_records(dst: Any, off: int, keys: tuple[str, ...], x: Any, /) -> int: ...
def put_scores(dst: Any, off: int, y: Any, lo: float, hi: float, /) -> int: ...
def put_texts(dst: Any, off: int, x: Any, /) -> int: ...
