"""Amounts between wispbill's minor units (ISO 4217 exponents) and the integers Stripe's API uses.

Stripe counts most currencies in hundredths, whatever ISO 4217 says, with these
exceptions (its "zero-decimal", "three-decimal" and "special cases" lists):

* zero-decimal currencies are counted in whole units. All of them have ISO exponent 0
  except MGA, which ISO gives two decimals: a Stripe MGA amount is whole ariary.
* BHD, JOD, KWD, OMR and TND are counted in thousandths, but the last digit must be 0.
* ISK has ISO exponent 0 but Stripe keeps it in hundredths, always a multiple of 100.

An amount that cannot be expressed exactly is refused, never rounded.
"""

from __future__ import annotations

from core.errors import ValidationError
from core.money import Money, MoneyError
from core.money import currency as lookup_currency

ZERO_DECIMAL = frozenset({
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
})
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def _exponents(code: str) -> tuple[str, int, int]:
    """(upper-case code, ISO exponent, Stripe exponent) for a currency code in any case."""
    try:
        cur = lookup_currency(code)
    except (MoneyError, TypeError):
        raise ValidationError(f"unknown currency {code!r}", "currency") from None
    if cur.code in ZERO_DECIMAL:
        return cur.code, cur.exponent, 0
    if cur.code in THREE_DECIMAL:
        return cur.code, cur.exponent, 3
    if cur.exponent > 2:
        # IQD, LYD: not on Stripe's three-decimal list, so how it would count them is unknown.
        raise ValidationError(f"Stripe does not take payments in {cur.code}", "currency")
    return cur.code, cur.exponent, 2


def to_stripe(money: Money) -> int:
    """The integer ``amount`` Stripe expects for ``money``; ValidationError if it is not exact."""
    code, iso, ours = _exponents(money.currency)
    if ours >= iso:
        amount = money.minor * 10 ** (ours - iso)
    else:
        amount, rest = divmod(money.minor, 10 ** (iso - ours))
        if rest:
            raise ValidationError(f"Stripe takes {code} in whole units only, not {money}", "amount")
    if code in THREE_DECIMAL and amount % 10:
        raise ValidationError(f"Stripe takes {code} amounts in steps of 0.010 (last digit 0), not {money}",
                              "amount")
    return amount


def from_stripe(amount, code) -> Money:
    """The Money for a Stripe ``amount`` in currency ``code`` (Stripe writes codes in lower case)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationError(f"Stripe amount {amount!r} is not a whole number", "amount")
    if not isinstance(code, str):
        raise ValidationError(f"Stripe currency {code!r} is not a currency code", "currency")
    upper, iso, ours = _exponents(code)
    if ours <= iso:
        return Money(amount * 10 ** (iso - ours), upper)
    minor, rest = divmod(amount, 10 ** (ours - iso))
    if rest:
        raise ValidationError(f"Stripe amount {amount} {upper} is not a whole number of {upper} minor units",
                              "amount")
    return Money(minor, upper)
