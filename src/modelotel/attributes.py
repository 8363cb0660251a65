"""Every attribute, metric, event and log-record name that modelotel emits.

Example:
    >>> from modelotel import attributes as A
    >>> A.ML_MODEL_NAME
    'ml.model.name'

These names are the telemetry contract: collector routing, dashboards, alert rules and
recording rules are keyed on them. Renaming one is a breaking change and needs a changelog
entry. No OpenTelemetry semantic convention covers classic ML inference yet, so modelotel
uses the ``ml.`` namespace, OTel naming rules (lowercase, dots between namespaces,
snake_case inside) and the standard names where they exist (``error.type``,
``service.*``). Code never spells these strings inline; it imports them from here.
"""

from __future__ import annotations

from typing import Final

# --- instrumentation scope -------------------------------------------------------------
SCOPE_NAME: Final = "modelotel"

# --- span -------------------------------------------------------------------------------
#: Span name template: ``predict {model}``.
SPAN_NAME_TEMPLATE: Final = "predict {model}"

ML_MODEL_NAME: Final = "ml.model.name"
ML_MODEL_VERSION: Final = "ml.model.version"
ML_MODEL_TASK: Final = "ml.model.task"
ML_MODEL_OWNER: Final = "ml.model.owner"
#: On ``ml.model.info``: the model's runbook address (``runbook_url=``), for alert links.
ML_MODEL_RUNBOOK_URL: Final = "ml.model.runbook_url"
ML_MODEL_FRAMEWORK: Final = "ml.model.framework"
#: Span attribute set by ``wrap()``: the model method that was called (``predict``,
#: ``predict_proba``, ``__call__``, ...); on ``ml.model.info``: the primary method, whose
#: calls feed the statistics (``""`` for ``instrument`` and ``observe``).
ML_MODEL_METHOD: Final = "ml.model.method"
ML_BASELINE_HASH: Final = "ml.baseline.hash"
ML_PREDICTION_ID: Final = "ml.prediction.id"
ML_INPUT_ROWS: Final = "ml.input.rows"
ML_INPUT_FEATURES: Final = "ml.input.features"
#: Span attribute: a payload record was queued for this call (set before the span ends).
#: The record is finished on the payload worker (on the calling thread while the worker's
#: queue is full); if it is dropped then (byte budget, serialize error, redact hook,
#: shutdown deadline), ``ml.telemetry.dropped`` counts it under its reason.
ML_PAYLOAD_SAMPLED: Final = "ml.payload.sampled"
#: Span attribute: the names of the silent-failure checks that fired in this call.
ML_CHECKS_FIRED: Final = "ml.checks.fired"
#: Span attribute for generator / async-generator predict functions: items yielded.
ML_STREAM_ITEMS: Final = "ml.stream.items"
#: Span attribute: the stream was closed by the consumer before it was exhausted.
ML_STREAM_CLOSED_EARLY: Final = "ml.stream.closed_early"
#: Span attribute: seconds from the start of a stream to its first item.
ML_STREAM_TIME_TO_FIRST_ITEM: Final = "ml.stream.time_to_first_item"

#: Standard OTel attribute (semantic conventions): the class of error that ended the call.
ERROR_TYPE: Final = "error.type"

#: Standard OTel exception event and its attributes (semantic conventions). modelotel puts
#: only ``exception.type`` on it unless payload capture is on for the model: exception
#: messages and stack traces often quote the inputs.
EVENT_EXCEPTION: Final = "exception"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"

#: Span event added when a silent-failure check fires (attributes: ML_CHECK, ML_FEATURE).
EVENT_CHECK_VIOLATION: Final = "ml.check.violation"

# --- metric attributes (low cardinality only: never ids or values) -----------------------
ML_FEATURE: Final = "ml.feature"
#: On ``ml.feature.missing`` / ``ml.output.missing``: which kind of missing value.
ML_MISSING_KIND: Final = "ml.missing.kind"
MISSING_NULL: Final = "null"
MISSING_NAN: Final = "nan"
MISSING_INF: Final = "inf"
#: ``ml.bin`` values for the out-of-range bins (interior bins are "0", "1", ...) and the
#: categorical buckets beside the baseline's top categories.
BIN_BELOW: Final = "below"
BIN_ABOVE: Final = "above"
BIN_OTHER: Final = "other"
BIN_UNSEEN: Final = "unseen"
#: ``ml.drift.method`` values.
DRIFT_PSI: Final = "psi"
DRIFT_JS: Final = "js"
DRIFT_KS: Final = "ks"
DRIFT_WASSERSTEIN: Final = "wasserstein"
#: Cramér's V of the window's categories against the baseline (replaces the raw Pearson
#: statistic "chi2", which grew with the window and was not 0 on identical data).
DRIFT_CRAMERS_V: Final = "cramers_v"
#: ``ml.check`` values (silent-failure checks).
CHECK_OUTPUT_NONFINITE: Final = "output_nonfinite"
CHECK_OUTPUT_CONSTANT: Final = "output_constant"
CHECK_OUTPUT_CLASS_COLLAPSE: Final = "output_class_collapse"
CHECK_OUTPUT_OUT_OF_RANGE: Final = "output_out_of_range"
CHECK_SCHEMA_MISSING_FEATURE: Final = "schema_missing_feature"
CHECK_SCHEMA_UNEXPECTED_FEATURE: Final = "schema_unexpected_feature"
CHECK_SCHEMA_DTYPE_CHANGE: Final = "schema_dtype_change"
#: Images of another height, width or number of channels than the schema's (``ml.feature``
#: ``image.height``, ``image.width``, ``image.channels``).
CHECK_SCHEMA_SHAPE_CHANGE: Final = "schema_shape_change"
#: Span attribute: share of the rows of a large batch that went into the binned statistics.
ML_STATS_SAMPLE_RATE: Final = "ml.stats.sample_rate"
ML_OUTPUT: Final = "ml.output"
ML_BIN: Final = "ml.bin"
ML_DRIFT_METHOD: Final = "ml.drift.method"
ML_CHECK: Final = "ml.check"
ML_TELEMETRY_REASON: Final = "ml.telemetry.reason"
ML_TELEMETRY_COMPONENT: Final = "ml.telemetry.component"
ML_OUTCOME_CLASS: Final = "ml.outcome.class"
ML_OUTCOME_RESULT: Final = "ml.outcome.result"

# --- metrics: serving ------------------------------------------------------------------
METRIC_PREDICTION_DURATION: Final = "ml.prediction.duration"
METRIC_PREDICTION_TIME_TO_FIRST_ITEM: Final = "ml.prediction.time_to_first_item"
METRIC_PREDICTION_ROWS: Final = "ml.prediction.rows"
METRIC_PREDICTION_CALLS: Final = "ml.prediction.calls"
METRIC_PREDICTION_ERRORS: Final = "ml.prediction.errors"
METRIC_MODEL_INFO: Final = "ml.model.info"

# --- metrics: input features -----------------------------------------------------------
METRIC_FEATURE_COUNT: Final = "ml.feature.count"
METRIC_FEATURE_MISSING: Final = "ml.feature.missing"
METRIC_FEATURE_BIN: Final = "ml.feature.bin"
METRIC_FEATURE_DRIFT: Final = "ml.feature.drift"
METRIC_FEATURE_MEAN: Final = "ml.feature.mean"
METRIC_FEATURE_STDDEV: Final = "ml.feature.stddev"
METRIC_FEATURE_MIN: Final = "ml.feature.min"
METRIC_FEATURE_MAX: Final = "ml.feature.max"

# --- metrics: outputs ------------------------------------------------------------------
METRIC_OUTPUT_COUNT: Final = "ml.output.count"
METRIC_OUTPUT_MISSING: Final = "ml.output.missing"
METRIC_OUTPUT_BIN: Final = "ml.output.bin"
METRIC_OUTPUT_DRIFT: Final = "ml.output.drift"
METRIC_OUTPUT_MEAN: Final = "ml.output.mean"
METRIC_OUTPUT_STDDEV: Final = "ml.output.stddev"
METRIC_OUTPUT_MIN: Final = "ml.output.min"
METRIC_OUTPUT_MAX: Final = "ml.output.max"

# --- metrics: checks and outcomes ------------------------------------------------------
METRIC_CHECK_VIOLATIONS: Final = "ml.check.violations"
METRIC_OUTCOME_COUNT: Final = "ml.outcome.count"
METRIC_OUTCOME_CORRECT: Final = "ml.outcome.correct"
METRIC_OUTCOME_ACCURACY: Final = "ml.outcome.accuracy"
METRIC_OUTCOME_ABSOLUTE_ERROR: Final = "ml.outcome.absolute_error"
METRIC_OUTCOME_CLASS: Final = "ml.outcome.class"
METRIC_OUTCOME_UNMATCHED: Final = "ml.outcome.unmatched"

# --- metrics: the SDK's own health -----------------------------------------------------
METRIC_TELEMETRY_DROPPED: Final = "ml.telemetry.dropped"
METRIC_TELEMETRY_ERRORS: Final = "ml.telemetry.errors"
METRIC_TELEMETRY_OVERHEAD: Final = "ml.telemetry.overhead"
METRIC_TELEMETRY_SKIPPED: Final = "ml.telemetry.skipped"

# --- log records (event names) ---------------------------------------------------------
EVENT_PREDICTION_PAYLOAD: Final = "ml.prediction.payload"
EVENT_PREDICTION_OUTCOME: Final = "ml.prediction.outcome"

# payload / outcome record attributes
ML_PAYLOAD_TRUNCATED: Final = "ml.payload.truncated"
ML_PAYLOAD_ORIGINAL_BYTES: Final = "ml.payload.original_bytes"
ML_PAYLOAD_SAMPLE_REASON: Final = "ml.payload.sample_reason"
ML_PAYLOAD_REDACTED: Final = "ml.payload.redacted"
ML_OUTCOME_ACTUAL: Final = "ml.outcome.actual"
ML_OUTCOME_PREDICTED: Final = "ml.outcome.predicted"
#: Outcome record attribute: whether the prediction was still in the in-process cache.
ML_OUTCOME_MATCHED: Final = "ml.outcome.matched"
#: Outcome record attribute: the model's redaction rules changed or withheld a value.
ML_OUTCOME_REDACTED: Final = "ml.outcome.redacted"

#: Payload record attribute: the whole inputs as JSON text (inputs without named fields).
ML_PAYLOAD_INPUTS: Final = "ml.payload.inputs"
#: Payload record attribute: the whole outputs as JSON text (outputs without named fields).
ML_PAYLOAD_OUTPUTS: Final = "ml.payload.outputs"
#: Prefix of one payload attribute per named input field: ``ml.payload.input.<field>`` (JSON text).
ML_PAYLOAD_INPUT_PREFIX: Final = "ml.payload.input."
#: Prefix of one payload attribute per named output field: ``ml.payload.output.<field>``.
ML_PAYLOAD_OUTPUT_PREFIX: Final = "ml.payload.output."
#: Payload record attribute: rows of the inputs before the row cap (when the inputs have rows).
ML_PAYLOAD_ORIGINAL_ROWS: Final = "ml.payload.original_rows"
#: Payload record attribute: UTF-8 bytes of all ``ml.payload.input*/output*`` values sent.
ML_PAYLOAD_BYTES: Final = "ml.payload.bytes"

#: Values of ``ml.payload.sample_reason``.
PAYLOAD_REASON_RATE: Final = "rate"
PAYLOAD_REASON_ERROR: Final = "error"
PAYLOAD_REASON_CHECK: Final = "check"

# --- values of ml.telemetry.reason for payloads and outcomes ---------------------------
#: Dropped records (``ml.telemetry.dropped``): the whole payload record was not sent.
REASON_PAYLOAD_BUDGET: Final = "payload_budget"
REASON_PAYLOAD_BUDGET_BYTES: Final = "payload_budget_bytes"
REASON_PAYLOAD_BUDGET_PROCESS: Final = "payload_budget_process"
REASON_PAYLOAD_BUDGET_PROCESS_BYTES: Final = "payload_budget_process_bytes"
REASON_PAYLOAD_REDACT_HOOK_ERROR: Final = "payload_redact_hook_error"
REASON_PAYLOAD_REDACT_HOOK_DROPPED: Final = "payload_redact_hook_dropped"
REASON_PAYLOAD_SERIALIZE_ERROR: Final = "payload_serialize_error"
#: Still queued for the payload worker when ``shutdown()`` (or the exit hook) ran out of time.
REASON_PAYLOAD_WORKER_SHUTDOWN_TIMEOUT: Final = "payload_worker_shutdown_timeout"
#: Skipped parts (``ml.telemetry.skipped``): the record was sent, capped (truncated=true).
REASON_PAYLOAD_ROWS: Final = "payload_rows"
REASON_PAYLOAD_ITEMS: Final = "payload_items"
REASON_PAYLOAD_STRING: Final = "payload_string"
REASON_PAYLOAD_BYTES: Final = "payload_bytes"
REASON_PAYLOAD_DEPTH: Final = "payload_depth"
REASON_PAYLOAD_CIRCULAR: Final = "payload_circular"
REASON_PAYLOAD_UNREPRESENTABLE: Final = "payload_unrepresentable"
#: ``PayloadConfig.sample_key`` could not be read from a call's inputs (rate not applied).
REASON_PAYLOAD_SAMPLE_KEY: Final = "payload_sample_key"
#: Outcomes whose prediction could not be used (``ml.telemetry.skipped``).
REASON_OUTCOME_BAD_INPUT: Final = "outcome_bad_input"
#: An input whose ``.shape`` / ``len()`` / first row raised or lied: the span goes out
#: without ``ml.input.rows`` / ``ml.input.features`` (``ml.telemetry.skipped``).
REASON_INPUT_SHAPE: Final = "input_shape_unreadable"

# --- values of ml.telemetry.reason for the export pipelines (_accounting.py) ----------
# A span or log record lost inside the SDK's export pipeline counts as "<kind>_<stage>"
# (``dropped_reason``), e.g. "payload_queue_full": every record is either delivered or
# counted under exactly one of these.
#: Kinds of records: spans, ``ml.prediction.payload`` / ``ml.prediction.outcome`` log
#: records, any other log record.
RECORD_SPAN: Final = "span"
RECORD_PAYLOAD: Final = "payload"
RECORD_OUTCOME: Final = "outcome"
RECORD_LOG: Final = "log"
#: The batch processor's queue was full (``OTEL_BSP_MAX_QUEUE_SIZE`` /
#: ``OTEL_BLRP_MAX_QUEUE_SIZE``; a slow or absent collector): its oldest record fell out.
STAGE_QUEUE_FULL: Final = "queue_full"
#: The OTLP exporter gave up on the record's batch (retries and timeout spent, or a
#: non-retryable error such as 400 or UNIMPLEMENTED).
STAGE_EXPORT_FAILED: Final = "export_failed"
#: The record arrived after ``modelotel.shutdown()``.
STAGE_AFTER_SHUTDOWN: Final = "after_shutdown"
#: Still queued (not yet handed to the exporter) when the shutdown deadline passed.
STAGE_SHUTDOWN_TIMEOUT: Final = "shutdown_timeout"
#: In an export that the shutdown deadline cut short (the collector had not answered).
STAGE_EXPORT_CUT: Final = "export_cut"


def dropped_reason(kind: str, stage: str) -> str:
    """The ``ml.telemetry.reason`` of a record of ``kind`` lost at ``stage``."""
    return f"{kind}_{stage}"


REASON_SPAN_QUEUE_FULL: Final = "span_queue_full"
REASON_LOG_QUEUE_FULL: Final = "log_queue_full"
REASON_SPAN_AFTER_SHUTDOWN: Final = "span_after_shutdown"
REASON_LOG_AFTER_SHUTDOWN: Final = "log_after_shutdown"
REASON_SPAN_EXPORT_FAILED: Final = "span_export_failed"
REASON_LOG_EXPORT_FAILED: Final = "log_export_failed"
