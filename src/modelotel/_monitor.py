"""Per-model state: one :class:`ModelMonitor` per (model, version), in the runtime's registry.

Example:
    >>> from modelotel._monitor import get_monitor
    >>> from modelotel._options import model_config
    >>> mon = get_monitor(model_config(model="churn", version="3"))
    >>> mon.span_name, [type(p).__name__ for p in mon.parts]
    ('predict churn', ['StatsPart'])

A monitor holds what every prediction of one model shares: the frozen config, prebuilt
span and metric attribute dicts, the tracer / meter / logger of the current provider
generation, the in-process serving aggregation (:mod:`modelotel._serving`) and the model's
parts, built here explicitly, in the order they run when a prediction ends:

1. statistics (inputs, outputs, drift, checks), when there is anything to read;
2. outcomes: the cache of recent predictions that :func:`modelotel.record_outcome` joins
   labels to (models declared with ``task="classification"`` or ``"regression"``);
3. payloads: the sampled, redacted ``ml.prediction.payload`` records (payload capture on).

A part that is off costs nothing per call: it is not in :attr:`ModelMonitor.ends`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from modelotel import _instruments
from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel._options import ModelConfig
from modelotel._payload.emit import payload_part
from modelotel._payload.rules import rules_of
from modelotel._runtime import runtime
from modelotel._safety import guard, health
from modelotel._serving import Serving
from modelotel._stats_part import StatsPart
from modelotel._types import Ended, Part
from modelotel._version import __version__
from modelotel.outcomes import PredictionCache, cache_for


class ModelMonitor:
    """State shared by every prediction of one (model, version).

    Attributes:
        config: the frozen :class:`~modelotel._options.ModelConfig`.
        serving: the in-process serving aggregation (durations, calls, rows, errors).
        stats, outcome_cache, payload: the model's parts (None when off).
        outcome_rules: the payload rules its outcomes' labels and values pass
            (:mod:`modelotel._payload.rules`; the built-in patterns when payloads are off).
        parts: the parts that are on, in the order they run.
        ends: their ``end`` functions, which a primary prediction calls when it ends.
        tracer, meter, logger: from the providers of the current generation.
        generation: the provider generation they were taken from.
        framework: ``ml.model.framework`` (set by ``wrap()``: sklearn, xgboost, ...).
        method: ``ml.model.method`` on ``ml.model.info``: the primary method of a
            ``wrap()``-ed model, the one whose calls feed the statistics (else ``""``).
        baseline_hash: ``ml.baseline.hash`` (set by the statistics when they load one).
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.span_name = A.SPAN_NAME_TEMPLATE.format(model=config.model)
        self.span_attributes: dict[str, Any] = {
            A.ML_MODEL_NAME: config.model,
            A.ML_MODEL_VERSION: config.version,
        }
        self.metric_attributes: dict[str, Any] = {
            A.ML_MODEL_NAME: config.model,
            A.ML_MODEL_VERSION: config.version,
        }
        self.serving = Serving(self.metric_attributes)
        self.framework = ""
        self.method = ""
        self.baseline_hash = ""
        self.tracer: Any = None
        self.meter: Any = None
        self.logger: Any = None
        self.generation = -1
        self._lock = threading.Lock()
        # each part is built in its own guard: a failure in one must not cost the others
        self.stats: StatsPart | None = None
        self.outcome_cache: PredictionCache | None = None
        self.payload: Any = None
        with guard("stats.setup"):
            self.stats = StatsPart(config, self.metric_attributes)
            if self.stats.baseline is not None:
                self.baseline_hash = self.stats.baseline.hash
        with guard("outcomes.setup"):
            self.outcome_cache = cache_for(
                config.model, config.version, config.task, runtime.settings.outcome_cache_size
            )
        with guard("payload.setup"):
            self.payload = payload_part(config, self._current_logger)
        # what labels and predicted values of outcomes pass before they leave the process
        self.outcome_rules = rules_of(config.payload)
        self.parts: tuple[Part, ...] = tuple(
            p for p in (self.stats, self.outcome_cache, self.payload) if p is not None
        )
        self.ends: tuple[Callable[[Ended], None], ...] = tuple(p.end for p in self.parts)

    def _current_logger(self) -> Any:
        return self.logger

    # ---------------------------------------------------------------- providers
    def refresh(self) -> None:
        """Take tracer / meter / logger anew after the providers changed (generation moved).

        Called by a prediction only when the generation moved (one int compare otherwise).
        The serving aggregation is kept: it is exported by whichever provider is current when
        a reader collects (a model called before ``configure()`` keeps its counts). The
        statistics start over (:meth:`StatsPart.follow`): their running totals are reported
        by the new provider from zero, and a model not called since the change reports none.
        """
        with self._lock:
            gen = runtime.generation
            if gen == self.generation:
                return
            self.tracer = runtime.tracer_provider().get_tracer(A.SCOPE_NAME, __version__)
            self.meter = runtime.meter_provider().get_meter(A.SCOPE_NAME, __version__)
            self.logger = runtime.logger_provider().get_logger(A.SCOPE_NAME, __version__)
            self.generation = gen
            runtime.readmit((self.config.model, self.config.version), self)
            if self.stats is not None:
                with guard("stats.follow"):
                    self.stats.follow(gen)
        _instruments.ensure()

    # ---------------------------------------------------------- reset and fork
    def reset(self) -> None:
        """Forget the serving aggregation and what every part gathered."""
        self.serving.reset()
        for part in self.parts:
            with guard("monitor.reset"):
                part.reset()

    def after_fork(self) -> None:
        """In a forked child: new lock; nothing the parent gathered is exported again."""
        self._lock = threading.Lock()
        self.reset()

    def info_attributes(self) -> dict[str, Any]:
        """Attributes of ``ml.model.info`` for this model."""
        attrs = dict(self.metric_attributes)
        attrs[A.ML_MODEL_OWNER] = self.config.owner
        attrs[A.ML_MODEL_RUNBOOK_URL] = self.config.runbook_url
        attrs[A.ML_MODEL_TASK] = self.config.task
        attrs[A.ML_MODEL_FRAMEWORK] = self.framework
        attrs[A.ML_MODEL_METHOD] = self.method
        attrs[A.ML_BASELINE_HASH] = self.baseline_hash
        return attrs


def get_monitor(config: ModelConfig) -> ModelMonitor:
    """The monitor of ``(config.model, config.version)``, built on first use.

    Two decorations of the same (model, version) share one monitor (their calls are the
    same model's traffic); the first one's config wins and a differing one warns once.
    """
    key = (config.model, config.version)
    mon: ModelMonitor = runtime.model(key, lambda: ModelMonitor(config))
    if mon.config != config:
        health.warn_once(
            f"config-mismatch:{key[0]}:{key[1]}",
            "modelotel: model %r version %r was instrumented twice with different "
            "options; the first instrumentation's options are used",
            config.model,
            config.version,
        )
    return mon


def monitors() -> list[ModelMonitor]:
    """Every monitor built so far (a snapshot)."""
    return list(runtime.models.values())
