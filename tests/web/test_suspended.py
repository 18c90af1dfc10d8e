"""The "please pay" page and the portal port that routers send suspended subscribers to."""

from __future__ import annotations

import pytest

from core.models import Customer, PayLink
from core.web import suspended
from tests.factories import make_customer, make_issued_invoice, make_service


@pytest.fixture(autouse=True)
def _fresh_limits():
    suspended._lookups.clear()
    yield
    suspended._lookups.clear()


def _subscriber(db, **customer):
    c = make_customer(name="Amina Wanjiru Otieno", phone="+254 700 123 456", **customer)
    make_service(customer=c, ip_address="10.20.0.7", status="active")
    Customer.update(state="suspended").where(Customer.id == c.id).execute()
    return c, make_issued_invoice(c, 250_000)


def test_a_subscriber_is_recognised_by_address_and_sees_what_to_pay(client, db):
    customer, invoice = _subscriber(db)
    page = client.get("/suspended", environ_base={"REMOTE_ADDR": "10.20.0.7"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "Hello Amina W. O." in html and "Wanjiru" not in html
    assert customer.account_number in html and "paused" in html
    token = PayLink.get(PayLink.invoice == invoice.id).token
    assert f'href="/pay/{token}"' in html
    assert "2,500.00" in html


def test_an_unknown_address_is_asked_for_the_account_and_a_check(client, db):
    customer, _invoice = _subscriber(db)
    page = client.get("/suspended", environ_base={"REMOTE_ADDR": "10.99.0.1"})
    assert page.status_code == 200 and 'name="account"' in page.get_data(as_text=True)

    wrong = client.get(f"/suspended?account={customer.account_number}&check=0000",
                       environ_base={"REMOTE_ADDR": "10.99.0.1"})
    assert wrong.status_code == 404 and "could not find" in wrong.get_data(as_text=True)
    assert PayLink.select().count() == 0  # nothing revealed, nothing made
    nobody = client.get("/suspended?account=NOPE&check=3456", environ_base={"REMOTE_ADDR": "10.99.0.1"})
    assert nobody.status_code == 404 and nobody.get_data(as_text=True).count("could not find") == 1

    right = client.get(f"/suspended?account={customer.account_number}&check=3456",
                       environ_base={"REMOTE_ADDR": "10.99.0.1"})
    assert right.status_code == 200 and "Pay now" in right.get_data(as_text=True)


def test_account_lookups_are_limited_per_address(client, db):
    customer, _invoice = _subscriber(db)
    for _ in range(suspended.LOOKUPS_PER_WINDOW):
        assert client.get("/suspended?account=X&check=1", environ_base={"REMOTE_ADDR": "10.99.0.2"}).status_code == 404
    limited = client.get(f"/suspended?account={customer.account_number}&check=3456",
                         environ_base={"REMOTE_ADDR": "10.99.0.2"})
    assert limited.status_code == 429
    other = client.get(f"/suspended?account={customer.account_number}&check=3456",
                       environ_base={"REMOTE_ADDR": "10.99.0.3"})
    assert other.status_code == 200


def test_an_account_without_a_phone_or_email_is_not_shown_by_number_alone(client, db):
    c = make_customer(name="Chidi Okafor")
    make_issued_invoice(c, 100_000)
    page = client.get(f"/suspended?account={c.account_number}", environ_base={"REMOTE_ADDR": "10.99.0.4"})
    assert page.status_code == 404 and "Chidi" not in page.get_data(as_text=True)
    assert PayLink.select().count() == 0


def test_one_account_cannot_be_guessed_at_from_many_addresses(client, db):
    customer, _invoice = _subscriber(db)
    for n in range(suspended.LOOKUPS_PER_WINDOW):
        client.get(f"/suspended?account={customer.account_number}&check={n:04d}",
                   environ_base={"REMOTE_ADDR": f"10.98.0.{n + 1}"})
    right = client.get(f"/suspended?account={customer.account_number}&check=3456",
                       environ_base={"REMOTE_ADDR": "10.98.1.1"})
    assert right.status_code == 429


def test_forwarded_headers_are_ignored_on_the_portal_port(db, db_url, pm, tmp_path, monkeypatch):
    from core.web import create_app

    _subscriber(db)
    db.close()
    monkeypatch.setenv("WISPBILL_TRUSTED_PROXIES", "1")
    app = create_app({"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x" * 32,
                      "PLUGIN_MANAGER": pm, "TESTING": True, "PORTAL_PORT": 8081})
    client = app.test_client()
    spoofed = {"X-Forwarded-For": "10.20.0.7"}
    on_portal = client.get("/suspended", headers=spoofed,
                           environ_overrides={"SERVER_PORT": "8081", "REMOTE_ADDR": "10.99.9.9"})
    assert on_portal.status_code == 200 and "Hello" not in on_portal.get_data(as_text=True)
    via_proxy = client.get("/suspended", headers=spoofed,
                           environ_overrides={"SERVER_PORT": "8080", "REMOTE_ADDR": "127.0.0.1"})
    assert "Hello Amina" in via_proxy.get_data(as_text=True)  # the trusted proxy said who it is


def test_nothing_owed_says_so(client, db):
    c = make_customer(name="Brian")
    make_service(customer=c, ip_address="10.20.0.8", status="active")
    html = client.get("/suspended", environ_base={"REMOTE_ADDR": "10.20.0.8"}).get_data(as_text=True)
    assert "Nothing is owed" in html and "Pay now" not in html


def test_the_portal_port_sends_everything_else_to_the_page(db, db_url, pm, tmp_path):
    from core.web import create_app

    db.close()
    app = create_app({"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x" * 32,
                      "PLUGIN_MANAGER": pm, "TESTING": True, "PORTAL_PORT": 8081})
    client = app.test_client()
    portal = {"SERVER_PORT": "8081"}
    news = client.get("/news/today?x=1", environ_overrides=portal, headers={"Host": "example.com"})
    assert news.status_code == 302 and news.headers["Location"] == "/suspended"
    assert client.get("/", environ_overrides=portal).status_code == 302
    assert client.get("/auth/login", environ_overrides=portal).headers["Location"] == "/suspended"
    assert client.get("/suspended", environ_overrides=portal).status_code == 200
    assert client.get("/pay/unknown", environ_overrides=portal).status_code == 404  # passed to the app
    # The console's own port is untouched.
    assert client.get("/auth/login", environ_overrides={"SERVER_PORT": "8080"}).status_code == 200
