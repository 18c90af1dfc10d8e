"""The billing run against hand-computed invoices, on SQLite and PostgreSQL.

Amounts in comments are worked out by hand from the proration rule in docs/billing.md:
the price of days [a, b) of a period of N days is F(b) - F(a), F(x) = round_half_up(P * x / N).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from core import billing, catalog, charges, credit_notes, customers, hookimpl, ledger, promos, services
from core.db import database
from core.errors import ValidationError
from core.hooktypes import TaxLine, TaxRegion
from core.models import (
    BillingRun,
    Charge,
    CreditNote,
    Event,
    Invoice,
    InvoiceLine,
    InvoiceTax,
    LedgerEntry,
    PromoRedemption,
    Service,
    UsageRecord,
)
from core.money import Money

D = dt.date


class FlatVat:
    """A test tax plugin: region TESTVAT, 16% on 'standard', nothing on 'zero'; TESTINC has prices with tax."""

    RATE = Decimal("0.16")

    @hookimpl
    def tax_regions(self):
        return [TaxRegion("TESTVAT", "Test VAT"), TaxRegion("TESTINC", "Test VAT inclusive", prices_include_tax=True)]

    @hookimpl
    def tax_lines(self, invoice):
        if invoice.tax_region not in ("TESTVAT", "TESTINC"):
            return None
        if invoice.tax_exempt:
            return []
        base = sum(line.amount.minor for line in invoice.lines if line.tax_category == "standard")
        if invoice.tax_inclusive:
            net = Money(base, invoice.currency).multiply(1 / (1 + self.RATE))
            return [TaxLine("VAT", self.RATE, net, Money(base, invoice.currency) - net)]
        taxable = Money(base, invoice.currency)
        return [TaxLine("VAT", self.RATE, taxable, taxable.multiply(self.RATE))]


@pytest.fixture
def vat(pm):
    pm.add(FlatVat(), "flat_vat", "test")
    return pm


def customer(**kw):
    data = {"name": "Amina Otieno", "currency": "KES", "terms_days": 14}
    data.update(kw)
    return customers.add(**data)


def plan(code="home", price="3,000.00", **kw):
    data = {"code": code, "name": code.title(), "kind": "internet", "price": price, "currency": "KES"}
    data.update(kw)
    return catalog.add(**data)


def lines_of(invoice):
    return [(line.kind, line.amount_minor) for line in invoice.lines.order_by(InvoiceLine.position)]


def only_invoice(c):
    found = list(Invoice.select().where(Invoice.customer == c.id).order_by(Invoice.id))
    return found


# --- recurring charges and proration -----------------------------------------------

def test_postpaid_first_partial_month_then_full_months(db, pm):
    c = customer()
    home = plan()
    s = services.add(customer=c, plan=home, start_date=D(2026, 1, 15), anchor_day=1)
    assert s.next_bill_date == D(2026, 2, 1)  # postpaid: billed when the period ends
    assert billing.run(D(2026, 1, 31)).invoices == 0
    result = billing.run(D(2026, 2, 1))
    assert result.invoices == 1 and result.invoice_numbers == ["INV-2026-000001"]
    inv = only_invoice(c)[0]
    # 17 of 31 days of 3,000.00 = 1,645.16
    assert lines_of(inv) == [("proration", 164516)]
    assert (inv.subtotal_minor, inv.tax_minor, inv.total_minor) == (164516, 0, 164516)
    assert (inv.issue_date, inv.due_date) == (D(2026, 2, 1), D(2026, 2, 15))
    assert (inv.period_start, inv.period_end) == (D(2026, 1, 15), D(2026, 1, 31))
    event = Event.get(Event.name == "invoice.issued")
    assert event.payload == {"invoice_id": inv.id, "customer_id": c.id, "number": "INV-2026-000001",
                             "total_minor": 164516, "currency": "KES"}
    # February is whole: 3,000.00
    billing.run(D(2026, 3, 1))
    assert lines_of(only_invoice(c)[1]) == [("recurring", 300000)]
    assert ledger.balance(c) == Money(464516, "KES")


def test_a_second_run_for_the_same_date_creates_nothing(db, pm):
    c = customer()
    services.add(customer=c, plan=plan(), start_date=D(2026, 1, 1), billing_mode="prepaid")
    assert billing.run(D(2026, 1, 1)).invoices == 1
    counts = [m.select().count() for m in (Invoice, InvoiceLine, LedgerEntry, Event)]
    again = billing.run(D(2026, 1, 1))
    assert again.invoices == 0 and again.failures == {}
    assert [m.select().count() for m in (Invoice, InvoiceLine, LedgerEntry, Event)] == counts
    assert BillingRun.select().where(BillingRun.status == "finished").count() == 2


def test_prepaid_bills_at_the_start_and_catches_up_missed_periods(db, pm):
    c = customer()
    s = services.add(customer=c, plan=plan(setup_fee="500.00"), start_date=D(2026, 1, 10), anchor_day=1,
                     billing_mode="prepaid")
    assert s.next_bill_date == D(2026, 1, 10)
    billing.run(D(2026, 1, 10))
    first = only_invoice(c)[0]
    # 22 of 31 days: round(300000 * 22 / 31) = round(212903.2) = 212903; plus the setup fee once
    assert lines_of(first) == [("proration", 212903), ("setup", 50000)]
    # No run in February: the March run bills February and March on one invoice.
    billing.run(D(2026, 3, 5))
    second = only_invoice(c)[1]
    assert lines_of(second) == [("recurring", 300000), ("recurring", 300000)]
    assert Service.get_by_id(s.id).next_bill_date == D(2026, 4, 1)


@pytest.mark.parametrize("currency, price, expected", [
    # UGX has no minor units: 17 of 31 days of 90,000 = 49354.8 -> 49,355
    ("UGX", "90,000", 49355),
    # KWD has three: 17 of 31 days of 12.345 = 6.76983... -> 6.770
    ("KWD", "12.345", 6770),
])
def test_proration_in_zero_and_three_decimal_currencies(db, pm, currency, price, expected):
    c = customer(currency=currency)
    services.add(customer=c, plan=plan(currency=currency, price=price), start_date=D(2026, 1, 15), anchor_day=1)
    billing.run(D(2026, 2, 1))
    assert lines_of(only_invoice(c)[0]) == [("proration", expected)]


def test_anchor_on_the_31st_through_february_of_a_leap_year(db, pm):
    c = customer()
    services.add(customer=c, plan=plan(price="2,900.00"), start_date=D(2028, 1, 31), anchor_day=31,
                 billing_mode="prepaid")
    billing.run(D(2028, 4, 30))
    invs = only_invoice(c)
    lines = [line for inv in invs for line in inv.lines.order_by(InvoiceLine.position)]
    assert [(line.period_start, line.period_end) for line in lines] == [
        (D(2028, 1, 31), D(2028, 2, 28)),   # up to the 29th, February's clamped anchor
        (D(2028, 2, 29), D(2028, 3, 30)),
        (D(2028, 3, 31), D(2028, 4, 29)),
        (D(2028, 4, 30), D(2028, 5, 30)),   # April's anchor is its last day; prepaid bills it on the day
    ]
    assert all(line.kind == "recurring" and line.amount_minor == 290000 for line in lines)


def test_weekly_and_day_pass_plans(db, pm):
    c = customer()
    services.add(customer=c, plan=plan("week", price="700.00", period="weekly"), start_date=D(2026, 3, 4),
                 billing_mode="prepaid")
    services.add(customer=c, plan=plan("pass30", price="2,000.00", period="days", period_days=30),
                 start_date=D(2026, 3, 4), billing_mode="prepaid")
    billing.run(D(2026, 3, 12))
    inv = only_invoice(c)[0]
    got = [(line.description.split(",")[0], line.period_start, line.period_end, line.amount_minor)
           for line in inv.lines.order_by(InvoiceLine.position)]
    assert got == [
        ("Week", D(2026, 3, 4), D(2026, 3, 10), 70000),
        ("Week", D(2026, 3, 11), D(2026, 3, 17), 70000),
        ("Pass30", D(2026, 3, 4), D(2026, 4, 2), 200000),
    ]


# --- plan changes ------------------------------------------------------------------

def test_upgrade_mid_period_prepaid_credits_the_old_plan_and_charges_the_new(db, pm):
    c = customer()
    s = services.add(customer=c, plan=plan("home", "3,000.00"), start_date=D(2026, 2, 1),
                     billing_mode="prepaid")
    plan("fast", "4,500.00")
    billing.run(D(2026, 2, 1))
    feb = only_invoice(c)[0]
    assert feb.total_minor == 300000
    result = services.change_plan(s, "fast", on=D(2026, 2, 15))
    assert result["upgrade"] and result["effective"] == D(2026, 2, 15)
    # 14 of 28 days unused on Home: 3000 - round(3000 * 14 / 28) = 1,500.00 credited
    [note] = result["credit_notes"]
    assert (note.total_minor, note.invoice_id) == (150000, feb.id)
    # the same 14 days on Fast: 4500 - 2250 = 2,250.00 charged
    [charge] = result["charges"]
    assert (charge.amount_minor, charge.charge_date) == (225000, D(2026, 2, 15))
    # The credit note settled half of the unpaid February invoice.
    assert Invoice.get_by_id(feb.id).settled_minor == 150000
    billing.run(D(2026, 2, 15))
    change = only_invoice(c)[1]
    assert lines_of(change) == [("proration", 225000)]
    billing.run(D(2026, 3, 1))
    assert lines_of(only_invoice(c)[2]) == [("recurring", 450000)]
    # Owed: 3000 - 1500 + 2250 + 4500
    assert ledger.balance(c) == Money(825000, "KES")


def test_upgrade_postpaid_charges_the_old_plan_up_to_the_change(db, pm):
    c = customer()
    s = services.add(customer=c, plan=plan("home", "3,000.00"), start_date=D(2026, 2, 1))
    plan("fast", "4,500.00")
    result = services.change_plan(s, "fast", on=D(2026, 2, 10))
    # 9 of 28 days of Home: round(300000 * 9 / 28) = 96429, billed with February's invoice
    assert [(ch.amount_minor, ch.charge_date) for ch in result["charges"]] == [(96429, D(2026, 3, 1))]
    assert result["credit_notes"] == []
    assert billing.run(D(2026, 2, 28)).invoices == 0
    billing.run(D(2026, 3, 1))
    # Fast for the other 19 days: 450000 - round(450000 * 9 / 28) = 450000 - 144643 = 305357
    assert lines_of(only_invoice(c)[0]) == [("proration", 305357), ("proration", 96429)]


def test_downgrade_waits_for_renewal_unless_asked_for_now(db, pm):
    c = customer()
    s = services.add(customer=c, plan=plan("fast", "4,500.00"), start_date=D(2026, 2, 1), billing_mode="prepaid",
                     price_override="4,000.00")
    cheap = plan("home", "3,000.00")
    billing.run(D(2026, 2, 1))
    assert only_invoice(c)[0].total_minor == 400000  # the service's own price
    result = services.change_plan(s, "home", on=D(2026, 2, 10))
    assert not result["upgrade"] and result["effective"] == D(2026, 3, 1)
    assert result["credit_notes"] == [] and result["charges"] == []
    s = Service.get_by_id(s.id)
    assert (s.plan.code, s.pending_plan_id, s.pending_change_date) == ("fast", cheap.id, D(2026, 3, 1))
    billing.run(D(2026, 3, 1))
    assert lines_of(only_invoice(c)[1]) == [("recurring", 300000)]
    s = Service.get_by_id(s.id)
    assert (s.plan_id, s.pending_plan_id, s.price_override_minor) == (cheap.id, None, None)
    assert Event.select().where(Event.name == "service.changed").count() == 1

    # Asked for now: the difference comes back as account credit.
    c2 = customer(name="Baraka")
    s2 = services.add(customer=c2, plan="fast", start_date=D(2026, 2, 1), billing_mode="prepaid")
    billing.run(D(2026, 2, 1))
    services.change_plan(s2, "home", on=D(2026, 2, 15), now=True)
    # credit 2,250.00 of Fast, charge 1,500.00 of Home
    assert ledger.balance(c2) == Money(450000 - 225000, "KES")
    billing.run(D(2026, 2, 15))
    charge_invoice = only_invoice(c2)[1]
    assert charge_invoice.total_minor == 150000


def test_plan_change_refusals(db, pm):
    c = customer()
    s = services.add(customer=c, plan=plan("home"), start_date=D(2026, 2, 1))
    plan("weekly", "700.00", period="weekly")
    plan("usd", "30.00", currency="USD")
    with pytest.raises(ValidationError, match="same billing period"):
        services.change_plan(s, "weekly")
    with pytest.raises(ValidationError, match="priced in USD"):
        services.change_plan(s, "usd")
    with pytest.raises(ValidationError, match="already on home"):
        services.change_plan(s, "home")
    with pytest.raises(ValidationError, match="before the service starts"):
        services.change_plan(s, plan("other", "5,000.00"), on=D(2026, 1, 1))


def test_cancel_credits_days_already_billed(db, pm):
    c = customer()
    s = services.add(customer=c, plan=plan(), start_date=D(2026, 4, 1), billing_mode="prepaid")
    billing.run(D(2026, 4, 1))
    result = services.cancel(s, on=D(2026, 4, 21))
    # 10 of 30 days: 300000 - round(300000 * 20 / 30) = 100000
    assert [n.total_minor for n in result["credit_notes"]] == [100000]
    s = Service.get_by_id(s.id)
    assert (s.status, s.end_date, s.next_bill_date) == ("cancelled", D(2026, 4, 21), None)
    assert billing.run(D(2026, 6, 1)).invoices == 0
    assert ledger.balance(c) == Money(200000, "KES")


def test_cancel_postpaid_bills_up_to_the_end(db, pm):
    c = customer()
    s = services.add(customer=c, plan=plan(), start_date=D(2026, 4, 1))
    services.cancel(s, on=D(2026, 4, 11))
    assert Service.get_by_id(s.id).next_bill_date == D(2026, 4, 11)
    billing.run(D(2026, 4, 30))
    assert lines_of(only_invoice(c)[0]) == [("proration", 100000)]  # 10 of 30 days
    assert Service.get_by_id(s.id).status == "cancelled"


# --- charges, usage, tax, discounts ---------------------------------------------------

def test_one_off_charges_go_on_the_next_invoice(db, pm):
    c = customer()
    services.add(customer=c, plan=plan(), start_date=D(2026, 3, 1), billing_mode="prepaid")
    ch = charges.add(customer=c, description="Router", amount="1,234.50", quantity="2", charge_date=D(2026, 3, 5))
    assert ch.amount_minor == 246900
    billing.run(D(2026, 3, 1))
    assert lines_of(only_invoice(c)[0]) == [("recurring", 300000)]  # the charge is not due yet
    billing.run(D(2026, 3, 5))
    inv = only_invoice(c)[1]
    assert lines_of(inv) == [("oneoff", 246900)]
    assert Charge.get_by_id(ch.id).invoice_id == inv.id
    assert billing.run(D(2026, 3, 5)).invoices == 0
    with pytest.raises(ValidationError, match="more than zero"):
        charges.add(customer=c, description="Nothing", amount="0")
    with pytest.raises(ValidationError, match="quantity"):
        charges.add(customer=c, description="Cables", amount="10", quantity="-1")


def test_usage_over_the_cap_is_billed_per_gb(db, pm):
    c = customer()
    capped = plan("capped", "2,000.00", data_cap_mb=50_000, fup_download_kbps=1000, fup_upload_kbps=500,
                  overage_per_gb="100.00")
    s = services.add(customer=c, plan=capped, start_date=D(2026, 3, 1))
    day = dt.datetime(2026, 3, 10)
    UsageRecord.create(service=s.id, source="test", external_id="a", period_start=day, period_end=day,
                       bytes_in=40_000_000_000, bytes_out=12_345_600_000)
    UsageRecord.create(service=s.id, source="test", external_id="b", period_start=dt.datetime(2026, 4, 2),
                       period_end=dt.datetime(2026, 4, 2), bytes_in=99_000_000_000, bytes_out=0)
    billing.run(D(2026, 4, 1))
    # 52,345.6 MB used, 2,345.6 over the cap -> 2,346 MB started -> 2.346 GB x 100.00 = 234.60
    inv = only_invoice(c)[0]
    assert lines_of(inv) == [("recurring", 200000), ("usage", 23460)]
    usage = inv.lines.where(InvoiceLine.kind == "usage").get()
    assert usage.quantity == Decimal("2.346") and usage.unit_price_minor == 10000


def test_tax_exclusive_inclusive_and_exempt(db, vat):
    ex = customer(name="Exclusive", tax_region="TESTVAT")
    inc = customer(name="Inclusive", tax_region="TESTINC")
    exempt = customer(name="Embassy", tax_region="TESTVAT", tax_exempt=True, tax_exemption_ref="DIP-77")
    home = plan()
    for c in (ex, inc, exempt):
        services.add(customer=c, plan=home, start_date=D(2026, 3, 1), billing_mode="prepaid")
    charges.add(customer=ex, description="Zero-rated book", amount="100.00", tax_category="zero",
                charge_date=D(2026, 3, 1))
    billing.run(D(2026, 3, 1))
    e = only_invoice(ex)[0]
    # 16% of 3,000.00 = 480.00; the zero-rated line is not taxed
    assert (e.subtotal_minor, e.tax_minor, e.total_minor, e.tax_inclusive) == (310000, 48000, 358000, False)
    [tax] = e.taxes
    assert (tax.name, tax.rate, tax.taxable_minor, tax.tax_minor) == ("VAT", Decimal("0.16"), 300000, 48000)
    i = only_invoice(inc)[0]
    # 3,000.00 includes VAT: net = 3000 / 1.16 = 2586.21, VAT = 413.79
    assert (i.subtotal_minor, i.tax_minor, i.total_minor, i.tax_inclusive) == (258621, 41379, 300000, True)
    x = only_invoice(exempt)[0]
    assert (x.tax_minor, x.total_minor) == (0, 300000) and list(x.taxes) == []


def test_a_customer_whose_region_has_no_tax_definition_is_reported_and_not_billed(db, vat):
    good = customer(name="Good", tax_region="TESTVAT")
    bad = customer(name="Nowhere", tax_region="TESTVAT")
    home = plan()
    s_good = services.add(customer=good, plan=home, start_date=D(2026, 3, 1), billing_mode="prepaid")
    s_bad = services.add(customer=bad, plan=home, start_date=D(2026, 3, 1), billing_mode="prepaid")
    Service.update(plan=plan("usd", "30.00", currency="USD").id).where(Service.id == s_good.id).execute()
    from core.models import Customer
    Customer.update(tax_region="ATLANTIS").where(Customer.id == bad.id).execute()
    result = billing.run(D(2026, 3, 1))
    assert result.invoices == 0
    assert result.failures == {
        good.account_number: f"service {s_good.id} is priced in USD, the customer in KES",
        bad.account_number: "no tax definition for region 'ATLANTIS'",
    }
    assert Invoice.select().count() == 0 and LedgerEntry.select().count() == 0
    assert Service.get_by_id(s_bad.id).next_bill_date == D(2026, 3, 1)  # untouched, billed once fixed
    run = BillingRun.get_by_id(result.run_id)
    assert run.failures == result.failures


def test_bundle_and_promo_through_the_bundles_plugin(db, vat):
    from core import settings

    settings.set_value("bundles.bundles", json.dumps(
        [{"code": "duo", "name": "Internet + TV", "kinds": ["internet", "tv"], "percent": "10"}]))
    settings.set_value("bundles.promos", json.dumps(
        [{"code": "WELCOME", "description": "500 off for 2 months", "fixed": "500.00", "currency": "KES",
          "periods": 2, "kinds": ["internet"]}]))
    c = customer(tax_region="TESTVAT")
    services.add(customer=c, plan=plan("home", "3,000.00"), start_date=D(2026, 1, 1), billing_mode="prepaid")
    services.add(customer=c, plan=plan("tv", "1,000.00", kind="tv"), start_date=D(2026, 1, 1),
                 billing_mode="prepaid")
    promos.redeem(c, "welcome", on=D(2026, 1, 1))
    for month in (1, 2, 3):
        billing.run(D(2026, month, 1))
    jan, feb, mar = only_invoice(c)
    # bundle: 10% of 4,000.00 = 400.00 (split 300 internet / 100 TV, both standard: one line)
    # promo: 500.00 off internet after the bundle, for two invoices only
    jan_discounts = sorted(amount for kind, amount in lines_of(jan) if kind == "discount")
    assert sum(jan_discounts) == -90000
    assert {line.source for line in jan.lines if line.kind == "discount"} == {"bundles"}
    assert sum(a for k, a in lines_of(mar) if k == "discount") == -40000
    # tax on what is left: (4000 - 900) * 16% = 496.00 in January, (4000 - 400) * 16% = 576.00 in March
    assert (jan.subtotal_minor, jan.tax_minor, jan.total_minor) == (310000, 49600, 359600)
    assert feb.total_minor == jan.total_minor
    assert (mar.subtotal_minor, mar.tax_minor, mar.total_minor) == (360000, 57600, 417600)
    assert PromoRedemption.get(PromoRedemption.customer == c.id).times_applied == 2


# --- credit notes, account credit, the ledger ------------------------------------------

def _issued(vat_region="TESTVAT"):
    c = customer(tax_region=vat_region)
    services.add(customer=c, plan=plan(), start_date=D(2026, 3, 1), billing_mode="prepaid")
    charges.add(customer=c, description="Installation", amount="1,000.00", charge_date=D(2026, 3, 1))
    billing.run(D(2026, 3, 1))
    return c, only_invoice(c)[0]


def test_partial_credit_note_by_line_and_by_amount(db, vat):
    c, inv = _issued()
    assert inv.total_minor == 464000  # (3000 + 1000) * 1.16
    install = inv.lines.where(InvoiceLine.kind == "oneoff").get()
    note = credit_notes.issue(inv, reason="Installation waived", parts=[credit_notes.Part(install.id)])
    assert (note.subtotal_minor, note.tax_minor, note.total_minor) == (100000, 16000, 116000)
    assert note.series == "CN-" + str(dt.date.today().year) and note.number == 1
    # a lump 116.00 (tax included): 100.00 net + 16.00 VAT, spread over what is left (the internet line)
    lump = credit_notes.issue(inv, reason="Outage", amount=Money(11600, "KES"))
    assert (lump.subtotal_minor, lump.tax_minor, lump.total_minor) == (10000, 1600, 11600)
    with pytest.raises(ValidationError, match="has KES 0.00 left to credit"):
        credit_notes.issue(inv, reason="again", parts=[credit_notes.Part(install.id)])
    assert Invoice.get_by_id(inv.id).settled_minor == 127600
    assert ledger.balance(c) == Money(464000 - 127600, "KES")
    # an issued invoice's own rows never change
    assert Invoice.get_by_id(inv.id).total_minor == 464000 and InvoiceTax.get(InvoiceTax.invoice == inv.id).tax_minor == 64000


def test_void_an_unpaid_invoice_and_refuse_over_crediting(db, vat):
    c, inv = _issued()
    note = credit_notes.issue(inv, reason="Billed in error", void=True)
    assert note.total_minor == inv.total_minor and note.tax_minor == inv.tax_minor
    assert Invoice.get_by_id(inv.id).status == "void"
    assert ledger.balance(c) == Money(0, "KES")
    assert Event.select().where(Event.name == "invoice.paid").count() == 0  # voided, not paid
    with pytest.raises(ValidationError, match="only issued or paid invoices"):
        credit_notes.issue(inv, reason="twice")
    with pytest.raises(ValidationError, match="needs a reason"):
        credit_notes.issue(_issued()[1], reason="  ")


def test_credit_on_a_paid_invoice_becomes_account_credit_applied_to_the_next_invoice(db, vat):
    from core import allocation
    from core.models import Payment

    c, inv = _issued()
    with database.atomic():
        pay = Payment.create(customer=c.id, gateway="manual", reference="R1", amount_minor=inv.total_minor,
                             currency="KES", unallocated_minor=inv.total_minor)
        ledger.post(c.id, "payment", Money(-inv.total_minor, "KES"), "Payment R1", payment=pay.id)
        allocation.apply_credit(c.id)
    assert Invoice.get_by_id(inv.id).status == "paid"
    with pytest.raises(ValidationError, match="has payments against it"):
        credit_notes.issue(inv, reason="void a paid one", void=True)
    note = credit_notes.issue(inv, reason="Goodwill", amount=Money(58000, "KES"))
    assert CreditNote.get_by_id(note.id).unallocated_minor == 58000
    assert ledger.balance(c) == Money(-58000, "KES")  # account credit
    billing.run(D(2026, 4, 1))
    april = only_invoice(c)[1]
    assert april.total_minor == 348000 and april.settled_minor == 58000 and april.status == "issued"
    assert CreditNote.get_by_id(note.id).unallocated_minor == 0
    assert ledger.balance(c) == Money(348000 - 58000, "KES")


def test_ledger_is_the_sum_of_documents(db, vat):
    c, inv = _issued()
    credit_notes.issue(inv, reason="Outage", amount=Money(1160, "KES"))
    billing.run(D(2026, 4, 1))
    total_invoices = sum(i.total_minor for i in only_invoice(c))
    total_notes = sum(n.total_minor for n in CreditNote.select().where(CreditNote.customer == c.id))
    assert ledger.balance(c).minor == total_invoices - total_notes
    rows = ledger.entries(c)
    assert [r["kind"] for r in rows] == ["invoice", "credit_note", "invoice"]
    assert rows[-1]["balance"] == ledger.balance(c).to_dict()


# --- numbering, races and interrupted runs ------------------------------------------

def test_numbers_are_gapless_per_series_and_year(db, pm):
    home = plan()
    for i in range(3):
        services.add(customer=customer(name=f"C{i}"), plan=home, start_date=D(2026, 12, 1), billing_mode="prepaid")
    assert billing.run(D(2026, 12, 1)).invoice_numbers == [f"INV-2026-00000{i}" for i in (1, 2, 3)]
    assert billing.run(D(2027, 1, 1)).invoice_numbers == [f"INV-2027-00000{i}" for i in (1, 2, 3)]


def test_two_runs_racing_bill_each_service_once(db, pm, db_url):
    import threading

    home = plan()
    for i in range(40):
        services.add(customer=customer(name=f"Racer {i}"), plan=home, start_date=D(2026, 5, 1),
                     billing_mode="prepaid")
    results, errors = [], []

    def go():
        try:
            results.append(billing.run(D(2026, 5, 1), chunk=7))
        except Exception as exc:  # re-raised below
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sum(r.invoices for r in results) == 40
    numbers = sorted(i.number for i in Invoice.select())
    assert numbers == list(range(1, 41))
    assert Invoice.select(Invoice.customer).distinct().count() == 40


def test_a_run_killed_half_way_is_finished_by_the_next(db, pm):
    home = plan()
    for i in range(10):
        services.add(customer=customer(name=f"K{i}"), plan=home, start_date=D(2026, 5, 1), billing_mode="prepaid")

    class Killer:
        calls = 0

        @hookimpl
        def pricing_adjustments(self, invoice):
            Killer.calls += 1
            if Killer.calls == 6:
                raise KeyboardInterrupt  # like the process being stopped mid-chunk

    pm.add(Killer(), "killer", "test")
    with pytest.raises(KeyboardInterrupt):
        billing.run(D(2026, 5, 1), chunk=4)
    assert Invoice.select().count() == 4  # the first chunk committed, the second rolled back
    assert BillingRun.select().where(BillingRun.status == "failed").count() == 1
    pm.unregister(name="killer")
    assert billing.run(D(2026, 5, 1), chunk=4).invoices == 6
    assert sorted(i.number for i in Invoice.select()) == list(range(1, 11))
    assert Invoice.select(Invoice.customer).distinct().count() == 10


# --- bad input -----------------------------------------------------------------------

def test_bad_input_is_refused_and_nothing_is_written(db, pm):
    from core.models import Plan

    c = customer()
    with pytest.raises(ValidationError, match="price"):
        plan("neg", "-5.00")
    with pytest.raises(ValidationError, match="currency"):
        plan("xyz", currency="XYZ")
    usd = plan("usd", "30.00", currency="USD")
    with pytest.raises(ValidationError, match="priced in USD but customer .* is billed in KES"):
        services.add(customer=c, plan=usd)
    with pytest.raises(ValidationError, match="no tax definition for region 'MARS'"):
        customer(name="Martian", tax_region="MARS")
    with pytest.raises(ValidationError, match="anchor_day"):
        services.add(customer=c, plan=plan("home"), anchor_day=32)
    with pytest.raises(ValidationError, match="date like"):
        services.add(customer=c, plan="home", start_date="next tuesday")
    assert Plan.select().where(Plan.code.in_(("neg", "xyz"))).count() == 0
    assert Service.select().count() == 0


# --- the shipped tax regions through the run ---------------------------------------------

def test_real_regions_compound_two_taxes_and_mixed_rates(db, pm):
    ke = customer(name="Nairobi", tax_region="KE")
    services.add(customer=ke, plan=plan("ke-home", "4,002.00", tax_category="internet"), start_date=D(2026, 3, 1),
                 billing_mode="prepaid")
    india = customer(name="Pune", currency="INR", tax_region="IN")
    services.add(customer=india, plan=plan("in-home", "1,000.00", currency="INR"), start_date=D(2026, 3, 1),
                 billing_mode="prepaid")
    de = customer(name="Berlin", currency="EUR", tax_region="DE")
    services.add(customer=de, plan=plan("de-home", "119.00", currency="EUR"), start_date=D(2026, 3, 1),
                 billing_mode="prepaid")
    charges.add(customer=de, description="Printed manual", amount="10.70", tax_category="reduced",
                charge_date=D(2026, 3, 1))
    assert billing.run(D(2026, 3, 1)).invoices == 3

    def taxes(c):
        inv = only_invoice(c)[0]
        rows = [(t.name, t.rate, t.compound, t.taxable_minor, t.tax_minor) for t in inv.taxes.order_by(InvoiceTax.id)]
        return (inv.subtotal_minor, inv.tax_minor, inv.total_minor), rows

    # Kenya, prices include tax: 4,002.00 = net x 1.15 x 1.16, net 3,000.00; excise 450.00; VAT on 3,450.00 = 552.00
    assert taxes(ke) == ((300000, 100200, 400200), [
        ("Excise duty", Decimal("0.15"), False, 300000, 45000),
        ("VAT", Decimal("0.16"), True, 345000, 55200)])
    # India, exclusive: CGST 9% and SGST 9% of 1,000.00, each its own line
    assert taxes(india) == ((100000, 18000, 118000), [
        ("CGST", Decimal("0.09"), False, 100000, 9000), ("SGST", Decimal("0.09"), False, 100000, 9000)])
    # Germany, inclusive: 119.00 at 19% (net 100.00) and 10.70 at 7% (net 10.00), one row per rate
    got = taxes(de)
    assert got[0] == (11000, 1970, 12970)
    assert sorted(got[1]) == [("USt", Decimal("0.07"), False, 1000, 70), ("USt", Decimal("0.19"), False, 10000, 1900)]


# --- properties ----------------------------------------------------------------------------

PLANS = [("p-home", "internet", "2,999.00", "internet"), ("p-tv", "tv", "1,250.50", "tv"),
         ("p-phone", "phone", "333.33", "telecom"), ("p-ip", "vas", "500.00", "standard")]


def test_properties_lines_sum_to_totals_and_a_second_run_changes_nothing(db, vat):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from core import settings as wb_settings

    wb_settings.set_value("bundles.bundles", json.dumps(
        [{"code": "duo", "kinds": ["internet", "tv"], "percent": "12.5"}]))
    for code, kind, price, category in PLANS:
        catalog.add(code=code, name=code, kind=kind, price=price, currency="KES", tax_category=category)
    counter = iter(range(10**6))

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        region=st.sampled_from([None, "KE", "TESTVAT"]),
        exempt=st.booleans(),
        subs=st.lists(st.tuples(st.sampled_from([p[0] for p in PLANS]), st.integers(1, 28), st.booleans()),
                      min_size=1, max_size=4),
        extra=st.lists(st.integers(1, 10**7), max_size=2),
        as_of=st.dates(D(2026, 1, 1), D(2026, 12, 31)),
    )
    def check(region, exempt, subs, extra, as_of):
        c = customer(name=f"Prop {next(counter)}", tax_region=region, tax_exempt=exempt,
                     tax_exemption_ref="EX-1" if exempt else None)
        for code, day, prepaid in subs:
            services.add(customer=c, plan=code, start_date=D(2026, 1, day), anchor_day=day,
                         billing_mode="prepaid" if prepaid else "postpaid")
        for minor in extra:
            charges.add(customer=c, description="Extra", amount=Money(minor, "KES"), charge_date=D(2026, 1, 1))
        billing.run(as_of)
        for inv in only_invoice(c):
            line_sum = sum(line.amount_minor for line in inv.lines)
            tax_sum = sum(t.tax_minor for t in inv.taxes)
            assert inv.tax_minor == tax_sum
            if inv.tax_inclusive:
                assert inv.total_minor == line_sum and inv.subtotal_minor == line_sum - tax_sum
            else:
                assert inv.subtotal_minor == line_sum and inv.total_minor == line_sum + tax_sum
            assert inv.total_minor >= 0 and (inv.tax_minor == 0 or not exempt)
        before = [m.select().count() for m in (Invoice, InvoiceLine, InvoiceTax, LedgerEntry, Charge)]
        assert billing.run(as_of).invoices == 0
        assert [m.select().count() for m in (Invoice, InvoiceLine, InvoiceTax, LedgerEntry, Charge)] == before
        assert ledger.balance(c).minor == sum(i.total_minor for i in only_invoice(c))

    check()


def test_a_price_change_is_a_new_version_and_services_keep_their_price(db, pm):
    c = customer()
    v1 = plan("home", "3,000.00")
    s = services.add(customer=c, plan="home", start_date=D(2026, 3, 1), billing_mode="prepaid")
    v2 = plan("home", "3,300.00")
    assert (v1.version, v2.version, s.plan_id) == (1, 2, v1.id)
    late = services.add(customer=customer(name="Late"), plan="home", start_date=D(2026, 3, 1),
                        billing_mode="prepaid")
    assert late.plan_id == v2.id  # new subscriptions take the newest version
    billing.run(D(2026, 3, 1))
    billing.run(D(2026, 4, 1))
    assert [inv.total_minor for inv in only_invoice(c)] == [300000, 300000]
    # The operator moves the service at renewal: from May it pays the new price.
    result = services.change_plan(s, "home@2", on=D(2026, 5, 1))
    assert result["upgrade"] and result["credit_notes"] == [] and result["charges"] == []
    billing.run(D(2026, 5, 1))
    assert only_invoice(c)[-1].total_minor == 330000


def test_number_prefix_setting_and_event_payloads(db, pm):
    from core import settings

    settings.set_value("billing.invoice_prefix", "faktüra")
    c = customer()
    services.add(customer=c, plan=plan(), start_date=D(2026, 3, 1), billing_mode="prepaid")
    assert billing.run(D(2026, 3, 1)).invoice_numbers == ["FAKTÜRA-2026-000001"]
    event = Event.get(Event.name == "invoice.issued")
    assert event.payload["number"] == "FAKTÜRA-2026-000001"
    with pytest.raises(ValidationError, match="prefix"):
        settings.set_value("billing.invoice_prefix", 'IN"V')
