"""modelotel: make machine learning models observable in production through OpenTelemetry.

Example:
    >>> import modelotel
    >>> @modelotel.instrument(model="churn", version="3")
    ... def predict(X):
    ...     return [0.0 for _ in X]
"""

from __future__ import annotations

from modelotel._version import __version__

__all__ = ["__version__"]
