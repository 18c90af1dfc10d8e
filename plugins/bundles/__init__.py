"""Bundle discounts and promo codes, through the pricing hooks.

The definitions live in two settings, ``bundles.bundles`` and ``bundles.promos`` (see
``docs/bundles.md``). Billing calls ``pricing_adjustments`` for every invoice of a run,
so the parsed definitions are cached and read again from the database at most once a
second; setting either value in this process, or calling :func:`reload`, makes the next
call read them at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from core import hookimpl
from core.db import database
from core.hooktypes import PromoInfo, SettingSpec
from core.models import Setting
from plugins.bundles import definitions, rules
from plugins.bundles.definitions import Bundle, Promo

BUNDLES_KEY = "bundles.bundles"
PROMOS_KEY = "bundles.promos"
#: How long parsed definitions are used before the settings are read again.
REFRESH_SECONDS = 1.0


@dataclass(frozen=True)
class Definitions:
    """The parsed contents of both settings: bundles in order, promos by upper-case code."""

    bundles: tuple[Bundle, ...] = ()
    promos: dict[str, Promo] = field(default_factory=dict)


# (database the definitions were read from, time.monotonic() of the read, definitions)
_cache: tuple[object, float, Definitions] | None = None


def reload() -> None:
    """Forget the cached definitions: the next call reads the settings again."""
    global _cache
    _cache = None


def _read() -> Definitions:
    stored = {row.key: row.value for row in Setting.select().where(Setting.key.in_((BUNDLES_KEY, PROMOS_KEY)))}
    promos = definitions.load_promos(stored.get(PROMOS_KEY))
    return Definitions(definitions.load_bundles(stored.get(BUNDLES_KEY)), {p.code: p for p in promos})


def current() -> Definitions:
    """The definitions in force, from the cache when it is younger than :data:`REFRESH_SECONDS`.

    The cache belongs to the database it was read from, so binding another database
    (as every test does) never serves another database's definitions.
    """
    global _cache
    now = time.monotonic()
    cached = _cache
    db = database.obj
    if cached is not None and cached[0] is db and now - cached[1] < REFRESH_SECONDS:
        return cached[2]
    found = _read()
    _cache = (db, now, found)
    return found


def _parse_bundles(text: str) -> list[dict]:
    value = definitions.parse_bundles(text)
    reload()  # the core stores the value right after parsing it
    return value


def _parse_promos(text: str) -> list[dict]:
    value = definitions.parse_promos(text)
    reload()
    return value


@hookimpl
def register_settings():
    """The bundle and promo definitions, each a JSON list."""
    return [
        SettingSpec(BUNDLES_KEY, "Bundle discounts", default=[], parse=_parse_bundles,
                    help='JSON list, e.g. [{"code": "triple", "name": "Triple play", '
                         '"kinds": ["internet", "tv", "phone"], "percent": "10"}]. See docs/bundles.md.'),
        SettingSpec(PROMOS_KEY, "Promo codes", default=[], parse=_parse_promos,
                    help='JSON list, e.g. [{"code": "WELCOME50", "description": "Half price for 3 months", '
                         '"percent": "50", "periods": 3, "kinds": ["internet"]}]. See docs/bundles.md.'),
    ]


@hookimpl
def pricing_adjustments(invoice):
    """Bundle discounts, then promo discounts, one adjustment per discount and tax category."""
    found = current()
    if not found.bundles and not (found.promos and invoice.promos):
        return None
    # The rules are a pure function of these, and a billing run rates the same few
    # combinations of plans over and over: remember the answers for these definitions.
    key = (invoice.currency, invoice.issue_date, invoice.promos,
           tuple((line.kind, line.amount.minor, line.tax_category, line.plan_code, line.plan_kind)
                 for line in invoice.lines))
    memo = _memo_for(found)
    answer = memo.get(key)
    if answer is None:
        answer = tuple(rules.adjustments(invoice, found.bundles, found.promos))
        if len(memo) < MEMO_SIZE:
            memo[key] = answer
    return list(answer) or None


MEMO_SIZE = 4096
_memo: tuple = (None, {})


def _memo_for(found) -> dict:
    """The remembered answers for ``found``; a new set of definitions starts afresh."""
    global _memo
    if _memo[0] is not found:
        _memo = (found, {})
    return _memo[1]


@hookimpl
def pricing_describe_promo(code):
    """The promo defined with ``code`` (any letter case), or ``None``."""
    promo = current().promos.get(code.strip().upper()) if isinstance(code, str) else None
    if promo is None:
        return None
    return PromoInfo(promo.code, promo.description, promo.valid_until)
