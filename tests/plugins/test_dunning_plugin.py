"""The dunning plugin: its daily job, and the events that restore an account the moment it is paid.

The last test runs the whole path on a router: a late subscriber is suspended on it by the
run, and a payment puts them back on it when its event is handled, before any scheduled
push or reconcile.
"""

from __future__ import annotations

import datetime as dt

import pytest

from core import credit_notes, dunning, enforcement, hookimpl, payments, routers, scheduler
from core.clock import today
from core.hooktypes import ApplyResult, DomainEvent, EnforcerInfo
from core.models import AuditEvent, Customer, Event
from plugins import dunning as plugin
from tests.factories import kes, make_customer, make_issued_invoice, make_plan, make_service

DAY = dt.timedelta(days=1)


def _late(days=20):
    c = make_customer()
    invoice = make_issued_invoice(c, 150_000, due_date=today() - days * DAY)
    return c, invoice


def _deliver(name):
    """Hand the newest outbox event called ``name`` to the plugin, as the outbox would; returns it."""
    row = Event.select().where(Event.name == name).order_by(Event.id.desc()).get()
    event = DomainEvent(row.id, row.name, row.payload, row.created_at)
    plugin.handle_event(event)
    return event


def _state(c):
    return Customer.get_by_id(c.id).state


def test_the_job_runs_daily_and_evaluates_today(db, pm):
    job = {j.id: j for j in scheduler.collect_jobs(pm)}["dunning.run"]
    assert (job.trigger, job.schedule) == ("cron", {"hour": 1, "minute": 0})
    c, _invoice = _late(days=8)
    result = scheduler.run_job(job)
    assert isinstance(result, dunning.RunResult) and result.date == today()
    assert [t["to_state"] for t in result.transitions] == ["throttled"] and _state(c) == "throttled"
    assert scheduler.run_job(job).transitions == []


def test_a_manual_payment_restores_the_account_once_whatever_the_redeliveries(db, pm):
    c, _invoice = _late()
    dunning.run()
    assert _state(c) == "suspended"
    payments.add_manual(c, kes(150_000), method="cash")
    event = _deliver("payment.received")
    assert _state(c) == "active"
    restored = Event.select().where(Event.name == "account.restored").get()
    assert restored.payload["from_state"] == "suspended" and restored.payload["reason"] == "paid"
    counts = (Event.select().count(), AuditEvent.select().count())
    plugin.handle_event(event)  # delivered again
    plugin.handle_event(event)
    assert (Event.select().count(), AuditEvent.select().count()) == counts
    last = AuditEvent.select().where(AuditEvent.action == "customer.state_changed").order_by(AuditEvent.id.desc()).get()
    assert (last.actor, last.after["state"], last.after["reason"]) == ("dunning", "active", "paid")


def test_a_credit_note_that_clears_the_overdue_balance_restores_the_account(db, pm):
    c, invoice = _late(days=9)
    dunning.run()
    assert _state(c) == "throttled"
    credit_notes.issue(invoice, reason="outage in the area", amount=kes(100_000))
    _deliver("credit_note.issued")
    assert _state(c) == "throttled"  # KES 500.00 still overdue
    credit_notes.issue(invoice, reason="outage in the area, the rest")
    _deliver("credit_note.issued")
    assert _state(c) == "active"


def test_an_issued_invoice_expires_an_unpaid_prepaid_service(db, pm):
    from core import billing, services

    c = make_customer()
    service = services.add(customer=c, plan=make_plan(), start_date=today(), billing_mode="prepaid")
    billing.run(today())
    _deliver("invoice.issued")
    assert [e.payload["service_id"] for e in Event.select().where(Event.name == "service.expired")] == [service.id]


def test_other_events_and_unknown_customers_are_ignored(db, pm):
    c, _invoice = _late()
    counts = (Event.select().count(), AuditEvent.select().count())
    now = dt.datetime(2026, 1, 1)
    plugin.handle_event(DomainEvent(1, "account.suspended", {"customer_id": c.id}, now))
    plugin.handle_event(DomainEvent(2, "service.created", {"customer_id": c.id}, now))
    plugin.handle_event(DomainEvent(3, "payment.received", {"customer_id": 999_999}, now))
    plugin.handle_event(DomainEvent(4, "payment.received", {"customer_id": "1"}, now))
    plugin.handle_event(DomainEvent(5, "invoice.issued", {}, now))
    assert (Event.select().count(), AuditEvent.select().count()) == counts
    assert _state(c) == "active"  # only a dunning event for this customer would have moved it


# --- on a router -------------------------------------------------------------------

class Tower:
    """An enforcer keeping what each router holds in memory."""

    def __init__(self):
        self.held = {}

    @hookimpl
    def enforcer_describe(self):
        return EnforcerInfo("tower", "In-memory tower")

    @hookimpl
    def enforcer_read_state(self, router):
        return list(self.held.values()) if router.kind == "tower" else None

    @hookimpl
    def enforcer_apply(self, router, changes):
        if router.kind != "tower":
            return None
        for change in changes:
            if change.action == "remove":
                self.held.pop(change.subscriber.key, None)
            else:
                self.held[change.subscriber.key] = change.subscriber
        return ApplyResult(applied=tuple(c.subscriber.key for c in changes))


@pytest.fixture
def tower(pm, db):
    enforcer = Tower()
    pm.add(enforcer, "tower", "test")
    return enforcer


def test_a_late_subscriber_is_suspended_on_the_router_and_back_online_when_paid(db, pm, tower):
    router = routers.add(name="tower-1", kind="tower", host="127.0.0.1")
    c, _invoice = _late(days=8)
    service = routers.bind_service(make_service(c, make_plan()), router=router, access="pppoe", username="juma",
                                   password="s3cret")
    enforcement.push_pending()
    key = enforcement.service_key(service.id)
    assert tower.held[key].state == "active"

    dunning.run()
    assert tower.held[key].state == "throttled" and tower.held[key].rate == (512, 256)
    dunning.run(today() + 6 * DAY)
    assert tower.held[key].state == "suspended"

    payments.add_manual(c, kes(150_000))
    _deliver("payment.received")
    assert tower.held[key].state == "active" and tower.held[key].rate == (10_000, 2_000)
    assert enforcement.pending() == []  # pushed at once, nothing left for the scheduler
