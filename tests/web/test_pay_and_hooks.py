"""The webhook endpoint and the public pay page, through the real WSGI app, with a signed test gateway."""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import pytest

from core import hookimpl, paylinks, settings
from core.errors import ValidationError
from core.hooktypes import GatewayInfo, PaymentNotice, PaymentStart, WebhookReply
from core.models import AuditEvent, Invoice, Payment, PaymentAttempt, PaymentReview
from core.money import Money
from tests.conftest import csrf_token_from
from tests.factories import make_customer, make_issued_invoice

KEY = b"test-pay-secret"


class SignedGateway:
    """A gateway that signs its JSON notifications with HMAC and asks for a phone number."""

    def __init__(self):
        self.requests = []
        self.crash = False

    @hookimpl
    def gateway_describe(self):
        return [GatewayInfo("testpay", "Test Pay", currencies=("KES",), asks_for=("phone",)),
                GatewayInfo("offline", "Not set up", configured=False)]

    @hookimpl
    def gateway_start_payment(self, gateway, request):
        if gateway != "testpay":
            return None
        if not request.phone:
            raise ValidationError("Test Pay needs a phone number", "phone")
        self.requests.append(request)
        return PaymentStart("testpay", "TP-" + request.reference, message="Approve the payment on your phone.")

    @hookimpl
    def gateway_parse_notification(self, gateway, notification):
        if gateway != "testpay":
            return None
        if self.crash:
            raise RuntimeError("parser exploded")
        headers = {k.lower(): v for k, v in notification.headers.items()}
        expected = hmac.new(KEY, notification.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers.get("x-signature", "")):
            raise ValidationError("bad signature")
        try:
            data = json.loads(notification.body)
            return [PaymentNotice("testpay", data["id"], "payment", Money(data["amount"], "KES"),
                                  attempt=data.get("attempt"), account=data.get("account"))]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValidationError(f"malformed notification: {exc}") from None

    @hookimpl
    def gateway_reply(self, gateway, notification, notices, error):
        if gateway != "testpay" or notification.path != "ack":
            return None
        return WebhookReply(200, json.dumps({"ok": error is None, "n": len(notices)}))


@pytest.fixture
def testpay(pm):
    plugin = SignedGateway()
    assert pm.add(plugin, "testpay_plugin", "test")
    return plugin


def signed(data: dict) -> tuple[bytes, dict]:
    body = json.dumps(data).encode()
    return body, {"X-Signature": hmac.new(KEY, body, hashlib.sha256).hexdigest(), "Content-Type": "application/json"}


def post_hook(client, data, path="/hooks/testpay", headers=None):
    body, sig = signed(data)
    return client.post(path, data=body, headers=headers or sig)


def test_a_signed_notification_is_recorded_once(app, client, testpay):
    with app.app_context():
        c = make_customer()
        make_issued_invoice(c, 100_000)
    for _ in range(5):
        response = post_hook(client, {"id": "N1", "amount": 100_000, "account": c.account_number})
        assert response.status_code == 200
    assert response.get_json() == {"received": 1, "recorded": 0, "duplicate": 1, "held": 0, "failed": 0}
    assert Payment.select().count() == 1 and Invoice.get().status == "paid"


@pytest.mark.parametrize("case", ["forged", "unsigned", "malformed", "empty"])
def test_a_refused_notification_records_nothing_and_is_audited(app, client, testpay, case):
    with app.app_context():
        c = make_customer()
    good = {"id": "N1", "amount": 100_000, "account": c.account_number}
    if case == "forged":
        body, _ = signed(good)
        response = client.post("/hooks/testpay", data=body, headers={"X-Signature": "0" * 64})
    elif case == "unsigned":
        response = client.post("/hooks/testpay", data=json.dumps(good))
    elif case == "malformed":
        body = b'{"id": "N1", "amount": '
        response = client.post("/hooks/testpay", data=body,
                               headers={"X-Signature": hmac.new(KEY, body, hashlib.sha256).hexdigest()})
    else:
        response = post_hook(client, {"amount": 5})
    assert response.status_code == 400
    assert response.get_json()["status"] == 400
    assert Payment.select().count() == 0 and PaymentReview.select().count() == 0
    event = AuditEvent.get(AuditEvent.action == "webhook.refused")
    assert event.actor == "gateway:testpay" and event.object_id == "testpay"
    assert len(event.after["sha256"]) == 64 and event.after["error"]


def test_long_path_segments_are_masked_in_the_audit_trail(app, client, testpay):
    token = "s3cr3t-callback-token-0123456789"
    assert client.post(f"/hooks/testpay/stk/{token}", data=b"{}", headers={"X-Signature": "x"}).status_code == 400
    event = AuditEvent.get(AuditEvent.action == "webhook.refused")
    assert event.after["path"] == "stk/****"
    assert token not in json.dumps(event.after)


def test_unknown_gateways_staff_only_gateways_and_crashes(app, client, testpay):
    assert client.post("/hooks/nosuch", data=b"{}").status_code == 404
    assert client.post("/hooks/bank", data=b"date,amount,reference\n").status_code == 404  # staff import only
    assert client.get("/hooks/testpay").status_code == 405
    testpay.crash = True
    response = post_hook(client, {"id": "N1", "amount": 1})
    assert response.status_code == 500 and "parser exploded" not in response.get_data(as_text=True)
    assert AuditEvent.get(AuditEvent.action == "webhook.failed").object_id == "testpay"


def test_hook_gateway_reply(app, client, testpay):
    with app.app_context():
        c = make_customer()
    response = post_hook(client, {"id": "N9", "amount": 500, "account": c.account_number}, path="/hooks/testpay/ack")
    assert response.status_code == 200 and response.get_json() == {"ok": True, "n": 1}
    # a refused notification keeps its 400 even when the plugin's reply says 200
    response = client.post("/hooks/testpay/ack", data=b"{}", headers={"X-Signature": "bad"})
    assert response.status_code == 400 and response.get_json() == {"ok": False, "n": 0}
    # other paths get the core's own answer
    core_answer = post_hook(client, {"id": "N9", "amount": 500, "account": c.account_number})
    assert core_answer.get_json()["duplicate"] == 1
    assert Payment.select().count() == 1


# --- the pay page ------------------------------------------------------------------

def test_the_pay_page_shows_what_is_due_and_starts_a_payment(app, client, testpay):
    with app.app_context():
        c = make_customer(name="Wanjiku <b>Kamau</b>", phone="+254700000001")
        inv = make_issued_invoice(c, 150_000)
        token = paylinks.token_for(inv)
        assert paylinks.token_for(inv) == token and len(token) >= 43
    page = client.get(f"/pay/{token}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "KES 1,500.00" in html and inv.display_number in html
    assert "Wanjiku &lt;b&gt;Kamau&lt;/b&gt;" in html  # escaped
    assert "Pay KES 1,500.00 with Test Pay" in html and "Not set up" not in html
    assert 'name="viewport"' in html and 'type="tel"' in html

    response = client.post(f"/pay/{token}/testpay", data={"csrf_token": csrf_token_from(page),
                                                          "phone": "+254711111111"})
    assert response.status_code == 303
    [request] = testpay.requests
    assert request.amount == Money(150_000, "KES") and request.invoice_id == inv.id
    assert request.account == c.account_number and request.phone == "+254711111111"
    assert request.notify_url == "http://localhost/hooks/testpay"
    attempt = PaymentAttempt.get()
    assert attempt.token == request.reference and attempt.gateway_reference == "TP-" + attempt.token
    assert response.headers["Location"].endswith(f"/pay/{token}?attempt={attempt.token}")
    waiting = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Approve the payment on your phone." in waiting and 'hx-trigger="every 3s"' in waiting

    # the gateway reports the money: the invoice is paid and the page says so
    assert post_hook(client, {"id": "N1", "amount": 150_000, "attempt": "TP-" + attempt.token}).status_code == 200
    assert PaymentAttempt.get().status == "succeeded"
    assert "Paid. Thank you!" in client.get(f"/pay/{token}/status").get_data(as_text=True)
    paid = client.get(f"/pay/{token}").get_data(as_text=True)
    assert "Paid. Thank you!" in paid and "Pay KES" not in paid
    pdf = client.get(f"/pay/{token}/invoice.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_the_pay_page_refuses_what_it_should(app, client, testpay):
    with app.app_context():
        c = make_customer(phone=None)
        inv = make_issued_invoice(c, 150_000)
        token = paylinks.token_for(inv)
    assert client.get("/pay/" + "x" * 43).status_code == 404
    assert client.get("/pay/" + token[:-1]).status_code == 404
    page = client.get(f"/pay/{token}")
    csrf = csrf_token_from(page)
    assert client.post(f"/pay/{token}/testpay", data={"phone": "+254711111111"}).status_code == 400  # no CSRF token
    refused = client.post(f"/pay/{token}/offline", data={"csrf_token": csrf})
    assert refused.status_code == 400 and "not available" in refused.get_data(as_text=True)
    no_phone = client.post(f"/pay/{token}/testpay", data={"csrf_token": csrf, "phone": ""})
    assert no_phone.status_code == 400 and "needs a phone number" in no_phone.get_data(as_text=True)
    assert PaymentAttempt.select().count() == 0


def test_pay_link_gateways_setting_limits_the_buttons(app, client, testpay):
    with app.app_context():
        c = make_customer()
        token = paylinks.token_for(make_issued_invoice(c, 1_000))
        settings.set_value("payments.pay_link_gateways", "stripe")
    html = client.get(f"/pay/{token}").get_data(as_text=True)
    assert "with Test Pay" not in html and "not available for this invoice" in html
    with pytest.raises(ValidationError, match="gateway names"):
        with app.app_context():
            settings.set_value("payments.pay_link_gateways", "a b")


def test_a_draft_has_no_pay_link(db, pm):
    from core.models import Invoice as Inv

    draft = Inv.create(customer=make_customer(), currency="KES")
    with pytest.raises(ValidationError, match="draft"):
        paylinks.token_for(draft)
    assert re.fullmatch(r"/pay/[A-Za-z0-9_-]{43}", paylinks.url_for(make_issued_invoice(make_customer(), 10)))


def test_behind_a_trusted_proxy_pay_links_use_the_public_address(db, db_url, pm, tmp_path, testpay, monkeypatch):
    from core.web import create_app

    c = make_customer(phone="+254700000001")
    token = paylinks.token_for(make_issued_invoice(c, 1_000))
    db.close()
    monkeypatch.setenv("WISPBILL_TRUSTED_PROXIES", "1")
    app = create_app({"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x" * 32,
                      "PLUGIN_MANAGER": pm, "TESTING": True})
    client = app.test_client()
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
                 "X-Forwarded-Host": "billing.example.net"}
    page = client.get(f"/pay/{token}", headers=forwarded)
    assert page.headers["Referrer-Policy"] == "same-origin"  # a browser sends it back on our own form only
    started = client.post(f"/pay/{token}/testpay", data={"csrf_token": csrf_token_from(page)},
                          headers={**forwarded, "Referer": f"https://billing.example.net/pay/{token}"})
    assert started.status_code == 303, started.get_data(as_text=True)
    [request] = testpay.requests
    assert request.notify_url == "https://billing.example.net/hooks/testpay"
    assert request.return_url.startswith(f"https://billing.example.net/pay/{token}?attempt=PA-")


def test_a_top_up_without_an_invoice_becomes_account_credit(db, pm, testpay):
    from core import ledger, payments

    c = make_customer(phone="+254700000009")
    attempt, started = payments.start_payment("testpay", customer=c, amount=Money(50_000, "KES"))
    [request] = testpay.requests
    assert request.invoice_id is None and request.description == f"Top-up for account {c.account_number}"
    assert attempt.invoice_id is None and started.message
    [outcome] = payments.record([PaymentNotice("testpay", "TOP1", "payment", Money(50_000, "KES"),
                                               attempt=started.reference)])
    assert outcome.status == "recorded"
    assert Payment.get_by_id(outcome.payment_id).unallocated_minor == 50_000
    assert ledger.balance(c) == Money(-50_000, "KES")


def test_starting_a_payment_refuses_what_cannot_be_paid(db, pm, testpay):
    from core import credit_notes, payments
    from core.errors import NotFound

    c = make_customer(phone="+254700000009")
    inv = make_issued_invoice(c, 10_000)
    other = make_customer()
    for kwargs, message in (
        ({"customer": c}, "needs an amount"),
        ({"customer": c, "amount": Money(100, "USD")}, "billed in KES"),
        ({"customer": c, "invoice": inv, "amount": Money(20_000, "KES")}, "pay between"),
        ({"customer": other, "invoice": inv}, "belongs to another customer"),
    ):
        with pytest.raises(ValidationError, match=message):
            payments.start_payment("testpay", **kwargs)
    with pytest.raises(ValidationError, match="takes no online payments"):
        payments.start_payment("manual", customer=c, invoice=inv)
    with pytest.raises(ValidationError, match="not set up"):
        payments.start_payment("offline", customer=c, invoice=inv)
    with pytest.raises(NotFound):
        payments.start_payment("nosuch", customer=c, invoice=inv)
    credit_notes.issue(inv, reason="billed in error", void=True)
    with pytest.raises(ValidationError, match="nothing left to pay"):
        payments.start_payment("testpay", customer=c, invoice=Invoice.get_by_id(inv.id))
    assert PaymentAttempt.select().count() == 0 and testpay.requests == []


def test_staff_print_a_receipt(app, client, admin_user):
    from core import payments

    with app.app_context():
        c = make_customer(name="Otieno <Juma>")
        make_issued_invoice(c, 10_000)
        payment, _ = payments.add_manual(c, Money(15_000, "KES"), method="cheque", reference="CHQ 9")
    assert "/auth/login" in client.get(f"/payments/{payment.id}/receipt").headers["Location"]
    token = csrf_token_from(client.get("/auth/login"))
    from tests.conftest import ADMIN_PASSWORD

    client.post("/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    page = client.get(f"/payments/{payment.id}/receipt").get_data(as_text=True)
    assert payment.receipt in page and "CHQ 9" in page and "Cheque" in page
    assert "Otieno &lt;Juma&gt;" in page and "KES 50.00" in page  # the part kept as account credit
    pdf = client.get(f"/payments/{payment.id}/receipt.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert client.get("/payments/999999/receipt").status_code == 404
