"""modelotel: make machine learning models observable in production through OpenTelemetry.

Example:
    >>> import modelotel
    >>> @modelotel.instrument(model="churn", version="3")
    ... def predict(X):
    ...     return [0.0 for _ in X]

``import modelotel`` loads the OpenTelemetry API and numpy, not the OpenTelemetry SDK: the
SDK and the OTLP exporters load when :func:`configure` (or :func:`shutdown`,
:func:`force_flush`) is first used, and :mod:`modelotel.testing` when it is first used, so
an application that brings its own providers, or imports modelotel to decorate models at
import time, pays for neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelotel import attributes
from modelotel._instrument import instrument
from modelotel._observe import observe
from modelotel._options import ModelOptions
from modelotel._payload.config import PayloadConfig
from modelotel._prediction import Prediction, last_prediction_id
from modelotel._suppress import suppress
from modelotel._version import __version__
from modelotel._wrap import wrap
from modelotel.outcomes import record_outcome
from modelotel.stats.baseline import Baseline

if TYPE_CHECKING:
    from modelotel import testing
    from modelotel.setup import configure, force_flush, shutdown

__all__ = [
    "Baseline",
    "ModelOptions",
    "PayloadConfig",
    "Prediction",
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

_LAZY = {
    "configure": "modelotel.setup",
    "force_flush": "modelotel.setup",
    "shutdown": "modelotel.setup",
    "testing": "modelotel.testing",
}


def __getattr__(name: str) -> Any:
    """Load :func:`configure` and friends, and :mod:`modelotel.testing`, on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelotel' has no attribute {name!r}")
    import importlib

    loaded = importlib.import_module(module)
    value = loaded if name == "testing" else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
