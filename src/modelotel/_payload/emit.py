"""The payload part: decide, cap, redact and emit one ``ml.prediction.payload`` record.

Example:
    >>> from types import SimpleNamespace
    >>> from modelotel._options import model_config
    >>> from modelotel._payload.emit import payload_part
    >>> payload_part(model_config(model="doc"), logger=lambda: None) is None   # off
    True
    >>> part = payload_part(model_config(model="doc", payload_sample_rate=0.5), lambda: None)
    >>> def ended(pid):
    ...     return SimpleNamespace(prediction_id=pid, inputs=[1], error=None, checks_fired=[])
    >>> part.decide(ended("0" * 16)), part.decide(ended("f" * 16))
    ('rate', None)

Per call, a call that is not kept costs one string compare. Everything else runs only for
kept calls: on the calling thread, inside the guard that the prediction puts around every
part, the record budgets and a call-time copy of the values (:meth:`PayloadPart.prepare`);
on the payload worker (:mod:`modelotel._payload.worker`), inside this part's own guard,
conversion, redaction, JSON, the byte budgets and ``Logger.emit`` (:meth:`PayloadPart.deliver`).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from opentelemetry._logs import Logger, SeverityNumber
from opentelemetry.trace import Span, set_span_in_context

from modelotel import attributes as tn
from modelotel._payload.config import PayloadConfig
from modelotel._payload.redact import Redactor
from modelotel._payload.sampling import TokenBucket, hex_limit, id_hash, key_hash, threshold
from modelotel._payload.serialize import Converter, clean_text, input_rows
from modelotel._payload.snapshot import NOT_COPIED, Caps, rows_of, snapshot
from modelotel._payload.worker import payload_worker
from modelotel._runtime import runtime
from modelotel._safety import count_dropped, count_skipped, guard
from modelotel._types import MISSING, Ended

_MAX_KEY = 64
_TWO_64 = 1 << 64
#: Most ``ml.payload.input.<field>`` + ``ml.payload.output.<field>`` attributes per record.
MAX_FIELD_ATTRIBUTES = 100
#: Name of the runtime store holding the process-wide payload budget.
PROCESS_BUDGET = "payload.process_budget"


class ProcessBudget:
    """The payload budget of the whole process: every model's records draw on it too.

    One per process, in the runtime's stores (:func:`process_budget`). Built from
    ``MODELOTEL_PAYLOAD_PROCESS_RECORDS_PER_SECOND`` / ``..._BYTES_PER_SECOND``; a model
    configured with a larger budget of its own raises it to that (:meth:`at_least`): an
    explicit setting is not silently capped by a default, while many models at their
    defaults still share the process's.
    """

    __slots__ = ("bytes", "records")

    def __init__(self, records_per_second: float, bytes_per_second: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.records = TokenBucket(records_per_second, clock=clock)
        self.bytes = TokenBucket(bytes_per_second, clock=clock)

    def at_least(self, cfg: PayloadConfig) -> None:
        """Raise the budget to ``cfg``'s; the byte bucket always holds one record of it."""
        rps, bps = cfg.max_records_per_second, cfg.max_bytes_per_second
        self.records.at_least(rps, max(1.0, rps))
        self.bytes.at_least(bps, max(bps, float(cfg.max_bytes)))

    def reset(self) -> None:
        self.records.refill()
        self.bytes.refill()

    def after_fork(self) -> None:
        self.reset()


def process_budget() -> ProcessBudget:
    """The process-wide payload budget (made on first use, from the settings)."""

    def make() -> ProcessBudget:
        s = runtime.settings
        return ProcessBudget(
            s.payload_process_records_per_second, s.payload_process_bytes_per_second
        )

    return runtime.store(PROCESS_BUDGET, make)


#: json.dumps(value, **these) is JSONEncoder(**these).encode(value): one encoder, built once
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_FLOAT_REPR = float.__repr__


def _dumps(value: Any) -> str:
    if type(value) is float and value - value == 0.0:
        return _FLOAT_REPR(value)  # what the encoder writes for a finite float
    return _ENCODE(value)


def _columns(value: Any, feature_names: tuple[str, ...] | None) -> Any:
    """Records (a list of dicts) become columns; rows of a known width get feature names."""
    if isinstance(value, list) and value:
        if all(isinstance(r, dict) for r in value):
            names: dict[str, None] = {}
            for r in value:
                names.update(dict.fromkeys(r))
            return {n: [r.get(n) for r in value] for n in names}
        if feature_names and all(
            isinstance(r, list) and len(r) == len(feature_names) for r in value
        ):
            return {n: [r[j] for r in value] for j, n in enumerate(feature_names)}
    return value


class Pending(NamedTuple):
    """A kept call's record as the calling thread hands it to the worker.

    ``inputs`` / ``outputs``: ``(value, converted)`` (None: the call has no such side),
    where ``value`` is a call-time copy (:func:`~modelotel._payload.snapshot.snapshot`) for
    the worker to convert, or, when ``converted``, plain data converted on the calling
    thread with ``conv`` (None when nothing was; the worker goes on with it: the byte cap
    is shared by both sides) and ``rows`` the inputs' rows (else taken from the copy).
    Nothing here is a user's object that may still change.
    """

    reason: str
    prediction_id: str
    error_type: str | None
    checks: list[str] | None
    span: Span | None
    logger: Logger
    time_ns: int
    conv: Converter | None
    inputs: tuple[Any, bool] | None
    outputs: tuple[Any, bool] | None
    rows: int | None


class PayloadPart:
    """The payload part of one model version: sampling decision, budgets, emission.

    :attr:`end` is what runs for every ended prediction: :attr:`decide` (the one sampling
    decision: the rate on the prediction id or the ``sample_key``, then failed calls and
    calls where a check fired) and, for a kept call, :meth:`emit`. Both are plain
    functions made once for this config: a function with its constants in closure cells is
    measurably cheaper per call than a method reading them from the instance, and a call
    that is not kept costs one string compare.
    """

    def __init__(
        self,
        *,
        model: str,
        version: str,
        rate: float,
        config: PayloadConfig,
        logger: Callable[[], Logger],
        feature_names: tuple[str, ...] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.version = version
        self.config = config
        self.missing = MISSING
        self._logger = logger
        self._feature_names = tuple(str(n) for n in feature_names) if feature_names else None
        self._key = config.sample_key
        self._records = TokenBucket(config.max_records_per_second, clock=clock)
        self._bytes = TokenBucket(
            config.max_bytes_per_second,
            capacity=max(config.max_bytes_per_second, config.max_bytes),
            clock=clock,
        )
        self._process = process_budget()
        self._process.at_least(config)
        self._redactor = Redactor(
            patterns=config.patterns,
            allow_fields=config.allow_fields,
            deny_fields=config.deny_fields,
            hash_fields=config.hash_fields,
            hmac_key=config._hmac_key,
        )
        self._caps = Caps(
            max_rows=config.max_rows,
            max_items=config.max_items,
            max_depth=config.max_depth,
            # a copy stops here, where the converter would stop at max_bytes (a float is
            # 24 bytes of its estimate, the smallest values a few)
            max_elements=max(1024, config.max_bytes // 16),
        )
        self._worker = payload_worker()
        self._guard = guard("payload")
        self.decide = self._decider(rate)
        self.end = self._ender()

    def reset(self) -> None:
        """Refill this model's budget (a new test capture, a forked child)."""
        self._records.refill()
        self._bytes.refill()

    # --- per call (hot path) ---------------------------------------------------------
    def _decider(self, rate: float) -> Callable[[Ended], str | None]:
        limit = threshold(rate)
        hex_lim = hex_limit(limit)
        key_hash = self._key_hash if self._key is not None else None
        keep_errors = self.config.always_keep_errors
        keep_checks = self.config.always_keep_checks
        by_rate, by_error, by_check = (
            tn.PAYLOAD_REASON_RATE,
            tn.PAYLOAD_REASON_ERROR,
            tn.PAYLOAD_REASON_CHECK,
        )

        def decide(prediction: Ended) -> str | None:
            """Why this prediction's payload is kept (before the budgets), or None."""
            if key_hash is None:
                pid = prediction.prediction_id
                # modelotel's ids: 16 lowercase hex digits, compared as text (hex_limit)
                if pid < hex_lim if len(pid) == 16 else id_hash(pid) < limit:
                    return by_rate
            elif key_hash(prediction.inputs) < limit:
                return by_rate
            err = prediction.error
            if err is not None and isinstance(err, Exception):  # not a cancelled call
                return by_error if keep_errors else None
            if keep_checks and prediction.checks_fired:
                return by_check
            return None

        return decide

    def _ender(self) -> Callable[[Ended], None]:
        decide = self.decide
        emit = self.emit

        def end(prediction: Ended) -> None:
            reason = decide(prediction)
            if reason is not None:
                emit(prediction, reason)

        end.__qualname__ = end.__name__ = "payload"  # the component if it ever raises
        return end

    def _key_hash(self, inputs: Any) -> int:
        key = self._key
        try:
            value = key(inputs) if callable(key) else _field(inputs, str(key))
            return key_hash(value)
        except Exception:  # noqa: BLE001 - the user's key function or input: fall back
            count_skipped(tn.REASON_PAYLOAD_SAMPLE_KEY)
            return _TWO_64  # no key: not kept by the rate (errors and checks still are)

    # --- kept calls --------------------------------------------------------------------
    def emit(self, call: Ended, reason: str) -> bool:
        """Queue the record of a kept call for the worker; ``False`` if it was dropped.

        On the calling thread: the record budgets, a copy of the values
        (:meth:`prepare`) and the queueing. The worker converts, redacts, serializes,
        takes the byte budgets and emits (:meth:`deliver`); with its queue full, the
        calling thread does that itself.
        """
        if not self._records.take():
            count_dropped(tn.REASON_PAYLOAD_BUDGET)
            return False
        if not self._process.records.take():  # all models together
            count_dropped(tn.REASON_PAYLOAD_BUDGET_PROCESS)
            return False
        pending = self.prepare(call, reason)
        if pending is None:
            return False
        if not self._worker.submit(functools.partial(self.deliver, pending)):
            # the worker is behind (a burst the budgets let through): this record is built
            # here rather than lost; the calling threads pay for it only while the queue
            # stays full
            self.deliver(pending)
        call.set_attribute(tn.ML_PAYLOAD_SAMPLED, True)
        return True

    def prepare(self, call: Ended, reason: str) -> Pending | None:
        """What the worker needs, taken now: nothing in it changes when the user's do."""
        missing = self.missing
        raw_in, raw_out = call.inputs, call.outputs
        has_in, has_out = raw_in is not missing, raw_out is not missing
        caps = self._caps
        out_v = snapshot(raw_out, caps) if has_out else None
        in_v = snapshot(raw_in, caps) if has_in else None
        conv = None
        rows = None
        # A side without a copy is converted now. Outputs are converted first (usually
        # small, and what a reader looks for first): the byte cap is shared in that order.
        out_done = out_v is NOT_COPIED or in_v is NOT_COPIED
        in_done = in_v is NOT_COPIED
        if out_done:
            conv = self._converter()
            try:
                if has_out:
                    out_v = conv.convert(raw_out)
                if in_done:
                    in_v = conv.convert(raw_in)
                    rows = input_rows(raw_in)
            except Exception:  # noqa: BLE001 - user objects' methods (len, items, iloc) may raise
                count_dropped(tn.REASON_PAYLOAD_SERIALIZE_ERROR)
                return None
        err = call.error
        checks = call.checks_fired
        return Pending(
            reason,
            str(call.prediction_id),
            type(err).__qualname__ if err is not None else None,
            [str(c) for c in checks] if checks else None,
            call.span,
            self._logger(),
            time.time_ns(),
            conv,
            (in_v, in_done) if has_in else None,
            (out_v, out_done) if has_out else None,
            rows,
        )

    def _converter(self) -> Converter:
        cfg = self.config
        return Converter(
            max_rows=cfg.max_rows,
            max_items=cfg.max_items,
            max_string_length=cfg.max_string_length,
            max_depth=cfg.max_depth,
            max_bytes=cfg.max_bytes,
        )

    def deliver(self, pending: Pending) -> None:
        """Build the record of ``pending``, take the byte budgets, emit it (worker thread)."""
        with self._guard:
            attrs = self.complete(pending)
            if attrs is None:
                return
            size = float(attrs[tn.ML_PAYLOAD_BYTES])
            if not self._bytes.take(size):
                count_dropped(tn.REASON_PAYLOAD_BUDGET_BYTES)
                return
            if not self._process.bytes.take(size):
                count_dropped(tn.REASON_PAYLOAD_BUDGET_PROCESS_BYTES)
                return
            span = pending.span
            # the call's time, not the worker's; an ended span's context still links it
            pending.logger.emit(
                timestamp=pending.time_ns,
                observed_timestamp=pending.time_ns,
                event_name=tn.EVENT_PREDICTION_PAYLOAD,
                severity_number=SeverityNumber.INFO,
                attributes=attrs,
                context=set_span_in_context(span) if span is not None else None,
            )

    def build(self, call: Ended, reason: str) -> dict[str, Any] | None:
        """The record's attributes for ``call``, built now (tests, benchmarks)."""
        pending = self.prepare(call, reason)
        return None if pending is None else self.complete(pending)

    def complete(self, p: Pending) -> dict[str, Any] | None:
        """The record's attributes, capped and redacted; ``None`` if the record is dropped."""
        cfg = self.config
        conv = p.conv if p.conv is not None else self._converter()
        has_in, has_out = p.inputs is not None, p.outputs is not None
        rows = p.rows
        try:
            plain_out = plain_in = None
            if p.outputs is not None:
                value, done = p.outputs
                plain_out = value if done else conv.convert(value)
            if p.inputs is not None:
                value, done = p.inputs
                if not done:
                    rows = rows_of(value)
                plain_in = value if done else conv.convert(value)
        except Exception:  # noqa: BLE001 - the copies are plain; kept like the calling side
            count_dropped(tn.REASON_PAYLOAD_SERIALIZE_ERROR)
            return None
        plain_in = _columns(plain_in, self._feature_names)
        plain_out = _columns(plain_out, None)
        if cfg.redact is not None:
            try:
                result: object = cfg.redact({"inputs": plain_in, "outputs": plain_out})
            except Exception:  # noqa: BLE001 - the user's hook: drop, never send unredacted
                count_dropped(tn.REASON_PAYLOAD_REDACT_HOOK_ERROR)
                return None
            if result is None:
                count_dropped(tn.REASON_PAYLOAD_REDACT_HOOK_DROPPED)
                return None
            if not isinstance(result, dict):
                count_dropped(tn.REASON_PAYLOAD_REDACT_HOOK_ERROR)
                return None
            # What the hook returns is user data again: cap and clean it once more.
            again = Converter(
                max_rows=max(cfg.max_rows, cfg.max_items),
                max_items=cfg.max_items,
                max_string_length=cfg.max_string_length,
                max_depth=cfg.max_depth,
                max_bytes=cfg.max_bytes,
            )
            plain_in = again.convert(result.get("inputs"))
            plain_out = again.convert(result.get("outputs"))
            conv.reasons |= again.reasons
        red = self._redactor.session()
        named_in = isinstance(plain_in, dict)
        named_out = isinstance(plain_out, dict)
        if has_in:
            plain_in = red.side(plain_in, named=named_in, is_input=True)
        if has_out:
            plain_out = red.side(plain_out, named=named_out, is_input=False)

        attrs: dict[str, Any] = {
            tn.ML_MODEL_NAME: self.model,
            tn.ML_MODEL_VERSION: self.version,
            tn.ML_PREDICTION_ID: p.prediction_id,
            tn.ML_PAYLOAD_SAMPLE_REASON: p.reason,
        }
        sized: list[tuple[int, str]] = []
        # At most MAX_FIELD_ATTRIBUTES field attributes per record (the SDK keeps 128
        # attributes per log record by default); outputs keep a share of them.
        n_out = len(plain_out) if isinstance(plain_out, dict) else 0
        in_quota = MAX_FIELD_ATTRIBUTES - min(n_out, MAX_FIELD_ATTRIBUTES // 5)
        if (
            has_in
            and plain_in is not None
            and self._put(
                attrs,
                sized,
                plain_in,
                tn.ML_PAYLOAD_INPUT_PREFIX,
                tn.ML_PAYLOAD_INPUTS,
                in_quota,
            )
        ):
            conv.reasons.add(tn.REASON_PAYLOAD_ITEMS)
        if has_out and plain_out is not None:
            used = len(sized)
            if self._put(
                attrs,
                sized,
                plain_out,
                tn.ML_PAYLOAD_OUTPUT_PREFIX,
                tn.ML_PAYLOAD_OUTPUTS,
                MAX_FIELD_ATTRIBUTES - used,
            ):
                conv.reasons.add(tn.REASON_PAYLOAD_ITEMS)
        total = sum(n for n, _ in sized)
        if total > cfg.max_bytes:
            # The walk's estimate was low (escapes, wide characters): drop the largest fields.
            for n, key in sorted(sized, reverse=True):
                if total <= cfg.max_bytes:
                    break
                del attrs[key]
                total -= n
            conv.reasons.add(tn.REASON_PAYLOAD_BYTES)
        if rows is not None:
            attrs[tn.ML_PAYLOAD_ORIGINAL_ROWS] = rows
        if conv.truncated:
            attrs[tn.ML_PAYLOAD_TRUNCATED] = True
            attrs[tn.ML_PAYLOAD_ORIGINAL_BYTES] = int(total + conv.cut_bytes)
            for r in conv.reasons:
                count_skipped(r)
        if red.changed:
            attrs[tn.ML_PAYLOAD_REDACTED] = True
        if p.error_type is not None:
            attrs[tn.ERROR_TYPE] = p.error_type
        if p.checks:
            attrs[tn.ML_CHECKS_FIRED] = p.checks
        attrs[tn.ML_PAYLOAD_BYTES] = total
        return attrs

    def _put(
        self,
        attrs: dict[str, Any],
        sized: list[tuple[int, str]],
        value: Any,
        prefix: str,
        whole: str,
        quota: int,
    ) -> bool:
        """Add one side's attributes; ``True`` if fields beyond ``quota`` were left out."""
        if isinstance(value, dict):
            for i, (name, v) in enumerate(value.items()):
                if i >= quota:
                    return True
                key = prefix + _attr_key(name, i)
                while key in attrs:
                    key += "_"
                text = _dumps(v)
                attrs[key] = text
                sized.append((len(text.encode("utf-8")), key))
            return False
        text = _dumps(value)
        attrs[whole] = text
        sized.append((len(text.encode("utf-8")), whole))
        return False


def _attr_key(name: str, index: int) -> str:
    if "[REDACTED" in name:
        return f"redacted_{index}"
    return clean_text(name)[:_MAX_KEY]


def _field(inputs: Any, name: str) -> object:
    """The value of field ``name`` in ``inputs`` (first row for a batch), for ``sample_key``."""
    if isinstance(inputs, dict):
        value = inputs.get(name)
    elif isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], dict):
        return inputs[0].get(name)
    elif hasattr(inputs, "columns") and hasattr(inputs, "iloc"):
        col = inputs[name]
        return col.iloc[0] if len(col) else None
    else:
        return None
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    if isinstance(value, np.ndarray) and value.ndim:
        return value[0] if len(value) else None
    return value


def payload_part(
    config: Any, logger: Callable[[], Logger]
) -> PayloadPart | None:
    """The payload part of a resolved ``ModelConfig``, or None when payloads are off for it.

    ``config.payload`` is the resolved :class:`PayloadConfig` (None = payloads off) and
    ``config.payload_sample_rate`` the resolved rate; ``logger`` returns the logger of the
    providers modelotel uses now.
    """
    payload = config.payload
    if not isinstance(payload, PayloadConfig):
        return None
    names = config.feature_names
    return PayloadPart(
        model=str(config.model),
        version=str(config.version),
        rate=float(config.payload_sample_rate or 0.0),
        config=payload,
        logger=logger,
        feature_names=tuple(names) if names else None,
    )
