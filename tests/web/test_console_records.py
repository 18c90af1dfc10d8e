"""The console's record pages: plans, invoices, payments and refunds, the review queue, routers, dunning.

Each page renders real rows; each change is made, audited, refused with a 400 that writes
nothing on bad input, and refused with a 403 for a role without its permission.
"""

from __future__ import annotations

import datetime as dt
import socket

from core import enforcement, payments, routers, settings
from core.db import database
from core.models import AuditEvent, Enforcement, Invoice, Payment, PaymentReview, Plan, Refund
from tests.conftest import csrf_token_from
from tests.factories import kes, make_customer, make_issued_invoice, make_plan, make_service, notice


def _audited(action: str, object_id=None) -> AuditEvent:
    q = AuditEvent.select().where(AuditEvent.action == action)
    if object_id is not None:
        q = q.where(AuditEvent.object_id == str(object_id))
    return q.order_by(AuditEvent.id.desc()).get()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_plans_page_adds_plans_and_new_prices(logged_in, staff_client):
    make_plan(code="home-10", name="Home <10>", price="2,500.00", currency="KES")
    settings.set_value("bundles.bundles", '[{"code": "duo", "name": "TV & <net>", "kinds": ["internet", "tv"], '
                                          '"percent": "10"}]')
    page = logged_in.get("/admin/plans").get_data(as_text=True)
    assert "KES 2,500.00" in page
    assert "Home &lt;10&gt;" in page and "Home <10>" not in page
    assert "TV &amp; &lt;net&gt;" in page and "10%" in page
    token = csrf_token_from(logged_in.get("/admin/plans"))

    added = logged_in.post("/admin/plans", data={
        "csrf_token": token, "code": "biz-50", "name": "Business 50", "kind": "internet", "price": "9,000.00",
        "currency": "KES", "period": "monthly", "download_kbps": "50000", "upload_kbps": "10000"})
    assert added.status_code == 303
    plan = Plan.get(Plan.code == "biz-50")
    assert (plan.price_minor, plan.download_kbps) == (900_000, 50_000)
    assert _audited("plan.create", plan.id).actor == "user:admin"

    bad = logged_in.post("/admin/plans", data={"csrf_token": token, "code": "x-1", "name": "X", "kind": "internet",
                                                "price": "lots", "currency": "KES", "period": "monthly"})
    assert bad.status_code == 400 and 'value="x-1"' in bad.get_data(as_text=True)
    assert not Plan.select().where(Plan.code == "x-1").exists()

    priced = logged_in.post("/admin/plans/home-10/price", data={"csrf_token": token, "price": "2,750.00"})
    assert priced.status_code == 303
    newest = Plan.select().where(Plan.code == "home-10").order_by(Plan.version.desc()).first()
    assert (newest.version, newest.price_minor, newest.name, newest.download_kbps) == (2, 275_000, "Home <10>", 10_000)
    assert "KES 2,750.00" in logged_in.get("/admin/plans").get_data(as_text=True)
    assert logged_in.post("/admin/plans/home-10/price", data={"csrf_token": token, "price": "-1"}).status_code == 400
    assert Plan.select().where(Plan.code == "home-10").count() == 2

    support = staff_client("support")
    assert support.get("/admin/plans").status_code == 200
    refused = support.post("/admin/plans/home-10/price",
                           data={"csrf_token": csrf_token_from(support.get("/admin/plans")), "price": "1.00"})
    assert refused.status_code == 403 and Plan.select().where(Plan.code == "home-10").count() == 2


def test_invoices_page_filters_searches_and_pages(logged_in):
    alice = make_customer(name="Alice <b>Njeri</b>")
    bob = make_customer(name="Bob Otieno")
    paid = make_issued_invoice(alice, 250_000, number=7)
    Invoice.update(status="paid", settled_minor=250_000).where(Invoice.id == paid.id).execute()
    open_one = make_issued_invoice(bob, 100_000, number=8)
    from core import credit_notes

    note = credit_notes.issue(open_one, amount=kes(20_000), reason="outage")
    page = logged_in.get("/admin/invoices").get_data(as_text=True)
    assert "INV-2026-000007" in page and "INV-2026-000008" in page
    assert "Alice &lt;b&gt;Njeri&lt;/b&gt;" in page and "<b>Njeri" not in page
    assert f'href="/invoices/{paid.id}"' in page and f'href="/invoices/{paid.id}.pdf"' in page
    assert f'href="/credit-notes/{note.id}"' in page

    only_paid = logged_in.get("/admin/invoices?status=paid").get_data(as_text=True)
    assert "INV-2026-000007" in only_paid and "INV-2026-000008" not in only_paid
    by_number = logged_in.get("/admin/invoices?q=INV-2026-000008").get_data(as_text=True)
    assert "INV-2026-000008" in by_number and "INV-2026-000007" not in by_number
    by_name = logged_in.get("/admin/invoices?q=otieno").get_data(as_text=True)
    assert "INV-2026-000008" in by_name and "INV-2026-000007" not in by_name

    Invoice.insert_many([{"customer": bob.id, "currency": "KES"} for _ in range(49)]).execute()  # 51 in all
    first = logged_in.get("/admin/invoices").get_data(as_text=True)
    assert "INV-2026-000007" not in first and "INV-2026-000008" in first and "page=2" in first
    second = logged_in.get("/admin/invoices?page=2").get_data(as_text=True)
    assert "INV-2026-000007" in second and "INV-2026-000008" not in second and "page=1" in second
    assert logged_in.get("/admin/invoices?page=nonsense&status=bogus").status_code == 200


def test_payments_page_and_refunds(logged_in, staff_client):
    customer = make_customer(name="Wanjiru <script>")
    make_issued_invoice(customer, 150_000)
    payment, _ = payments.add_manual(customer, kes(200_000), method="cash", reference="CASH-<1>")
    page = logged_in.get("/admin/payments").get_data(as_text=True)
    assert payment.receipt in page and f'href="/payments/{payment.id}/receipt"' in page
    assert "KES 2,000.00" in page and "KES 500.00" in page  # the amount, and what is left unallocated
    assert "CASH-&lt;1&gt;" in page and "Wanjiru &lt;script&gt;" in page and "<script>" not in page.split("</head>")[1]
    assert payment.receipt in logged_in.get(f"/admin/payments?q={payment.receipt}").get_data(as_text=True)
    assert payment.receipt not in logged_in.get("/admin/payments?q=nobody").get_data(as_text=True)

    path = f"/admin/payments/{payment.id}/refund"
    token = csrf_token_from(logged_in.get(path))
    too_much = logged_in.post(path, data={"csrf_token": token, "amount": "5,000.00", "reason": "overpaid",
                                          "outside_reference": "CASH-BACK-1"})
    assert too_much.status_code == 400 and "left to refund" in too_much.get_data(as_text=True)
    assert Refund.select().count() == 0
    done = logged_in.post(path, data={"csrf_token": token, "amount": "500.00", "reason": "overpaid",
                                      "outside_reference": "CASH-BACK-1"})
    assert done.status_code == 303
    refund = Refund.get()
    assert (refund.amount_minor, refund.reference) == (50_000, "CASH-BACK-1")
    assert AuditEvent.select().where(AuditEvent.actor == "user:admin", AuditEvent.action.contains("refund")).exists()

    support = staff_client("support")
    assert support.get(path).status_code == 200
    assert support.post(path, data={"csrf_token": csrf_token_from(support.get(path)), "reason": "x",
                                    "outside_reference": "R2"}).status_code == 403
    assert Refund.select().count() == 1


def test_review_queue_accept_and_reject(logged_in, staff_client):
    customer = make_customer(name="Kamau")
    invoice = make_issued_invoice(customer, 100_000)
    with database.atomic():
        first = payments.hold(notice("MP-1", 100_000, account="nobody <x>"), "unknown account").review_id
        second = payments.hold(notice("MP-2", 30_000), "amount differs").review_id
    page = logged_in.get("/admin/reviews").get_data(as_text=True)
    assert "MP-1" in page and "MP-2" in page and "nobody &lt;x&gt;" in page and "KES 1,000.00" in page
    token = csrf_token_from(logged_in.get("/admin/reviews"))

    unknown = logged_in.post(f"/admin/reviews/{first}/accept", data={"csrf_token": token, "customer": "A404"})
    assert unknown.status_code == 400 and "no customer" in unknown.get_data(as_text=True)
    no_reason = logged_in.post(f"/admin/reviews/{second}/reject", data={"csrf_token": token, "reason": " "})
    assert no_reason.status_code == 400
    assert PaymentReview.select().where(PaymentReview.status == "open").count() == 2
    assert Payment.select().count() == 0

    billing = staff_client("billing")
    accepted = billing.post(f"/admin/reviews/{first}/accept", data={
        "csrf_token": csrf_token_from(billing.get("/admin/reviews")), "customer": customer.account_number,
        "invoice": invoice.display_number, "note": "phoned in"})
    assert accepted.status_code == 303
    payment = Payment.get(Payment.reference == "MP-1")
    assert payment.customer_id == customer.id and Invoice.get_by_id(invoice.id).status == "paid"
    assert _audited("payment_review.accept", first).actor == "user:staff-billing"

    support = staff_client("support")
    assert support.post(f"/admin/reviews/{second}/reject", data={
        "csrf_token": csrf_token_from(support.get("/admin/reviews")), "reason": "sent back"}).status_code == 403
    assert logged_in.post(f"/admin/reviews/{second}/reject",
                          data={"csrf_token": token, "reason": "returned to the payer"}).status_code == 303
    assert PaymentReview.get_by_id(second).status == "rejected"
    assert _audited("payment_review.reject", second).actor == "user:admin"
    assert "Nothing to review" in logged_in.get("/admin/reviews").get_data(as_text=True)


def test_routers_test_reconcile_script_and_dunning(logged_in, staff_client):
    nas = routers.add(name="tower-a", kind="radius", host="127.0.0.1", secret="nas-secret")
    down = routers.add(name="down", kind="mikrotik", host="127.0.0.1", port=_closed_port(), username="api",
                       secret="router-secret-value")
    for router, user in ((nas, "alice"), (down, "bob")):
        service = make_service(status="active", start_date=dt.date(2026, 1, 1))
        Enforcement.delete().where(Enforcement.service == service.id).execute()
        routers.bind_service(service, router=router, access="pppoe", username=user, password="pw")
    page = logged_in.get("/admin/routers").get_data(as_text=True)
    assert "tower-a" in page and "Reconcile now" in page and "router-secret-value" not in page
    assert "RADIUS session requests" in page  # the plugin's own page, linked through console_links
    token = csrf_token_from(logged_in.get("/admin/routers"))

    htmx = {"HX-Request": "true"}
    tested = logged_in.post(f"/admin/routers/{nas.id}/test", data={"csrf_token": token}, headers=htmx)
    body = tested.get_data(as_text=True)
    assert tested.status_code == 200 and "<html" not in body and "answers" in body and "NAS 127.0.0.1" in body
    unreachable = logged_in.post(f"/admin/routers/{down.id}/test", data={"csrf_token": token}, headers=htmx)
    assert unreachable.status_code == 200 and "cannot be reached" in unreachable.get_data(as_text=True)
    full = logged_in.post(f"/admin/routers/{down.id}/test", data={"csrf_token": token})  # without htmx: the page
    assert full.status_code == 200 and "<html" in full.get_data(as_text=True)

    reconciled = logged_in.post(f"/admin/routers/{nas.id}/reconcile", data={"csrf_token": token}, headers=htmx)
    assert reconciled.status_code == 200 and "1 wanted" in reconciled.get_data(as_text=True)
    assert _audited("router.reconcile", nas.id).actor == "user:admin"
    failed = logged_in.post(f"/admin/routers/{down.id}/reconcile", data={"csrf_token": token}, headers=htmx)
    assert failed.status_code == 200 and "not reconciled" in failed.get_data(as_text=True)
    assert _audited("router.reconcile", down.id).after["error"]

    script = logged_in.get(f"/admin/routers/{nas.id}/script").get_data(as_text=True)
    assert "set web.portal_url first" in script
    settings.set_value("web.portal_url", "http://10.0.0.2:8081")
    assert "/radius" in logged_in.get(f"/admin/routers/{nas.id}/script").get_data(as_text=True)

    support = staff_client("support")
    support_token = csrf_token_from(support.get("/admin/routers"))
    assert support.post(f"/admin/routers/{nas.id}/test", data={"csrf_token": support_token}).status_code == 200
    assert support.post(f"/admin/routers/{nas.id}/reconcile",
                        data={"csrf_token": support_token}).status_code == 403

    enforcement.push_pending()  # what the scheduler does: bob's change fails on the router that is down
    dunning = logged_in.get("/admin/dunning").get_data(as_text=True)
    assert 'data-state="active">2<' in dunning and "default" in dunning
    assert "router unreachable" in dunning and ">down<" in dunning  # bob's push waits for the router that is down
    assert "RADIUS session requests" in dunning
