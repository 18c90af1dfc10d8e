"""The bundles plugin: definitions, discount rules, the pricing hooks and the settings cache.

Rule tests build ``DraftInvoice`` objects by hand and need no database; the settings and
end-to-end tests run on both backends through the ``db`` and ``pm`` fixtures.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import plugins.bundles as bundles_plugin
from core import pricing, settings
from core.errors import ValidationError
from core.hooktypes import DraftInvoice, DraftLine, PromoInfo, PromoUse
from core.models import Setting
from core.money import Money
from plugins.bundles import definitions, rules

ISSUE = dt.date(2026, 3, 1)
TRIPLE = {"code": "triple", "name": "Triple play", "kinds": ["internet", "tv", "phone"], "percent": "10"}
WELCOME = {"code": "WELCOME50", "description": "Half price for 3 months", "percent": "50", "periods": 3,
           "valid_until": "2026-12-31", "kinds": ["internet"]}


def line(plan_kind, amount, currency="KES", *, kind="recurring", category="standard", plan=None):
    """A draft line of ``amount`` (major units as text) for a service of ``plan_kind``."""
    return DraftLine(kind, f"{plan_kind} {kind}", Money.from_major(amount, currency), tax_category=category,
                     plan_code=plan or f"{plan_kind}-plan", plan_kind=plan_kind)


def invoice(*lines, currency="KES", promos=(), issue=ISSUE):
    return DraftInvoice(customer_id=1, currency=currency, issue_date=issue, lines=tuple(lines),
                        promo_codes=tuple(p.code for p in promos), promos=tuple(promos))


def bundle(**fields):
    return definitions.load_bundles([fields])[0]


def promo(**fields):
    return definitions.load_promos([fields])[0]


def apply(inv, bundles=(), promos=()):
    """The adjustments as (description, amount text, tax category, promo code) for easy comparison."""
    found = rules.adjustments(inv, tuple(bundles), {p.code: p for p in promos})
    assert all(a.source == "bundles" for a in found)
    return [(a.description, a.amount.format_plain(), a.tax_category, a.promo_code) for a in found]


def use(code, times=0, redeemed=dt.date(2026, 1, 15)):
    return PromoUse(code, redeemed, times)


# --- bundles -------------------------------------------------------------------------

def test_triple_play_percent_discounts_only_the_bundled_recurring_lines():
    inv = invoice(line("internet", "2000.00"), line("tv", "1000.00"), line("phone", "500.00"),
                  line("vas", "300.00"), line("internet", "1500.00", kind="setup"))
    assert apply(inv, [bundle(**TRIPLE)]) == [("Triple play bundle discount (10%)", "-350.00", "standard", None)]


def test_fixed_bundle_gives_its_amount_once_capped_at_the_lines_and_only_in_its_currency():
    duo = bundle(code="duo", name="Duo", kinds=["internet", "tv"], fixed="250.00", currency="KES")
    inv = invoice(line("internet", "2000.00"), line("tv", "1000.00"))
    assert apply(inv, [duo]) == [("Duo bundle discount", "-250.00", "standard", None)]
    small = invoice(line("internet", "100.00"), line("tv", "50.00"))
    assert apply(small, [duo]) == [("Duo bundle discount", "-150.00", "standard", None)]
    in_usd = invoice(line("internet", "20.00", "USD"), line("tv", "10.00", "USD"), currency="USD")
    assert apply(in_usd, [duo]) == []


def test_bundle_does_not_apply_when_a_kind_is_missing_or_only_credited():
    triple = bundle(**TRIPLE)
    assert apply(invoice(line("internet", "2000.00"), line("tv", "1000.00")), [triple]) == []
    # A negative proration line is a credit for a service that is going away: it does not count.
    credited = invoice(line("internet", "2000.00"), line("tv", "1000.00"), line("phone", "-250.00", kind="proration"))
    assert apply(credited, [triple]) == []
    # A setup fee alone does not complete a bundle either.
    setup_only = invoice(line("internet", "2000.00"), line("tv", "1000.00"), line("phone", "500.00", kind="setup"))
    assert apply(setup_only, [triple]) == []


def test_bundle_by_plan_codes_and_proration_lines_count():
    pair = bundle(code="pair", name="Home pair", plans=["HOME20", "TVPLUS"], percent="20")
    inv = invoice(line("internet", "1000.00", plan="HOME20"), line("tv", "500.00", kind="proration", plan="TVPLUS"),
                  line("tv", "400.00", plan="TVBASIC"))
    assert apply(inv, [pair]) == [("Home pair bundle discount (20%)", "-300.00", "standard", None)]


def test_bundle_applies_to_setup_when_the_definition_says_so():
    triple = bundle(**TRIPLE, applies_to=["recurring", "setup"])
    inv = invoice(line("internet", "2000.00"), line("tv", "1000.00"), line("phone", "500.00"),
                  line("tv", "1000.00", kind="setup"))
    assert apply(inv, [triple]) == [("Triple play bundle discount (10%)", "-450.00", "standard", None)]


def test_discount_spanning_two_tax_categories_is_split_proportionally_and_sums_exactly():
    inv = invoice(line("internet", "1000.00"), line("tv", "333.33", category="excise"),
                  line("phone", "333.33", category="excise"))
    # 10% of 1,666.66 is 166.666, rounded half-up to 166.67; shares 100.0024 and 66.6676.
    assert apply(inv, [bundle(**TRIPLE)]) == [
        ("Triple play bundle discount (10%)", "-100.00", "standard", None),
        ("Triple play bundle discount (10%)", "-66.67", "excise", None),
    ]


def test_each_bundle_applies_once_even_with_two_of_a_kind():
    inv = invoice(line("internet", "1000.00"), line("internet", "1000.00"), line("tv", "500.00"),
                  line("phone", "500.00"))
    # Every internet line belongs to the bundle; the discount is given once, on all of them.
    assert apply(inv, [bundle(**TRIPLE)]) == [("Triple play bundle discount (10%)", "-300.00", "standard", None)]
    fixed = bundle(code="f", name="F", kinds=["internet", "tv"], fixed="100.00", currency="KES")
    assert apply(inv, [fixed]) == [("F bundle discount", "-100.00", "standard", None)]


def test_overlapping_bundles_the_largest_discount_wins_and_disjoint_ones_add_up():
    duo = bundle(code="duo", name="Duo", kinds=["internet", "tv"], percent="20")
    triple = bundle(**TRIPLE)
    talk = bundle(code="talk", name="Talk", kinds=["phone", "vas"], fixed="50.00", currency="KES")
    inv = invoice(line("internet", "1000.00"), line("tv", "1000.00"), line("phone", "1000.00"), line("vas", "100.00"))
    # Duo gives 400.00 and Triple 300.00 on overlapping lines: only Duo. Talk shares no line with Duo.
    assert apply(inv, [triple, duo, talk]) == [
        ("Duo bundle discount (20%)", "-400.00", "standard", None),
        ("Talk bundle discount", "-50.00", "standard", None),
    ]
    # On a tie the bundle listed first wins.
    same = bundle(code="same", name="Same", kinds=["internet", "tv"], percent="15")
    assert apply(invoice(line("internet", "1000.00"), line("tv", "1000.00"), line("phone", "0.00")),
                 [triple, same]) == [("Same bundle discount (15%)", "-300.00", "standard", None)]
    tie = invoice(line("internet", "1000.00"), line("tv", "1000.00"), line("phone", "1000.00"))
    thirty = bundle(code="thirty", name="Thirty", kinds=["internet", "phone"], fixed="300.00", currency="KES")
    assert apply(tie, [thirty, triple]) == [("Thirty bundle discount", "-300.00", "standard", None)]
    assert apply(tie, [triple, thirty]) == [("Triple play bundle discount (10%)", "-300.00", "standard", None)]


def test_bundle_base_is_net_of_credit_lines():
    inv = invoice(line("internet", "1000.00"), line("internet", "-200.00", kind="proration"),
                  line("tv", "200.00"), line("phone", "0.00"))
    assert apply(inv, [bundle(**TRIPLE)]) == [("Triple play bundle discount (10%)", "-100.00", "standard", None)]


# --- promos --------------------------------------------------------------------------

def test_promo_percent_applies_for_n_periods():
    welcome = promo(**WELCOME)
    lines = (line("internet", "2000.00"), line("tv", "1000.00"))
    expected = [("Promo WELCOME50: Half price for 3 months", "-1000.00", "standard", "WELCOME50")]
    assert apply(invoice(*lines, promos=[use("WELCOME50", 0)]), promos=[welcome]) == expected
    assert apply(invoice(*lines, promos=[use("WELCOME50", 2)]), promos=[welcome]) == expected
    assert apply(invoice(*lines, promos=[use("WELCOME50", 3)]), promos=[welcome]) == []
    forever = promo(code="STAFF", percent="5")
    assert apply(invoice(*lines, promos=[use("STAFF", 500)]), promos=[forever]) == [
        ("Promo STAFF: 5% off", "-150.00", "standard", "STAFF")]


def test_expired_promo_gives_nothing():
    welcome = promo(**{**WELCOME, "valid_until": "2026-02-28"})
    lines = (line("internet", "2000.00"),)
    on_last_day = invoice(*lines, promos=[use("WELCOME50")], issue=dt.date(2026, 2, 28))
    assert apply(on_last_day, promos=[welcome]) != []
    after = invoice(*lines, promos=[use("WELCOME50")], issue=dt.date(2026, 3, 1))
    assert apply(after, promos=[welcome]) == []
    redeemed_late = invoice(*lines, promos=[use("WELCOME50", redeemed=dt.date(2026, 3, 1))], issue=dt.date(2026, 2, 1))
    assert apply(redeemed_late, promos=[welcome]) == []


def test_unknown_or_repeated_codes_and_wrong_currency_give_nothing_extra():
    welcome = promo(**WELCOME)
    inv = invoice(line("internet", "2000.00"), promos=[use("NOPE"), use("welcome50"), use("WELCOME50")])
    assert apply(inv, promos=[welcome]) == [
        ("Promo WELCOME50: Half price for 3 months", "-1000.00", "standard", "WELCOME50")]
    dollars = promo(code="TENOFF", fixed="10.00", currency="USD")
    assert apply(invoice(line("internet", "2000.00"), promos=[use("TENOFF")]), promos=[dollars]) == []


def test_promo_applies_after_bundles_on_what_is_left():
    inv = invoice(line("internet", "2000.00"), line("tv", "1000.00"), line("phone", "500.00"),
                  promos=[use("WELCOME50")])
    # Triple play takes 350.00, of which 200.00 from internet; half of the 1,800.00 left is 900.00.
    assert apply(inv, [bundle(**TRIPLE)], [promo(**WELCOME)]) == [
        ("Triple play bundle discount (10%)", "-350.00", "standard", None),
        ("Promo WELCOME50: Half price for 3 months", "-900.00", "standard", "WELCOME50"),
    ]


def test_promos_apply_in_order_each_on_what_is_left():
    half = promo(code="HALF", percent="50")
    tenth = promo(code="TENTH", percent="10")
    inv = invoice(line("internet", "1000.00"), promos=[use("HALF"), use("TENTH")])
    assert apply(inv, promos=[half, tenth]) == [
        ("Promo HALF: 50% off", "-500.00", "standard", "HALF"),
        ("Promo TENTH: 10% off", "-50.00", "standard", "TENTH"),
    ]


def test_fixed_promo_is_capped_at_what_is_left():
    big = promo(code="BIG", description="1,000 off internet", fixed="1000", currency="KES", kinds=["internet"])
    alone = invoice(line("internet", "800.00"), line("tv", "150.00"), promos=[use("BIG")])
    assert apply(alone, promos=[big]) == [("Promo BIG: 1,000 off internet", "-800.00", "standard", "BIG")]
    with_bundle = invoice(line("internet", "800.00"), line("tv", "150.00"), line("phone", "50.00"), promos=[use("BIG")])
    # Triple play takes 80.00 of the internet line first.
    assert apply(with_bundle, [bundle(**TRIPLE)], [big]) == [
        ("Triple play bundle discount (10%)", "-100.00", "standard", None),
        ("Promo BIG: 1,000 off internet", "-720.00", "standard", "BIG"),
    ]


def test_promo_with_nothing_to_discount_is_not_used():
    tv_only = promo(code="TV", percent="50", kinds=["tv"])
    assert apply(invoice(line("internet", "1000.00"), promos=[use("TV")]), promos=[tv_only]) == []
    tiny = promo(code="TINY", percent="1")
    # 1% of 0.49 is 0.0049, which rounds to nothing: no line, and no use counted.
    assert apply(invoice(line("internet", "0.49"), promos=[use("TINY")]), promos=[tiny]) == []


def test_promo_for_all_kinds_skips_setup_usage_and_one_off_unless_asked():
    everything = promo(code="ALL", percent="10")
    lines = (line("internet", "1000.00"), line("internet", "500.00", kind="setup"),
             line("internet", "300.00", kind="usage"), line("vas", "200.00", kind="oneoff"))
    assert apply(invoice(*lines, promos=[use("ALL")]), promos=[everything]) == [
        ("Promo ALL: 10% off", "-100.00", "standard", "ALL")]
    wider = promo(code="ALL", percent="10", applies_to=["recurring", "setup", "usage", "oneoff"])
    assert apply(invoice(*lines, promos=[use("ALL")]), promos=[wider]) == [
        ("Promo ALL: 10% off", "-200.00", "standard", "ALL")]


# --- currencies and rounding ---------------------------------------------------------

def test_zero_decimal_currency():
    inv = invoice(line("internet", "55555", "UGX"), promos=[use("TEN")], currency="UGX")
    # 10% of UGX 55,555 is 5,555.5: half-up gives 5,556.
    assert apply(inv, promos=[promo(code="TEN", percent="10")]) == [("Promo TEN: 10% off", "-5556", "standard", "TEN")]
    fixed = bundle(code="duo", name="Duo", kinds=["internet", "tv"], fixed="5000", currency="UGX")
    duo = invoice(line("internet", "55555", "UGX"), line("tv", "20000", "UGX"), currency="UGX")
    assert apply(duo, [fixed]) == [("Duo bundle discount", "-5000", "standard", None)]


def test_three_decimal_currency():
    inv = invoice(line("internet", "12.345", "KWD"), line("tv", "3.000", "KWD"), line("phone", "1.500", "KWD"),
                  currency="KWD")
    # 15% of KWD 16.845 is 2.52675: half-up to the fils gives 2.527.
    assert apply(inv, [bundle(**{**TRIPLE, "percent": "15"})]) == [
        ("Triple play bundle discount (15%)", "-2.527", "standard", None)]
    fixed = promo(code="FILS", fixed="0.125", currency="KWD")
    assert apply(invoice(line("internet", "12.345", "KWD"), currency="KWD", promos=[use("FILS")]),
                 promos=[fixed]) == [("Promo FILS: KWD 0.125 off", "-0.125", "standard", "FILS")]


def test_percent_is_rounded_half_up_to_minor_units():
    ten = promo(code="TEN", percent="10")
    # 10% of 12.25 is 1.225: half-up gives 1.23 (half-even would give 1.22).
    assert apply(invoice(line("internet", "12.25"), promos=[use("TEN")]), promos=[ten])[0][1] == "-1.23"
    assert apply(invoice(line("internet", "12.24"), promos=[use("TEN")]), promos=[ten])[0][1] == "-1.22"
    odd = promo(code="ODD", percent="12.5")
    # 12.5% of 0.20 is 0.025: half-up gives 0.03.
    assert apply(invoice(line("internet", "0.20"), promos=[use("ODD")]), promos=[odd])[0][1] == "-0.03"


# --- definitions ---------------------------------------------------------------------

def test_definitions_are_normalised_and_read_back_the_same():
    text = json.dumps([TRIPLE, {"code": "duo", "kinds": ["Internet", "tv"], "fixed": "1,000", "currency": "kes"}])
    stored = definitions.parse_bundles(text)
    assert stored == [
        {**TRIPLE, "applies_to": ["recurring", "proration"]},
        {"code": "duo", "name": "duo", "kinds": ["internet", "tv"], "fixed": "1000.00", "currency": "KES",
         "applies_to": ["recurring", "proration"]},
    ]
    assert definitions.parse_bundles(json.dumps(stored)) == stored
    promos = definitions.parse_promos(json.dumps([{**WELCOME, "code": "welcome50"}, {"code": "x1", "percent": 5}]))
    assert promos == [
        {**WELCOME, "applies_to": ["recurring", "proration"]},
        {"code": "X1", "description": "5% off", "percent": "5", "applies_to": ["recurring", "proration"],
         "periods": None, "valid_until": None},
    ]
    assert definitions.parse_promos(json.dumps(promos)) == promos
    assert definitions.parse_promos("  ") == []
    assert definitions.load_promos(promos)[0].percent == Decimal("50")


BAD_BUNDLES = [
    ("[{\"code\": \"triple\",", "not valid JSON"),
    ('{"code": "triple"}', "expected a JSON list of bundles"),
    ('[{"code": "t", "kinds": ["internet", "tv"], "percent": 10.5}]',
     "bundle 1 ('t'): write percent as a string (\"10.5\")"),
    ('[{"code": "t", "kinds": ["internet", "tv"], "percent": "100.01"}]',
     "bundle 1 ('t'): percent must be more than 0 and at most 100, got 100.01"),
    ('[{"code": "t", "kinds": ["internet", "tv"], "percent": "0"}]', "percent must be more than 0"),
    ('[{"code": "t", "kinds": ["internet", "tv"], "percent": "ten"}]', "percent 'ten' is not a number"),
    ('[{"code": "t", "kinds": ["internet", "fibre"], "percent": "10"}]',
     "bundle 1 ('t'): unknown kind 'fibre' in kinds"),
    ('[{"code": "t", "kinds": ["internet", "tv"], "fixed": "5.00"}]',
     "bundle 1 ('t'): a fixed amount needs \"currency\""),
    ('[{"code": "t", "kinds": ["internet", "tv"], "fixed": "-5.00", "currency": "KES"}]',
     "bundle 1 ('t'): fixed must be more than zero, got KES -5.00"),
    ('[{"code": "t", "kinds": ["internet", "tv"], "fixed": "5.001", "currency": "KES"}]',
     "KES allows at most 2 decimal places"),
    ('[{"code": "t", "kinds": ["internet", "tv"], "fixed": "5", "currency": "XYZ"}]', "unknown currency 'XYZ'"),
    ('[{"code": "t", "kinds": ["internet", "tv"], "percent": "10", "fixed": "5", "currency": "KES"}]',
     "give exactly one of percent"),
    ('[{"code": "t", "kinds": ["internet", "tv"], "percent": "10", "currency": "KES"}]',
     "currency goes with a fixed amount"),
    ('[{"code": "t", "kinds": ["internet"], "percent": "10"}]', "a bundle needs at least two kinds"),
    ('[{"code": "t", "percent": "10"}]', "give the kinds"),
    ('[{"code": "t", "kinds": ["internet", "tv"], "plans": ["A", "B"], "percent": "10"}]', "not both"),
    ('[{"code": "t", "kinds": ["internet", "internet"], "percent": "10"}]', "'internet' appears twice in kinds"),
    ('[{"code": "t", "kinds": ["internet", "tv"], "percent": "10", "discount": "5"}]', "unknown key 'discount'"),
    ('[{"code": "t", "kinds": ["internet", "tv"], "percent": "10", "applies_to": ["rent"]}]',
     "unknown line kind 'rent' in applies_to"),
    ('[{"kinds": ["internet", "tv"], "percent": "10"}]', "bundle 1: code is missing"),
    ('[{"code": "a", "kinds": ["internet", "tv"], "percent": "1"}, {"code": "A", "kinds": ["tv", "phone"], '
     '"percent": "1"}]', "bundle 2: code 'A' is already used by bundle 1"),
    ('["triple"]', "bundle 1: expected an object"),
]

BAD_PROMOS = [
    ('[{"code": "P", "percent": 50.0}]', "promo 1 ('P'): write percent as a string"),
    ('[{"code": "P", "percent": "150"}]', "promo 1 ('P'): percent must be more than 0 and at most 100"),
    ('[{"code": "P", "fixed": "5"}]', "promo 1 ('P'): a fixed amount needs \"currency\""),
    ('[{"code": "P", "fixed": "-1", "currency": "UGX"}]', "fixed must be more than zero"),
    ('[{"code": "P", "percent": "5", "kinds": ["radio"]}]', "unknown kind 'radio'"),
    ('[{"code": "P", "percent": "5", "periods": 0}]', "periods must be a whole number of 1 or more"),
    ('[{"code": "P", "percent": "5", "periods": 1.5}]', "periods must be a whole number"),
    ('[{"code": "P", "percent": "5", "valid_until": "31/12/2026"}]', "valid_until must be a date"),
    ('[{"code": "P", "percent": "5", "valid_until": "2026-02-30"}]', "is not a real date"),
    ('[{"code": "BAD CODE", "percent": "5"}]', "code 'BAD CODE' must be 1 to 40 letters"),
    ('[{"code": "P", "percent": "5"}, {"code": "p", "percent": "6"}]', "promo 2: code 'P' is already used by promo 1"),
    ('[{"code": "P", "percent": NaN}]', "NaN is not allowed"),
]


@pytest.mark.parametrize(("text", "message"), BAD_BUNDLES)
def test_bad_bundle_definitions_are_refused_by_the_parser(text, message):
    with pytest.raises(ValueError) as refused:
        definitions.parse_bundles(text)
    assert message in str(refused.value)


@pytest.mark.parametrize(("text", "message"), BAD_PROMOS)
def test_bad_promo_definitions_are_refused_by_the_parser(text, message):
    with pytest.raises(ValueError) as refused:
        definitions.parse_promos(text)
    assert message in str(refused.value)


@pytest.mark.parametrize(("key", "text", "message"), [
    ("bundles.bundles", "[{", "not valid JSON"),
    ("bundles.bundles", '[{"code": "t", "kinds": ["internet", "tv"], "percent": 10.0}]', "write percent as a string"),
    ("bundles.bundles", '[{"code": "t", "kinds": ["internet", "tv"], "percent": "120"}]', "at most 100"),
    ("bundles.bundles", '[{"code": "t", "kinds": ["internet", "satellite"], "percent": "5"}]', "unknown kind"),
    ("bundles.promos", '[{"code": "P", "fixed": "5.00"}]', "needs \"currency\""),
    ("bundles.promos", '[{"code": "P", "fixed": "-5.00", "currency": "KES"}]', "more than zero"),
])
def test_settings_refuse_bad_definitions_and_store_nothing(db, pm, key, text, message):
    with pytest.raises(ValidationError) as refused:
        settings.set_value(key, text, pm)
    assert str(refused.value).startswith(f"{key}: ")
    assert message in str(refused.value)
    assert Setting.get_or_none(Setting.key == key) is None
    assert settings.get(key, pm) == []


def test_settings_store_the_normalised_definitions(db, pm):
    stored = settings.set_value("bundles.bundles", json.dumps([TRIPLE]), pm)
    assert stored == [{**TRIPLE, "applies_to": ["recurring", "proration"]}]
    assert settings.get("bundles.bundles", pm) == stored
    settings.set_value("bundles.bundles", "[]", pm)
    assert settings.get("bundles.bundles", pm) == []


# --- the hooks, end to end -----------------------------------------------------------

def test_adjustments_end_to_end_through_the_core(db, pm):
    settings.set_value("bundles.bundles", json.dumps([TRIPLE]), pm)
    settings.set_value("bundles.promos", json.dumps([WELCOME]), pm)
    inv = invoice(line("internet", "2000.00"), line("tv", "1000.00", category="excise"), line("phone", "500.00"),
                  promos=[use("WELCOME50", 1)])
    found = pricing.adjustments(inv, pm)
    assert [(a.description, a.amount, a.tax_category, a.source, a.promo_code) for a in found] == [
        ("Triple play bundle discount (10%)", Money(-25000, "KES"), "standard", "bundles", None),
        ("Triple play bundle discount (10%)", Money(-10000, "KES"), "excise", "bundles", None),
        ("Promo WELCOME50: Half price for 3 months", Money(-90000, "KES"), "standard", "bundles", "WELCOME50"),
    ]
    # A change made through the settings is seen by the very next invoice.
    settings.set_value("bundles.bundles", "[]", pm)
    assert [a.promo_code for a in pricing.adjustments(inv, pm)] == ["WELCOME50"]
    settings.set_value("bundles.promos", "[]", pm)
    assert pricing.adjustments(inv, pm) == []


def test_nothing_defined_means_no_adjustments(db, pm):
    inv = invoice(line("internet", "2000.00"), line("tv", "1000.00"), line("phone", "500.00"),
                  promos=[use("WELCOME50")])
    assert pricing.adjustments(inv, pm) == []


def test_describe_promo_knows_its_codes_in_any_case(db, pm):
    settings.set_value("bundles.promos", json.dumps([WELCOME]), pm)
    expected = PromoInfo("WELCOME50", "Half price for 3 months", dt.date(2026, 12, 31))
    assert pm.hook.pricing_describe_promo(code="WELCOME50") == expected
    assert pm.hook.pricing_describe_promo(code="welcome50") == expected
    assert pm.hook.pricing_describe_promo(code="WELCOME5") is None
    assert pm.hook.pricing_describe_promo(code="") is None


def test_definitions_are_cached_until_reload(db, pm):
    settings.set_value("bundles.bundles", json.dumps([TRIPLE]), pm)
    inv = invoice(line("internet", "2000.00"), line("tv", "1000.00"), line("phone", "500.00"))
    assert len(pricing.adjustments(inv, pm)) == 1
    # Another process changes the stored value (it bypasses this process's parse).
    Setting.update(value=[]).where(Setting.key == "bundles.bundles").execute()
    assert len(pricing.adjustments(inv, pm)) == 1
    bundles_plugin.reload()
    assert pricing.adjustments(inv, pm) == []


def test_a_call_with_nothing_to_apply_is_fast(db, pm):
    settings.set_value("bundles.bundles", json.dumps([TRIPLE, {**TRIPLE, "code": "duo", "kinds": ["tv", "phone"]}]),
                       pm)
    settings.set_value("bundles.promos", json.dumps([WELCOME]), pm)
    inv = invoice(line("internet", "2000.00"), line("vas", "100.00"), line("internet", "500.00", kind="setup"))
    hook = bundles_plugin.pricing_adjustments
    assert hook(inv) is None
    calls = 20_000
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            hook(inv)
        best = min(best, (time.perf_counter() - start) / calls)
    assert best < 30e-6, f"{best * 1e6:.1f} µs per call"


# --- properties ----------------------------------------------------------------------

CATEGORIES = ("standard", "excise", "zero")
KINDS = ("internet", "tv", "phone", "vas")

draft_lines = st.lists(st.builds(
    lambda kind, plan_kind, minor, category: DraftLine(kind, "x", Money(minor, "KES"), category, plan_kind=plan_kind,
                                                       plan_code=plan_kind.upper()),
    st.sampled_from(("recurring", "proration", "setup", "usage")), st.sampled_from(KINDS),
    st.integers(-5_000, 1_000_000), st.sampled_from(CATEGORIES)), min_size=1, max_size=8)
percents = st.integers(1, 10_000).map(lambda n: f"{n // 100}.{n % 100:02d}")
amounts = st.one_of(st.builds(lambda p: {"percent": p}, percents),
                    st.builds(lambda m: {"fixed": str(m), "currency": "KES"}, st.integers(1, 20_000)))
bundle_defs = st.lists(st.builds(
    lambda i, kinds, amount, setup: {"code": f"b{i}", "kinds": kinds, **amount,
                                     "applies_to": ["recurring", "proration"] + (["setup"] if setup else [])},
    st.integers(0, 10**6), st.lists(st.sampled_from(KINDS), min_size=2, max_size=4, unique=True), amounts,
    st.booleans()), max_size=4, unique_by=lambda d: d["code"])
promo_defs = st.lists(st.builds(
    lambda i, kinds, amount: {"code": f"P{i}", **amount, **({"kinds": kinds} if kinds else {})},
    st.integers(0, 10**6), st.lists(st.sampled_from(KINDS), max_size=3, unique=True), amounts),
    max_size=3, unique_by=lambda d: d["code"])


@hypothesis_settings(max_examples=300, deadline=None)
@given(draft_lines, bundle_defs, promo_defs)
def test_discounts_never_exceed_their_lines_and_splits_sum_to_the_total(lines, bundle_list, promo_list):
    bundles = definitions.load_bundles(bundle_list)
    promos = {p.code: p for p in definitions.load_promos(promo_list)}
    inv = invoice(*lines, promos=[use(code) for code in promos])
    found = rules.discounts(inv, bundles, promos)
    for discount in found:
        assert discount.total.minor > 0
        assert all(part.minor > 0 for _category, part in discount.parts)
        assert Money.sum((part for _category, part in discount.parts), "KES") == discount.total
        assert len({category for category, _part in discount.parts}) == len(discount.parts)
    # Per tax category, everything taken off stays within the charges (positive lines) it was taken from.
    eligible = [line for line in lines if line.kind in ("recurring", "proration", "setup")]
    for category in CATEGORIES:
        taken = sum(part.minor for d in found for c, part in d.parts if c == category)
        assert taken <= sum(line.amount.minor for line in eligible if line.tax_category == category
                            and line.amount.minor > 0)
    # With no credit lines, the discounts never exceed the lines they discount at all.
    if all(line.amount.minor >= 0 for line in lines):
        for category in CATEGORIES:
            taken = sum(part.minor for d in found for c, part in d.parts if c == category)
            assert taken <= sum(line.amount.minor for line in eligible if line.tax_category == category)
    adjustments = rules.adjustments(inv, bundles, promos)
    assert sum(a.amount.minor for a in adjustments) == -sum(d.total.minor for d in found)


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**7), st.sampled_from(CATEGORIES)), min_size=3, max_size=6), percents)
def test_a_single_bundle_takes_its_percentage_rounded_half_up(amounts_and_categories, percent):
    lines = [DraftLine("recurring", "x", Money(minor, "KES"), category, plan_kind=KINDS[i % 3])
             for i, (minor, category) in enumerate(amounts_and_categories)]
    triple = bundle(**{**TRIPLE, "percent": percent})
    found = rules.discounts(invoice(*lines), [triple], {})
    base = sum(minor for minor, _category in amounts_and_categories)
    exact = Fraction(base) * Fraction(Decimal(percent)) / 100
    expected = int(exact) + (1 if exact - int(exact) >= Fraction(1, 2) else 0)
    assert sum(d.total.minor for d in found) == expected
    for discount in found:
        for category, part in discount.parts:
            weight = sum(minor for minor, c in amounts_and_categories if c == category)
            assert abs(Fraction(part.minor) - Fraction(discount.total.minor) * weight / base) < 1
