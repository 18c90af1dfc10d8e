"""Staff login with argon2 hashes, session cookie, CSRF on every form, logout."""

import pytest

from core.models import AuditEvent
from tests.conftest import ADMIN_PASSWORD, csrf_token_from


def test_console_requires_login(client):
    response = client.get("/admin/customers")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=/admin/customers")


def test_login_with_good_password_sets_a_protected_session_cookie(client, admin_user):
    token = csrf_token_from(client.get("/auth/login"))
    response = client.post("/auth/login?next=/admin/plans",
                           data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/plans"
    cookie = response.headers["Set-Cookie"]
    assert "wispbill_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/admin/").status_code == 200
    assert AuditEvent.get(AuditEvent.action == "user.login").actor == "user:admin"


def test_wrong_password_is_refused_with_400(client, admin_user):
    token = csrf_token_from(client.get("/auth/login"))
    response = client.post("/auth/login", data={"username": "admin", "password": "nope", "csrf_token": token})
    assert response.status_code == 400
    assert "Wrong username or password" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_login_without_csrf_token_is_rejected(client, admin_user):
    response = client.post("/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302  # not signed in


def test_login_with_forged_csrf_token_is_rejected(client, admin_user):
    client.get("/auth/login")
    response = client.post("/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD,
                                                "csrf_token": "forged-token"})
    assert response.status_code == 400


@pytest.mark.parametrize("target", [
    "//evil.example/x", "/%09/evil.example", "/%0A/evil.example", "/%5C/evil.example", "%5C%5Cevil.example",
    "https://evil.example/", "javascript:alert(1)", "/%20/evil.example",
])
def test_open_redirect_after_login_is_refused(client, admin_user, target):
    token = csrf_token_from(client.get("/auth/login"))
    response = client.post(f"/auth/login?next={target}",
                           data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_logout_needs_csrf_and_ends_the_session(logged_in):
    assert logged_in.post("/auth/logout").status_code == 400  # no token: refused, still signed in
    assert logged_in.get("/admin/").status_code == 200
    token = csrf_token_from(logged_in.get("/admin/"))
    response = logged_in.post("/auth/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert logged_in.get("/admin/").status_code == 302
    assert AuditEvent.get(AuditEvent.action == "user.logout").actor == "user:admin"


def test_a_copied_cookie_stops_working_after_sign_out(logged_in, app):
    cookie = logged_in.get_cookie("wispbill_session").value
    token = csrf_token_from(logged_in.get("/admin/"))
    logged_in.post("/auth/logout", data={"csrf_token": token})
    thief = app.test_client()
    thief.set_cookie("wispbill_session", cookie)
    assert thief.get("/admin/").status_code == 302


def test_expired_session_is_refused(logged_in):
    import datetime as dt

    from core.models import StaffSession

    assert logged_in.get("/admin/").status_code == 200
    StaffSession.update(expires_at=dt.datetime(2000, 1, 1)).execute()
    assert logged_in.get("/admin/").status_code == 302


def test_session_rows_keep_only_a_hash_of_the_token(logged_in):
    from flask.sessions import SecureCookieSessionInterface

    from core.models import StaffSession

    row = StaffSession.get()
    assert len(row.token_hash) == 64 and row.revoked_at is None
    app = logged_in.application
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    token = serializer.loads(logged_in.get_cookie("wispbill_session").value)["token"]
    assert token not in row.token_hash


def test_deactivated_user_loses_the_session(logged_in, admin_user):
    from core.models import User

    User.update(active=False).where(User.id == admin_user.id).execute()
    assert logged_in.get("/admin/").status_code == 302


def test_sessions_slide_and_old_ones_are_purged(logged_in):
    import datetime as dt

    from core import sessions
    from core.clock import utcnow
    from core.models import StaffSession

    StaffSession.update(expires_at=utcnow() + dt.timedelta(hours=1)).execute()
    assert logged_in.get("/admin/").status_code == 200
    assert StaffSession.get().expires_at > utcnow() + dt.timedelta(hours=11)  # pushed back on use

    StaffSession.update(revoked_at=utcnow() - dt.timedelta(days=31)).execute()
    assert sessions.purge() == 1
    assert StaffSession.select().count() == 0


def test_signing_in_again_ends_the_previous_session(logged_in):
    from core.models import StaffSession

    token = csrf_token_from(logged_in.get("/auth/login"))
    logged_in.post("/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    rows = list(StaffSession.select().order_by(StaffSession.id))
    assert len(rows) == 2
    assert rows[0].revoked_at is not None and rows[1].revoked_at is None
