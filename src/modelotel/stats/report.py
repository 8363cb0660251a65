"""What one call's batches did besides feeding the statistics' windows: a :class:`Report`.

Example:
    >>> from modelotel.stats.report import Report, with_sample
    >>> rep = with_sample(None, 10, slice(0, None, 4))
    >>> rep.dropped, rep.sample_rate
    (7, 0.3)

Most calls have nothing to say: a side makes a report only when something happened (a
check fired, something was skipped, a batch was row-sampled).
"""

from __future__ import annotations

from modelotel.stats.reasons import add


class Report:
    """What one call's batches did besides feeding the window.

    Attributes:
        checks: ``(check, feature, output)`` per check that fired, in order; ``output``
            tells the side (True: a model output, False: an input feature).
        skipped: reason -> count of what was skipped (:mod:`.reasons`).
        dropped: rows left out by row sampling (``stats.row_cap``).
        sample_rate: the share of rows kept when a batch was row-sampled, else None.
    """

    __slots__ = ("checks", "dropped", "sample_rate", "skipped")

    def __init__(self) -> None:
        self.checks: list[tuple[str, str, bool]] = []
        self.skipped: dict[str, int] = {}
        self.dropped = 0
        self.sample_rate: float | None = None


def with_sample(rep: Report | None, rows: int, sample: slice) -> Report:
    """``rep`` (or a new report) with a row sample of ``rows`` rows recorded."""
    if rep is None:
        rep = Report()
    kept = len(range(rows)[sample])
    rep.dropped += rows - kept
    rep.sample_rate = kept / rows
    return rep


def with_skips(rep: Report | None, skipped: dict[str, int]) -> Report | None:
    """``rep`` (or a new report) with the skip reasons ``skipped`` added."""
    if not skipped:
        return rep
    if rep is None:
        rep = Report()
        rep.skipped = skipped
        return rep
    for reason, n in skipped.items():
        add(rep.skipped, reason, n)
    return rep


__all__ = ["Report", "with_sample", "with_skips"]
