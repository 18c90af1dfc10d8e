"""Small validators for text that comes from people: forms, CLI options, API bodies.

Each returns the cleaned value or raises :class:`core.errors.ValidationError` naming
the field.
"""

from __future__ import annotations

import datetime as dt
import re

from core.errors import ValidationError
from core.money import Money, MoneyError
from core.money import currency as lookup_currency
from core.money import parse as parse_money

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{5,19}$")
INT64_MAX = 2**63 - 1  # the largest value a BIGINT column holds
_CODE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,59}$")
_ID = re.compile(r"[0-9]{1,18}")


def as_id(text) -> int | None:
    """A row id or document number written as 1 to 18 ASCII digits, else ``None``.

    ``str.isdigit`` also takes digits such as ``²`` that ``int`` refuses, and a longer
    number would not fit a BIGINT column.
    """
    text = str(text)
    return int(text) if _ID.fullmatch(text) else None


def text(value, field: str, *, required=True, max_length=200) -> str | None:
    """Stripped text, ``None`` for empty optional input."""
    value = "" if value is None else str(value).strip()
    if not value:
        if required:
            raise ValidationError(f"{field} is required", field)
        return None
    if len(value) > max_length:
        raise ValidationError(f"{field} is longer than {max_length} characters", field)
    if any(ord(c) < 32 and c not in "\t\n" for c in value):
        raise ValidationError(f"{field} contains control characters", field)
    return value


def email(value, field="email", required=False) -> str | None:
    """An e-mail address in its usual shape, lower-cased domain."""
    value = text(value, field, required=required, max_length=254)
    if value is None:
        return None
    if not _EMAIL.match(value):
        raise ValidationError(f"{field}: {value!r} is not an e-mail address", field)
    local, domain = value.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def phone(value, field="phone", required=False) -> str | None:
    """A phone number: digits, spaces and dashes, optional leading +."""
    value = text(value, field, required=required, max_length=40)
    if value is None:
        return None
    if not _PHONE.match(value):
        raise ValidationError(f"{field}: {value!r} is not a phone number", field)
    return value


def currency(value, field="currency") -> str:
    """An ISO 4217 code wispbill knows, upper-cased."""
    value = text(value, field, max_length=3)
    try:
        return lookup_currency(value).code
    except MoneyError as exc:
        raise ValidationError(f"{field}: {exc}", field) from None


def money(value, cur: str, field: str, *, allow_zero=True) -> Money:
    """An amount typed by a person (``1,234.50``) in currency ``cur``; never negative."""
    raw = text(value, field, max_length=40)
    try:
        amount = parse_money(raw, cur)
    except MoneyError as exc:
        raise ValidationError(f"{field}: {exc}", field) from None
    if abs(amount.minor) > INT64_MAX:
        raise ValidationError(f"{field}: {raw!r} is too large", field)
    if amount.minor < 0 or (not allow_zero and amount.minor == 0):
        raise ValidationError(f"{field} must be {'zero or ' if allow_zero else ''}more than zero", field)
    return amount


def integer(value, field: str, *, minimum=None, maximum=None, required=True) -> int | None:
    """A whole number within bounds."""
    if isinstance(value, bool):
        raise ValidationError(f"{field} must be a whole number", field)
    if isinstance(value, int):
        number = value
    else:
        raw = text(value, field, required=required, max_length=20)
        if raw is None:
            return None
        try:
            number = int(raw)
        except ValueError:
            raise ValidationError(f"{field} must be a whole number, got {raw!r}", field) from None
    if abs(number) > INT64_MAX:
        raise ValidationError(f"{field}: {number} is too large", field)
    if minimum is not None and number < minimum:
        raise ValidationError(f"{field} must be at least {minimum}", field)
    if maximum is not None and number > maximum:
        raise ValidationError(f"{field} must be at most {maximum}", field)
    return number


def choice(value, field: str, choices) -> str:
    """One of ``choices``."""
    value = text(value, field, max_length=40)
    if value not in choices:
        raise ValidationError(f"{field} must be one of {', '.join(choices)}, got {value!r}", field)
    return value


def code(value, field="code") -> str:
    """A short lower-case identifier: letters, digits, ``-`` and ``_``."""
    value = text(value, field, max_length=60)
    if not _CODE.match(value):
        raise ValidationError(
            f"{field}: {value!r} must be lower-case letters, digits, '-' or '_' (up to 60)", field)
    return value


def date(value, field: str, default=None) -> dt.date:
    """A calendar date typed as ``2026-03-01`` (or already a ``date``); ``default`` when empty."""
    if value in (None, ""):
        if default is None:
            raise ValidationError(f"{field} is required", field)
        return default
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValidationError(f"{field} must be a date like 2026-03-01, not {value!r}", field) from None
