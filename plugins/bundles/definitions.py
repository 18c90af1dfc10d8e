"""The operator's bundle and promo definitions: reading, checking and the stored form.

Both settings hold a JSON list. :func:`parse_bundles` and :func:`parse_promos` are the
settings' ``parse`` functions: they read the text an operator typed, refuse the first bad
entry with a message naming it, and return the normalised list that is stored.
:func:`load_bundles` and :func:`load_promos` turn a stored list back into the
:class:`Bundle` and :class:`Promo` objects the rules work with.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cached_property

from core.models import PLAN_KINDS
from core.money import Money, MoneyError
from core.money import currency as lookup_currency
from core.money import parse as parse_money

#: Invoice line kinds a definition may discount.
LINE_KINDS = ("recurring", "proration", "setup", "oneoff", "usage")
#: What a definition discounts when it has no ``applies_to``.
DEFAULT_APPLIES_TO = ("recurring", "proration")

_BUNDLE_KEYS = ("code", "name", "kinds", "plans", "percent", "fixed", "currency", "applies_to")
_PROMO_KEYS = ("code", "description", "kinds", "plans", "percent", "fixed", "currency", "applies_to",
               "periods", "valid_until")
_BUNDLE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
_PROMO_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,39}")
_PERCENT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MAX_TEXT = 200


@dataclass(frozen=True)
class Bundle:
    """A bundle: a discount on the lines of services taken together.

    Exactly one of ``kinds`` (plan kinds) and ``plans`` (plan codes) is set, and exactly
    one of ``percent`` and ``fixed``.
    """

    code: str
    name: str
    kinds: tuple[str, ...]
    plans: tuple[str, ...]
    percent: Decimal | None
    fixed: Money | None
    applies_to: tuple[str, ...]

    @cached_property
    def rate(self) -> Fraction | None:
        """The percentage as a fraction of one (``Fraction(1, 10)`` for 10%)."""
        return None if self.percent is None else Fraction(self.percent) / 100

    def to_json(self) -> dict:
        """The normalised form that is stored and that :func:`load_bundles` reads."""
        return {"code": self.code, "name": self.name, **_target_json(self), **_amount_json(self),
                "applies_to": list(self.applies_to)}


@dataclass(frozen=True)
class Promo:
    """A promo code: a discount for customers the code is attached to.

    ``kinds`` and ``plans`` are both empty when the promo covers every line;
    ``periods`` ``None`` means for as long as the customer has the code.
    """

    code: str
    description: str
    kinds: tuple[str, ...]
    plans: tuple[str, ...]
    percent: Decimal | None
    fixed: Money | None
    applies_to: tuple[str, ...]
    periods: int | None
    valid_until: dt.date | None

    @cached_property
    def rate(self) -> Fraction | None:
        """The percentage as a fraction of one (``Fraction(1, 2)`` for 50%)."""
        return None if self.percent is None else Fraction(self.percent) / 100

    def to_json(self) -> dict:
        """The normalised form that is stored and that :func:`load_promos` reads."""
        return {"code": self.code, "description": self.description, **_target_json(self), **_amount_json(self),
                "applies_to": list(self.applies_to), "periods": self.periods,
                "valid_until": None if self.valid_until is None else self.valid_until.isoformat()}


def _target_json(item) -> dict:
    if item.kinds:
        return {"kinds": list(item.kinds)}
    if item.plans:
        return {"plans": list(item.plans)}
    return {}


def _amount_json(item) -> dict:
    if item.percent is not None:
        return {"percent": str(item.percent)}
    return {"fixed": item.fixed.format_plain(), "currency": item.fixed.currency}


# --- reading JSON --------------------------------------------------------------------

class _Float(str):
    """A JSON number with a decimal point or exponent, kept as its text so it can be refused."""


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed; write amounts and percentages as strings such as \"12.5\"")


def _read_list(text: str, what: str) -> list:
    if not isinstance(text, str):
        raise TypeError(f"expected JSON text, not {type(text).__name__}")
    if not text.strip():
        return []
    try:
        data = json.loads(text, parse_float=_Float, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON list of {what}s ([{{...}}, ...]), got {_json_type(data)}")
    return data


def _json_type(value) -> str:
    if isinstance(value, _Float):
        return f"the number {value}"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, str)):
        return json.dumps(value)
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


# --- one field at a time -------------------------------------------------------------
# Each helper gets ``where`` ("bundle 2 ('triple')") to start its message with.

def _text(entry: dict, key: str, where: str, default: str) -> str:
    value = entry.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {key} must be a non-empty string, got {_json_type(value)}")
    value = value.strip()
    if len(value) > _MAX_TEXT:
        raise ValueError(f"{where}: {key} is longer than {_MAX_TEXT} characters")
    return value


def _names(entry: dict, key: str, where: str, allowed: tuple[str, ...] | None, singular: str = "") -> tuple[str, ...]:
    value = entry[key]
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: {key} must be a non-empty list of strings, got {_json_type(value)}")
    names = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{where}: {key} must hold non-empty strings, got {_json_type(item)}")
        name = item.strip().lower() if allowed is not None else item.strip()
        if allowed is not None and name not in allowed:
            raise ValueError(f"{where}: unknown {singular} {item!r} in {key} (use {', '.join(allowed)})")
        if name in names:
            raise ValueError(f"{where}: {name!r} appears twice in {key}")
        names.append(name)
    return tuple(names)


def _target(entry: dict, where: str, required: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    has_kinds, has_plans = entry.get("kinds") is not None, entry.get("plans") is not None
    if has_kinds and has_plans:
        raise ValueError(f"{where}: give either kinds or plans, not both")
    if not (has_kinds or has_plans):
        if required:
            raise ValueError(f"{where}: give the kinds (such as [\"internet\", \"tv\"]) or the plans it covers")
        return (), ()
    if has_kinds:
        return _names(entry, "kinds", where, PLAN_KINDS, "kind"), ()
    return (), _names(entry, "plans", where, None)


def _percent(value, where: str) -> Decimal:
    if isinstance(value, _Float):
        raise ValueError(f"{where}: write percent as a string (\"{value}\"), not as a JSON number")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{where}: percent must be a string such as \"10\" or \"12.5\", got {_json_type(value)}")
    text = str(value).strip()
    if not _PERCENT.fullmatch(text):
        raise ValueError(f"{where}: percent {value!r} is not a number such as \"10\" or \"12.5\"")
    percent = Decimal(text)
    if not 0 < percent <= 100:
        raise ValueError(f"{where}: percent must be more than 0 and at most 100, got {text}")
    return percent


def _fixed(value, code, where: str) -> Money:
    if code is None:
        raise ValueError(f"{where}: a fixed amount needs \"currency\" (the ISO code of the amount, such as \"KES\")")
    if not isinstance(code, str):
        raise ValueError(f"{where}: currency must be a code such as \"KES\", got {_json_type(code)}")
    try:
        cur = lookup_currency(code.strip()).code
    except MoneyError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if isinstance(value, _Float):
        raise ValueError(f"{where}: write fixed as a string (\"{value}\"), not as a JSON number")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{where}: fixed must be an amount such as \"5.00\", got {_json_type(value)}")
    try:
        amount = parse_money(str(value), cur)
    except MoneyError as exc:
        raise ValueError(f"{where}: fixed amount {exc}") from None
    if amount.minor <= 0:
        raise ValueError(f"{where}: fixed must be more than zero, got {amount}")
    return amount


def _amount(entry: dict, where: str) -> tuple[Decimal | None, Money | None]:
    has_percent, has_fixed = entry.get("percent") is not None, entry.get("fixed") is not None
    if has_percent == has_fixed:
        raise ValueError(f"{where}: give exactly one of percent (\"10\") and fixed (\"5.00\" with a currency)")
    if has_percent:
        if entry.get("currency") is not None:
            raise ValueError(f"{where}: currency goes with a fixed amount, not with percent")
        return _percent(entry["percent"], where), None
    return None, _fixed(entry["fixed"], entry.get("currency"), where)


def _applies_to(entry: dict, where: str) -> tuple[str, ...]:
    if entry.get("applies_to") is None:
        return DEFAULT_APPLIES_TO
    return _names(entry, "applies_to", where, LINE_KINDS, "line kind")


def _periods(value, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: periods must be a whole number of 1 or more, got {_json_type(value)}")
    return value


def _date(value, where: str) -> dt.date | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE.fullmatch(value.strip()):
        raise ValueError(f"{where}: valid_until must be a date such as \"2026-12-31\", got {_json_type(value)}")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{where}: valid_until {value!r} is not a real date") from None


def _start(entry, what: str, number: int, keys: tuple[str, ...]) -> str:
    """Check an entry is an object with known keys; return how messages name it."""
    if not isinstance(entry, dict):
        raise ValueError(f"{what} {number}: expected an object ({{\"code\": ...}}), got {_json_type(entry)}")
    code = entry.get("code")
    where = f"{what} {number} ({code!r})" if isinstance(code, str) and code.strip() else f"{what} {number}"
    unknown = sorted(set(entry) - set(keys))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(keys)})")
    return where


def _code(entry: dict, where: str, pattern: re.Pattern, upper: bool) -> str:
    code = entry.get("code")
    if not isinstance(code, str):
        raise ValueError(f"{where}: code is missing (a short name such as \"triple\")")
    code = code.strip().upper() if upper else code.strip()
    if not pattern.fullmatch(code):
        raise ValueError(f"{where}: code {code!r} must be 1 to 40 letters, digits, '-' or '_'")
    return code


# --- whole entries -------------------------------------------------------------------

def _bundle(entry, number: int) -> Bundle:
    where = _start(entry, "bundle", number, _BUNDLE_KEYS)
    code = _code(entry, where, _BUNDLE_CODE, upper=False)
    kinds, plans = _target(entry, where, required=True)
    if len(kinds or plans) < 2:
        raise ValueError(f"{where}: a bundle needs at least two {'kinds' if kinds else 'plans'}")
    percent, fixed = _amount(entry, where)
    return Bundle(code, _text(entry, "name", where, code), kinds, plans, percent, fixed, _applies_to(entry, where))


def _default_description(percent: Decimal | None, fixed: Money | None) -> str:
    return f"{percent}% off" if percent is not None else f"{fixed} off"


def _promo(entry, number: int) -> Promo:
    where = _start(entry, "promo", number, _PROMO_KEYS)
    code = _code(entry, where, _PROMO_CODE, upper=True)
    kinds, plans = _target(entry, where, required=False)
    percent, fixed = _amount(entry, where)
    description = _text(entry, "description", where, _default_description(percent, fixed))
    return Promo(code, description, kinds, plans, percent, fixed, _applies_to(entry, where),
                 _periods(entry.get("periods"), where), _date(entry.get("valid_until"), where))


def _unique(items, what: str):
    seen: dict[str, int] = {}
    for number, item in enumerate(items, 1):
        key = item.code.lower()
        if key in seen:
            raise ValueError(f"{what} {number}: code {item.code!r} is already used by {what} {seen[key]}")
        seen[key] = number
    return tuple(items)


def load_bundles(data) -> tuple[Bundle, ...]:
    """The bundles in a list of definitions (as stored, or as decoded from JSON); ``ValueError`` if one is bad."""
    return _unique([_bundle(entry, n) for n, entry in enumerate(data or (), 1)], "bundle")


def load_promos(data) -> tuple[Promo, ...]:
    """The promos in a list of definitions (as stored, or as decoded from JSON); ``ValueError`` if one is bad."""
    return _unique([_promo(entry, n) for n, entry in enumerate(data or (), 1)], "promo")


def parse_bundles(text: str) -> list[dict]:
    """The ``bundles.bundles`` setting's parser: JSON text in, normalised list out."""
    return [bundle.to_json() for bundle in load_bundles(_read_list(text, "bundle"))]


def parse_promos(text: str) -> list[dict]:
    """The ``bundles.promos`` setting's parser: JSON text in, normalised list out."""
    return [promo.to_json() for promo in load_promos(_read_list(text, "promo"))]
