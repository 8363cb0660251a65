"""In-process redaction of plain payload data: fields, keyed hashing, patterns.

Example:
    >>> from modelotel._payload.redact import Redactor
    >>> r = Redactor(patterns=("email", "card"))
    >>> r.text("mail bob@example.com, card 4111 1111 1111 1111")
    'mail [REDACTED:email], card [REDACTED:card]'
    >>> r.text("order 4111 1111 1111 1112")   # fails the Luhn check: not a card
    'order 4111 1111 1111 1112'

Works on the plain data made by :mod:`modelotel._payload.serialize` (dicts with str keys,
lists, str, int, float, bool, None): never on user objects. Every function returns new
containers; nothing is mutated in place.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import ipaddress
import json
import re
import traceback
from collections.abc import Callable, Collection, Sequence
from typing import Any

from modelotel._payload.serialize import clean_text

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# Candidates: 13-19 digits with optional single spaces/dashes between them; Luhn decides.
_CARD = re.compile(r"(?<![\w\-+])\d(?:[ \-]?\d){12,40}(?![\w])")
_SSN = re.compile(r"(?<![\w\-])(?!000|666|9\d\d)\d{3}([ \-])(?!00)\d{2}\1(?!0000)\d{4}(?![\w\-])")
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)"
)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})(?![\w:])"
)
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){1,5}(?![\w])")
_PHONE_NANP = re.compile(r"(?<![\w])(?:\(\d{3}\)[ .\-]?|\d{3}[ .\-])\d{3}[ .\-]\d{4}(?![\w])")
_DIGIT = re.compile(r"\d")


def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a digit string."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Card lengths, most common first: a 16-digit card followed by other digits is found as 16.
_CARD_LENGTHS = (16, 15, 19, 18, 17, 14, 13)


def _card_sub(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        run = m.group(0)
        groups = re.split(r"[ \-]", run)
        if len(groups) == 1:
            return "[REDACTED:card]" if 13 <= len(run) <= 19 and luhn_ok(run) else run
        # Separated groups: find card-sized windows of whole groups that pass Luhn.
        seps = [*re.findall(r"[ \-]", run), ""]
        out = list(groups)
        changed = False
        i = 0
        while i < len(groups):
            ends: dict[int, int] = {}
            total = 0
            # Printed cards are grouped 4-4-4-4(-3), 4-6-5 or 4-6-4, with one kind of separator.
            if len(groups[i]) == 4:
                for j in range(i, len(groups)):
                    if not 1 <= len(groups[j]) <= 6 or (j > i and seps[j - 1] != seps[i]):
                        break
                    total += len(groups[j])
                    if total > 19:
                        break
                    ends.setdefault(total, j + 1)
            hit = next(
                (
                    ends[n]
                    for n in _CARD_LENGTHS
                    if n in ends and luhn_ok("".join(groups[i : ends[n]]))
                ),
                None,
            )
            if hit is None:
                i += 1
                continue
            out[i] = "[REDACTED:card]"
            for k in range(i + 1, hit):
                out[k] = ""
            changed = True
            i = hit
        if not changed:
            return run
        pieces = [out[0]]
        for sep, piece in zip(seps, out[1:], strict=False):
            if piece:
                pieces.append(sep + piece)
        return "".join(pieces)

    return _CARD.sub(repl, text)


def _ipv6_sub(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        cand = m.group(0)
        try:
            ipaddress.IPv6Address(cand)
        except ValueError:
            return cand
        return "[REDACTED:ip]"

    return _IPV6.sub(repl, text)


def _simple(pattern: re.Pattern[str], name: str) -> Callable[[str], str]:
    placeholder = f"[REDACTED:{name}]"

    def sub(text: str) -> str:
        return pattern.sub(placeholder, text)

    return sub


def _phone_sub(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        # "+" and 8-15 digits (E.164 allows up to 15); shorter runs are not phone numbers.
        n = len(_DIGIT.findall(m.group(0)))
        return "[REDACTED:phone]" if 8 <= n <= 15 else m.group(0)

    return _PHONE_NANP.sub("[REDACTED:phone]", _PHONE_INTL.sub(repl, text))


def _ip_sub(text: str) -> str:
    return _ipv6_sub(_IPV4.sub("[REDACTED:ip]", text))


# Order matters: cards before phones (a card's groups look like a phone number).
_BUILTINS: dict[str, Callable[[str], str]] = {
    "email": _simple(_EMAIL, "email"),
    "card": _card_sub,
    "ssn": _simple(_SSN, "ssn"),
    "ip": _ip_sub,
    "phone": _phone_sub,
}


#: Values no rule changes (ints can be card numbers when the card pattern is on).
_FLOATS = frozenset((float, bool, type(None)))
_NUMBERS = _FLOATS | {int}

#: Field names whose redacted form a :class:`Redactor` keeps, and their longest length.
_NAMES_KEPT = 1024
_NAME_CHARS = 128


class Redactor:
    """Field rules, keyed hashing and patterns, compiled once per :class:`PayloadConfig`."""

    def __init__(
        self,
        *,
        patterns: Sequence[str | re.Pattern[str]] = (),
        allow_fields: Collection[str] | None = None,
        deny_fields: Collection[str] = (),
        hash_fields: Collection[str] = (),
        hmac_key: bytes = b"",
    ) -> None:
        names = [p for p in patterns if isinstance(p, str)]
        self._subs: list[Callable[[str], str]] = [_BUILTINS[n] for n in _BUILTINS if n in names]
        self._subs += [_simple(p, "custom") for p in patterns if isinstance(p, re.Pattern)]
        self._card_ints = "card" in names
        self.allow = None if allow_fields is None else frozenset(f.lower() for f in allow_fields)
        self.deny = frozenset(f.lower() for f in deny_fields)
        self.hash = frozenset(f.lower() for f in hash_fields)
        self._key = hmac_key
        self.changed = False
        # field name -> the name after the patterns, shared by the sessions of this config
        self._names: dict[str, str] = {}

    def session(self) -> Redactor:
        """A copy for one record (``changed`` is per record; the compiled rules are shared)."""
        clone = copy.copy(self)
        clone.changed = False
        return clone

    # --- patterns ------------------------------------------------------------------
    def text(self, s: str) -> str:
        """``s`` with every pattern match replaced."""
        out = s
        for sub in self._subs:
            out = sub(out)
        return out

    def _scalar(self, v: Any) -> Any:
        if isinstance(v, str):
            new = self.text(v)
            if new != v:
                self.changed = True
            return new
        if (
            self._card_ints
            and type(v) is int
            and 10**12 <= abs(v) < 10**19
            and luhn_ok(str(abs(v)))
        ):
            self.changed = True
            return "[REDACTED:card]"
        return v

    def _name(self, k: Any) -> Any:
        """A field name through the patterns. Names repeat on every call (they are the
        schema), so the result is kept: at most :data:`_NAMES_KEPT` names of at most
        :data:`_NAME_CHARS` characters, in this process only (a model whose field names are
        data, all different, fills the table once and then runs the patterns each time)."""
        if type(k) is not str:
            return self._scalar(k)
        new = self._names.get(k)
        if new is None:
            new = self.text(k)
            if len(self._names) < _NAMES_KEPT and len(k) <= _NAME_CHARS:
                self._names[k] = new
        if new != k:
            self.changed = True
        return new

    def _hashed(self, v: Any) -> Any:
        if isinstance(v, list):
            return [self._hashed(x) for x in v]
        if v is None:
            return None
        data = v if isinstance(v, str) else json.dumps(v, sort_keys=True, ensure_ascii=False)
        digest = hmac.new(self._key, data.encode("utf-8", "replace"), hashlib.sha256).hexdigest()
        return "hmac-sha256:" + digest

    def walk(self, v: Any) -> Any:
        """Deny, hash and pattern rules applied at every depth (returns a new value)."""
        if isinstance(v, dict):
            out: dict[str, Any] = {}
            for k, x in v.items():
                low = k.lower()
                if low in self.deny:
                    self.changed = True
                    continue
                if low in self.hash:
                    self.changed = True
                    x = self._hashed(x)
                name = self._name(k)
                while name in out:
                    name += "_"
                out[name] = self.walk(x)
            return out
        if isinstance(v, list):
            if set(map(type, v)) <= (_FLOATS if self._card_ints else _NUMBERS):
                return v.copy()  # a row of numbers (an array's): no rule applies to any
            return [self.walk(x) for x in v]
        return self._scalar(v)

    def side(self, value: Any, *, named: bool, is_input: bool) -> Any:
        """Redact one side (inputs or outputs). ``None`` means "drop this side entirely"."""
        if self.allow is not None:
            if named and isinstance(value, dict):
                kept = {k: x for k, x in value.items() if k.lower() in self.allow}
                if len(kept) != len(value):
                    self.changed = True
                value = kept
            elif is_input:
                self.changed = True
                return None
        return self.walk(value)


#: Longest exception message / stack trace kept (characters, after redaction).
MAX_EXCEPTION_TEXT = 1024
# Redaction runs on a window this many times the cap (a 50 MB message costs no more than a
# small one); cutting before redacting could split a card number and leave half of it.
_EXCEPTION_WINDOW = 4


def exception_text(config: Any, error: BaseException) -> tuple[str, str] | None:
    """The message and stack trace of ``error`` as they may leave the process, or ``None``.

    ``config`` is the model's :class:`~modelotel.PayloadConfig` (payload capture on). The
    text goes through the same pattern rules as the payload values, then is capped at
    :data:`MAX_EXCEPTION_TEXT` characters (the message's start, the stack trace's end).
    Free text has no field names, so field rules cannot be applied to it: a model with
    ``allow_fields``, ``deny_fields``, ``hash_fields`` or its own ``redact`` hook gets
    ``None`` (the exception type only), as does any failure here (fail closed: a message
    whose ``__str__`` raises, a pattern that fails).
    """
    try:
        if (
            config.allow_fields is not None
            or config.deny_fields
            or config.hash_fields
            or config.redact is not None
        ):
            return None
        window = MAX_EXCEPTION_TEXT * _EXCEPTION_WINDOW
        message = str(error)[:window]
        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        stack = stack[-window:]
        redactor = Redactor(patterns=config.patterns)
        message = clean_text(redactor.text(message))[:MAX_EXCEPTION_TEXT]
        stack = clean_text(redactor.text(stack))[-MAX_EXCEPTION_TEXT:]
        return message, stack
    except Exception:  # noqa: BLE001 - the user's __str__, or our patterns: send the type only
        return None
