"""Input/output statistics, training baselines, drift and silent-failure checks.

Example:
    >>> import numpy as np
    >>> from modelotel.stats import Baseline, drift
    >>> rng = np.random.default_rng(0)
    >>> b = Baseline.from_data(rng.normal(size=(2000, 2)), feature_names=["x", "y"])
    >>> b.feature("x").shares[0]          # below-range share: nothing in training is below min
    0.0

Numbers in, numbers out: this package imports no OpenTelemetry. The same code builds the
baseline at training time and the windows at serving time (``modelotel._stats_monitor``
exports them as OTel metrics).
"""

from __future__ import annotations

from modelotel.stats import checks, drift
from modelotel.stats.accumulate import CategoricalAccumulator, NumericAccumulator
from modelotel.stats.baseline import Baseline, BaselineError, FeatureProfile
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
    "Table",
    "checks",
    "drift",
    "extract",
]
