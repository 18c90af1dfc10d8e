"""Plan changes, cancellations, credit notes and usage in the corners: pending charges, discounts,
rounding, a change racing a run, and overage across plan changes. Each on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest

from core import billing, catalog, charges, credit_notes, customers, hookimpl, ledger, services
from core.db import database
from core.errors import ValidationError
from core.models import Charge, Invoice, InvoiceLine, Service, UsageRecord
from core.money import Money
from tests.core.test_billing import FlatVat

D = dt.date
_n = [0]


@pytest.fixture
def vat(pm):
    pm.add(FlatVat(), "flat_vat", "test")
    return pm


def customer(**kw):
    _n[0] += 1
    data = {"name": f"Customer {_n[0]}", "currency": "KES", "terms_days": 14}
    data.update(kw)
    return customers.add(**data)


def plan(code="home", price="3,000.00", **kw):
    data = {"code": code, "name": code.title(), "kind": "internet", "price": price, "currency": "KES"}
    data.update(kw)
    return catalog.add(**data)


def invoices_of(c):
    return list(Invoice.select().where(Invoice.customer == c.id).order_by(Invoice.id))


def lines_of(invoice):
    return [(line.kind, line.amount_minor) for line in invoice.lines.order_by(InvoiceLine.position)]


def test_cancel_on_the_day_of_an_upgrade_reverses_the_pending_upgrade_charge(db, pm):
    """Cancelling on the day of an upgrade: the pending upgrade charge is taken back, not billed."""
    c = customer()
    s = services.add(customer=c, plan=plan("home", "1,000.00"), start_date=D(2026, 2, 1), billing_mode="prepaid")
    plan("fast", "10,000.00")
    billing.run(D(2026, 2, 1))                       # Feb on Home: 1,000.00
    services.change_plan(s, "fast", on=D(2026, 2, 15))  # credit 500.00 of Home, charge 5,000.00 of Fast (pending)
    services.cancel(s, on=D(2026, 2, 15))            # customer leaves the same day
    billing.run(D(2026, 3, 1))
    # Service ran Feb 1-14 on Home only: 14/28 of 1,000.00 = 500.00 owed.
    assert ledger.balance(c) == Money(50000, "KES"), ledger.balance(c)


def test_prepaid_downgrade_keeps_the_old_plan_until_its_date(db, pm):
    """A downgrade asked for before the renewal run: the run bills March at the old plan and keeps
    the service on it until 1 April, so a cancel in March credits at the price March was paid at."""
    from core.models import Event
    c = customer()
    s = services.add(customer=c, plan=plan("fast", "4,500.00"), start_date=D(2026, 2, 1), billing_mode="prepaid")
    plan("home", "1,500.00")
    billing.run(D(2026, 2, 1))
    r = services.change_plan(s, "home", on=D(2026, 3, 1))   # 1 March, before the day's run
    assert r["effective"] == D(2026, 4, 1)                  # March stays on Fast
    billing.run(D(2026, 3, 1))
    assert lines_of(invoices_of(c)[1]) == [("recurring", 450000)]   # March billed at Fast: right
    svc = Service.get_by_id(s.id)
    switched = Event.select().where(Event.name == "service.changed").count()
    result = services.cancel(svc, on=D(2026, 3, 16))
    credited = sum(n.total_minor for n in result["credit_notes"])
    # 16 of 31 March days were paid at Fast: 450000 - round(450000 * 15 / 31) = 232258
    assert (svc.plan.code, switched, credited) == ("fast", 0, 232258)


def test_cancel_keeps_a_downgrade_already_in_effect(db, pm):
    """A downgrade effective 1 March that no run has applied yet is kept by a cancel on 5 March."""
    c = customer()
    s = services.add(customer=c, plan=plan("fast", "3,100.00"), start_date=D(2026, 2, 1))   # postpaid
    plan("home", "1,550.00")
    services.change_plan(s, "home", on=D(2026, 2, 10))       # effective 1 March
    services.cancel(Service.get_by_id(s.id), on=D(2026, 3, 5))
    billing.run(D(2026, 3, 5))
    # February on Fast (3,100.00) + 4 of 31 March days on Home: round(155000 * 4 / 31) = 20000
    assert ledger.balance(c) == Money(310000 + 20000, "KES"), ledger.balance(c)


def _welcome50(c):
    import json

    from core import promos, settings
    settings.set_value("bundles.promos", json.dumps(
        [{"code": "WELCOME50", "description": "Half price first month", "percent": "50", "periods": 1}]))
    promos.redeem(c, "welcome50", on=D(2026, 3, 1))


def test_cancel_in_a_discounted_period_credits_at_most_what_is_left(db, pm):
    c = customer()
    _welcome50(c)
    s = services.add(customer=c, plan=plan("home", "3,000.00"), start_date=D(2026, 3, 1), billing_mode="prepaid")
    billing.run(D(2026, 3, 1))
    assert invoices_of(c)[0].total_minor == 150000          # 3,000.00 - 50%
    # The customer leaves on 3 March: 29 of 31 days of the 3,000.00 line would be 2,806.45,
    # but the discount left only 1,500.00 on the invoice to credit.
    result = services.cancel(s, on=D(2026, 3, 3))
    assert [n.total_minor for n in result["credit_notes"]] == [150000]
    assert ledger.balance(c) == Money(0, "KES")


def test_upgrade_in_a_discounted_period_goes_through(db, pm):
    c = customer()
    _welcome50(c)
    s = services.add(customer=c, plan=plan("home", "3,000.00"), start_date=D(2026, 3, 1), billing_mode="prepaid")
    plan("fast", "4,500.00")
    billing.run(D(2026, 3, 1))
    result = services.change_plan(s, "fast", on=D(2026, 3, 3))
    # credit capped at the 1,500.00 left; Fast for 29 of 31 days: 450000 - round(450000 * 2 / 31) = 420968
    assert [n.total_minor for n in result["credit_notes"]] == [150000]
    assert [ch.amount_minor for ch in result["charges"]] == [420968]

def _two_line_invoice():
    c = customer(tax_region="TESTVAT")
    # 16% of each line is x.48 and rounds down; 16% of their sum is x.96 and rounds up
    charges.add(customer=c, description="Router", amount="3,000.03", charge_date=D(2026, 3, 1))
    charges.add(customer=c, description="Install", amount="1,000.03", charge_date=D(2026, 3, 1))
    billing.run(D(2026, 3, 1))
    [inv] = invoices_of(c)
    assert (inv.subtotal_minor, inv.tax_minor, inv.total_minor) == (400006, 64001, 464007)
    return c, inv


def test_crediting_every_line_takes_the_last_of_the_tax(db, vat):
    c, inv = _two_line_invoice()
    for line in inv.lines.order_by(InvoiceLine.position):
        credit_notes.issue(inv, reason="line", parts=[credit_notes.Part(line.id)])
    left = inv.total_minor - credit_notes.credited(inv)[0]
    # Each line's own tax rounds down (48000.48, 16000.48), the invoice's rounded up (64001): the credit
    # that takes the last of the lines takes the last 0.01 of tax with it.
    assert left == 0
    assert credit_notes.credited(inv) == (inv.total_minor, inv.tax_minor)
    with pytest.raises(ValidationError, match="already credited in full"):
        credit_notes.issue(Invoice.get_by_id(inv.id), reason="the rest", void=True)


def test_cli_void_with_an_amount_is_refused(cli):
    from core.models import CreditNote
    cli("migrate")
    acct = json.loads(cli("customers", "add", "--name", "X", "--currency", "KES", "--json").output)["account_number"]
    cli("charges", "add", acct, "--description", "Router", "--amount", "5,000", "--date", "2026-03-01")
    cli("bill", "--as-of", "2026-03-01")
    result = cli("credit-notes", "add", "INV-2026-000001", "--reason", "goodwill", "--void", "--amount", "10")
    # --void with --amount (or --line) is contradictory input: expect a refusal, nothing written
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert CreditNote.select().count() == 0


def test_credit_by_amount_after_a_line_credit_credits_what_is_asked(db, vat):
    from core.money import Money
    c = customer(tax_region="TESTVAT")
    charges.add(customer=c, description="Service", amount="3,000.00", charge_date=D(2026, 3, 1))
    charges.add(customer=c, description="Book", amount="1,000.00", tax_category="zero", charge_date=D(2026, 3, 1))
    billing.run(D(2026, 3, 1))
    [inv] = invoices_of(c)
    assert (inv.subtotal_minor, inv.tax_minor, inv.total_minor) == (400000, 48000, 448000)
    book = inv.lines.where(InvoiceLine.tax_category == "zero").get()
    credit_notes.issue(inv, reason="book returned", parts=[credit_notes.Part(book.id)])   # 1,000.00, no tax
    note = credit_notes.issue(inv, reason="goodwill", amount=Money(116000, "KES"))
    # 1,160.00 including tax: 1,000.00 + 160.00 VAT
    assert (note.subtotal_minor, note.tax_minor, note.total_minor) == (100000, 16000, 116000)


def test_credit_by_amount_of_exactly_what_is_left(db, vat):
    from core.money import Money
    c = customer(tax_region="TESTVAT")
    charges.add(customer=c, description="Service", amount="3,000.00", charge_date=D(2026, 3, 1))
    charges.add(customer=c, description="Book", amount="1,000.00", tax_category="zero", charge_date=D(2026, 3, 1))
    billing.run(D(2026, 3, 1))
    [inv] = invoices_of(c)
    book = inv.lines.where(InvoiceLine.tax_category == "zero").get()
    credit_notes.issue(inv, reason="book returned", parts=[credit_notes.Part(book.id)])
    # 3,480.00 is exactly what is left (3,000.00 + 480.00 VAT)
    note = credit_notes.issue(inv, reason="goodwill", amount=Money(348000, "KES"))
    assert note.total_minor == 348000

def test_a_plan_change_during_a_run_waits_for_the_chunk_and_is_kept(db, pm):
    c = customer()
    s = services.add(customer=c, plan=plan("home", "3,000.00"), start_date=D(2026, 2, 1), billing_mode="prepaid")
    plan("fast", "4,500.00")
    billing.run(D(2026, 2, 1))

    entered, go = threading.Event(), threading.Event()

    class Pause:
        @hookimpl
        def pricing_adjustments(self, invoice):
            entered.set()
            go.wait(5)
            return []

    pm.add(Pause(), "pause", "test")
    errors = []

    def bill():
        try:
            billing.run(D(2026, 3, 1))
        except Exception as exc:
            errors.append(exc)
        finally:
            database.close()

    def change():
        try:
            services.change_plan(Service.get_by_id(s.id), "fast", on=D(2026, 3, 1))
        except Exception as exc:
            errors.append(exc)
        finally:
            database.close()

    t1 = threading.Thread(target=bill)
    t1.start()
    assert entered.wait(10)
    t2 = threading.Thread(target=change)
    t2.start()
    t2.join(1.5)          # PostgreSQL: the change commits now; SQLite: it waits for the run's write lock
    go.set()
    t1.join(30)
    t2.join(30)
    assert not errors, errors
    svc = Service.get_by_id(s.id)
    march = invoices_of(c)[1]
    charged = sum(ch.amount_minor for ch in Charge.select())
    # The change waited for the chunk (billing lock) and was not overwritten by it.
    assert svc.plan.code == "fast", (svc.plan.code, lines_of(march), charged)

def _capped_service(c):
    capped = plan("capped", "2,000.00", data_cap_mb=50_000, fup_download_kbps=1000, fup_upload_kbps=500,
                  overage_per_gb="100.00")
    s = services.add(customer=c, plan=capped, start_date=D(2026, 3, 1), billing_mode="prepaid")
    billing.run(D(2026, 3, 1))
    day = dt.datetime(2026, 3, 10)
    UsageRecord.create(service=s.id, source="t", external_id="a", period_start=day, period_end=day,
                       bytes_in=60_000_000_000, bytes_out=0)        # 10 GB over the cap in March
    return s


def usage_lines(c):
    return [(l.quantity, l.amount_minor) for inv in invoices_of(c)
            for l in inv.lines.where(InvoiceLine.kind == "usage")]


def test_prepaid_overage_is_rated_with_the_plan_it_was_used_under(db, pm):
    c = customer()
    s = _capped_service(c)
    plan("lite", "1,500.00")                           # no cap, no overage price
    services.change_plan(s, "lite", on=D(2026, 3, 20))  # downgrade: effective 1 April
    billing.run(D(2026, 4, 1))
    # March was on Capped and went 10 GB over: 10 x 100.00 = 1,000.00
    assert usage_lines(c) == [(10, 100000)], usage_lines(c)


def test_prepaid_overage_of_the_last_period_is_billed_after_cancel(db, pm):
    c = customer()
    s = _capped_service(c)
    services.cancel(s, on=D(2026, 3, 20), at_period_end=True)   # ends 1 April
    billing.run(D(2026, 4, 1))
    billing.run(D(2026, 5, 1))
    assert usage_lines(c) == [(10, 100000)], usage_lines(c)


def test_postpaid_overage_is_billed_across_an_upgrade(db, pm):
    c = customer()
    capped = plan("capped", "2,000.00", data_cap_mb=50_000, fup_download_kbps=1000, fup_upload_kbps=500,
                  overage_per_gb="100.00")
    plan("bigger", "3,000.00", data_cap_mb=50_000, fup_download_kbps=1000, fup_upload_kbps=500,
         overage_per_gb="100.00")
    s = services.add(customer=c, plan=capped, start_date=D(2026, 3, 1))            # postpaid
    day = dt.datetime(2026, 3, 10)
    UsageRecord.create(service=s.id, source="t", external_id="a", period_start=day, period_end=day,
                       bytes_in=60_000_000_000, bytes_out=0)        # 10 GB over the cap, on 10 March
    services.change_plan(s, "bigger", on=D(2026, 3, 20))
    billing.run(D(2026, 4, 1))
    assert usage_lines(c) == [(10, 100000)], usage_lines(c)


def test_future_dates_wait_for_renewal_and_long_catch_ups_are_reported(db, pm):
    from core.clock import today

    c = customer()
    s = services.add(customer=c, plan=plan("home", "3,000.00"), start_date=D(2026, 2, 1), billing_mode="prepaid")
    fast = plan("fast", "4,500.00")
    with pytest.raises(ValidationError, match="today or on a date already past"):
        services.change_plan(s, "fast", on=today() + dt.timedelta(days=3))
    with pytest.raises(ValidationError, match="either now or at renewal"):
        services.change_plan(s, "fast", now=True, at_renewal=True)
    billing.run(D(2026, 2, 1))
    result = services.change_plan(s, "fast", on=D(2026, 2, 10), at_renewal=True)
    assert result["upgrade"] and result["effective"] == D(2026, 3, 1) and result["credit_notes"] == []
    billing.run(D(2026, 3, 1))
    assert lines_of(invoices_of(c)[1]) == [("recurring", 450000)]
    assert Service.get_by_id(s.id).plan_id == fast.id

    daily = customer(name="Daily")
    services.add(customer=daily, plan=plan("day", "50.00", period="daily"), start_date=D(2025, 1, 1),
                 billing_mode="prepaid")
    result = billing.run(D(2026, 3, 1))
    assert result.failures == {daily.account_number: "service 2 has more than 400 periods due; "
                                                      "bill it in steps with earlier --as-of dates"}
    assert billing.run(D(2025, 12, 31)).invoices == 1
    assert billing.run(D(2026, 3, 1)).invoices == 1
    assert billing.run(D(2026, 3, 1)).invoices == 0


def test_credit_applied_while_the_invoice_is_credited_keeps_settlement_consistent(db, pm):
    """Account credit being applied and a credit note for the same invoice, at the same time:
    one waits for the other, and an invoice's settled amount always equals its allocations."""
    from peewee import fn

    from core import allocation
    from core.models import Allocation, Payment

    pairs = []
    for i in range(6):
        c = customer(name=f"Race {i}")
        services.add(customer=c, plan=plan(f"race-{i}", "3,000.00"), start_date=D(2026, 3, 1), billing_mode="prepaid")
        billing.run(D(2026, 3, 1))
        with database.atomic():
            pay = Payment.create(customer=c.id, gateway="manual", reference=f"R{i}", amount_minor=100000,
                                 currency="KES", unallocated_minor=100000)
            ledger.post(c.id, "payment", Money(-100000, "KES"), f"Payment R{i}", payment=pay.id)
        pairs.append((c, invoices_of(c)[0], pay))
    errors = []

    def guarded(work):
        try:
            work()
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            database.close()

    def apply(cid):
        with database.atomic():
            allocation.apply_credit(cid)

    threads = []
    for c, inv, _pay in pairs:
        threads.append(threading.Thread(target=guarded, args=(lambda cid=c.id: apply(cid),)))
        threads.append(threading.Thread(target=guarded, args=(
            lambda inv=inv: credit_notes.issue(Invoice.get_by_id(inv.id), reason="outage"),)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for c, inv, pay in pairs:
        inv = Invoice.get_by_id(inv.id)
        allocated = Allocation.select(fn.COALESCE(fn.SUM(Allocation.amount_minor), 0)).where(
            Allocation.invoice == inv.id).scalar()
        assert inv.settled_minor == allocated and inv.settled_minor <= inv.total_minor
        assert inv.status == "paid"  # credited in full, whichever came first
        paid_out = Allocation.select(fn.COALESCE(fn.SUM(Allocation.amount_minor), 0)).where(
            Allocation.payment == pay.id).scalar()
        assert Payment.get_by_id(pay.id).unallocated_minor + paid_out == 100000
        assert ledger.balance(c).minor == inv.total_minor - 100000 - credit_notes.credited(inv)[0]
