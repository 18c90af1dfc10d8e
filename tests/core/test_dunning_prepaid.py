"""Prepaid access: paid_through follows the paid invoices, expiry and renewal are said once each."""

from __future__ import annotations

import datetime as dt

from core import billing, dunning, payments, services
from core.models import AuditEvent, Event, Invoice, Service
from tests.factories import kes, make_customer, make_plan, make_service

D = dt.date
START = D(2026, 3, 1)


def service_events(service):
    return [(e.name, e.payload) for e in Event.select().where(Event.name.startswith("service."))
            .order_by(Event.id) if e.payload.get("service_id") == service.id and e.name != "service.created"]


def paid_through(service):
    return Service.get_by_id(service.id).paid_through


def pay_all(customer):
    due = sum(i.total_minor - i.settled_minor for i in Invoice.select().where(
        Invoice.customer == customer.id, Invoice.status == "issued"))
    payments.add_manual(customer, kes(due))


def prepaid(customer=None, start=START):
    customer = customer or make_customer()
    plan = make_plan(price="1,000.00")
    return services.add(customer=customer, plan=plan, start_date=start, billing_mode="prepaid")


def test_a_prepaid_service_expires_at_the_end_of_what_was_paid_and_is_renewed_by_paying(db, pm):
    service = prepaid()
    c = service.customer
    early = dunning.evaluate_customer(c.id, D(2026, 2, 20))  # not started yet: nothing to expire
    assert paid_through(service) == START and early.services[0]["event"] is None

    billing.run(START)  # the March invoice, unpaid
    expired = dunning.evaluate_customer(c.id, START)
    assert [s["event"] for s in expired.services] == ["service.expired"]
    assert service_events(service) == [("service.expired", {
        "service_id": service.id, "customer_id": c.id, "account_number": c.account_number,
        "paid_through": "2026-03-01", "ever_paid": False})]
    assert not dunning.evaluate_customer(c.id, D(2026, 3, 2)).touched  # said once

    pay_all(c)
    renewed = dunning.evaluate_customer(c.id, D(2026, 3, 2))
    assert paid_through(service) == D(2026, 4, 1)  # March paid: every day before 1 April
    assert service_events(service)[-1] == ("service.renewed", {
        "service_id": service.id, "customer_id": c.id, "account_number": c.account_number,
        "paid_through": "2026-04-01", "previous_paid_through": "2026-03-01"})
    audit = AuditEvent.get(AuditEvent.action == "service.renewed")
    assert (audit.object_id, audit.before, audit.after) == (str(service.id), {"paid_through": "2026-03-01"},
                                                            {"paid_through": "2026-04-01"})
    assert renewed.to_state == "active" and not renewed.changed

    assert dunning.run(D(2026, 3, 31)).services == []
    billing.run(D(2026, 4, 1))
    april = dunning.run(D(2026, 4, 1))
    assert [(s["service_id"], s["event"]) for s in april.services] == [(service.id, "service.expired")]
    assert service_events(service)[-1][1]["ever_paid"] is True
    counts = (Event.select().count(), AuditEvent.select().count())
    assert dunning.run(D(2026, 4, 1)).services == [] and dunning.run(D(2026, 4, 2)).services == []
    assert (Event.select().count(), AuditEvent.select().count()) == counts


def test_paying_ahead_moves_paid_through_without_an_event(db, pm):
    service = prepaid()
    billing.run(START)
    pay_all(service.customer)
    dunning.evaluate_customer(service.customer_id, START)  # paid before it ever expired
    assert paid_through(service) == D(2026, 4, 1)
    assert service_events(service) == []
    assert AuditEvent.get(AuditEvent.action == "service.paid_through").after == {"paid_through": "2026-04-01"}


def test_a_dry_run_reports_prepaid_changes_and_writes_nothing(db, pm):
    service = prepaid()
    billing.run(START)
    dry = dunning.run(START, dry_run=True)
    assert [(s["service_id"], s["from_paid_through"], s["to_paid_through"], s["event"]) for s in dry.services] == \
        [(service.id, None, "2026-03-01", "service.expired")]
    assert paid_through(service) is None and service_events(service) == []


def test_cancelled_ended_and_postpaid_services_do_not_expire(db, pm):
    c = make_customer()
    cancelled = make_service(c, make_plan(), billing_mode="prepaid", status="cancelled", start_date=START)
    ended = make_service(c, make_plan(), billing_mode="prepaid", start_date=START, end_date=D(2026, 3, 10))
    postpaid = make_service(c, make_plan(), start_date=START)
    result = dunning.evaluate_customer(c.id, D(2026, 3, 20))
    assert [s["service_id"] for s in result.services] == [ended.id]  # paid_through set, nothing said
    assert result.services[0]["event"] is None
    assert paid_through(cancelled) is None and paid_through(postpaid) is None
    assert service_events(ended) == []


def test_an_expired_service_is_renewed_at_once_by_a_payment_through_the_event(db, pm):
    from core.clock import today
    from core.hooktypes import DomainEvent
    from plugins import dunning as plugin

    service = prepaid(start=today())
    billing.run(today())
    dunning.run()
    assert service_events(service)[-1][0] == "service.expired"
    pay_all(service.customer)
    received = Event.select().where(Event.name == "payment.received").get()
    plugin.handle_event(DomainEvent(received.id, received.name, received.payload, received.created_at))
    assert paid_through(service) > today()
    assert service_events(service)[-1][0] == "service.renewed"
