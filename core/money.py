"""Money for wispbill: exact amounts as integer minor units of an ISO 4217 currency.

An amount is never a float. :class:`Money` holds a whole number of minor units (cents,
fils, yen) and a currency code; the currency's exponent (the number of minor-unit
digits, 2 for USD, 0 for JPY, 3 for KWD) comes from the table in this module.

What this module offers:

* :func:`currency` looks a code up in the ISO 4217 table and returns a :class:`Currency`.
* :class:`Money` adds, subtracts and compares within one currency (mixing currencies
  raises :class:`CurrencyMismatch`), multiplies by whole numbers, applies rates with an
  explicit rounding mode (:meth:`Money.multiply`) and splits an amount without losing a
  minor unit (:meth:`Money.allocate`, :meth:`Money.split`).
* :func:`parse` reads an amount a person typed (``"1,234.50"``, ``"KES 1 000"``);
  ``str(money)`` and :meth:`Money.format_plain` write amounts that :func:`parse` reads
  back exactly.
* :meth:`Money.to_dict` and :meth:`Money.from_dict` give the JSON form
  ``{"minor": 123450, "currency": "KES"}``.

Errors about values raise :class:`MoneyError` (a ``ValueError`` and a
:class:`core.errors.WispbillError`, so its message can be shown to a person); passing
the wrong type (a float, a bool, a string where a number belongs) raises ``TypeError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import (
    ROUND_05UP,
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    InvalidOperation,
)
from fractions import Fraction
from numbers import Number
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

from core.errors import WispbillError

__all__ = [
    "CURRENCIES",
    "Currency",
    "CurrencyMismatch",
    "Money",
    "MoneyError",
    "currency",
    "parse",
]


class MoneyError(WispbillError, ValueError):
    """An amount, currency code or money operation is invalid; the message says why."""


class CurrencyMismatch(MoneyError):
    """Two amounts in different currencies were combined or compared."""

    def __init__(self, left: str, right: str, operation: str = "combine"):
        super().__init__(f"cannot {operation} {left} and {right} amounts: currencies differ")
        self.left = left
        self.right = right


@dataclass(frozen=True)
class Currency:
    """An ISO 4217 currency: its code, its exponent (minor-unit digits) and its name."""

    code: str
    exponent: int
    name: str


# Active ISO 4217 currencies (SIX list of 2024, plus XCG which replaces ANG in 2025).
# Fund codes (BOV, CLF, CHE, ...) and units with no minor unit defined (XAU, XDR, ...)
# are left out: nobody is billed in them.
_TABLE = (
    ("AED", 2, "UAE Dirham"),
    ("AFN", 2, "Afghani"),
    ("ALL", 2, "Lek"),
    ("AMD", 2, "Armenian Dram"),
    ("ANG", 2, "Netherlands Antillean Guilder"),
    ("AOA", 2, "Kwanza"),
    ("ARS", 2, "Argentine Peso"),
    ("AUD", 2, "Australian Dollar"),
    ("AWG", 2, "Aruban Florin"),
    ("AZN", 2, "Azerbaijan Manat"),
    ("BAM", 2, "Convertible Mark"),
    ("BBD", 2, "Barbados Dollar"),
    ("BDT", 2, "Taka"),
    ("BGN", 2, "Bulgarian Lev"),
    ("BHD", 3, "Bahraini Dinar"),
    ("BIF", 0, "Burundi Franc"),
    ("BMD", 2, "Bermudian Dollar"),
    ("BND", 2, "Brunei Dollar"),
    ("BOB", 2, "Boliviano"),
    ("BRL", 2, "Brazilian Real"),
    ("BSD", 2, "Bahamian Dollar"),
    ("BTN", 2, "Ngultrum"),
    ("BWP", 2, "Pula"),
    ("BYN", 2, "Belarusian Ruble"),
    ("BZD", 2, "Belize Dollar"),
    ("CAD", 2, "Canadian Dollar"),
    ("CDF", 2, "Congolese Franc"),
    ("CHF", 2, "Swiss Franc"),
    ("CLP", 0, "Chilean Peso"),
    ("CNY", 2, "Yuan Renminbi"),
    ("COP", 2, "Colombian Peso"),
    ("CRC", 2, "Costa Rican Colon"),
    ("CUC", 2, "Peso Convertible"),
    ("CUP", 2, "Cuban Peso"),
    ("CVE", 2, "Cabo Verde Escudo"),
    ("CZK", 2, "Czech Koruna"),
    ("DJF", 0, "Djibouti Franc"),
    ("DKK", 2, "Danish Krone"),
    ("DOP", 2, "Dominican Peso"),
    ("DZD", 2, "Algerian Dinar"),
    ("EGP", 2, "Egyptian Pound"),
    ("ERN", 2, "Nakfa"),
    ("ETB", 2, "Ethiopian Birr"),
    ("EUR", 2, "Euro"),
    ("FJD", 2, "Fiji Dollar"),
    ("FKP", 2, "Falkland Islands Pound"),
    ("GBP", 2, "Pound Sterling"),
    ("GEL", 2, "Lari"),
    ("GHS", 2, "Ghana Cedi"),
    ("GIP", 2, "Gibraltar Pound"),
    ("GMD", 2, "Dalasi"),
    ("GNF", 0, "Guinean Franc"),
    ("GTQ", 2, "Quetzal"),
    ("GYD", 2, "Guyana Dollar"),
    ("HKD", 2, "Hong Kong Dollar"),
    ("HNL", 2, "Lempira"),
    ("HTG", 2, "Gourde"),
    ("HUF", 2, "Forint"),
    ("IDR", 2, "Rupiah"),
    ("ILS", 2, "New Israeli Sheqel"),
    ("INR", 2, "Indian Rupee"),
    ("IQD", 3, "Iraqi Dinar"),
    ("IRR", 2, "Iranian Rial"),
    ("ISK", 0, "Iceland Krona"),
    ("JMD", 2, "Jamaican Dollar"),
    ("JOD", 3, "Jordanian Dinar"),
    ("JPY", 0, "Yen"),
    ("KES", 2, "Kenyan Shilling"),
    ("KGS", 2, "Som"),
    ("KHR", 2, "Riel"),
    ("KMF", 0, "Comorian Franc"),
    ("KPW", 2, "North Korean Won"),
    ("KRW", 0, "Won"),
    ("KWD", 3, "Kuwaiti Dinar"),
    ("KYD", 2, "Cayman Islands Dollar"),
    ("KZT", 2, "Tenge"),
    ("LAK", 2, "Lao Kip"),
    ("LBP", 2, "Lebanese Pound"),
    ("LKR", 2, "Sri Lanka Rupee"),
    ("LRD", 2, "Liberian Dollar"),
    ("LSL", 2, "Loti"),
    ("LYD", 3, "Libyan Dinar"),
    ("MAD", 2, "Moroccan Dirham"),
    ("MDL", 2, "Moldovan Leu"),
    ("MGA", 2, "Malagasy Ariary"),
    ("MKD", 2, "Denar"),
    ("MMK", 2, "Kyat"),
    ("MNT", 2, "Tugrik"),
    ("MOP", 2, "Pataca"),
    ("MRU", 2, "Ouguiya"),
    ("MUR", 2, "Mauritius Rupee"),
    ("MVR", 2, "Rufiyaa"),
    ("MWK", 2, "Malawi Kwacha"),
    ("MXN", 2, "Mexican Peso"),
    ("MYR", 2, "Malaysian Ringgit"),
    ("MZN", 2, "Mozambique Metical"),
    ("NAD", 2, "Namibia Dollar"),
    ("NGN", 2, "Naira"),
    ("NIO", 2, "Cordoba Oro"),
    ("NOK", 2, "Norwegian Krone"),
    ("NPR", 2, "Nepalese Rupee"),
    ("NZD", 2, "New Zealand Dollar"),
    ("OMR", 3, "Rial Omani"),
    ("PAB", 2, "Balboa"),
    ("PEN", 2, "Sol"),
    ("PGK", 2, "Kina"),
    ("PHP", 2, "Philippine Peso"),
    ("PKR", 2, "Pakistan Rupee"),
    ("PLN", 2, "Zloty"),
    ("PYG", 0, "Guarani"),
    ("QAR", 2, "Qatari Rial"),
    ("RON", 2, "Romanian Leu"),
    ("RSD", 2, "Serbian Dinar"),
    ("RUB", 2, "Russian Ruble"),
    ("RWF", 0, "Rwanda Franc"),
    ("SAR", 2, "Saudi Riyal"),
    ("SBD", 2, "Solomon Islands Dollar"),
    ("SCR", 2, "Seychelles Rupee"),
    ("SDG", 2, "Sudanese Pound"),
    ("SEK", 2, "Swedish Krona"),
    ("SGD", 2, "Singapore Dollar"),
    ("SHP", 2, "Saint Helena Pound"),
    ("SLE", 2, "Leone"),
    ("SOS", 2, "Somali Shilling"),
    ("SRD", 2, "Surinam Dollar"),
    ("SSP", 2, "South Sudanese Pound"),
    ("STN", 2, "Dobra"),
    ("SVC", 2, "El Salvador Colon"),
    ("SYP", 2, "Syrian Pound"),
    ("SZL", 2, "Lilangeni"),
    ("THB", 2, "Baht"),
    ("TJS", 2, "Somoni"),
    ("TMT", 2, "Turkmenistan New Manat"),
    ("TND", 3, "Tunisian Dinar"),
    ("TOP", 2, "Pa'anga"),
    ("TRY", 2, "Turkish Lira"),
    ("TTD", 2, "Trinidad and Tobago Dollar"),
    ("TWD", 2, "New Taiwan Dollar"),
    ("TZS", 2, "Tanzanian Shilling"),
    ("UAH", 2, "Hryvnia"),
    ("UGX", 0, "Uganda Shilling"),
    ("USD", 2, "US Dollar"),
    ("UYU", 2, "Peso Uruguayo"),
    ("UZS", 2, "Uzbekistan Sum"),
    ("VED", 2, "Bolivar Soberano (digital)"),
    ("VES", 2, "Bolivar Soberano"),
    ("VND", 0, "Dong"),
    ("VUV", 0, "Vatu"),
    ("WST", 2, "Tala"),
    ("XAF", 0, "CFA Franc BEAC"),
    ("XCD", 2, "East Caribbean Dollar"),
    ("XCG", 2, "Caribbean Guilder"),
    ("XOF", 0, "CFA Franc BCEAO"),
    ("XPF", 0, "CFP Franc"),
    ("YER", 2, "Yemeni Rial"),
    ("ZAR", 2, "Rand"),
    ("ZMW", 2, "Zambian Kwacha"),
    ("ZWG", 2, "Zimbabwe Gold"),
)

#: Every known currency by upper-case code (read-only).
CURRENCIES: Mapping[str, Currency] = MappingProxyType(
    {code: Currency(code, exponent, name) for code, exponent, name in _TABLE}
)

_CODE = re.compile(r"[A-Za-z]{3}")


def currency(code: str | Currency) -> Currency:
    """Return the :class:`Currency` for an ISO 4217 code, given in any letter case.

    Raises :class:`MoneyError` for a code that is not three letters or not in the table,
    and ``TypeError`` for something that is not a string.
    """
    if isinstance(code, Currency):
        code = code.code  # look it up anyway: the table, not the caller, owns exponents
    if not isinstance(code, str):
        raise TypeError(f"a currency code must be a str, not {type(code).__name__}")
    if not _CODE.fullmatch(code):
        raise MoneyError(f"malformed currency code {code!r}: expected three letters such as 'USD'")
    found = CURRENCIES.get(code.upper())
    if found is None:
        raise MoneyError(f"unknown currency {code.upper()!r}")
    return found


_lookup = currency  # for functions and methods whose parameter is named ``currency``
_KNOWN_CODES = frozenset(CURRENCIES)  # upper-case codes already in the table

_ROUNDING_MODES = frozenset({
    ROUND_05UP, ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR,
    ROUND_HALF_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP,
})


def _round(value: Fraction, rounding: str) -> int:
    """Round an exact fraction to an integer with a :mod:`decimal` rounding mode.

    Working on fractions rather than Decimal keeps the result exact whatever the size of
    the numbers; Decimal arithmetic would silently round to the context precision.
    """
    if rounding not in _ROUNDING_MODES:
        raise MoneyError(f"unknown rounding mode {rounding!r}; use a decimal.ROUND_* constant")
    floor, rest = divmod(value.numerator, value.denominator)
    if rest == 0:
        return floor
    ceiling = floor + 1
    negative = value < 0
    toward_zero, away_from_zero = (ceiling, floor) if negative else (floor, ceiling)
    if rounding == ROUND_FLOOR:
        return floor
    if rounding == ROUND_CEILING:
        return ceiling
    if rounding == ROUND_DOWN:
        return toward_zero
    if rounding == ROUND_UP:
        return away_from_zero
    if rounding == ROUND_05UP:
        return away_from_zero if toward_zero % 5 == 0 else toward_zero
    twice = 2 * rest
    if twice < value.denominator:
        return floor
    if twice > value.denominator:
        return ceiling
    if rounding == ROUND_HALF_UP:
        return away_from_zero
    if rounding == ROUND_HALF_DOWN:
        return toward_zero
    return floor if floor % 2 == 0 else ceiling  # ROUND_HALF_EVEN


def _exact(value, what: str) -> Fraction:
    """An int, Decimal or Fraction as an exact Fraction; floats and bools are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, Fraction)):
        raise TypeError(f"{what} must be an int, Decimal or Fraction, not {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise MoneyError(f"{what} must be a finite number, not {value}")
    return Fraction(value)


def _number_text(minor: int, exponent: int, grouped: bool) -> str:
    whole, part = divmod(abs(minor), 10 ** exponent)
    text = f"{whole:,}" if grouped else str(whole)
    if exponent:
        text += "." + str(part).zfill(exponent)
    return "-" + text if minor < 0 else text


@dataclass(frozen=True, repr=False)
class Money:
    """An exact amount: ``minor`` whole minor units of the currency coded ``currency``.

    ``Money(123450, "KES")`` is KES 1,234.50. Instances are immutable and hashable; two
    amounts are equal when both the units and the currency are. ``==`` between different
    currencies is simply ``False`` (so amounts can live in sets and dicts), while ordering
    and arithmetic across currencies raise :class:`CurrencyMismatch`.
    """

    minor: int
    currency: str

    def __post_init__(self):
        minor = self.minor
        if isinstance(minor, bool) or not isinstance(minor, int):
            raise TypeError(
                f"Money needs a whole number of minor units (int), not {type(minor).__name__} "
                f"{minor!r}; use Money.from_major() or parse() for major-unit amounts"
            )
        if type(minor) is not int:
            object.__setattr__(self, "minor", int(minor))  # int subclasses (IntEnum...) become int
        code = self.currency
        if type(code) is not str or code not in _KNOWN_CODES:  # the common case skips the lookup
            object.__setattr__(self, "currency", _lookup(code).code)

    # --- construction ---------------------------------------------------------------

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Nothing, in ``currency``."""
        return cls(0, currency)

    @classmethod
    def from_major(cls, value: Decimal | int | str, currency: str, rounding: str | None = None) -> Money:
        """The amount ``value`` in major units (``Decimal("12.50")`` dollars), exactly.

        ``value`` may be an int, a Decimal or a numeric string (``"12.50"``); floats are
        refused. If it has more decimals than the currency allows, ``MoneyError`` is
        raised unless ``rounding`` (a ``decimal.ROUND_*`` mode) says how to round.
        """
        cur = _lookup(currency)
        if isinstance(value, str):
            try:
                value = Decimal(value)
            except InvalidOperation:
                raise MoneyError(f"{value!r} is not a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise TypeError(f"a major-unit amount must be a Decimal, int or str, not {type(value).__name__}")
        minor = _exact(value, "a major-unit amount") * 10 ** cur.exponent
        if minor.denominator != 1 and rounding is None:
            raise MoneyError(
                f"{value} {cur.code} is not a whole number of minor units "
                f"({_places(cur)}); pass rounding= to round it"
            )
        return cls(_round(minor, rounding or ROUND_HALF_UP), cur.code)

    @classmethod
    def from_dict(cls, data: Mapping) -> Money:
        """The inverse of :meth:`to_dict`: ``{"minor": int, "currency": code}``, nothing else."""
        if not isinstance(data, Mapping):
            raise TypeError(f"Money.from_dict needs a mapping, not {type(data).__name__}")
        if set(data) != {"minor", "currency"}:
            raise MoneyError(f"a money object has exactly the keys 'minor' and 'currency', got {sorted(map(str, data))}")
        minor = data["minor"]
        # The data came from storage or over the wire, so a wrong type is bad input.
        if isinstance(minor, bool) or not isinstance(minor, int):
            raise MoneyError(f"'minor' must be an integer, got {minor!r}")
        if not isinstance(data["currency"], str):
            raise MoneyError(f"'currency' must be a currency code, got {data['currency']!r}")
        return cls(minor, data["currency"])

    @classmethod
    def sum(cls, items: Iterable[Money], currency: str) -> Money:
        """The total of ``items``, all in ``currency``; ``Money.zero(currency)`` when empty.

        Prefer this to the builtin ``sum()``, which also works (see :meth:`__radd__`) but
        returns the int ``0`` for an empty iterable.
        """
        total = cls.zero(currency)
        for item in items:
            total = total + item
        return total

    # --- views ----------------------------------------------------------------------

    @property
    def amount(self) -> Decimal:
        """The exact value in major units, with exactly ``exponent`` decimals (``Decimal('1234.50')``)."""
        sign, digits, _ = Decimal(self.minor).as_tuple()
        return Decimal((sign, digits, -_lookup(self.currency).exponent))

    def to_dict(self) -> dict:
        """The JSON form ``{"minor": 123450, "currency": "KES"}``."""
        return {"minor": self.minor, "currency": self.currency}

    def format_plain(self) -> str:
        """The amount without grouping or code, for forms and CSV: ``"-1234.50"``."""
        return _number_text(self.minor, _lookup(self.currency).exponent, grouped=False)

    def __str__(self) -> str:
        """Code, space, signed grouped amount: ``"KES 1,234.50"``, ``"KES -1,234.50"``.

        The sign sits on the number, not before the code, so columns of codes line up.
        """
        return f"{self.currency} {_number_text(self.minor, _lookup(self.currency).exponent, grouped=True)}"

    def __repr__(self) -> str:
        return f"Money({self.minor!r}, {self.currency!r})"

    def __bool__(self) -> bool:
        return self.minor != 0

    # --- arithmetic -----------------------------------------------------------------

    def _same(self, other: Money, operation: str) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency, operation)

    def __add__(self, other):
        if isinstance(other, Money):
            self._same(other, "add")
            return Money(self.minor + other.minor, self.currency)
        if isinstance(other, Number):
            raise TypeError(f"cannot add {type(other).__name__} to Money; make it a Money first")
        return NotImplemented

    def __radd__(self, other):
        """``0 + money`` is ``money``, so that the builtin ``sum()`` works.

        Only the int ``0`` (``sum()``'s start value) is accepted; any other number raises
        ``TypeError``. Note that ``money + 0`` is still an error.
        """
        if type(other) is int and other == 0:
            return self
        if isinstance(other, Number):
            raise TypeError(f"cannot add Money to {type(other).__name__}; make it a Money first")
        return NotImplemented

    def __sub__(self, other):
        if isinstance(other, Money):
            self._same(other, "subtract")
            return Money(self.minor - other.minor, self.currency)
        if isinstance(other, Number):
            raise TypeError(f"cannot subtract {type(other).__name__} from Money; make it a Money first")
        return NotImplemented

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money(abs(self.minor), self.currency)

    def __mul__(self, other):
        """``money * n`` for a whole number ``n``; use :meth:`multiply` for rates."""
        if isinstance(other, int) and not isinstance(other, bool):
            return Money(self.minor * other, self.currency)
        if isinstance(other, Number):
            raise TypeError(
                f"Money can only be multiplied by an int, not {type(other).__name__}; "
                f"use Money.multiply(rate, rounding=...) for rates"
            )
        return NotImplemented

    __rmul__ = __mul__

    def multiply(self, rate: Decimal | int | Fraction, rounding: str = ROUND_HALF_UP) -> Money:
        """This amount times ``rate``, rounded to whole minor units with ``rounding``.

        The product is computed exactly and rounded once, by default half away from zero
        (``decimal.ROUND_HALF_UP``): 0.5 of a unit becomes 1 and -0.5 becomes -1.
        """
        return Money(_round(self.minor * _exact(rate, "a rate"), rounding), self.currency)

    def allocate(self, weights: Sequence[int | Decimal | Fraction]) -> list[Money]:
        """Split this amount in proportion to ``weights`` without losing or making a unit.

        The parts add up exactly to this amount and each is within one minor unit of its
        exact share: every part gets the floor of its share, and the units left over go
        one each to the largest remainders, earlier positions first on ties. A negative
        amount splits as the mirror image of the positive one. Weights are non-negative
        ints, Decimals or Fractions with a positive total.
        """
        shares = [_exact(w, "a weight") for w in weights]
        if not shares:
            raise MoneyError("cannot allocate over no weights")
        if any(w < 0 for w in shares):
            raise MoneyError(f"allocation weights must not be negative, got {list(weights)}")
        total = sum(shares)
        if total == 0:
            raise MoneyError("cannot allocate over weights that are all zero")
        units = abs(self.minor)
        exact = [units * w / total for w in shares]
        parts = [share.numerator // share.denominator for share in exact]
        left = units - sum(parts)
        by_remainder = sorted(range(len(parts)), key=lambda i: (parts[i] - exact[i], i))
        for i in by_remainder[:left]:
            parts[i] += 1
        sign = -1 if self.minor < 0 else 1
        return [Money(sign * p, self.currency) for p in parts]

    def split(self, n: int) -> list[Money]:
        """Split into ``n`` parts as equal as possible; the first parts get the odd units."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"split needs an int number of parts, not {type(n).__name__}")
        if n < 1:
            raise MoneyError(f"cannot split into {n} parts")
        return self.allocate([1] * n)

    # --- comparison -----------------------------------------------------------------

    def _key(self, other, operation: str):
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, operation)
        return other.minor

    def __lt__(self, other):
        key = self._key(other, "compare")
        return key if key is NotImplemented else self.minor < key

    def __le__(self, other):
        key = self._key(other, "compare")
        return key if key is NotImplemented else self.minor <= key

    def __gt__(self, other):
        key = self._key(other, "compare")
        return key if key is NotImplemented else self.minor > key

    def __ge__(self, other):
        key = self._key(other, "compare")
        return key if key is NotImplemented else self.minor >= key


def _places(cur: Currency) -> str:
    if cur.exponent == 0:
        return f"{cur.code} allows no decimal places"
    return f"{cur.code} allows at most {cur.exponent} decimal place{'s' if cur.exponent > 1 else ''}"


# Thousands separators accepted by parse(): comma, space, no-break space, narrow
# no-break space, thin space, apostrophe and right single quote (Swiss style).
_SEPARATORS = ",' \u00a0\u202f\u2009\u2019"
_CODE_PREFIX = re.compile(r"([+-]?)([A-Za-z]{3})\s*(.*)", re.DOTALL)
_CODE_SUFFIX = re.compile(r"(.*?)\s*([A-Za-z]{3})", re.DOTALL)
_NUMBER_START = frozenset("+-.0123456789")
_NUMBER_END = frozenset(".0123456789")
_GROUPED = {sep: re.compile(rf"[0-9]{{1,3}}(?:{re.escape(sep)}[0-9]{{3}})+") for sep in _SEPARATORS}


def parse(text: str, currency: str) -> Money:
    """Read an amount a person typed, in ``currency``.

    Accepted: an optional sign, ASCII digits, optionally grouped in threes by one kind of
    thousands separator (``,``, a space, a no-break or thin space, or an apostrophe), an
    optional ``.`` followed by at most as many decimals as the currency has, and an
    optional currency code before or after the number, which must be ``currency``.
    Surrounding whitespace is ignored. Examples for USD: ``"1,234.50"``, ``"-3.10"``,
    ``"+3"``, ``"USD 1 000"``, ``"-USD 5"``, ``"12.5 usd"``.

    Anything else raises :class:`MoneyError` quoting the input and saying what is wrong:
    ``'1.005': USD allows at most 2 decimal places``. ``str(money)`` and
    :meth:`Money.format_plain` both read back to the same amount.
    """
    cur = _lookup(currency)
    if not isinstance(text, str):
        raise TypeError(f"parse needs a str, not {type(text).__name__}")

    def fail(reason: str) -> MoneyError:
        return MoneyError(f"{text!r}: {reason}")

    body = text.strip()
    if not body:
        raise fail("no amount given")

    sign = ""
    code = None
    prefix = _CODE_PREFIX.fullmatch(body)
    suffix = _CODE_SUFFIX.fullmatch(body)
    # A code only counts when a number sits next to it, so "NaN" or "inf" are reported as
    # not-a-number rather than as a wrong currency.
    if prefix and prefix.group(3)[:1] in _NUMBER_START:
        sign, code, body = prefix.groups()
    elif suffix and suffix.group(1)[-1:] in _NUMBER_END:
        body, code = suffix.groups()
    if code is not None and code.upper() != cur.code:
        raise fail(f"currency {code.upper()} does not match {cur.code}")

    if body[:1] in ("+", "-"):
        if sign:
            raise fail("more than one sign")
        sign, body = body[0], body[1:].lstrip()
    if not body:
        raise fail("no digits")
    for char in body:
        if not (char in "0123456789." or char in _SEPARATORS):
            raise fail(f"unexpected character {char!r}")
    if body.count(".") > 1:
        raise fail("more than one decimal point")
    whole, point, decimals = body.partition(".")
    if point and (not whole or not decimals):
        raise fail("a decimal point needs digits on both sides")
    if decimals and not decimals.isdigit():
        raise fail("thousands separators are not allowed after the decimal point")
    if not whole.isdigit():
        used = {c for c in whole if c in _SEPARATORS}
        if len(used) > 1 or not _GROUPED[used.pop()].fullmatch(whole):
            raise fail("misplaced thousands separator (group digits in threes, use '.' for decimals)")
    if len(decimals) > cur.exponent:
        raise fail(_places(cur))

    digits = "".join(c for c in whole if c.isdigit()) + decimals.ljust(cur.exponent, "0")
    minor = int(digits)
    return Money(-minor if sign == "-" else minor, cur.code)
