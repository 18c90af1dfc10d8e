"""The customer portal through the real WSGI app: sign-in and lockout, reset links, each page,
paying, requests, and that a customer reaches nothing but their own account."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from core import login_throttle, portal_accounts, settings
from core.models import LoginFailure, Notification, PaymentAttempt, UsageRecord
from tests.conftest import csrf_token_from
from tests.factories import make_customer, make_issued_invoice, make_plan, make_service
from tests.web.test_pay_and_hooks import SignedGateway, post_hook

PASSWORD = "a long portal password"


@pytest.fixture
def testpay(pm):
    """The signed test gateway of the pay-page tests, asking for a phone number."""
    plugin = SignedGateway()
    assert pm.add(plugin, "testpay_plugin", "test")
    return plugin


def portal_sign_in(client, identifier: str, password: str = PASSWORD):
    token = csrf_token_from(client.get("/portal/login"))
    return client.post("/portal/login", data={"identifier": identifier, "password": password, "csrf_token": token})


def customer_with_login(**fields):
    customer = make_customer(**fields)
    portal_accounts.set_password(customer, PASSWORD)
    return customer


def test_sign_in_lockout_and_sign_out(app, client):
    customer_with_login(name="Amina", email="amina@example.net", phone="+254712000111")
    customer_with_login(name="Baraka", email="baraka@example.net")

    response = client.get("/portal/invoices")
    assert response.status_code == 302 and response.headers["Location"] == "/portal/login?next=/portal/invoices"
    token = csrf_token_from(client.get("/portal/login"))
    assert client.post("/portal/login", data={"identifier": "amina@example.net", "password": PASSWORD}).status_code == 400
    wrong = client.post("/portal/login", data={"identifier": "amina@example.net", "password": "nope",
                                               "csrf_token": token})
    assert wrong.status_code == 400 and "Wrong e-mail, phone number or password." in wrong.get_data(as_text=True)
    unknown = client.post("/portal/login", data={"identifier": "who@example.net", "password": PASSWORD,
                                                 "csrf_token": token})
    assert unknown.status_code == 400 and "Wrong e-mail, phone number or password." in unknown.get_data(as_text=True)

    # failures on the phone number count together however it is typed (four counted here, the
    # fifth through the form, to keep argon2's time down) and lock the account at five
    for typed in ("0712000111", "+254 712 000 111", "254712000111", "712000111"):
        login_throttle.failed("portal", portal_accounts.throttle_key(typed), "127.0.0.1")
    assert client.post("/portal/login", data={"identifier": "0712-000-111", "password": "nope",
                                              "csrf_token": token}).status_code == 400
    locked = client.post("/portal/login", data={"identifier": "+254712000111", "password": PASSWORD,
                                                "csrf_token": token})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins. Try again in 15 minutes." in locked.get_data(as_text=True)
    assert client.get("/portal/").status_code == 302  # the right password did not get through

    # another account is not locked, and signing in clears its failures
    assert portal_sign_in(client, "baraka@example.net", "nope").status_code == 400
    response = client.post("/portal/login?next=/portal/usage", data={
        "identifier": "Baraka@Example.net", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/portal/usage"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert LoginFailure.select().where(LoginFailure.account == "baraka@example.net").count() == 0
    home = client.get("/portal/")
    assert home.status_code == 200 and "Hello, Baraka" in home.get_data(as_text=True)
    assert home.headers["Cache-Control"] == "private, no-store"

    assert client.post("/portal/logout").status_code == 400  # no form token
    assert client.post("/portal/logout", data={"csrf_token": csrf_token_from(home)}).status_code == 302
    assert client.get("/portal/").status_code == 302
    evil = client.post("/portal/login?next=//evil.example/x", data={
        "identifier": "baraka@example.net", "password": PASSWORD, "csrf_token": token})
    assert evil.headers["Location"] == "/portal/"


def test_forgot_password_link_sets_a_new_password_once(app, client):
    customer_with_login(name="Chausiku", email="chausiku@example.net", phone="+254722000333")
    settings.set_value("web.base_url", "https://billing.example.net")
    token = csrf_token_from(client.get("/portal/forgot"))
    answers = [client.post("/portal/forgot", data={"identifier": who, "csrf_token": token})
               for who in ("0722 000 333", "nobody@example.net")]
    assert [a.status_code for a in answers] == [200, 200]
    texts = [re.sub(r'value="[^"]+"', "", a.get_data(as_text=True)) for a in answers]
    assert texts[0] == texts[1] and "we have sent a link" in texts[0]
    [note] = Notification.select().where(Notification.template == "password_reset")
    link = re.search(r"https://billing\.example\.net(/portal/reset/\S+)", note.body).group(1)

    page = client.get(link)
    assert page.status_code == 200 and "Choose a password" in page.get_data(as_text=True)
    form = {"csrf_token": csrf_token_from(page)}
    mismatch = client.post(link, data=form | {"password": "first new password", "confirm": "other"})
    assert mismatch.status_code == 400 and "not the same" in mismatch.get_data(as_text=True)
    short = client.post(link, data=form | {"password": "short", "confirm": "short"})
    assert short.status_code == 400 and "at least 10 characters" in short.get_data(as_text=True)
    done = client.post(link, data=form | {"password": "first new password", "confirm": "first new password"})
    assert done.status_code == 302 and done.headers["Location"] == "/portal/"
    assert client.get("/portal/").status_code == 200  # signed in by the link
    again = client.get(link)
    assert again.status_code == 400 and "expired or was already used" in again.get_data(as_text=True)
    other = app.test_client()
    assert portal_sign_in(other, "chausiku@example.net").status_code == 400
    assert portal_sign_in(other, "chausiku@example.net", "first new password").status_code == 302


def test_each_page_shows_the_customers_own_account_only(app, client, testpay):
    me = customer_with_login(name="Neema <script>alert(1)</script>", email="neema@example.net",
                             phone="+254733000444")
    plan = make_plan(name="Home 50", data_cap_mb=50_000, price="2,500.00")
    today = dt.date.today()
    yesterday = today - dt.timedelta(days=1)  # the service began then, so both days are in this period
    service = make_service(me, plan, start_date=yesterday, anchor_day=yesterday.day)
    faster = make_plan(name="Home 100", price="4,000.00")
    for days_ago, gigabytes in ((0, 1.2), (1, 2)):
        start = dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(8))
        UsageRecord.create(service=service, source="test", external_id=f"u{days_ago}", period_start=start,
                           period_end=start + dt.timedelta(hours=1), bytes_in=int(gigabytes * 10**9), bytes_out=0)
    overdue = make_issued_invoice(me, 250_000, due_date=today - dt.timedelta(days=3))
    coming = make_issued_invoice(me, 100_000, due_date=today + dt.timedelta(days=10))
    stranger = make_customer(name="Stranger")
    theirs = make_issued_invoice(stranger, 99_900)
    PaymentAttempt.create(token="PA-STRANGER", gateway="testpay", customer=stranger, invoice=theirs,
                          amount_minor=99_900, currency="KES", message="Someone else's payment")
    me.state = "suspended"
    me.save()
    assert portal_sign_in(client, "neema@example.net").status_code == 302

    home = client.get("/portal/").get_data(as_text=True)
    assert "Neema &lt;script&gt;alert(1)&lt;/script&gt;" in home and "<script>alert" not in home
    assert "KES 3,500.00" in home and "Pay what is due to restore it." in home
    assert "Overdue" in home and home.count("Pay now") == 2
    assert f"/portal/invoices/{overdue.id}/pay" in home and f"/portal/invoices/{coming.id}/pay" in home
    assert "3.2 GB</strong> of 50.0 GB, 6%" in home

    listing = client.get("/portal/invoices").get_data(as_text=True)
    assert overdue.display_number in listing and theirs.display_number not in listing
    pdf = client.get(f"/portal/invoices/{overdue.id}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    for path in (f"/portal/invoices/{theirs.id}.pdf", f"/portal/invoices/{theirs.id}/pay",
                 f"/portal/invoices/{theirs.id}/status", "/portal/invoices/999999.pdf"):
        assert client.get(path).status_code == 404, path
    missing = client.get("/portal/invoices/999999.pdf").get_data(as_text=True)
    assert "Back to your account" in missing and "dashboard" not in missing  # the portal's own error page
    token = csrf_token_from(client.get("/portal/"))
    assert client.post(f"/portal/invoices/{theirs.id}/pay/testpay", data={"csrf_token": token}).status_code == 404

    usage = client.get("/portal/usage").get_data(as_text=True)
    assert '<svg class="chart"' in usage and "3.2 GB</strong> of 50.0 GB, 6%" in usage
    assert f"{today:%-d %b} · Data used: 1.2 GB" in usage

    # paying online: the gateway's push, then its notification turns the invoice paid
    pay = client.get(f"/portal/invoices/{overdue.id}/pay?attempt=PA-STRANGER").get_data(as_text=True)
    assert "Pay KES 2,500.00 with Test Pay" in pay and me.account_number in pay and "Someone else" not in pay
    started = client.post(f"/portal/invoices/{overdue.id}/pay/testpay",
                          data={"csrf_token": token, "phone": "+254733000444"})
    assert started.status_code == 303
    attempt = PaymentAttempt.get(PaymentAttempt.customer == me.id)
    assert started.headers["Location"] == f"/portal/invoices/{overdue.id}/pay?attempt={attempt.token}"
    [sent] = testpay.requests
    assert sent.return_url.endswith(f"/portal/invoices/{overdue.id}/pay?attempt={attempt.token}")
    waiting = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "Approve the payment on your phone." in waiting and "every 3s" in waiting
    assert post_hook(client, {"id": "TX-PORTAL", "amount": 250_000, "attempt": attempt.token}).status_code == 200
    status = client.get(f"/portal/invoices/{overdue.id}/status?poll=1").get_data(as_text=True)
    assert "Paid. Thank you!" in status and "hx-get" not in status
    assert "Pay now" not in client.get("/portal/invoices").get_data(as_text=True).split(overdue.display_number)[1][:600]

    # requests: a plan change and a message, shown back escaped with the operator's answer
    page = client.get("/portal/requests").get_data(as_text=True)
    assert "Home 100" in page and 'value="%d"' % faster.id in page
    asked = client.post("/portal/requests/plan", data={"csrf_token": token, "service": service.id,
                                                       "plan": faster.id, "note": "<b>soon</b>"})
    assert asked.status_code == 303
    refused = client.post("/portal/requests/plan", data={"csrf_token": token, "service": service.id, "plan": plan.id})
    assert refused.status_code == 400 and "plans offered" in refused.get_data(as_text=True)
    sent_message = client.post("/portal/requests/message", data={"csrf_token": token,
                                                                 "body": "<img src=x onerror=alert(1)>"})
    assert sent_message.status_code == 303
    empty = client.post("/portal/requests/message", data={"csrf_token": token, "body": "  "})
    assert empty.status_code == 400 and "message is required" in empty.get_data(as_text=True)
    mine = client.get("/portal/requests?sent=1").get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt;" in mine and "<img src=x" not in mine
    assert "Change Home 50 to Home 100." in mine and "&lt;b&gt;soon&lt;/b&gt;" in mine and "Waiting" in mine


def test_staff_and_customer_sessions_are_kept_apart(app, client, staff_client):
    customer_with_login(name="Dalia", email="dalia@example.net")
    staff = staff_client("admin")
    response = staff.get("/portal/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/portal/login")
    assert portal_sign_in(client, "dalia@example.net").status_code == 302
    for path in ("/admin/", "/admin/requests/", "/admin/customers"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login"), path

    # one browser signed in to both: signing out of the portal keeps the staff session
    assert portal_sign_in(staff, "dalia@example.net").status_code == 302
    assert staff.get("/portal/").status_code == 200 and staff.get("/admin/").status_code == 200
    staff.post("/portal/logout", data={"csrf_token": csrf_token_from(staff.get("/portal/"))})
    assert staff.get("/portal/").status_code == 302 and staff.get("/admin/").status_code == 200
