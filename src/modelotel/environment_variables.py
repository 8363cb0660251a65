"""Environment variables read by modelotel (the ``MODELOTEL_*`` family).

Example:
    >>> from modelotel.environment_variables import MODELOTEL_ENABLED
    >>> MODELOTEL_ENABLED
    'MODELOTEL_ENABLED'

Precedence everywhere: explicit argument > environment > default. Values are read once,
when a model is decorated (or at import for :data:`MODELOTEL_ENABLED`), never per call. A
value that cannot be parsed logs one warning and falls back to the default. The standard
``OTEL_*`` variables (service name, endpoint, sampler, export interval, ``OTEL_SDK_DISABLED``)
are read by the OpenTelemetry SDK itself; modelotel does not re-parse them.
"""

from __future__ import annotations

from typing import Final

MODELOTEL_ENABLED: Final = "MODELOTEL_ENABLED"
"""
.. envvar:: MODELOTEL_ENABLED

Kill switch. ``false`` (also ``0``, ``no``, ``off``; case-insensitive) turns every
instrumented function into a pure pass-through: no span, no metric, no statistics, no
payload. Read once at import. Default: ``true``. Any other value warns once and keeps
modelotel enabled.
"""

MODELOTEL_STRICT: Final = "MODELOTEL_STRICT"
"""
.. envvar:: MODELOTEL_STRICT

Test aid. ``1``/``true`` keeps every internal error that the guard swallowed in
``modelotel._safety.health.strict_errors`` so a test can fail on it. Default: ``false``.
"""

MODELOTEL_MAX_FEATURES: Final = "MODELOTEL_MAX_FEATURES"
"""
.. envvar:: MODELOTEL_MAX_FEATURES

Most input features (columns) per model that get statistics; the rest are counted as
skipped. Positive integer. Default: ``200``.
"""

MODELOTEL_ROW_CAP: Final = "MODELOTEL_ROW_CAP"
"""
.. envvar:: MODELOTEL_ROW_CAP

Most rows of one batch reduced for statistics; larger batches are row-sampled. Positive
integer. Default: ``1024``.
"""

MODELOTEL_PAYLOAD_SAMPLE_RATE: Final = "MODELOTEL_PAYLOAD_SAMPLE_RATE"
"""
.. envvar:: MODELOTEL_PAYLOAD_SAMPLE_RATE

Fraction of calls whose inputs and outputs are emitted as ``ml.prediction.payload`` log
records (redacted, size-capped). Float in ``[0, 1]``. Default: ``0`` (payload capture off:
payloads may hold personal data).
"""

MODELOTEL_MODEL_VERSION: Final = "MODELOTEL_MODEL_VERSION"
"""
.. envvar:: MODELOTEL_MODEL_VERSION

Model version used when ``version=`` is not given (for instance set by the deployment).
Default: empty string.
"""

MODELOTEL_MODEL_OWNER: Final = "MODELOTEL_MODEL_OWNER"
"""
.. envvar:: MODELOTEL_MODEL_OWNER

Owner (team or person) used when ``owner=`` is not given; exported on ``ml.model.info``.
Default: empty string.
"""

MODELOTEL_MODEL_RUNBOOK_URL: Final = "MODELOTEL_MODEL_RUNBOOK_URL"
"""
.. envvar:: MODELOTEL_MODEL_RUNBOOK_URL

Runbook address (http or https) used when ``runbook_url=`` is not given; exported on
``ml.model.info`` as ``ml.model.runbook_url`` and put in the shipped alerts' ``runbook_url``
annotation. Default: empty string.
"""

MODELOTEL_WINDOW_GAUGES: Final = "MODELOTEL_WINDOW_GAUGES"
"""
.. envvar:: MODELOTEL_WINDOW_GAUGES

``false`` (also ``0``, ``no``, ``off``) leaves out the per-replica window gauges
``ml.feature.mean / stddev / min / max / drift`` and ``ml.output.*`` alike, for fleets that
only need the additive counters (counts, missing, bins: fleet drift comes from the summed
bins, see ``modelotel rules``). Process-wide; read when the metrics are set up. Default:
``true``.
"""

MODELOTEL_SHUTDOWN_TIMEOUT: Final = "MODELOTEL_SHUTDOWN_TIMEOUT"
"""
.. envvar:: MODELOTEL_SHUTDOWN_TIMEOUT

Seconds that ``modelotel.shutdown()``, ``modelotel.force_flush()`` and interpreter exit may
spend exporting what is buffered, when ``configure(shutdown_timeout=...)`` is not given.
Positive number. Default: ``5``. (The stock SDK can take about 30 s when the collector is
unreachable.)
"""

MODELOTEL_PAYLOAD_HMAC_KEY: Final = "MODELOTEL_PAYLOAD_HMAC_KEY"
"""
.. envvar:: MODELOTEL_PAYLOAD_HMAC_KEY

Secret key (text, UTF-8) for ``PayloadConfig(hash_fields=...)``: those fields' values are
replaced by HMAC-SHA256 under this key, so they stay joinable without being readable. Read
when the ``PayloadConfig`` is made; ``hash_fields`` without it is a setup error. No default.
"""

MODELOTEL_OUTCOME_CACHE_SIZE: Final = "MODELOTEL_OUTCOME_CACHE_SIZE"
"""
.. envvar:: MODELOTEL_OUTCOME_CACHE_SIZE

Most recent predictions kept per model version (models declared with
``task="classification"`` or ``"regression"``) so that ``modelotel.record_outcome`` can
update ``ml.outcome.*`` metrics. Non-negative integer; ``0`` turns the cache off. Default:
``10000``.
"""

MODELOTEL_OUTCOME_RECORD_VALUES: Final = "MODELOTEL_OUTCOME_RECORD_VALUES"
"""
.. envvar:: MODELOTEL_OUTCOME_RECORD_VALUES

Whether ``ml.prediction.outcome`` log records carry the label and the predicted value
(``ml.outcome.actual``, ``ml.outcome.predicted``; redacted by the model's payload rules).
``false`` (also ``0``, ``no``, ``off``) keeps them out of every log record: outcomes then
leave the process as metrics only (counts, accuracy, absolute errors and the capped
``ml.outcome.class`` labels), the records keep the ids. Read at the first outcome.
Default: ``true``.
"""

MODELOTEL_OUTCOME_MAX_CLASSES: Final = "MODELOTEL_OUTCOME_MAX_CLASSES"
"""
.. envvar:: MODELOTEL_OUTCOME_MAX_CLASSES

Most distinct (redacted) label values per model version that become values of the
``ml.outcome.class`` metric attribute; further labels are counted as ``_OTHER``.
Non-negative integer; ``0`` puts no label value on a metric at all (every outcome counts
as ``_OTHER``). Read at the first outcome. Default: ``100``.
"""

MODELOTEL_STATS_KERNEL: Final = "MODELOTEL_STATS_KERNEL"
"""
.. envvar:: MODELOTEL_STATS_KERNEL

Which code reduces the statistics' row buffers. ``auto`` (default): the compiled kernel
built at install time when there is one, numpy otherwise (with one warning per process
saying so); ``numpy``: numpy always, without that warning (the results are the same; the
kernel is faster). Read once at import. Any other value warns once and means ``auto``.
``modelotel doctor`` and ``modelotel.stats.kernel.COMPILED`` / ``STATUS`` say which one
runs and why. Whether the kernel is built at all is chosen at build time by
``MODELOTEL_BUILD_KERNEL`` (read by ``setup.py``, not here): see docs/kernel.md.
"""

MODELOTEL_PAYLOAD_PROCESS_RECORDS_PER_SECOND: Final = "MODELOTEL_PAYLOAD_PROCESS_RECORDS_PER_SECOND"
"""
.. envvar:: MODELOTEL_PAYLOAD_PROCESS_RECORDS_PER_SECOND

Payload records per second for the whole process, all models together, on top of each
model version's own budget (``PayloadConfig.max_records_per_second``). A positive number.
Read once, when the first model with payload capture is decorated. Default: ``100``.
"""

MODELOTEL_PAYLOAD_PROCESS_BYTES_PER_SECOND: Final = "MODELOTEL_PAYLOAD_PROCESS_BYTES_PER_SECOND"
"""
.. envvar:: MODELOTEL_PAYLOAD_PROCESS_BYTES_PER_SECOND

Payload bytes per second for the whole process, all models together, on top of each model
version's own budget (``PayloadConfig.max_bytes_per_second``). A positive number. Read
once, when the first model with payload capture is decorated. Default: ``2097152`` (2 MiB).
"""
