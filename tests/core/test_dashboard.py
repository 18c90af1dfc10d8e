"""The dashboard's figures from real rows: known totals, a currency mix, every age bucket."""

import datetime as dt
import time
from fractions import Fraction

from core import dashboard
from core.models import Customer, Invoice, Router, Service
from core.money import Money
from tests.factories import make_customer, make_issued_invoice, make_payment, make_plan, make_service

TODAY = dt.date(2026, 5, 20)


def kes(minor):
    return Money(minor, "KES")


def test_recurring_revenue_normalises_periods_and_rounds_once_per_currency(db):
    ke = make_customer(currency="KES")
    us = make_customer(currency="USD")
    gone = make_customer(currency="KES")
    monthly = make_plan(price="1,500.00")
    weekly = make_plan(price="100.00", period="weekly")
    daily = make_plan(price="10.00", period="daily")
    ten_days = make_plan(price="50.00", period="days", period_days=10)
    dollars = make_plan(price="20.00", currency="USD")
    start = dt.date(2026, 1, 1)
    make_service(ke, monthly, start_date=start)
    make_service(ke, monthly, start_date=start, price_override_minor=120_000)  # the override wins
    make_service(ke, weekly, start_date=start)
    make_service(ke, daily, start_date=start)
    make_service(ke, ten_days, start_date=start)
    make_service(us, dollars, start_date=start, price_override_minor=1_500)
    # none of these count: cancelled, suspended by hand, pending, ended, not started, terminated account
    make_service(ke, monthly, start_date=start, status="cancelled")
    make_service(ke, monthly, start_date=start, status="suspended")
    make_service(ke, monthly, start_date=start, status="pending")
    make_service(ke, monthly, start_date=start, end_date=TODAY)
    make_service(ke, monthly, start_date=TODAY + dt.timedelta(days=1))
    make_service(gone, monthly, start_date=start)
    Customer.update(state="terminated").where(Customer.id == gone.id).execute()

    revenue = dashboard.recurring_revenue(TODAY)
    # 1,500 + 1,200 + 100 x 30.4375/7 + 10 x 30.4375 + 50 x 30.4375/10 = 3,591.383928...
    exact = 270_000 + Fraction(10_000 * 304375, 70_000) + Fraction(1_000 * 304375, 10_000) \
        + Fraction(5_000 * 304375, 100_000)
    assert exact == Fraction(10_055_875, 28)  # 359,138.3928...
    assert revenue == {"KES": kes(359_138), "USD": Money(1_500, "USD")}  # each rounded alone would give 359,139
    assert list(revenue) == ["KES", "USD"]
    assert dashboard.months_factor("weekly", None) == Fraction(304375, 70000)


def test_receivables_by_age_and_currency(db):
    ke = make_customer(currency="KES")
    us = make_customer(currency="USD")
    for days_past_due, minor in ((-5, 1_000), (0, 2_000), (1, 3_000), (30, 4_000), (31, 5_000), (60, 6_000),
                                 (61, 7_000), (90, 8_000), (91, 9_000)):
        make_issued_invoice(ke, minor, due_date=TODAY - dt.timedelta(days=days_past_due))
    part = make_issued_invoice(ke, 10_000, due_date=TODAY - dt.timedelta(days=10))
    Invoice.update(settled_minor=2_500).where(Invoice.id == part.id).execute()  # 7,500 left
    paid = make_issued_invoice(ke, 50_000, due_date=TODAY - dt.timedelta(days=10))
    Invoice.update(settled_minor=50_000, status="paid").where(Invoice.id == paid.id).execute()
    void = make_issued_invoice(ke, 50_000, due_date=TODAY - dt.timedelta(days=10))
    Invoice.update(status="void").where(Invoice.id == void.id).execute()
    make_issued_invoice(us, 4_200, due_date=TODAY - dt.timedelta(days=200))

    ages = dashboard.receivables(TODAY)
    assert ages["KES"] == {"current": kes(3_000), "1-30": kes(14_500), "31-60": kes(11_000), "61-90": kes(15_000),
                           "90+": kes(9_000), "total": kes(52_500)}
    usd = Money(0, "USD")
    assert ages["USD"] == {"current": usd, "1-30": usd, "31-60": usd, "61-90": usd, "90+": Money(4_200, "USD"),
                           "total": Money(4_200, "USD")}


def test_counts_payments_today_routers_and_months(db):
    customers = [make_customer() for _ in range(6)]
    for customer, state in zip(customers[1:], ("reminded", "throttled", "suspended", "suspended", "terminated")):
        Customer.update(state=state).where(Customer.id == customer.id).execute()
    us = make_customer(currency="USD")
    assert dashboard.account_counts() == {"active": 2, "reminded": 1, "throttled": 1, "suspended": 2,
                                          "terminated": 1}

    noon = dt.datetime.combine(TODAY, dt.time(12))
    make_payment(customers[0], amount_minor=100_000, received_at=noon)
    make_payment(customers[1], amount_minor=25_050, received_at=dt.datetime.combine(TODAY, dt.time(0)))
    make_payment(us, amount_minor=700, received_at=dt.datetime.combine(TODAY, dt.time(23, 59, 59)))
    make_payment(customers[0], amount_minor=1, received_at=noon - dt.timedelta(days=1))  # yesterday
    make_payment(customers[0], amount_minor=9, received_at=noon + dt.timedelta(days=1))  # tomorrow
    make_payment(customers[0], amount_minor=5, received_at=noon, status="failed")
    today = dashboard.payments_on(TODAY)
    assert today.count == 3
    assert today.totals == {"KES": kes(125_050), "USD": Money(700, "USD")}

    router = Router.create(name="tower-1", kind="mikrotik", host="192.0.2.1", last_error="timed out")
    make_service(customers[0], router=router)
    [state] = dashboard.router_states()
    assert state["name"] == "tower-1" and state["services"] == 1 and state["last_error"] == "timed out"
    assert "secret" not in state

    make_issued_invoice(customers[0], 300_000, due_date=dt.date(2026, 5, 30))  # issued 2026-05-16
    make_issued_invoice(customers[0], 200_000, due_date=dt.date(2026, 2, 20))  # issued 2026-02-06
    make_issued_invoice(customers[0], 999_999, due_date=dt.date(2025, 5, 10))  # issued 2025-04: too old
    monthly = dashboard.monthly_totals(TODAY)
    assert monthly.months[0] == dt.date(2025, 6, 1) and monthly.months[-1] == dt.date(2026, 5, 1)
    assert len(monthly.months) == 12
    assert monthly.invoiced["KES"][-1] == 300_000 and monthly.invoiced["KES"][-4] == 200_000
    assert sum(monthly.invoiced["KES"]) == 500_000
    assert monthly.paid["KES"][-1] == 125_060 and monthly.paid["KES"][-2] == 0  # failed ones left out
    assert monthly.paid["USD"][-1] == 700
    assert monthly.currencies() == ["KES", "USD"]

    figures = dashboard.figures(TODAY)
    assert figures.counts["suspended"] == 2 and figures.payments_today.count == 3
    first = dashboard.cached_figures("test-key")
    Service.delete().execute()
    assert dashboard.cached_figures("test-key") is first  # kept for CACHE_SECONDS
    fresh = dashboard.cached_figures("test-key", max_age=0, background=False)
    assert fresh is not first and fresh.routers[0]["services"] == 0
    # out of date: the old figures are shown once more while a thread computes new ones
    Router.delete().execute()
    dashboard.forget()
    assert dashboard.cached_figures("test-key") is fresh
    deadline = time.monotonic() + 10
    while "test-key" in dashboard._refreshing and time.monotonic() < deadline:
        time.sleep(0.02)
    assert dashboard.cached_figures("test-key").routers == []
