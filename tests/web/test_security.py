"""Security of the web app as a whole: headers, cookies, the login lockout, deny by default, templates fit for the CSP."""

import datetime as dt
import re
from pathlib import Path

import pytest

from core import login_throttle
from core.clock import utcnow
from core.models import LoginFailure
from tests.conftest import ADMIN_PASSWORD, csrf_token_from

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _login(client, username, password):
    token = csrf_token_from(client.get("/auth/login"))
    return client.post("/auth/login", data={"username": username, "password": password, "csrf_token": token})


def test_every_page_carries_the_csp_and_security_headers(client, admin_user):
    for path in ("/auth/login", "/healthz", "/no-such-page"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"


def test_a_signed_in_page_is_not_cached_and_the_cookie_is_httponly_and_samesite(client, admin_user):
    response = _login(client, "admin", ADMIN_PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/admin/").headers["Cache-Control"] == "private, no-store"


def test_the_session_cookie_is_secure_when_configured(db, db_url, pm, tmp_path, monkeypatch):
    from core.web import create_app
    from tests.conftest import SECRET

    monkeypatch.setenv("WISPBILL_SESSION_COOKIE_SECURE", "true")
    db.close()
    app = create_app({"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path), "SECRET_KEY": SECRET, "PLUGIN_MANAGER": pm})
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_an_invoice_page_with_its_inline_stylesheet_is_allowed_by_hash(logged_in, db):
    from core import documents
    from tests.factories import make_customer, make_issued_invoice

    invoice = make_issued_invoice(make_customer(), 1000)
    db.close()
    response = logged_in.get(f"/invoices/{invoice.id}")
    assert response.status_code == 200
    css = re.search(r"<style>(.*?)</style>", response.get_data(as_text=True), re.S).group(1)
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in response.headers["Content-Security-Policy"]
    assert str(documents._stylesheet()) == css


def test_five_failures_lock_the_account_even_for_the_right_password(client, admin_user):
    for _ in range(login_throttle.ACCOUNT_LIMIT):
        assert _login(client, "admin", "wrong password").status_code == 400
    locked = _login(client, "admin", ADMIN_PASSWORD)
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= login_throttle.LOCK_MINUTES * 60
    assert "Too many failed sign-ins" in locked.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302  # not signed in
    # An unknown name is locked the same way, so a lockout does not tell real names apart.
    for _ in range(login_throttle.ACCOUNT_LIMIT):
        _login(client, "nobody", "wrong password")
    assert _login(client, "nobody", "x").status_code == 429


def test_the_lock_ends_after_the_window_and_success_clears_the_count(client, admin_user, db):
    past = utcnow() - login_throttle.WINDOW - dt.timedelta(seconds=1)
    for _ in range(login_throttle.ACCOUNT_LIMIT):
        login_throttle.failed("staff", "admin", "127.0.0.1", now=past)
    db.close()
    assert _login(client, "admin", ADMIN_PASSWORD).status_code == 302
    for _ in range(login_throttle.ACCOUNT_LIMIT - 1):
        login_throttle.failed("staff", "Admin ", "127.0.0.1")
    login_throttle.succeeded("staff", "admin")
    assert LoginFailure.select().where(LoginFailure.account == "admin").count() == 0
    login_throttle.check("staff", "admin", "127.0.0.1")


def test_an_address_that_fails_too_often_is_refused_for_any_name(db):
    for i in range(login_throttle.ADDRESS_LIMIT):
        login_throttle.failed("portal", f"user{i}@example.com", "192.0.2.7")
    with pytest.raises(login_throttle.TooManyAttempts) as caught:
        login_throttle.check("staff", "someone-else", "192.0.2.7")
    assert caught.value.retry_after > 0
    login_throttle.check("staff", "someone-else", "192.0.2.8")  # another address is not affected


def test_purge_keeps_a_week_of_failures(db):
    login_throttle.failed("staff", "old", None, now=utcnow() - dt.timedelta(days=8))
    login_throttle.failed("staff", "new", None)
    assert login_throttle.purge() == 1
    assert [r.account for r in LoginFailure.select()] == ["new"]


def test_a_view_that_declares_no_access_rule_is_closed(app, admin_user):
    app.add_url_rule("/admin/forgotten", "forgotten", lambda: "secret data")
    client = app.test_client()
    assert _login(client, "admin", ADMIN_PASSWORD).status_code == 302
    response = client.get("/admin/forgotten")
    assert response.status_code == 403
    assert "secret data" not in response.get_data(as_text=True)


def test_every_view_of_the_app_declares_who_may_reach_it(app):
    from core.web.security import access_of

    undeclared = [endpoint for endpoint, view in app.view_functions.items()
                  if endpoint != "static" and access_of(view) is None]
    assert undeclared == []


def test_templates_hold_nothing_the_csp_would_refuse():
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
    handler = re.compile(r"\son[a-z]+\s*=", re.I)
    style_attribute = re.compile(r"\sstyle\s*=", re.I)
    problems = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        for name, pattern in (("inline script", inline_script), ("event handler", handler),
                              ("style attribute", style_attribute), ("hx-on", re.compile(r"hx-on", re.I))):
            if pattern.search(text):
                problems.append(f"{path.relative_to(TEMPLATES)}: {name}")
    assert problems == []
