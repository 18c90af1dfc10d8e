"""The discount arithmetic: which bundles and promos apply to a draft invoice, and by how much.

Pure functions over the hook value objects and the parsed definitions; no database and
no settings. The rules are written out for operators in ``docs/bundles.md``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping, Sequence

from core.hooktypes import Adjustment, DraftInvoice, DraftLine, PromoUse
from core.money import Money
from plugins.bundles.definitions import Bundle, Promo

#: Line kinds whose services count towards completing a bundle.
COVERING = frozenset({"recurring", "proration"})
SOURCE = "bundles"


@dataclass(frozen=True)
class Discount:
    """One bundle or promo discount on an invoice.

    ``total`` is the (positive) amount taken off; ``parts`` splits it by tax category,
    in the order the categories first appear on the invoice, and sums exactly to it.
    """

    description: str
    total: Money
    parts: tuple[tuple[str, Money], ...]
    promo_code: str | None = None

    def adjustments(self) -> list[Adjustment]:
        """The discount as negative adjustments, one per tax category."""
        return [Adjustment(self.description, -amount, category, SOURCE, self.promo_code)
                for category, amount in self.parts]


def _matches(item: Bundle | Promo, line: DraftLine) -> bool:
    if item.kinds:
        return line.plan_kind in item.kinds
    if item.plans:
        return line.plan_code in item.plans
    return True


def _lines(item: Bundle | Promo, lines: Sequence[DraftLine]) -> list[int]:
    """Indexes of the lines ``item`` discounts."""
    return [i for i, line in enumerate(lines) if line.kind in item.applies_to and _matches(item, line)]


def _amount(item: Bundle | Promo, base: int, currency: str) -> int:
    """The discount in minor units on ``base``: the percentage rounded half-up, or the fixed amount capped."""
    if item.percent is not None:
        return Money(base, currency).multiply(item.rate).minor
    return min(item.fixed.minor, base)


def _split(total: int, indexes: list[int], lines: Sequence[DraftLine], left: list[int], currency: str,
           track: bool = True) -> tuple[tuple[str, Money], ...]:
    """Split ``total`` over the tax categories of ``indexes``; with ``track``, take it off ``left`` line by line.

    Categories share in proportion to what is left of their lines; within a category the
    lines share the same way, so that a later discount sees each line net of this one.
    A negative line (a credit) lowers its category's weight but never takes a share.
    """
    groups: dict[str, list[int]] = {}
    for i in indexes:
        groups.setdefault(lines[i].tax_category, []).append(i)
    whole = Money(total, currency)
    if len(groups) == 1:
        shares = [whole]
    else:
        shares = whole.allocate([max(0, sum(left[i] for i in members)) for members in groups.values()])
    parts = []
    for (category, members), share in zip(groups.items(), shares):
        if not share:
            continue
        parts.append((category, share))
        if not track:
            continue
        positive = [i for i in members if left[i] > 0]
        if len(positive) == 1:
            left[positive[0]] -= share.minor
            continue
        for i, piece in zip(positive, share.allocate([left[i] for i in positive])):
            left[i] -= piece.minor
    return tuple(parts)


def _day(value: dt.date) -> dt.date:
    # A datetime cannot be compared with a date; the day is what counts.
    return value.date() if isinstance(value, dt.datetime) else value


def _in_force(promo: Promo, use: PromoUse, issue_date: dt.date) -> bool:
    if promo.periods is not None and use.times_applied >= promo.periods:
        return False
    if promo.valid_until is not None and (_day(issue_date) > promo.valid_until
                                          or _day(use.redeemed_on) > promo.valid_until):
        return False
    return True


def _percent_text(item: Bundle | Promo) -> str:
    return f" ({item.percent}%)" if item.percent is not None else ""


def _bundle_discounts(invoice: DraftInvoice, bundles: Sequence[Bundle], left: list[int],
                      track: bool) -> list[Discount]:
    lines, currency = invoice.lines, invoice.currency
    covering = [line for line in lines if line.kind in COVERING and line.amount.minor >= 0]
    kinds = {line.plan_kind for line in covering}
    plans = {line.plan_code for line in covering}
    candidates = []
    for order, bundle in enumerate(bundles):
        if not (kinds.issuperset(bundle.kinds) if bundle.kinds else plans.issuperset(bundle.plans)):
            continue
        if bundle.fixed is not None and bundle.fixed.currency != currency:
            continue
        indexes = _lines(bundle, lines)
        total = _amount(bundle, sum(left[i] for i in indexes), currency)
        if total > 0:
            candidates.append((-total, order, bundle, indexes))
    # Largest discount first (the earlier definition on a tie); a line is discounted by one bundle at most.
    candidates.sort(key=lambda c: c[:2])
    taken: set[int] = set()
    found = []
    for minus_total, _order, bundle, indexes in candidates:
        if taken.intersection(indexes):
            continue
        taken.update(indexes)
        parts = _split(-minus_total, indexes, lines, left, currency, track)
        found.append(Discount(f"{bundle.name} bundle discount{_percent_text(bundle)}",
                              Money(-minus_total, currency), parts))
    return found


def _promo_discounts(invoice: DraftInvoice, promos: Mapping[str, Promo], left: list[int]) -> list[Discount]:
    lines, currency = invoice.lines, invoice.currency
    found = []
    seen = set()
    last = len(invoice.promos) - 1
    for number, use in enumerate(invoice.promos):
        code = use.code.upper()
        promo = promos.get(code)
        if promo is None or code in seen or not _in_force(promo, use, invoice.issue_date):
            continue
        seen.add(code)
        if promo.fixed is not None and promo.fixed.currency != currency:
            continue
        indexes = _lines(promo, lines)
        base = sum(left[i] for i in indexes)
        total = _amount(promo, base, currency) if base > 0 else 0
        if total <= 0:
            continue
        parts = _split(total, indexes, lines, left, currency, track=number < last)
        found.append(Discount(f"Promo {promo.code}: {promo.description}", Money(total, currency), parts, promo.code))
    return found


def discounts(invoice: DraftInvoice, bundles: Sequence[Bundle], promos: Mapping[str, Promo]) -> list[Discount]:
    """Every discount ``invoice`` gets: bundles first, then its promo codes in order, each on what is left.

    ``promos`` maps upper-case codes to definitions. Lines are never discounted below
    zero; the invoice's lines themselves are not changed.
    """
    left = [line.amount.minor for line in invoice.lines]
    with_promos = bool(invoice.promos and promos)
    # What is left of each line only matters to promos, which come after the bundles.
    found = _bundle_discounts(invoice, bundles, left, track=with_promos) if bundles else []
    if with_promos:
        found.extend(_promo_discounts(invoice, promos, left))
    return found


def adjustments(invoice: DraftInvoice, bundles: Sequence[Bundle], promos: Mapping[str, Promo]) -> list[Adjustment]:
    """:func:`discounts` as the adjustments the pricing hook returns."""
    return [adjustment for discount in discounts(invoice, bundles, promos) for adjustment in discount.adjustments()]
