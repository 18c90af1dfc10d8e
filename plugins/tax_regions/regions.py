"""Tax regions from TOML files: reading, validating, merging and caching them.

The shipped ``regions.toml`` is read first; the operator's file (setting
``tax_regions.file``) is read on top of it, each of its regions replacing a shipped
region with the same code. Any problem in a file raises
:class:`core.errors.ValidationError` naming the file, the region and the key.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
import time
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import peewee

from core import settings
from core.db import database
from core.errors import ValidationError
from core.money import MoneyError
from core.money import currency as lookup_currency

from .compute import ROUNDING_MODES, Plan

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).with_name("regions.toml")
SETTING = "tax_regions.file"
#: How often (seconds) the setting and the operator's file are looked at again.
RECHECK_SECONDS = 1.0

ROUNDING = ("invoice", "line")
_REGION_CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{0,39}")
_CATEGORY = re.compile(r"[a-z0-9][a-z0-9_-]{0,59}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

_REGION_KEYS = {"code", "name", "currency", "prices_include_tax", "rounding", "rounding_mode",
                "source", "checked", "untaxed", "tax"}
_REQUIRED_REGION_KEYS = ("code", "name", "source", "checked")
_TAX_KEYS = {"name", "compound", "rates", "source", "checked"}


@dataclass(frozen=True)
class Tax:
    """One tax of a region: a rate per tax category; categories not listed are not subject to it."""

    name: str
    rates: dict[str, Decimal]
    compound: bool
    source: str
    checked: dt.date


@dataclass(frozen=True)
class Region:
    """A tax region as defined in a file: its taxes in order, and how they are rounded."""

    code: str
    name: str
    currency: str | None
    prices_include_tax: bool
    rounding: str
    rounding_mode: str
    source: str
    checked: dt.date
    untaxed: frozenset[str]
    taxes: tuple[Tax, ...]
    file: str

    @property
    def categories(self) -> frozenset[str]:
        """Every tax category the region knows: those some tax rates, and the untaxed ones."""
        return frozenset(self.untaxed).union(*(tax.rates for tax in self.taxes))


# --- reading and validating one file ---------------------------------------------------

class _Where:
    """Builds error messages that name the file, the region, the tax and the key."""

    def __init__(self, file: str):
        self.file = file
        self.region = None
        self.tax = None

    def fail(self, message: str, key: str | None = None) -> ValidationError:
        parts = [self.file]
        if self.region:
            parts.append(f"region {self.region}")
        if self.tax:
            parts.append(f"tax {self.tax}")
        if key:
            parts.append(f"key '{key}'")
        return ValidationError(f"{': '.join(parts)}: {message}", field=key)


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "a list",
            dict: "a table", dt.date: "a date", dt.datetime: "a date-time"}.get(type(value), type(value).__name__)


def _unknown(table: dict, allowed: set, where: _Where) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise where.fail(f"unknown key (allowed: {', '.join(sorted(allowed))})", extra[0])


def _text(table: dict, key: str, where: _Where, default=None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise where.fail(f"must be a non-empty string, got {_type_name(value) if key in table else 'nothing'}", key)
    return value.strip()


def _flag(table: dict, key: str, where: _Where) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise where.fail(f"must be true or false, got {_type_name(value)}", key)
    return value


def _date(table: dict, key: str, where: _Where, default=None) -> dt.date:
    if key not in table:
        if default is not None:
            return default
        raise where.fail("is missing (the date the source was checked, YYYY-MM-DD)", key)
    value = table[key]
    if isinstance(value, dt.datetime):
        raise where.fail("must be a date (YYYY-MM-DD) without a time", key)
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise where.fail(f"must be a date written YYYY-MM-DD, got {value!r}", key)


def _rate(value, where: _Where, key: str) -> Decimal:
    if isinstance(value, float):
        raise where.fail(f"rate {value!r} is a TOML float, which is not exact: write it as a quoted string, "
                         f"e.g. \"{value}\"", key)
    if not isinstance(value, str):
        raise where.fail(f"rate must be a quoted decimal string such as \"0.16\", got {_type_name(value)}", key)
    try:
        rate = Decimal(value.strip())
    except InvalidOperation:
        raise where.fail(f"rate {value!r} is not a decimal number", key) from None
    if not rate.is_finite():
        raise where.fail(f"rate {value!r} is not a finite number", key)
    if rate < 0:
        raise where.fail(f"rate {value!r} is negative", key)
    if rate >= 1:
        raise where.fail(f"rate {value!r} would be {rate * 100}%: write rates as fractions, "
                         f"\"0.16\" for 16%", key)
    return rate


def _tax(table, index: int, region_source: str, region_checked: dt.date, where: _Where) -> Tax:
    where.tax = f"#{index + 1}"
    if not isinstance(table, dict):
        raise where.fail(f"each tax must be a table ([[region.tax]]), got {_type_name(table)}")
    if isinstance(table.get("name"), str) and table["name"].strip():
        where.tax = table["name"].strip()
    _unknown(table, _TAX_KEYS, where)
    name = _text(table, "name", where)
    rates_table = table.get("rates")
    if not isinstance(rates_table, dict) or not rates_table:
        raise where.fail("must be a table of category = \"rate\" with at least one entry", "rates")
    rates = {}
    for category, value in rates_table.items():
        if not _CATEGORY.fullmatch(category):
            raise where.fail("a tax category is lower-case letters, digits, '-' or '_'", f"rates.{category}")
        rates[category] = _rate(value, where, f"rates.{category}")
    tax = Tax(
        name=name,
        rates=rates,
        compound=_flag(table, "compound", where),
        source=_text(table, "source", where, default=region_source),
        checked=_date(table, "checked", where, default=region_checked),
    )
    where.tax = None
    return tax


def _region(table, index: int, where: _Where) -> Region:
    where.region = f"#{index + 1}"
    if not isinstance(table, dict):
        raise where.fail(f"each region must be a table ([[region]]), got {_type_name(table)}")
    code = table.get("code")
    if isinstance(code, str) and _REGION_CODE.fullmatch(code):
        where.region = code
    for key in _REQUIRED_REGION_KEYS:
        if key not in table:
            raise where.fail("is missing", key)
    _unknown(table, _REGION_KEYS, where)
    if where.region != code:
        raise where.fail(f"must be upper-case letters, digits and '-' (up to 40), such as \"KE\" or \"US-TX\", "
                         f"got {code!r}", "code")
    currency = table.get("currency")
    if currency is not None:
        if not isinstance(currency, str):
            raise where.fail(f"must be a currency code such as \"KES\", got {_type_name(currency)}", "currency")
        try:
            currency = lookup_currency(currency).code
        except MoneyError as exc:
            raise where.fail(str(exc), "currency") from None
    rounding = table.get("rounding", "invoice")
    if not isinstance(rounding, str) or rounding not in ROUNDING:
        raise where.fail(f"must be one of {', '.join(map(repr, ROUNDING))}, got {rounding!r}", "rounding")
    mode = table.get("rounding_mode", "half-up")
    if not isinstance(mode, str) or mode not in ROUNDING_MODES:
        raise where.fail(f"must be one of {', '.join(map(repr, ROUNDING_MODES))}, got {mode!r}", "rounding_mode")
    untaxed = table.get("untaxed", ["exempt"])
    if not isinstance(untaxed, list) or not all(isinstance(c, str) and _CATEGORY.fullmatch(c) for c in untaxed):
        raise where.fail("must be a list of tax categories such as [\"exempt\"]", "untaxed")
    source = _text(table, "source", where)
    checked = _date(table, "checked", where)
    taxes_table = table.get("tax", [])
    if not isinstance(taxes_table, list):
        raise where.fail("must be a list of taxes ([[region.tax]] tables)", "tax")
    taxes = tuple(_tax(t, i, source, checked, where) for i, t in enumerate(taxes_table))
    seen = set()
    for tax in taxes:
        where.tax = tax.name
        if tax.name in seen:
            raise where.fail("is defined twice in this region")
        seen.add(tax.name)
        both = sorted(set(tax.rates) & set(untaxed))
        if both:
            raise where.fail(f"category {both[0]!r} has a rate but is also listed in 'untaxed'", f"rates.{both[0]}")
    where.tax = None
    return Region(
        code=code, name=_text(table, "name", where), currency=currency,
        prices_include_tax=_flag(table, "prices_include_tax", where), rounding=rounding, rounding_mode=mode,
        source=source, checked=checked, untaxed=frozenset(untaxed), taxes=taxes, file=where.file,
    )


def read_file(path: str | os.PathLike) -> dict[str, Region]:
    """The regions defined in one TOML file, by code, validated.

    Raises :class:`ValidationError` naming the file (and region and key) for a file that
    cannot be read, is not TOML, or breaks the format described in ``docs/taxes.md``.
    """
    where = _Where(str(path))
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise where.fail("no such file") from None
    except IsADirectoryError:
        raise where.fail("is a directory, not a file") from None
    except OSError as exc:
        raise where.fail(f"cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise where.fail(f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise where.fail("not valid TOML: the file is not UTF-8 text") from None
    _unknown(data, {"region"}, where)
    entries = data.get("region", [])
    if not isinstance(entries, list):
        raise where.fail("must be a list of regions ([[region]] tables)", "region")
    regions: dict[str, Region] = {}
    for index, table in enumerate(entries):
        region = _region(table, index, where)
        if region.code in regions:
            raise where.fail(f"is defined twice in this file (entries #{list(regions).index(region.code) + 1} "
                             f"and #{index + 1})", "code")
        regions[region.code] = region
    return regions


def load_regions(path: str | os.PathLike | None = None) -> dict[str, Region]:
    """The shipped regions, with those of the operator's file at ``path`` replacing or adding to them."""
    regions = dict(_shipped())
    if path:
        regions.update(read_file(path))
    return regions


def check_file(path: str | os.PathLike) -> list[str]:
    """Validate an operator's regions file; return the region codes it defines, in file order.

    Raises :class:`ValidationError` with a message naming the file, region and key.
    """
    return list(read_file(path))


_shipped_cache: dict[str, Region] | None = None


def _shipped() -> dict[str, Region]:
    global _shipped_cache
    if _shipped_cache is None:
        _shipped_cache = read_file(SHIPPED)
    return _shipped_cache


# --- the regions in force, cached ------------------------------------------------------

@dataclass(frozen=True)
class _State:
    key: tuple
    plans: dict[str, Plan] | None
    error: ValidationError | None
    checked_at: float


_state: _State | None = None
_lock = threading.Lock()
_last_path: str | None = None


def invalidate() -> None:
    """Forget the cached regions: the next call reads the setting and the files again."""
    global _state
    _state = None


def _configured_path() -> str | None:
    """The operator's file from the setting, or the last value seen when the database cannot say."""
    global _last_path
    if database.obj is None:
        return None
    try:
        value = settings.get_or(SETTING, None)
    except peewee.PeeweeException as exc:
        log.warning("cannot read setting %s (%s); using %s", SETTING, str(exc).strip().splitlines()[0],
                    _last_path or "the shipped regions only")
        return _last_path
    _last_path = value or None
    return _last_path


def _file_key(path: str | None) -> tuple:
    if not path:
        return (None,)
    try:
        info = os.stat(path)
    except OSError:
        return (path, None)
    return (path, info.st_mtime_ns, info.st_size)


def current() -> dict[str, Plan]:
    """The compiled regions in force, by code.

    Parsed once and kept; the setting and the operator file's modification time are
    looked at again at most every :data:`RECHECK_SECONDS`, or at once when the database
    the process is bound to changes. A broken operator file raises its
    :class:`ValidationError` on every call until it is fixed.
    """
    state = _state
    now = time.monotonic()
    if state is not None and now - state.checked_at < RECHECK_SECONDS and state.key[0] is database.obj:
        if state.error is not None:
            raise state.error
        return state.plans
    return _refresh(now)


def _refresh(now: float) -> dict[str, Plan]:
    global _state
    with _lock:
        path = _configured_path()
        key = (database.obj, _file_key(path))
        state = _state
        if state is None or state.key != key:
            try:
                plans = {code: Plan(region) for code, region in load_regions(path).items()}
                state = _State(key, plans, None, now)
            except ValidationError as exc:
                state = _State(key, None, exc, now)
        else:
            state = _State(key, state.plans, state.error, now)
        _state = state
    if state.error is not None:
        raise state.error
    return state.plans
