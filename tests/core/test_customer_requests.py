"""Customers' messages and plan-change requests, and staff answering them (core.customer_requests)."""

from __future__ import annotations

import pytest

from core import audit, customer_requests as cr
from core.errors import ValidationError
from core.models import AuditEvent, CustomerRequest, Service
from tests.factories import make_customer, make_plan, make_service


def test_messages_and_plan_changes_are_listed_open_first_and_closed_with_a_reply(db):
    c = make_customer()
    basic = make_plan(name="Basic 10", price="1,500.00")
    svc = make_service(c, basic)
    faster = make_plan(name="Fast 50", price="3,000.00")
    make_plan(name="TV", kind="tv", price="500.00", download_kbps=None, upload_kbps=None)
    make_plan(name="Dollars", currency="USD", price="20.00")
    make_plan(name="Weekly", period="weekly", price="400.00")
    assert [p.name for p in cr.plan_choices(svc)] == ["Fast 50"]

    with audit.acting_as("customer:A1"):
        first = cr.send_message(c, "  My router blinks red <script>  ")
        change = cr.ask_plan_change(c, svc.id, faster.id, "from next month please")
    assert first.body == "My router blinks red <script>" and first.status == "open"
    assert (change.kind, change.service_id, change.plan_id) == ("plan_change", svc.id, faster.id)
    assert change.body.startswith("Change Basic 10 to Fast 50.") and "next month" in change.body

    other = make_customer()
    refusals = [(lambda: cr.send_message(c, "   "), "message is required"),
                (lambda: cr.send_message(c, "x" * 2001), "longer than"),
                (lambda: cr.ask_plan_change(other, svc.id, faster.id), "your services"),
                (lambda: cr.ask_plan_change(c, svc.id, basic.id), "plans offered"),
                (lambda: cr.ask_plan_change(c, "abc", faster.id), "service")]
    for call, text in refusals:
        with pytest.raises(ValidationError, match=text):
            call()

    with audit.acting_as("user:support"):
        cr.close(first, "done", "We replaced it.")
    with pytest.raises(ValidationError, match="already closed"):
        cr.close(first, "declined", "again")
    with pytest.raises(ValidationError, match="status"):
        cr.close(change, "open", "no")
    later = cr.send_message(c, "Thanks!")
    assert [r.id for r in cr.listing()] == [change.id, later.id, first.id]
    assert [r.id for r in cr.listing(status="done")] == [first.id]
    assert [r.id for r in cr.for_customer(c)] == [later.id, change.id, first.id]
    closed = CustomerRequest.get_by_id(first.id)
    assert (closed.reply, closed.closed_by) == ("We replaced it.", "user:support")
    events = [(e.action, e.actor) for e in AuditEvent.select().where(AuditEvent.object_type == "customer_request")]
    assert ("request.create", "customer:A1") in events and ("request.close", "user:support") in events


def test_accepting_a_plan_change_moves_the_service_at_renewal(db):
    c = make_customer()
    svc = make_service(c, make_plan(name="Basic", price="1,500.00"))
    faster = make_plan(name="Faster", price="2,500.00")
    request = cr.ask_plan_change(c, svc.id, faster.id)
    closed, result = cr.accept(request, "Done from your next period.")
    assert closed.status == "done" and result["effective"] is not None
    svc = Service.get_by_id(svc.id)
    assert svc.pending_plan_id == faster.id and svc.pending_change_date == result["effective"]
    with pytest.raises(ValidationError, match="plan-change"):
        cr.accept(cr.send_message(c, "hello"), "no")
    for _ in range(cr.OPEN_MAX - 1):
        cr.send_message(c, "again")
    with pytest.raises(ValidationError, match="waiting for an answer"):
        cr.send_message(c, "one too many")
