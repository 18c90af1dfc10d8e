"""The console's admin pages: plugins and their settings (secrets never shown back) and staff users."""

from __future__ import annotations

from core import settings, users
from core.models import AuditEvent, Setting, StaffSession, User
from tests.conftest import csrf_token_from
from tests.web.conftest import STAFF_PASSWORD, sign_in

SECRET_VALUE = "smtp-pass-\u00e9-DO-NOT-SHOW"


def _console_pages(app) -> list[str]:
    """Every console GET page that takes no arguments."""
    return sorted(rule.rule for rule in app.url_map.iter_rules()
                  if rule.endpoint.startswith(("admin.", "console.", "radius.")) and "GET" in rule.methods
                  and not rule.arguments)


def test_plugins_and_settings_page_masks_secrets_and_validates(app, logged_in, staff_client):
    settings.set_value("email.smtp_password", SECRET_VALUE)
    page = logged_in.get("/admin/plugins").get_data(as_text=True)
    assert "radius" in page and "enforcer_apply" in page and "console_links" in page  # plugins with their hooks
    assert "email.smtp_password" in page and ">set<" in page and ">not set<" in page  # mpesa's secrets are unset
    for path in _console_pages(app):
        response = logged_in.get(path)
        assert response.status_code == 200, path
        assert SECRET_VALUE not in response.get_data(as_text=True), path
        assert "smtp-pass" not in response.get_data(as_text=True), path
    token = csrf_token_from(logged_in.get("/admin/plugins"))

    bad = logged_in.post("/admin/settings/email.smtp_port", data={"csrf_token": token, "value": "port <25>"})
    assert bad.status_code == 400
    body = bad.get_data(as_text=True)
    assert 'class="error"' in body and 'value="port &lt;25&gt;"' in body  # the error, and what was typed, escaped
    assert Setting.get_or_none(Setting.key == "email.smtp_port") is None

    assert logged_in.post("/admin/settings/email.smtp_port", data={"csrf_token": token, "value": "587"}) \
        .status_code == 303
    assert settings.get("email.smtp_port") == 587
    event = AuditEvent.select().where(AuditEvent.object_id == "email.smtp_port").get()
    assert event.actor == "user:admin" and event.after == {"value": 587}

    # A secret left blank keeps what is stored; a new one replaces it and is masked in the audit trail.
    assert logged_in.post("/admin/settings/email.smtp_password", data={"csrf_token": token, "value": ""}) \
        .status_code == 303
    assert settings.get("email.smtp_password") == SECRET_VALUE
    logged_in.post("/admin/settings/email.smtp_password", data={"csrf_token": token, "value": "another-one"})
    assert settings.get("email.smtp_password") == "another-one"
    assert all("another-one" not in str(e.after) for e in AuditEvent.select())
    assert logged_in.post("/admin/settings/no.such", data={"csrf_token": token, "value": "1"}).status_code == 404

    billing = staff_client("billing")
    assert "email.smtp_port" in billing.get("/admin/plugins").get_data(as_text=True)  # may look
    refused = billing.post("/admin/settings/email.smtp_port",
                           data={"csrf_token": csrf_token_from(billing.get("/admin/plugins")), "value": "25"})
    assert refused.status_code == 403 and settings.get("email.smtp_port") == 587


def test_staff_users_add_role_deactivate_reset(app, logged_in, staff_client, admin_user):
    page = logged_in.get("/admin/users").get_data(as_text=True)
    assert "admin" in page and "Billing clerk" in page
    token = csrf_token_from(logged_in.get("/admin/users"))

    short = logged_in.post("/admin/users", data={"csrf_token": token, "username": "<mary>", "role": "support",
                                                 "password": "short"})
    assert short.status_code == 400 and 'value="&lt;mary&gt;"' in short.get_data(as_text=True)
    assert User.select().count() == 1
    added = logged_in.post("/admin/users", data={"csrf_token": token, "username": "mary", "role": "support",
                                                 "password": STAFF_PASSWORD})
    assert added.status_code == 303
    mary = User.get(User.username == "mary")
    assert mary.role == "support"
    assert AuditEvent.get(AuditEvent.action == "user.create", AuditEvent.object_id == str(mary.id)).actor == "user:admin"

    assert logged_in.post(f"/admin/users/{mary.id}/role", data={"csrf_token": token, "role": "boss"}).status_code == 400
    assert logged_in.post(f"/admin/users/{mary.id}/role", data={"csrf_token": token, "role": "billing"}) \
        .status_code == 303
    assert User.get_by_id(mary.id).role == "billing"

    # Deactivating ends her sessions at once; her signed-in browser is sent to sign in.
    marys_browser = sign_in(app.test_client(), "mary")
    assert marys_browser.get("/admin/invoices").status_code == 200
    assert logged_in.post(f"/admin/users/{mary.id}/active", data={"csrf_token": token, "active": "0"}) \
        .status_code == 303
    assert marys_browser.get("/admin/invoices").status_code == 302
    assert not StaffSession.select().where(StaffSession.user == mary.id, StaffSession.revoked_at.is_null()).exists()
    assert users.authenticate("mary", STAFF_PASSWORD) is None
    logged_in.post(f"/admin/users/{mary.id}/active", data={"csrf_token": token, "active": "1"})
    reset = logged_in.post(f"/admin/users/{mary.id}/password",
                           data={"csrf_token": token, "password": "a new password 2"})
    assert reset.status_code == 303
    assert users.authenticate("mary", "a new password 2") is not None
    actions = {e.action for e in AuditEvent.select().where(AuditEvent.object_id == str(mary.id))}
    assert {"user.role", "user.deactivate", "user.activate", "user.password_reset"} <= actions
    assert all("hash" not in str(e.after) for e in AuditEvent.select())

    # The last active admin can be neither demoted nor deactivated.
    for path, data in ((f"/admin/users/{admin_user.id}/role", {"role": "support"}),
                       (f"/admin/users/{admin_user.id}/active", {"active": "0"})):
        refused = logged_in.post(path, data={"csrf_token": token, **data})
        assert refused.status_code == 400 and "last active administrator" in refused.get_data(as_text=True)
    assert User.get_by_id(admin_user.id).role == "admin" and User.get_by_id(admin_user.id).active

    billing = staff_client("billing")
    assert billing.get("/admin/users").status_code == 403
    assert billing.post(f"/admin/users/{mary.id}/role", data={
        "csrf_token": csrf_token_from(billing.get("/admin/invoices")), "role": "admin"}).status_code == 403
    assert User.get_by_id(mary.id).role == "billing"
