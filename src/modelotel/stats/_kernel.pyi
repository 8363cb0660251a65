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
