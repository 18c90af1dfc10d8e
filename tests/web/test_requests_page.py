"""The staff page of customer requests: open first, answered with a reply, roles checked, escaped."""

from __future__ import annotations

from core import customer_requests
from core.models import AuditEvent, CustomerRequest, Service
from tests.conftest import csrf_token_from
from tests.factories import make_customer, make_plan, make_service


def test_staff_answer_requests_and_carry_out_a_plan_change(app, staff_client):
    c = make_customer(name="Wanjiru <i>K</i>")
    svc = make_service(c, make_plan(name="Basic", price="1,500.00"))
    faster = make_plan(name="Faster", price="2,500.00")
    message = customer_requests.send_message(c, "<script>alert('x')</script> my line is down")
    change = customer_requests.ask_plan_change(c, svc.id, faster.id)
    support, readonly, billing = staff_client("support"), staff_client("readonly"), staff_client("billing")

    page = readonly.get("/admin/requests/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "&lt;script&gt;alert" in html and "<script>alert" not in html
    assert "Wanjiru &lt;i&gt;K&lt;/i&gt;" in html and "Reply to the customer" not in html  # readonly: no forms
    token = csrf_token_from(page)
    refused = readonly.post(f"/admin/requests/{message.id}/close", data={"csrf_token": token, "outcome": "done",
                                                                        "reply": "hi"})
    assert refused.status_code == 403

    html = support.get("/admin/requests/").get_data(as_text=True)
    assert html.index(f'id="request-{message.id}"') < html.index(f'id="request-{change.id}"')  # oldest open first
    assert "Change the plan at renewal" not in html  # support may answer, not change plans
    token = csrf_token_from(support.get("/admin/requests/"))
    assert support.post(f"/admin/requests/{change.id}/close", data={
        "csrf_token": token, "outcome": "accept", "reply": "ok"}).status_code == 403
    empty = support.post(f"/admin/requests/{message.id}/close", data={"csrf_token": token, "outcome": "done",
                                                                      "reply": " "})
    assert empty.status_code == 400 and "reply is required" in empty.get_data(as_text=True)
    answered = support.post(f"/admin/requests/{message.id}/close", data={
        "csrf_token": token, "outcome": "done", "reply": "A technician comes <today>."})
    assert answered.status_code == 303
    again = support.post(f"/admin/requests/{message.id}/close", data={"csrf_token": token, "outcome": "declined",
                                                                      "reply": "x"})
    assert again.status_code == 400 and "already closed" in again.get_data(as_text=True)

    token = csrf_token_from(billing.get("/admin/requests/"))
    accepted = billing.post(f"/admin/requests/{change.id}/close", data={
        "csrf_token": token, "outcome": "accept", "reply": "From your next period."})
    assert accepted.status_code == 303
    assert "carried out" in billing.get("/admin/requests/").get_data(as_text=True)
    assert Service.get_by_id(svc.id).pending_plan_id == faster.id
    rows = {r.id: r for r in CustomerRequest.select()}
    assert (rows[message.id].status, rows[message.id].closed_by) == ("done", "user:staff-support")
    assert rows[change.id].status == "done"
    assert [r.status for r in customer_requests.listing()] == ["done", "done"]
    assert AuditEvent.select().where(AuditEvent.action == "service.change_plan").count() == 1
    closed = support.get("/admin/requests/?status=done").get_data(as_text=True)
    assert "A technician comes &lt;today&gt;." in closed
