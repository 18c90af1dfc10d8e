"""The tax arithmetic: a region compiled into a :class:`Plan`, applied to invoice lines.

All amounts are integers of minor units and all rates exact fractions, so nothing is
ever a float and the result does not depend on the currency's exponent. The rules
(stated for operators in ``docs/taxes.md``):

* Lines are grouped by tax category; a category whose lines add up to zero or less is
  not taxed (a discount never makes tax negative or spills into another category).
* Each tax applies to the categories it lists, at the rate listed. A compound tax is
  charged on the base plus the earlier non-compound taxes of the same lines.
* ``rounding = "invoice"`` rounds once per tax and rate, on the invoice's total for that
  rate; ``"line"`` rounds the tax of every line and adds the rounded amounts.
* With tax-inclusive prices the taxes are taken out of the gross and the net is what is
  left, so net plus taxes is exactly the gross of every category.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

from core.errors import ValidationError
from core.hooktypes import TaxLine
from core.money import Money


def _half_up(n: int, d: int) -> int:
    q, r = divmod(abs(n), d)
    if 2 * r >= d:
        q += 1
    return q if n >= 0 else -q


def _half_even(n: int, d: int) -> int:
    q, r = divmod(abs(n), d)
    if 2 * r > d or (2 * r == d and q % 2):
        q += 1
    return q if n >= 0 else -q


def _half_down(n: int, d: int) -> int:
    q, r = divmod(abs(n), d)
    if 2 * r > d:
        q += 1
    return q if n >= 0 else -q


def _up(n: int, d: int) -> int:
    q, r = divmod(abs(n), d)
    if r:
        q += 1
    return q if n >= 0 else -q


def _down(n: int, d: int) -> int:
    q = abs(n) // d
    return q if n >= 0 else -q


#: Rounding modes by the name used in region files: ``n / d`` (``d > 0``) to a whole number.
#: Halves and "up" go away from zero, "down" toward zero, as for amounts in ``core.money``.
ROUNDING_MODES = {
    "half-up": _half_up,
    "half-even": _half_even,
    "half-down": _half_down,
    "up": _up,
    "down": _down,
}


def _ratio(value) -> tuple[int, int]:
    value = Fraction(value)
    return value.numerator, value.denominator


def _allocate(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` (not negative) in proportion to ``weights`` (not negative), largest remainders first."""
    whole = sum(weights)
    if not total or not whole:
        return [0] * len(weights)
    parts, remainders = zip(*(divmod(total * w, whole) for w in weights))
    parts = list(parts)
    for i in sorted(range(len(parts)), key=lambda i: (-remainders[i], i))[:total - sum(parts)]:
        parts[i] += 1
    return parts


class Plan:
    """A region compiled for fast use: per category, the taxes that apply and their rates.

    Built once when the regions are loaded, so that :meth:`tax_lines` does nothing but
    integer arithmetic.
    """

    def __init__(self, region):
        self.region = region
        self.code = region.code
        self.source = f"tax_regions:{region.code}"
        self.round = ROUNDING_MODES[region.rounding_mode]
        self.per_line = region.rounding == "line"

        # Output lines: one per (tax, rate), taxes in file order, higher rates first.
        self.groups: list[tuple[str, Decimal, bool]] = []
        group_of: dict[tuple[int, Decimal], int] = {}
        for t, tax in enumerate(region.taxes):
            for rate in sorted(set(tax.rates.values()), reverse=True):
                group_of[t, rate] = len(self.groups)
                self.groups.append((tax.name, rate, tax.compound))

        # Exclusive prices, per-invoice rounding: tax by tax, the groups and their categories.
        # A non-compound tax followed by a compound one must be shared out to its categories.
        compound_after = [any(later.compound for later in region.taxes[t + 1:]) for t in range(len(region.taxes))]
        self.by_tax = []
        for t, tax in enumerate(region.taxes):
            groups = []
            for rate in sorted(set(tax.rates.values()), reverse=True):
                cats = tuple(c for c, r in tax.rates.items() if r == rate)
                groups.append((group_of[t, rate], *_ratio(rate), cats))
            self.by_tax.append((tax.compound, not tax.compound and compound_after[t], tuple(groups)))

        # Per category: the taxes in order as (group, rate num, rate den, compound), and for
        # tax-inclusive prices each tax's share of the gross as (num, den).
        self.steps: dict[str, tuple] = {c: () for c in region.untaxed}
        self.shares: dict[str, tuple] = {c: () for c in region.untaxed}
        for category in region.categories - region.untaxed:
            steps, shares = [], []
            before = Fraction(0)  # non-compound rates so far
            factor = Fraction(1)  # gross = net * factor
            for t, tax in enumerate(region.taxes):
                if category not in tax.rates:
                    continue
                rate = Fraction(tax.rates[category])
                steps.append((group_of[t, tax.rates[category]], *_ratio(rate), tax.compound))
                share = rate * (1 + before) if tax.compound else rate
                shares.append(share)
                factor += share
                if not tax.compound:
                    before += rate
            self.steps[category] = tuple(steps)
            self.shares[category] = tuple((g, *_ratio(s / factor), c)
                                          for (g, _n, _d, c), s in zip(steps, shares))
        # Inclusive prices, per-invoice rounding: each group's categories and their shares,
        # over a common denominator so that shares of several categories add up as integers.
        members: dict[int, list] = {g: [] for g in range(len(self.groups))}
        for category, shares in self.shares.items():
            for g, num, den, _compound in shares:
                members[g].append((category, num, den))
        self.inclusive_groups = []
        for g, found in members.items():
            if found:
                common = math.lcm(*(den for _c, _n, den in found))
                self.inclusive_groups.append((g, common, tuple((c, num * (common // den)) for c, num, den in found)))

    # --- entry point -------------------------------------------------------------------

    def tax_lines(self, lines, currency: str, inclusive: bool) -> list[TaxLine]:
        """The tax of ``lines`` (``DraftLine``s in ``currency``), one :class:`TaxLine` per tax and rate.

        Raises :class:`ValidationError` for a line in another currency or in a tax
        category the region does not define.
        """
        steps = self.steps
        totals: dict[str, int] = {}
        for line in lines:
            category = line.tax_category
            if category not in steps:
                known = ", ".join(sorted(steps))
                raise ValidationError(
                    f"tax region {self.code} has no tax category {category!r} (line {line.description!r}); "
                    f"its categories are: {known}", field="tax_category")
            if line.amount.currency != currency:
                raise ValidationError(f"line {line.description!r} is in {line.amount.currency}, "
                                      f"the invoice in {currency}", field="currency")
            totals[category] = totals.get(category, 0) + line.amount.minor
        taxed = {c: total for c, total in totals.items() if total > 0 and steps[c]}
        if not taxed:
            return []
        size = len(self.groups)
        taxable, tax = [0] * size, [0] * size
        if self.per_line:
            by_line = [line for line in lines if line.tax_category in taxed]
            present = (self._inclusive_lines if inclusive else self._exclusive_lines)(by_line, taxable, tax)
        else:
            present = (self._inclusive_invoice if inclusive else self._exclusive_invoice)(taxed, taxable, tax)
        out = []
        for g in sorted(present):
            name, rate, compound = self.groups[g]
            out.append(TaxLine(name, rate, Money(taxable[g], currency), Money(max(tax[g], 0), currency),
                               compound, self.source))
        return out

    # --- the four ways -----------------------------------------------------------------

    def _exclusive_invoice(self, bases: dict[str, int], taxable: list, tax: list) -> set:
        present = set()
        earlier: dict[str, int] = {}  # non-compound tax attributed to each category so far
        rnd = self.round
        for compound, share_out, groups in self.by_tax:
            for g, num, den, cats in groups:
                found = [(c, bases[c] + earlier.get(c, 0) if compound else bases[c]) for c in cats if c in bases]
                if not found:
                    continue
                base = found[0][1] if len(found) == 1 else sum(b for _, b in found)
                amount = rnd(base * num, den)
                taxable[g], tax[g] = base, amount
                present.add(g)
                if share_out:
                    if len(found) == 1:
                        earlier[found[0][0]] = earlier.get(found[0][0], 0) + amount
                    else:
                        for (c, _b), part in zip(found, _allocate(amount, [b for _, b in found])):
                            earlier[c] = earlier.get(c, 0) + part
        return present

    def _exclusive_lines(self, lines, taxable: list, tax: list) -> set:
        present = set()
        rnd, steps = self.round, self.steps
        for line in lines:
            amount = line.amount.minor
            extra = 0
            for g, num, den, compound in steps[line.tax_category]:
                base = amount + extra if compound else amount
                part = rnd(base * num, den)
                taxable[g] += base
                tax[g] += part
                present.add(g)
                if not compound:
                    extra += part
        return present

    def _inclusive_invoice(self, gross: dict[str, int], taxable: list, tax: list) -> set:
        rnd = self.round
        taken: dict[str, dict[int, int]] = {c: {} for c in gross}  # category -> group -> tax taken out
        for g, common, members in self.inclusive_groups:
            found = [(c, gross[c] * num) for c, num in members if c in gross]
            if not found:
                continue
            if len(found) == 1:
                c, scaled = found[0]
                taken[c][g] = tax[g] = rnd(scaled, common)
                continue
            tax[g] = rnd(sum(scaled for _, scaled in found), common)
            for (c, _scaled), part in zip(found, _allocate(tax[g], [scaled for _, scaled in found])):
                taken[c][g] = part
        present = set()
        for c, parts in taken.items():
            net = gross[c] - sum(parts.values())
            extra = 0
            for g, _num, _den, compound in self.steps[c]:
                taxable[g] += net + extra if compound else net
                present.add(g)
                if not compound:
                    extra += parts[g]
        return present

    def _inclusive_lines(self, lines, taxable: list, tax: list) -> set:
        present = set()
        rnd, shares = self.round, self.shares
        for line in lines:
            gross = line.amount.minor
            parts = [(g, rnd(gross * num, den), compound) for g, num, den, compound in shares[line.tax_category]]
            net = gross - sum(p for _, p, _ in parts)
            extra = 0
            for g, part, compound in parts:
                taxable[g] += net + extra if compound else net
                tax[g] += part
                present.add(g)
                if not compound:
                    extra += part
        return present
