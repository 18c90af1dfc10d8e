"""The customer page: what it shows, its actions, their permissions, bad input and escaping."""

import datetime as dt
import re

from core import clock, dunning
from core.models import AuditEvent, Charge, CreditNote, Customer, Enforcement, Payment, Router, Service, UsageRecord
from tests.conftest import csrf_token_from
from tests.factories import make_customer, make_issued_invoice, make_plan, make_service


def suspended_customer(name="Wanjiru Kamau", owed=250_000):
    """A customer whose invoice is 20 days overdue, suspended by the default policy, with a service."""
    customer = make_customer(name=name, email="wanjiru@example.org", phone="+254 700 000 111")
    make_service(customer, start_date=clock.today() - dt.timedelta(days=60), username=f"u{customer.id}")
    invoice = make_issued_invoice(customer, owed, due_date=clock.today() - dt.timedelta(days=20))
    assert dunning.evaluate_customer(customer.id).to_state == "suspended"
    return Customer.get_by_id(customer.id), invoice


def page_of(client, customer):
    response = client.get(f"/admin/customers/{customer.id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def state_shown(page: str) -> str:
    return re.search(r'id="account-state">([a-z]+)<', page).group(1)


def test_customer_page_shows_services_money_router_usage_and_audit(logged_in):
    customer = make_customer(name="Otieno Ouma", address="Plot 7, Kisumu", notes="Gate code 4411")
    plan = make_plan(name="Home 10", price="2,500.00", data_cap_mb=10_000)
    router = Router.create(name="tower-1", kind="mikrotik", host="192.0.2.1")
    service = make_service(customer, plan, start_date=clock.today() - dt.timedelta(days=40), username="otieno",
                           router=router, price_override_minor=200_000)
    Enforcement.create(service=service, router=router, desired_state="active", applied_state="suspended",
                       next_attempt_at=clock.utcnow(), attempts=2, last_error="connection refused by tower-1")
    UsageRecord.create(service=service, source="test", external_id="u1",
                       period_start=dt.datetime.combine(clock.today(), dt.time(1)),
                       period_end=dt.datetime.combine(clock.today(), dt.time(2)), bytes_in=3_000_000_000,
                       bytes_out=500_000_000)
    invoice = make_issued_invoice(customer, 200_000, due_date=clock.today() + dt.timedelta(days=5))

    page = page_of(logged_in, customer)
    for text in ("Otieno Ouma", "Plot 7, Kisumu", "Gate code 4411", "Home 10", "KES 2,000.00", "tower-1",
                 "otieno", "connection refused by tower-1",
                 f'href="/invoices/{invoice.id}"', f'href="/invoices/{invoice.id}.pdf"', invoice.display_number,
                 "3.5 GB used of 10.0 GB (35%)", '<svg class="chart"', "customer.create", ">system<"):
        assert text in page, text
    assert 'id="balance">KES 2,000.00<' in page
    assert state_shown(page) == "active"
    assert '<td class="state-active">active</td>' in page  # desired
    assert '<td class="state-suspended">suspended</td>' in page  # applied
    assert "pending, next try" in page and "(2 failed)" in page
    # an admin is offered every action
    for form in ("payment", "charge", "credit_note", "plan", "extension", "suspend", "restore"):
        assert f'id="{form}"' in page, form

    missing = logged_in.get("/admin/customers/999999")
    assert missing.status_code == 404 and "There is no customer 999999" in missing.get_data(as_text=True)


def test_recording_a_payment_restores_a_suspended_account(staff_client):
    customer, invoice = suspended_customer()
    clerk = staff_client("billing")
    page = page_of(clerk, customer)
    assert state_shown(page) == "suspended"
    token = csrf_token_from(clerk.get(f"/admin/customers/{customer.id}"))

    bad = clerk.post(f"/admin/customers/{customer.id}/payments",
                     data={"csrf_token": token, "amount": "two thousand", "method": "cash", "reference": "SLIP-9"})
    assert bad.status_code == 400
    body = bad.get_data(as_text=True)
    assert "&#39;two thousand&#39;" in body and 'value="SLIP-9"' in body  # the message, and what was typed
    assert Payment.select().count() == 0

    done = clerk.post(f"/admin/customers/{customer.id}/payments",
                      data={"csrf_token": token, "amount": "2,500.00", "method": "mobile_money",
                            "reference": "QK7H2", "invoice": str(invoice.id), "note": "paid at the shop"})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/admin/customers/{customer.id}#payment")
    page = clerk.get(done.headers["Location"]).get_data(as_text=True)
    assert state_shown(page) == "active"
    assert 'id="balance">KES 0.00<' in page
    assert "Payment RCT-" in page and "QK7H2" in page
    payment = Payment.get(Payment.reference == "QK7H2")
    assert payment.amount_minor == 250_000 and payment.method == "mobile_money"
    assert AuditEvent.select().where(AuditEvent.object_type == "payment", AuditEvent.object_id == str(payment.id),
                                     AuditEvent.actor == "user:staff-billing").exists()

    # another customer's invoice cannot be named
    other = make_customer(name="Someone Else")
    theirs = make_issued_invoice(other, 10_000)
    refused = clerk.post(f"/admin/customers/{customer.id}/payments",
                         data={"csrf_token": token, "amount": "100.00", "invoice": str(theirs.id)})
    assert refused.status_code == 400 and "choose one of this customer" in refused.get_data(as_text=True)
    assert Payment.select().count() == 1


def test_support_and_readonly_see_no_action_forms_and_are_refused(staff_client):
    customer, _invoice = suspended_customer()
    for role in ("support", "readonly"):
        client = staff_client(role)
        page = page_of(client, customer)
        assert 'name="amount"' not in page and 'name="reason"' not in page
        assert (f'action="/admin/customers/{customer.id}/contact"' in page) == (role == "support")  # support edits contact
        token = csrf_token_from(client.get(f"/admin/customers/{customer.id}"))
        paid = client.post(f"/admin/customers/{customer.id}/payments",
                           data={"csrf_token": token, "amount": "2,500.00"})
        assert paid.status_code == 403
        restored = client.post(f"/admin/customers/{customer.id}/restore", data={"csrf_token": token, "reason": "x"})
        assert restored.status_code == 403
    assert Payment.select().count() == 0
    assert Customer.get_by_id(customer.id).state == "suspended"
    # adding customers needs customers.edit, which readonly has not
    assert staff_client("readonly").get("/admin/customers/new").status_code == 403


def test_charge_credit_note_plan_change_extension_suspend_and_restore(logged_in):
    customer = make_customer(name="Baraka Mutua")
    small = make_plan(code="home-5", name="Home 5", price="1,000.00")
    big = make_plan(code="home-20", name="Home 20", price="3,000.00")
    service = make_service(customer, small, start_date=clock.today() - dt.timedelta(days=3), username="baraka")
    invoice = make_issued_invoice(customer, 100_000, due_date=clock.today() + dt.timedelta(days=10))
    url = f"/admin/customers/{customer.id}"
    token = csrf_token_from(logged_in.get(url))

    def post(action, **data):
        return logged_in.post(f"{url}/{action}", data={"csrf_token": token, **data})

    bad = post("charges", description="Router", amount="3,500.00", quantity="lots")
    assert bad.status_code == 400 and "quantity must be a number" in bad.get_data(as_text=True)
    assert Charge.select().count() == 0
    assert post("charges", description="Router", amount="3,500.00", quantity="2").status_code == 302
    assert Charge.get().amount_minor == 700_000

    assert post("credit-notes", invoice=str(invoice.id), amount="250.00", reason="").status_code == 400
    assert post("credit-notes", invoice=str(invoice.id), amount="250.00", reason="outage").status_code == 302
    note = CreditNote.get()
    assert note.total_minor == 25_000 and note.reason == "outage"

    assert post("plan", service=str(service.id), plan=str(big.id), when="renewal").status_code == 302
    assert Service.get_by_id(service.id).pending_plan_id == big.id

    assert post("extension", until="next week").status_code == 400
    until = clock.today() + dt.timedelta(days=10)
    assert post("extension", until=until.isoformat(), note="salary on the 25th").status_code == 302
    assert Customer.get_by_id(customer.id).promise_until == until

    refused = post("suspend", reason="  ")
    assert refused.status_code == 400 and "reason is required" in refused.get_data(as_text=True)
    assert Service.get_by_id(service.id).status == "active"
    assert post("suspend", reason="reported stolen equipment").status_code == 302
    assert Service.get_by_id(service.id).status == "suspended"
    page = logged_in.get(url).get_data(as_text=True)
    assert "reported stolen equipment" in page and "service.suspended_by_hand" in page
    assert post("restore", reason="equipment found").status_code == 302
    assert Service.get_by_id(service.id).status == "active"


def test_names_addresses_and_notes_are_escaped(logged_in):
    evil = "<script>alert(1)</script>"
    customer = make_customer(name=evil, address=f"{evil} street", notes=f"note {evil}")
    listing = logged_in.get("/admin/customers").get_data(as_text=True)
    partial = logged_in.get("/admin/customers?q=script", headers={"HX-Request": "true"}).get_data(as_text=True)
    page = page_of(logged_in, customer)
    for body in (listing, partial, page):
        assert evil not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt; street" in page and "note &lt;script&gt;" in page


def test_contact_details_are_edited_validated_and_audited(staff_client):
    customer = make_customer(name="Juma Ali", email="juma@example.net")
    support = staff_client("support")
    token = csrf_token_from(support.get(f"/admin/customers/{customer.id}"))
    fields = {"csrf_token": token, "name": "Juma Ali Hassan", "email": "juma@example.org", "phone": "+255 700 111 222",
              "address": "Plot 4", "notes": "<b>gate code</b> 1234"}
    bad = support.post(f"/admin/customers/{customer.id}/contact", data={**fields, "email": "not an address"})
    assert bad.status_code == 400 and "not an e-mail address" in bad.get_data(as_text=True)
    assert Customer.get_by_id(customer.id).email == "juma@example.net"  # nothing written
    saved = support.post(f"/admin/customers/{customer.id}/contact", data=fields)
    assert saved.status_code == 302
    row = Customer.get_by_id(customer.id)
    assert (row.name, row.email, row.phone, row.notes) == ("Juma Ali Hassan", "juma@example.org", "+255 700 111 222",
                                                           "<b>gate code</b> 1234")
    event = AuditEvent.get(AuditEvent.action == "customer.update")
    assert event.actor == "user:staff-support" and event.before["email"] == "juma@example.net"
    assert "&lt;b&gt;gate code&lt;/b&gt;" in page_of(support, customer)
    readonly = staff_client("readonly")
    token = csrf_token_from(readonly.get(f"/admin/customers/{customer.id}"))
    refused = readonly.post(f"/admin/customers/{customer.id}/contact", data={**fields, "csrf_token": token,
                                                                             "name": "Someone Else"})
    assert refused.status_code == 403 and Customer.get_by_id(customer.id).name == "Juma Ali Hassan"

