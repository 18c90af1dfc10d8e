"""Tests for core.money: currencies, Money arithmetic, allocation, parsing and formatting."""

from __future__ import annotations

import copy
import pickle
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
    localcontext,
)
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.errors import WispbillError
from core.money import (
    CURRENCIES,
    Currency,
    CurrencyMismatch,
    Money,
    MoneyError,
    currency,
    parse,
)

PROPERTY = settings(max_examples=200, deadline=None)
ALL_MODES = [ROUND_05UP, ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR,
             ROUND_HALF_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP]

codes = st.sampled_from(sorted(CURRENCIES))
# One currency of each exponent, so every property also runs on 0, 2 and 3 decimals.
codes_by_exponent = st.sampled_from(["JPY", "USD", "KWD", "UGX", "KES", "BHD"])
minors = st.integers(min_value=-10**15, max_value=10**15)


@st.composite
def monies(draw, code=None):
    return Money(draw(minors), code or draw(st.one_of(codes, codes_by_exponent)))


# --- currencies ----------------------------------------------------------------------

REQUIRED = {
    "USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3,
    "TND": 3, "KES": 2, "NGN": 2, "ZAR": 2, "INR": 2, "PHP": 2, "UGX": 0, "TZS": 2,
    "RWF": 0, "GHS": 2, "XOF": 0, "XAF": 0, "KRW": 0, "CLP": 0, "VND": 0, "ISK": 0,
    "CAD": 2, "AUD": 2, "NZD": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2,
    "CZK": 2, "HUF": 2, "BRL": 2, "MXN": 2, "ARS": 2, "COP": 2, "PEN": 2, "IDR": 2,
    "MYR": 2, "THB": 2, "PKR": 2, "BDT": 2, "EGP": 2, "MAD": 2, "ETB": 2, "ZMW": 2,
    "MWK": 2, "BWP": 2, "NAD": 2, "CNY": 2, "HKD": 2, "SGD": 2, "AED": 2, "SAR": 2,
    "TRY": 2, "UAH": 2, "RUB": 2,
}


@pytest.mark.parametrize("code, exponent", sorted(REQUIRED.items()))
def test_required_currencies_have_their_iso_exponent(code, exponent):
    assert currency(code).exponent == exponent
    assert currency(code).code == code


def test_table_entries_are_well_formed():
    assert len(CURRENCIES) >= 150
    for code, cur in CURRENCIES.items():
        assert cur.code == code
        assert len(code) == 3 and code.isalpha() and code.isupper() and code.isascii()
        assert cur.exponent in (0, 2, 3)
        assert cur.name


def test_table_is_read_only():
    with pytest.raises(TypeError):
        CURRENCIES["ABC"] = Currency("ABC", 2, "Nothing")  # type: ignore[index]


def test_currency_lookup_ignores_case_and_returns_upper():
    assert currency("kes") == Currency("KES", 2, "Kenyan Shilling")
    assert currency("jPy").code == "JPY"


def test_currency_accepts_a_currency_but_trusts_the_table():
    assert currency(Currency("usd", 5, "fake")).exponent == 2


def test_currency_is_frozen():
    with pytest.raises(AttributeError):
        currency("USD").exponent = 3  # type: ignore[misc]


@pytest.mark.parametrize("code, message", [
    ("XYZ", "unknown currency 'XYZ'"),
    ("abc", "unknown currency 'ABC'"),
    ("US", "malformed currency code 'US': expected three letters such as 'USD'"),
    ("USDD", "malformed currency code 'USDD': expected three letters such as 'USD'"),
    ("", "malformed currency code '': expected three letters such as 'USD'"),
    ("12A", "malformed currency code '12A': expected three letters such as 'USD'"),
    (" USD", "malformed currency code ' USD': expected three letters such as 'USD'"),
    ("ÜSD", "malformed currency code 'ÜSD': expected three letters such as 'USD'"),
])
def test_bad_currency_codes_raise_money_error(code, message):
    with pytest.raises(MoneyError) as caught:
        currency(code)
    assert str(caught.value) == message


def test_currency_code_must_be_a_string():
    with pytest.raises(TypeError):
        currency(840)  # type: ignore[arg-type]


def test_error_hierarchy():
    assert issubclass(MoneyError, ValueError)
    assert issubclass(MoneyError, WispbillError)
    assert issubclass(CurrencyMismatch, MoneyError)


# --- construction --------------------------------------------------------------------

def test_money_stores_minor_units_and_upper_case_code():
    m = Money(123450, "kes")
    assert m.minor == 123450
    assert m.currency == "KES"
    assert Money(5, currency("usd")).currency == "USD"


def test_int_subclasses_are_stored_as_plain_int():
    class Units(int):
        pass

    assert type(Money(Units(7), "USD").minor) is int


@pytest.mark.parametrize("bad", [1.0, 1.5, True, False, Decimal("1"), Fraction(1), "100", None])
def test_constructor_refuses_non_int_minor(bad):
    with pytest.raises(TypeError, match="whole number of minor units"):
        Money(bad, "USD")


def test_constructor_validates_currency():
    with pytest.raises(MoneyError, match="unknown currency 'XYZ'"):
        Money(1, "XYZ")


def test_money_is_immutable():
    m = Money(1, "USD")
    with pytest.raises(AttributeError):
        m.minor = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        m.other = 2  # type: ignore[attr-defined]
    assert m.minor == 1


def test_money_is_hashable_and_equal_by_value():
    assert len({Money(1, "USD"), Money(1, "usd"), Money(1, "EUR"), Money(2, "USD")}) == 3
    assert {Money(5, "KES"): "x"}[Money(5, "KES")] == "x"


def test_equality_across_currencies_is_false_not_an_error():
    assert Money(1, "USD") != Money(1, "EUR")
    assert not (Money(1, "USD") == Money(1, "EUR"))
    assert Money(1, "USD") in [Money(1, "EUR"), Money(1, "USD")]
    assert Money(0, "USD") != 0


def test_zero_and_bool():
    assert Money.zero("jpy") == Money(0, "JPY")
    assert not Money.zero("USD")
    assert Money(1, "USD")
    assert Money(-1, "USD")


def test_money_survives_pickle_and_copy():
    m = Money(-12345, "KWD")
    assert pickle.loads(pickle.dumps(m)) == m
    assert copy.deepcopy(m) == m


@pytest.mark.parametrize("value, code, minor", [
    (Decimal("12.50"), "USD", 1250),
    (Decimal("12.5"), "USD", 1250),
    (12, "USD", 1200),
    ("1234.5", "KES", 123450),
    ("-0.01", "EUR", -1),
    (Decimal("1500"), "JPY", 1500),
    ("1.234", "KWD", 1234),
    (Decimal("1.000"), "JPY", 1),
])
def test_from_major_exact(value, code, minor):
    assert Money.from_major(value, code) == Money(minor, code)


@pytest.mark.parametrize("value, code, message", [
    (Decimal("1.005"), "USD",
     "1.005 USD is not a whole number of minor units (USD allows at most 2 decimal places); "
     "pass rounding= to round it"),
    ("1.5", "JPY",
     "1.5 JPY is not a whole number of minor units (JPY allows no decimal places); "
     "pass rounding= to round it"),
    ("NaN", "USD", "a major-unit amount must be a finite number, not NaN"),
    (Decimal("Infinity"), "USD", "a major-unit amount must be a finite number, not Infinity"),
    ("12,50", "USD", "'12,50' is not a number"),
])
def test_from_major_refuses_inexact_or_non_numbers(value, code, message):
    with pytest.raises(MoneyError) as caught:
        Money.from_major(value, code)
    assert str(caught.value) == message


@pytest.mark.parametrize("value, code, rounding, minor", [
    (Decimal("1.005"), "USD", ROUND_HALF_UP, 101),
    (Decimal("1.005"), "USD", ROUND_HALF_EVEN, 100),
    (Decimal("-1.005"), "USD", ROUND_HALF_UP, -101),
    (Decimal("1.009"), "USD", ROUND_DOWN, 100),
    ("2.5", "JPY", ROUND_HALF_EVEN, 2),
    ("2.5", "JPY", ROUND_HALF_UP, 3),
    ("0.0005", "KWD", ROUND_HALF_UP, 1),
])
def test_from_major_rounds_only_when_told(value, code, rounding, minor):
    assert Money.from_major(value, code, rounding=rounding) == Money(minor, code)


@pytest.mark.parametrize("bad", [1.5, 1.0, True])
def test_from_major_refuses_floats_and_bools(bad):
    with pytest.raises(TypeError):
        Money.from_major(bad, "USD")


@given(monies())
@PROPERTY
def test_from_major_inverts_amount(m):
    assert Money.from_major(m.amount, m.currency) == m


# --- amount, formatting and serialisation --------------------------------------------

@pytest.mark.parametrize("m, amount", [
    (Money(123450, "KES"), "1234.50"),
    (Money(-5, "USD"), "-0.05"),
    (Money(0, "USD"), "0.00"),
    (Money(1500, "JPY"), "1500"),
    (Money(-1, "KWD"), "-0.001"),
])
def test_amount_is_exact_decimal_with_currency_scale(m, amount):
    assert isinstance(m.amount, Decimal)
    assert str(m.amount) == amount


def test_amount_is_exact_beyond_decimal_context_precision():
    m = Money(10**40 + 1, "USD")
    assert Fraction(m.amount) == Fraction(10**40 + 1, 100)
    assert str(m.amount) == "1" + "0" * 37 + "0.01"


@pytest.mark.parametrize("m, text, plain", [
    (Money(123450, "KES"), "KES 1,234.50", "1234.50"),
    (Money(-123450, "KES"), "KES -1,234.50", "-1234.50"),
    (Money(5, "USD"), "USD 0.05", "0.05"),
    (Money(-5, "USD"), "USD -0.05", "-0.05"),
    (Money(0, "EUR"), "EUR 0.00", "0.00"),
    (Money(123456789, "USD"), "USD 1,234,567.89", "1234567.89"),
    (Money(1234567, "JPY"), "JPY 1,234,567", "1234567"),
    (Money(-7, "UGX"), "UGX -7", "-7"),
    (Money(1234567, "KWD"), "KWD 1,234.567", "1234.567"),
    (Money(-5, "BHD"), "BHD -0.005", "-0.005"),
    (Money(100000, "OMR"), "OMR 100.000", "100.000"),
])
def test_formatting(m, text, plain):
    assert str(m) == text
    assert m.format_plain() == plain


def test_repr():
    assert repr(Money(123450, "kes")) == "Money(123450, 'KES')"
    assert repr(Money(-1, "JPY")) == "Money(-1, 'JPY')"


@given(monies())
@PROPERTY
def test_amount_and_plain_format_agree(m):
    assert str(m.amount) == m.format_plain()


def test_to_dict():
    assert Money(123450, "kes").to_dict() == {"minor": 123450, "currency": "KES"}


@given(monies())
@PROPERTY
def test_dict_round_trip(m):
    d = m.to_dict()
    assert type(d["minor"]) is int
    assert Money.from_dict(d) == m


@pytest.mark.parametrize("data, message", [
    ({"minor": 1}, "exactly the keys"),
    ({"minor": 1, "currency": "USD", "extra": 1}, "exactly the keys"),
    ({"minor": 1.5, "currency": "USD"}, "'minor' must be an integer"),
    ({"minor": "150", "currency": "USD"}, "'minor' must be an integer"),
    ({"minor": True, "currency": "USD"}, "'minor' must be an integer"),
    ({"minor": 1, "currency": 840}, "'currency' must be a currency code"),
    ({"minor": 1, "currency": "XYZ"}, "unknown currency 'XYZ'"),
])
def test_from_dict_rejects_bad_data(data, message):
    with pytest.raises(MoneyError, match=message):
        Money.from_dict(data)


def test_from_dict_needs_a_mapping():
    with pytest.raises(TypeError):
        Money.from_dict([("minor", 1), ("currency", "USD")])  # type: ignore[arg-type]


# --- arithmetic ----------------------------------------------------------------------

def test_add_subtract_negate_abs():
    a, b = Money(1050, "USD"), Money(-300, "USD")
    assert a + b == Money(750, "USD")
    assert a - b == Money(1350, "USD")
    assert -a == Money(-1050, "USD")
    assert +b == b
    assert abs(b) == Money(300, "USD")
    assert abs(a) == a


def test_comparisons_within_a_currency():
    small, big = Money(1, "KES"), Money(2, "KES")
    assert small < big and small <= big and big > small and big >= small
    assert small <= Money(1, "KES") and small >= Money(1, "KES")
    assert not (big < small) and not (small > big)
    assert max([small, big, Money(-5, "KES")]) == big
    assert sorted([big, Money(-5, "KES"), small]) == [Money(-5, "KES"), small, big]


@pytest.mark.parametrize("operation", [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a < b,
    lambda a, b: a <= b,
    lambda a, b: a > b,
    lambda a, b: a >= b,
    lambda a, b: Money.sum([a, b], "USD"),
])
def test_mixing_currencies_raises_naming_both(operation):
    with pytest.raises(CurrencyMismatch) as caught:
        operation(Money(1, "USD"), Money(1, "EUR"))
    assert "USD" in str(caught.value) and "EUR" in str(caught.value)
    assert {caught.value.left, caught.value.right} == {"USD", "EUR"}


@pytest.mark.parametrize("number", [1, 0, 1.5, 0.0, Decimal("1"), Fraction(1, 2), True])
def test_adding_plain_numbers_raises_type_error(number):
    m = Money(100, "USD")
    with pytest.raises(TypeError):
        m + number
    with pytest.raises(TypeError):
        m - number


@pytest.mark.parametrize("number", [1, -1, 0.0, 1.5, Decimal("0"), False])
def test_only_int_zero_may_be_added_on_the_left(number):
    with pytest.raises(TypeError):
        number + Money(100, "USD")


def test_comparing_with_a_number_raises_type_error():
    with pytest.raises(TypeError):
        Money(1, "USD") < 2  # noqa: B015


def test_builtin_sum_works_via_zero_radd():
    parts = [Money(100, "USD"), Money(250, "USD"), Money(-50, "USD")]
    assert 0 + parts[0] == parts[0]
    assert sum(parts) == Money(300, "USD")
    assert sum([]) == 0  # the documented caveat: use Money.sum for possibly-empty input


def test_money_sum():
    assert Money.sum([], "usd") == Money(0, "USD")
    assert Money.sum((Money(i, "KES") for i in range(5)), "KES") == Money(10, "KES")
    with pytest.raises(TypeError):
        Money.sum([Money(1, "USD"), 2], "USD")


@given(monies(code="USD"), monies(code="USD"), monies(code="USD"))
@PROPERTY
def test_addition_is_associative_and_commutative(a, b, c):
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a
    assert (a + b) - b == a
    assert a + Money.zero("USD") == a
    assert a - a == Money.zero("USD")


@given(monies(), st.integers(min_value=-1000, max_value=1000))
@PROPERTY
def test_integer_multiplication(m, n):
    assert m * n == Money(m.minor * n, m.currency)
    assert n * m == m * n


@pytest.mark.parametrize("factor", [1.5, 2.0, Decimal("2"), Fraction(1, 2), True, "2"])
def test_star_multiplication_only_takes_int(factor):
    with pytest.raises(TypeError):
        Money(100, "USD") * factor
    with pytest.raises(TypeError):
        factor * Money(100, "USD")


@pytest.mark.parametrize("minor, rate, rounding, expected", [
    (1, Decimal("0.5"), ROUND_HALF_UP, 1),      # 0.5 of a unit rounds up
    (-1, Decimal("0.5"), ROUND_HALF_UP, -1),    # -0.5 rounds away from zero
    (3, Decimal("0.5"), ROUND_HALF_UP, 2),      # 1.5
    (5, Decimal("0.5"), ROUND_HALF_UP, 3),      # 2.5
    (5, Decimal("0.5"), ROUND_HALF_EVEN, 2),
    (7, Decimal("0.5"), ROUND_HALF_EVEN, 4),
    (-5, Decimal("0.5"), ROUND_HALF_DOWN, -2),
    (1, Decimal("0.49"), ROUND_HALF_UP, 0),
    (-1, Decimal("0.5"), ROUND_FLOOR, -1),
    (-1, Decimal("0.5"), ROUND_DOWN, 0),
    (1, Decimal("0.1"), ROUND_CEILING, 1),
    (1, Decimal("0.1"), ROUND_UP, 1),
    (1999, Decimal("0.16"), ROUND_HALF_UP, 320),  # 16% VAT on 19.99: 3.1984
    (10000, Decimal("0.075"), ROUND_HALF_UP, 750),
    (333, Decimal("1.5"), ROUND_HALF_UP, 500),    # 499.5
    (100, 3, ROUND_HALF_UP, 300),
    (100, Fraction(1, 3), ROUND_HALF_UP, 33),
])
def test_multiply_rounds_explicitly(minor, rate, rounding, expected):
    assert Money(minor, "USD").multiply(rate, rounding=rounding) == Money(expected, "USD")


def test_multiply_defaults_to_half_up():
    assert Money(5, "USD").multiply(Decimal("0.5")) == Money(3, "USD")
    assert Money(-5, "USD").multiply(Decimal("0.5")) == Money(-3, "USD")


@pytest.mark.parametrize("rate", [0.5, 1.0, True, "0.5"])
def test_multiply_refuses_floats_bools_and_text(rate):
    with pytest.raises(TypeError):
        Money(100, "USD").multiply(rate)


@pytest.mark.parametrize("rate", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_multiply_refuses_non_finite_rates(rate):
    with pytest.raises(MoneyError, match="finite"):
        Money(100, "USD").multiply(rate)


def test_multiply_refuses_unknown_rounding_mode():
    with pytest.raises(MoneyError, match="unknown rounding mode"):
        Money(100, "USD").multiply(Decimal("0.5"), rounding="HALF_UP")


rates = st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"),
                    allow_nan=False, allow_infinity=False, places=6)


@given(minors, rates, st.sampled_from(ALL_MODES))
@PROPERTY
def test_multiply_agrees_with_decimal_quantize(minor, rate, rounding):
    with localcontext() as ctx:
        ctx.prec = 100  # big enough that Decimal does not round before quantize
        expected = (Decimal(minor) * rate).quantize(Decimal(1), rounding=rounding)
    assert Money(minor, "USD").multiply(rate, rounding=rounding) == Money(int(expected), "USD")


# --- allocation ----------------------------------------------------------------------

@pytest.mark.parametrize("minor, weights, expected", [
    (100, [1, 1, 1], [34, 33, 33]),
    (-100, [1, 1, 1], [-34, -33, -33]),
    (7, [1, 1, 1], [3, 2, 2]),
    (10, [1, 3], [3, 7]),                   # 2.5 / 7.5: tie goes to the earlier part
    (10, [1, 2, 3], [2, 3, 5]),             # 1.67 / 3.33 / 5: largest remainder first
    (10, [3, 2, 1], [5, 3, 2]),
    (100, [0, 1], [0, 100]),
    (1, [0, 0, 1, 0], [0, 0, 1, 0]),
    (5, [Decimal("0.5"), Decimal("0.25"), Decimal("0.25")], [3, 1, 1]),
    (0, [1, 2], [0, 0]),
    (2, [1, 1, 1], [1, 1, 0]),
])
def test_allocate_examples(minor, weights, expected):
    parts = Money(minor, "KES").allocate(weights)
    assert parts == [Money(p, "KES") for p in expected]


@pytest.mark.parametrize("weights, message", [
    ([], "no weights"),
    ([0, 0], "all zero"),
    ([1, -1], "must not be negative"),
    ([Decimal("-0.5"), Decimal("1")], "must not be negative"),
    ([Decimal("NaN")], "finite"),
])
def test_allocate_rejects_bad_weights(weights, message):
    with pytest.raises(MoneyError, match=message):
        Money(100, "USD").allocate(weights)


@pytest.mark.parametrize("weights", [[0.5, 0.5], [1, 1.0], [True, False], ["1", "2"]])
def test_allocate_refuses_float_bool_and_text_weights(weights):
    with pytest.raises(TypeError):
        Money(100, "USD").allocate(weights)


weight_values = st.one_of(
    st.integers(min_value=0, max_value=10**6),
    st.decimals(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False, places=3),
)


@given(monies(), st.lists(weight_values, min_size=1, max_size=12))
@PROPERTY
def test_allocation_is_exact_and_fair(m, weights):
    total = sum(Fraction(w) for w in weights)
    assume(total > 0)
    parts = m.allocate(weights)
    assert len(parts) == len(weights)
    assert all(p.currency == m.currency for p in parts)
    assert Money.sum(parts, m.currency) == m
    exact = [Fraction(m.minor) * Fraction(w) / total for w in weights]
    for part, share in zip(parts, exact):
        assert abs(part.minor - share) < 1
        if share == 0:
            assert part.minor == 0
    # Units beyond the floor went to the largest remainders, earlier parts first on ties.
    size = [abs(share) for share in exact]
    rest = [s - int(s) for s in size]
    extra = [abs(p.minor) - int(s) for p, s in zip(parts, size)]
    assert set(extra) <= {0, 1}
    for i, got in enumerate(extra):
        for j, other in enumerate(extra):
            if got and not other:
                assert rest[i] > rest[j] or (rest[i] == rest[j] and i < j)


@given(monies(), st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=8))
@PROPERTY
def test_allocation_of_a_negative_amount_mirrors_the_positive(m, weights):
    assume(any(weights))
    assert (-m).allocate(weights) == [-p for p in m.allocate(weights)]


@given(monies(), st.integers(min_value=1, max_value=50))
@PROPERTY
def test_split_is_even_and_exact(m, n):
    parts = m.split(n)
    assert len(parts) == n
    assert Money.sum(parts, m.currency) == m
    assert max(parts).minor - min(parts).minor <= 1
    assert parts == sorted(parts, reverse=m.minor >= 0)  # odd units go to the first parts


def test_split_rejects_bad_counts():
    with pytest.raises(MoneyError, match="0 parts"):
        Money(100, "USD").split(0)
    with pytest.raises(MoneyError, match="-2 parts"):
        Money(100, "USD").split(-2)
    with pytest.raises(TypeError):
        Money(100, "USD").split(2.0)  # type: ignore[arg-type]


# --- parsing -------------------------------------------------------------------------

@pytest.mark.parametrize("text, code, minor", [
    ("1,234.50", "USD", 123450),
    ("1234.5", "USD", 123450),
    ("  12 ", "USD", 1200),
    ("-3.10", "USD", -310),
    ("+3", "USD", 300),
    ("0", "USD", 0),
    ("-0.00", "USD", 0),
    ("0.05", "USD", 5),
    ("1,000,000", "USD", 100000000),
    ("1 234.50", "EUR", 123450),
    ("1\u00a0234.50", "EUR", 123450),
    ("1\u202f234.50", "EUR", 123450),
    ("1\u2009234.50", "EUR", 123450),
    ("1'234.50", "CHF", 123450),
    ("1\u2019234.50", "CHF", 123450),
    ("KES 1,000", "KES", 100000),
    ("1,000 KES", "KES", 100000),
    ("kes 1,000", "KES", 100000),
    ("KES1000.5", "KES", 100050),
    ("1000.5kes", "KES", 100050),
    ("-KES 5", "KES", -500),
    ("KES -5", "KES", -500),
    ("-5 KES", "KES", -500),
    ("- 5", "KES", -500),
    ("KES -1,234.50", "KES", -123450),
    ("1,500", "JPY", 1500),
    ("JPY 1,500", "JPY", 1500),
    ("1.5", "KWD", 1500),
    ("1.005", "KWD", 1005),
    ("-0.001", "BHD", -1),
    ("007", "USD", 700),
    ("1234567890123456789012345", "USD", 123456789012345678901234500),
])
def test_parse_accepts(text, code, minor):
    assert parse(text, code) == Money(minor, code)


@pytest.mark.parametrize("text, code, message", [
    ("", "USD", "'': no amount given"),
    ("   ", "USD", "'   ': no amount given"),
    ("abc", "USD", "'abc': unexpected character 'a'"),
    ("12a", "USD", "'12a': unexpected character 'a'"),
    ("$5", "USD", "'$5': unexpected character '$'"),
    ("NaN", "USD", "'NaN': unexpected character 'N'"),
    ("nan", "USD", "'nan': unexpected character 'n'"),
    ("inf", "USD", "'inf': unexpected character 'i'"),
    ("-Infinity", "USD", "'-Infinity': unexpected character 'I'"),
    ("1e3", "USD", "'1e3': unexpected character 'e'"),
    ("1E-2", "USD", "'1E-2': unexpected character 'E'"),
    ("1_000", "USD", "'1_000': unexpected character '_'"),
    ("\u0661\u0662", "USD", "'\u0661\u0662': unexpected character '\u0661'"),
    ("1.2.3", "USD", "'1.2.3': more than one decimal point"),
    ("1,23.4", "USD",
     "'1,23.4': misplaced thousands separator (group digits in threes, use '.' for decimals)"),
    ("12,34", "USD",
     "'12,34': misplaced thousands separator (group digits in threes, use '.' for decimals)"),
    ("1 234,50", "EUR",
     "'1 234,50': misplaced thousands separator (group digits in threes, use '.' for decimals)"),
    ("1,000 000", "USD",
     "'1,000 000': misplaced thousands separator (group digits in threes, use '.' for decimals)"),
    (",100", "USD",
     "',100': misplaced thousands separator (group digits in threes, use '.' for decimals)"),
    ("1000,", "USD",
     "'1000,': misplaced thousands separator (group digits in threes, use '.' for decimals)"),
    ("1.234,5", "USD", "'1.234,5': thousands separators are not allowed after the decimal point"),
    (".5", "USD", "'.5': a decimal point needs digits on both sides"),
    ("5.", "USD", "'5.': a decimal point needs digits on both sides"),
    ("1.005", "USD", "'1.005': USD allows at most 2 decimal places"),
    ("1.500", "USD", "'1.500': USD allows at most 2 decimal places"),
    ("1.5", "JPY", "'1.5': JPY allows no decimal places"),
    ("1.0", "JPY", "'1.0': JPY allows no decimal places"),
    ("1.0005", "KWD", "'1.0005': KWD allows at most 3 decimal places"),
    ("EUR 5", "USD", "'EUR 5': currency EUR does not match USD"),
    ("5 eur", "USD", "'5 eur': currency EUR does not match USD"),
    ("--5", "USD", "'--5': unexpected character '-'"),
    ("-USD -5", "USD", "'-USD -5': more than one sign"),
    ("5-", "USD", "'5-': unexpected character '-'"),
    ("-", "USD", "'-': no digits"),
])
def test_parse_rejects_with_a_clear_message(text, code, message):
    with pytest.raises(MoneyError) as caught:
        parse(text, code)
    assert str(caught.value) == message


def test_parse_validates_its_currency_and_input_type():
    with pytest.raises(MoneyError, match="unknown currency 'XYZ'"):
        parse("1", "XYZ")
    with pytest.raises(TypeError):
        parse(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse(150, "USD")  # type: ignore[arg-type]


@given(monies())
@PROPERTY
def test_parse_reads_back_plain_and_display_formats(m):
    assert parse(m.format_plain(), m.currency) == m
    assert parse(str(m), m.currency) == m
    assert parse(f"  {m.format_plain()} {m.currency.lower()} ", m.currency) == m


@given(monies(), st.sampled_from([",", " ", "\u00a0", "\u202f", "\u2009", "'", "\u2019"]))
@PROPERTY
def test_parse_accepts_each_thousands_separator(m, separator):
    grouped = str(m).split(" ", 1)[1].replace(",", separator)
    assert parse(grouped, m.currency) == m


@given(codes_by_exponent, st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=3))
@PROPERTY
def test_parse_rejects_one_decimal_too_many(code, whole, extra):
    places = currency(code).exponent + extra
    text = f"{whole}." + "1" * places
    with pytest.raises(MoneyError, match=f"{code} allows"):
        parse(text, code)
