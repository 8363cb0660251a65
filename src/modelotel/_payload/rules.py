"""Each model version's redaction rules, for values that leave outside a payload record.

Example:
    >>> from modelotel._payload.rules import rules_of
    >>> rules = rules_of(None)                 # payloads off: the built-in patterns
    >>> rules.value("mail bob@example.com")
    ('mail [REDACTED:email]', True)
    >>> rules.label(4111111111111111)
    '[REDACTED:card]'

Outcomes (``modelotel.record_outcome``) carry labels and predicted values: in the
``ml.prediction.outcome`` log record and, for classification, as the ``ml.outcome.class``
metric attribute. They pass the same rules as the model's payload outputs: the caps, the
user's ``redact`` hook (given ``{"inputs": None, "outputs": value}``), the field rules and
the patterns. A model without payload capture has the built-in patterns. Each model's
monitor keeps its rules (``outcome_rules``); an outcome for a model this process never
built gets the built-in patterns.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from modelotel._payload.config import PayloadConfig
from modelotel._payload.redact import Redactor
from modelotel._payload.serialize import Converter, clean_text

#: What :meth:`Rules.value` returns for a value that may not leave the process.
WITHHELD: Any = object()
#: Longest label text on a metric attribute.
MAX_LABEL = 256
#: Distinct labels whose redacted text is remembered per model version (metrics reuse them).
_LABEL_MEMO = 1024


class Rules:
    """The compiled rules of one model version (one :class:`PayloadConfig`)."""

    def __init__(self, config: PayloadConfig) -> None:
        self.config = config
        self._redactor = Redactor(
            patterns=config.patterns,
            allow_fields=config.allow_fields,
            deny_fields=config.deny_fields,
            hash_fields=config.hash_fields,
            hmac_key=config._hmac_key,
        )
        self._labels: dict[tuple[type, Any], str] = {}
        self._lock = threading.Lock()

    def _converter(self) -> Converter:
        cfg = self.config
        return Converter(
            max_rows=max(cfg.max_rows, cfg.max_items),
            max_items=cfg.max_items,
            max_string_length=cfg.max_string_length,
            max_depth=cfg.max_depth,
            max_bytes=cfg.max_bytes,
        )

    def value(self, value: Any) -> tuple[Any, bool]:
        """``(plain redacted value, changed)``; ``(WITHHELD, True)`` when it may not leave.

        Fail closed: the value is withheld when it cannot be converted, when the user's hook
        raises, drops the record or returns something else than a dict.
        """
        try:
            conv = self._converter()
            plain = conv.convert(value)
            hook = self.config.redact
            if hook is not None:
                result: object = hook({"inputs": None, "outputs": plain})
                if not isinstance(result, dict):
                    return WITHHELD, True
                again = self._converter()
                plain = again.convert(result.get("outputs"))
                conv.reasons |= again.reasons
            red = self._redactor.session()
            plain = red.side(plain, named=isinstance(plain, dict), is_input=False)
            return plain, red.changed or conv.truncated
        except Exception:  # noqa: BLE001 - the user's hook or object: never send it unredacted
            return WITHHELD, True

    def label(self, value: Any) -> str:
        """The text of one class label on a metric attribute (redacted, capped)."""
        try:
            key = (type(value), value)
            hash(key)
        except TypeError:
            return self._label(value)
        text = self._labels.get(key)
        if text is None:
            text = self._label(value)
            with self._lock:
                if len(self._labels) < _LABEL_MEMO:
                    self._labels[key] = text
        return text

    def _label(self, value: Any) -> str:
        plain, _ = self.value(value)
        if plain is WITHHELD:
            return REDACTED_LABEL
        # str() of the plain value, as labels were always written: 1 -> "1", True -> "True"
        text = plain if isinstance(plain, str) else str(plain)
        return clean_text(text)[:MAX_LABEL]


#: The class label of a label that may not leave the process.
REDACTED_LABEL = "_REDACTED"

@functools.cache
def default_rules() -> Rules:
    """The built-in patterns with the default caps (models without payload capture)."""
    return Rules(PayloadConfig())


def rules_of(config: PayloadConfig | None) -> Rules:
    """The rules of a model's payload config (``None``: payloads off, the built-in ones)."""
    return Rules(config) if config is not None else default_rules()
