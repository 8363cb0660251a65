"""Input/output statistics, training baselines, drift and silent-failure checks.

Example:
    >>> import numpy as np
    >>> from modelotel.stats import Baseline, drift
    >>> rng = np.random.default_rng(0)
    >>> b = Baseline.from_data(rng.normal(size=(2000, 2)), feature_names=["x", "y"])
    >>> b.feature("x").shares[0]          # below-range share: nothing in training is below min
    0.0

Numbers in, numbers out: this package imports no OpenTelemetry and counts nothing
globally; it returns what it skipped and why. The same code builds the baseline at training
time and the windows at serving time (``modelotel._stats_part`` turns them into OTel
metrics). One batch goes down the pipeline in this order:

- :mod:`.read` (with :mod:`.frames` for pandas): any supported input into a
  :class:`~.table.Table` of named columns; :mod:`.reasons` names what is skipped;
- :mod:`.schema`: the model's fixed schema, and a table lined up with it;
- :mod:`.checks`: the per-call output checks (and the per-window ones);
- :mod:`.buffer`: the row buffer small batches wait in;
- :mod:`.accumulate` (with the optional compiled :mod:`.kernel`): mergeable window
  statistics; :mod:`.drift`: drift against the :mod:`.baseline`;
- :mod:`.window`: what a closed window says (gauges, drift, window checks, totals);
- :mod:`.side` and :mod:`.profiler`: one model's two sides fed call after call, the
  :class:`~.profiler.Profiler` that the OTel adapter drives.
"""

from __future__ import annotations

from modelotel.stats import checks, drift
from modelotel.stats.accumulate import CategoricalAccumulator, NumericAccumulator
from modelotel.stats.baseline import Baseline, BaselineError, FeatureProfile
from modelotel.stats.profiler import Profiler
from modelotel.stats.read import Table, extract
from modelotel.stats.schema import ColumnPlan, FeatureSpec

__all__ = [
    "Baseline",
    "BaselineError",
    "CategoricalAccumulator",
    "ColumnPlan",
    "FeatureProfile",
    "FeatureSpec",
    "NumericAccumulator",
    "Profiler",
    "Table",
    "checks",
    "drift",
    "extract",
]
