"""Suspending and restoring by hand: services, enforcement, audit, and the promise a restore grants."""

import datetime as dt

import pytest

from core import clock, dunning, enforcement, holds
from core.db import database
from core.errors import ValidationError
from core.models import AuditEvent, Customer, Enforcement, Event, Router, Service
from tests.factories import make_customer, make_issued_invoice, make_service


def statuses(customer):
    return [s.status for s in Service.select().where(Service.customer == customer.id).order_by(Service.id)]


def test_suspend_and_restore_by_hand(db, pm):
    customer = make_customer()
    router = Router.create(name="tower-1", kind="no-such-enforcer", host="192.0.2.1")
    first = make_service(customer, router=router, username="a1")
    make_service(customer, status="cancelled")
    with database.atomic():
        enforcement.refresh_customer(customer.id)
    assert Enforcement.get(Enforcement.service == first.id).desired_state == "active"

    with pytest.raises(ValidationError, match="reason is required"):
        holds.suspend(customer, "   ")
    assert statuses(customer) == ["active", "cancelled"]

    result = holds.suspend(customer, "fraud check")
    assert result.service_ids == [first.id]
    assert statuses(customer) == ["suspended", "cancelled"]
    assert Enforcement.get(Enforcement.service == first.id).desired_state == "suspended"  # in the same transaction
    event = AuditEvent.get(AuditEvent.action == "service.suspended_by_hand")
    assert event.object_id == str(first.id) and event.after == {"status": "suspended", "reason": "fraud check"}
    assert Event.select().where(Event.name == "service.suspended").count() == 1
    assert Customer.get_by_id(customer.id).state == "active"  # the account's dunning state is its own
    with pytest.raises(ValidationError, match="no active service"):
        holds.suspend(customer, "again")

    result = holds.restore(customer, "checked, all fine")
    assert result.service_ids == [first.id] and result.promise_until is None  # dunning held nothing
    assert statuses(customer) == ["active", "cancelled"]
    assert Enforcement.get(Enforcement.service == first.id).desired_state == "active"
    assert AuditEvent.get(AuditEvent.action == "customer.restored_by_hand").after["reason"] == "checked, all fine"
    with pytest.raises(ValidationError, match="nothing to restore"):
        holds.restore(customer, "again")


def test_restoring_an_account_dunning_suspended_grants_a_short_promise(db, pm):
    customer = make_customer()
    make_service(customer)
    make_issued_invoice(customer, 100_000, due_date=clock.today() - dt.timedelta(days=30))
    assert dunning.evaluate_customer(customer.id).to_state == "suspended"

    result = holds.restore(customer, "promised to pay on Friday")
    until = clock.today() + dt.timedelta(days=holds.RESTORE_PROMISE_DAYS)
    assert result.promise_until == until and result.service_ids == []
    restored = Customer.get_by_id(customer.id)
    assert restored.state == "active" and restored.promise_until == until
    promise = AuditEvent.get(AuditEvent.action == "customer.promise_to_pay")
    assert promise.after == {"promise_until": until.isoformat(), "note": "promised to pay on Friday"}

    Customer.update(state="terminated").where(Customer.id == customer.id).execute()
    with pytest.raises(ValidationError, match="terminated"):
        holds.restore(customer, "please")
