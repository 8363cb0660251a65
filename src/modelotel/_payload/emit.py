"""The payload finish hook: decide, cap, redact and emit one ``ml.prediction.payload`` record.

Example (what ``ModelMonitor.build_hooks`` does)::

    hook = make_payload_hook(monitor.config)      # None when payloads and outcomes are off
    if hook is not None:
        monitor.finish_hooks.append(hook)

Per call, a call that is not kept costs one integer parse and compare (plus one cache
insert when the outcome cache is on). Everything else runs only for kept calls, inside the
guard that ``Call.finish`` puts around every hook.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from opentelemetry._logs import Logger, SeverityNumber
from opentelemetry.trace import set_span_in_context

from modelotel import attributes as tn
from modelotel._payload.config import PayloadConfig
from modelotel._payload.redact import Redactor
from modelotel._payload.rules import register as register_rules
from modelotel._payload.sampling import TokenBucket, hex_limit, id_hash, key_hash, threshold
from modelotel._payload.serialize import Converter, clean_text, input_rows
from modelotel._safety import count_dropped, count_skipped, health
from modelotel.environment_variables import (
    MODELOTEL_PAYLOAD_PROCESS_BYTES_PER_SECOND,
    MODELOTEL_PAYLOAD_PROCESS_RECORDS_PER_SECOND,
)

_MAX_KEY = 64
_TWO_64 = 1 << 64
#: Most ``ml.payload.input.<field>`` + ``ml.payload.output.<field>`` attributes per record.
MAX_FIELD_ATTRIBUTES = 100



class ProcessBudget:
    """The payload budget of the whole process: every model's records draw on it too."""

    __slots__ = ("bytes", "records")

    def __init__(self, records_per_second: float, bytes_per_second: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.records = TokenBucket(records_per_second, clock=clock)
        self.bytes = TokenBucket(bytes_per_second, clock=clock)


_process_budget: ProcessBudget | None = None
_process_lock = threading.Lock()


def _env_budget(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(raw)
        return value
    except ValueError:
        health.warn_once("env:" + name, "modelotel: %s=%r is not a positive number; using %s",
                         name, raw, default)
        return default


def _at_least(bucket: TokenBucket, rate: float, capacity: float) -> None:
    with bucket._lock:
        if rate > bucket.rate:
            bucket.rate = rate
        if capacity > bucket.capacity:
            bucket.capacity = capacity


def process_budget(cfg: PayloadConfig | None = None) -> ProcessBudget:
    """The process-wide budget, built on first use from the environment.

    A model configured with a larger budget of its own (``cfg``) raises the process budget
    to it: an explicit setting is not silently capped by a default, while many models at
    their defaults still share the process's. The byte bucket always holds one record of
    ``cfg.max_bytes``.
    """
    global _process_budget
    with _process_lock:
        budget = _process_budget
        if budget is None:
            budget = _process_budget = ProcessBudget(
                _env_budget(MODELOTEL_PAYLOAD_PROCESS_RECORDS_PER_SECOND, 100.0),
                _env_budget(MODELOTEL_PAYLOAD_PROCESS_BYTES_PER_SECOND, 2_097_152.0),
            )
        if cfg is not None:
            rps, bps = cfg.max_records_per_second, cfg.max_bytes_per_second
            _at_least(budget.records, rps, max(1.0, rps))
            _at_least(budget.bytes, bps, max(bps, float(cfg.max_bytes)))
        return budget


class _LocalMissing:
    def __repr__(self) -> str:
        return "MISSING"


def _missing_sentinel() -> object:
    try:
        from modelotel._call import MISSING
    except ImportError:
        return _LocalMissing()
    return MISSING


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


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


class PayloadHook:
    """Finish hook of one model version: outcome cache fill, sampling decision, emission."""

    __slots__ = (
        "_bytes",
        "_cache_put",
        "_cfg",
        "_fast",
        "_feature_names",
        "_hex_limit",
        "_keep_checks",
        "_keep_errors",
        "_key",
        "_limit",
        "_logger",
        "_process",
        "_records",
        "_redactor",
        "cache",
        "config",
        "enabled",
        "missing",
        "model",
        "version",
    )

    def __init__(
        self,
        *,
        model: str,
        version: str,
        rate: float,
        config: PayloadConfig | None,
        feature_names: tuple[str, ...] | None = None,
        outcome_cache: Any = None,
        logger: Callable[[Any], Logger] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.version = version
        self.config = config
        self.enabled = config is not None
        self.cache = outcome_cache
        self._cache_put = outcome_cache.put if outcome_cache is not None else None
        self.missing = _missing_sentinel()
        self._limit = threshold(rate)
        self._hex_limit = hex_limit(self._limit)
        self._logger = logger
        cfg = config or PayloadConfig()
        self._key = cfg.sample_key
        self._fast = self.enabled and self._key is None
        self._keep_errors = self.enabled and cfg.always_keep_errors
        self._keep_checks = self.enabled and cfg.always_keep_checks
        self._feature_names = tuple(str(n) for n in feature_names) if feature_names else None
        self._records = TokenBucket(cfg.max_records_per_second, clock=clock)
        self._bytes = TokenBucket(
            cfg.max_bytes_per_second,
            capacity=max(cfg.max_bytes_per_second, cfg.max_bytes),
            clock=clock,
        )
        self._process = process_budget(cfg) if self.enabled else None
        self._redactor = Redactor(
            patterns=cfg.patterns,
            allow_fields=cfg.allow_fields,
            deny_fields=cfg.deny_fields,
            hash_fields=cfg.hash_fields,
            hmac_key=cfg._hmac_key,
        )
        self._cfg = cfg

    # --- per call (hot path) ---------------------------------------------------------
    def __call__(self, call: Any) -> None:
        # Measured in benchmarks/payload.py: every attribute load here shows up per call.
        if self._cache_put is not None:
            self._cache_put(call.prediction_id, call.outputs)
        if self._fast:
            pid = call.prediction_id
            if len(pid) == 16:  # modelotel's ids: 16 lowercase hex digits, compared as text
                if pid < self._hex_limit:
                    self.emit(call, tn.PAYLOAD_REASON_RATE)
                    return
            elif id_hash(pid) < self._limit:
                self.emit(call, tn.PAYLOAD_REASON_RATE)
                return
        elif not self.enabled:
            return
        elif self._key_hash(call.inputs) < self._limit:
            self.emit(call, tn.PAYLOAD_REASON_RATE)
            return
        err = call.error
        if err is not None and isinstance(err, Exception):  # not a cancelled / interrupted call
            if self._keep_errors:
                self.emit(call, tn.PAYLOAD_REASON_ERROR)
        elif call.checks_fired and self._keep_checks:
            self.emit(call, tn.PAYLOAD_REASON_CHECK)

    def function(self) -> Callable[[Any], None]:
        """The finish hook as a plain function specialised for this config.

        A plain function with its constants in closure cells is measurably cheaper per call
        than ``__call__`` on an instance. It carries ``.payload`` (this object) and is
        named ``payload`` (the component name if it ever raises into ``Call.finish``).
        """
        put = self._cache_put
        if put is not None and not self.enabled:  # outcome cache only (payloads off)

            def hook(call: Any) -> None:
                put(call.prediction_id, call.outputs)

        elif put is not None or not self._fast:  # cache + payloads, or a sample_key
            method = self.__call__

            def hook(call: Any) -> None:
                method(call)

        else:
            hex_lim = self._hex_limit
            limit = self._limit
            emit = self.emit
            keep_errors = self._keep_errors
            keep_checks = self._keep_checks
            rate, error, check = (
                tn.PAYLOAD_REASON_RATE,
                tn.PAYLOAD_REASON_ERROR,
                tn.PAYLOAD_REASON_CHECK,
            )

            def hook(call: Any) -> None:
                pid = call.prediction_id
                if len(pid) == 16:  # modelotel's ids: 16 lowercase hex digits, compared as text
                    if pid < hex_lim:
                        emit(call, rate)
                        return
                elif id_hash(pid) < limit:
                    emit(call, rate)
                    return
                err = call.error
                if err is not None and isinstance(err, Exception):  # not a cancelled call
                    if keep_errors:
                        emit(call, error)
                elif keep_checks and call.checks_fired:
                    emit(call, check)

        hook.__qualname__ = hook.__name__ = "payload"
        hook.payload = self  # type: ignore[attr-defined]
        return hook

    def decide(self, call: Any) -> str | None:
        """The reason ``call`` would be kept (before the budget), or ``None`` (for tests)."""
        if not self.enabled:
            return None
        pid = call.prediction_id
        h = self._key_hash(call.inputs) if self._key is not None else id_hash(pid)
        if h < self._limit:
            return tn.PAYLOAD_REASON_RATE
        if isinstance(call.error, Exception) and self._keep_errors:
            return tn.PAYLOAD_REASON_ERROR
        if call.checks_fired and self._keep_checks:
            return tn.PAYLOAD_REASON_CHECK
        return None

    def _key_hash(self, inputs: Any) -> int:
        key = self._key
        try:
            value = key(inputs) if callable(key) else _field(inputs, str(key))
            return key_hash(value)
        except Exception:  # noqa: BLE001 - the user's key function or input: fall back
            count_skipped(tn.REASON_PAYLOAD_SAMPLE_KEY)
            return _TWO_64  # no key: not kept by the rate (errors and checks still are)

    # --- kept calls --------------------------------------------------------------------
    def emit(self, call: Any, reason: str) -> bool:
        """Build and emit the record for a kept call; ``False`` if it was dropped."""
        if not self._records.take():
            count_dropped(tn.REASON_PAYLOAD_BUDGET)
            return False
        process = self._process
        if process is not None and not process.records.take():  # all models together
            count_dropped(tn.REASON_PAYLOAD_BUDGET_PROCESS)
            return False
        attrs = self.build(call, reason)
        if attrs is None:
            return False
        size = float(attrs[tn.ML_PAYLOAD_BYTES])
        if not self._bytes.take(size):
            count_dropped(tn.REASON_PAYLOAD_BUDGET_BYTES)
            return False
        if process is not None and not process.bytes.take(size):
            count_dropped(tn.REASON_PAYLOAD_BUDGET_PROCESS_BYTES)
            return False
        logger = self._logger(call) if self._logger is not None else call.monitor.logger
        span = getattr(call, "span", None)
        logger.emit(
            event_name=tn.EVENT_PREDICTION_PAYLOAD,
            severity_number=SeverityNumber.INFO,
            attributes=attrs,
            context=set_span_in_context(span) if span is not None else None,
        )
        setter = getattr(call, "set_attribute", None)
        if setter is not None:
            setter(tn.ML_PAYLOAD_SAMPLED, True)
        return True

    def build(self, call: Any, reason: str) -> dict[str, Any] | None:
        """The record's attributes, capped and redacted; ``None`` if the record is dropped."""
        cfg = self._cfg
        conv = Converter(
            max_rows=cfg.max_rows,
            max_items=cfg.max_items,
            max_string_length=cfg.max_string_length,
            max_depth=cfg.max_depth,
            max_bytes=cfg.max_bytes,
        )
        missing = self.missing
        raw_in, raw_out = call.inputs, call.outputs
        has_in, has_out = raw_in is not missing, raw_out is not missing
        # Outputs first: they are usually small and are what a reader looks for first.
        try:
            plain_out = conv.convert(raw_out) if has_out else None
            plain_in = conv.convert(raw_in) if has_in else None
        except Exception:  # noqa: BLE001 - user objects' methods (len, items, iloc) may raise
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
            tn.ML_PREDICTION_ID: str(call.prediction_id),
            tn.ML_PAYLOAD_SAMPLE_REASON: reason,
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
        if has_in:
            rows = input_rows(raw_in)
            if rows is not None:
                attrs[tn.ML_PAYLOAD_ORIGINAL_ROWS] = rows
        if conv.truncated:
            attrs[tn.ML_PAYLOAD_TRUNCATED] = True
            attrs[tn.ML_PAYLOAD_ORIGINAL_BYTES] = int(total + conv.cut_bytes)
            for r in conv.reasons:
                count_skipped(r)
        if red.changed:
            attrs[tn.ML_PAYLOAD_REDACTED] = True
        if call.error is not None:
            attrs[tn.ERROR_TYPE] = type(call.error).__qualname__
        if call.checks_fired:
            attrs[tn.ML_CHECKS_FIRED] = [str(c) for c in call.checks_fired]
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


def make_payload_hook(config: Any, *, outcome_cache: Any = None) -> Callable[[Any], None] | None:
    """The finish hook for a resolved ``ModelConfig`` (``None`` when there is nothing to do).

    ``config.payload`` is the resolved :class:`PayloadConfig` (``None`` = payloads off) and
    ``config.payload_sample_rate`` the resolved rate. The hook is a plain function; its
    :class:`PayloadHook` is ``hook.payload``.
    """
    payload = getattr(config, "payload", None)
    if payload is not None and not isinstance(payload, PayloadConfig):
        payload = None
    # outcomes of this model version pass the same rules (the built-in ones when payloads are off)
    register_rules(str(config.model), str(config.version), payload)
    if payload is None and outcome_cache is None:
        return None
    names = getattr(config, "feature_names", None)
    hook = PayloadHook(
        model=str(config.model),
        version=str(config.version),
        rate=float(getattr(config, "payload_sample_rate", 0.0) or 0.0),
        config=payload,
        feature_names=tuple(names) if names else None,
        outcome_cache=outcome_cache,
    )
    return hook.function()
