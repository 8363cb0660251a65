"""modelotel: make machine learning models observable in production through OpenTelemetry.

Example:
    >>> import modelotel
    >>> @modelotel.instrument(model="churn", version="3")
    ... def predict(X):
    ...     return [0.0 for _ in X]
"""

from __future__ import annotations

from modelotel import attributes, testing
from modelotel._call import last_prediction_id
from modelotel._instrument import instrument, wrap
from modelotel._observe import observe
from modelotel._payload.config import PayloadConfig
from modelotel._suppress import suppress
from modelotel._version import __version__
from modelotel.outcomes import record_outcome
from modelotel.setup import configure, force_flush, shutdown
from modelotel.stats.baseline import Baseline

__all__ = [
    "Baseline",
    "PayloadConfig",
    "__version__",
    "attributes",
    "configure",
    "force_flush",
    "instrument",
    "last_prediction_id",
    "observe",
    "record_outcome",
    "shutdown",
    "suppress",
    "testing",
    "wrap",
]
