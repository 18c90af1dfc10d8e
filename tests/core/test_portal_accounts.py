"""Customers' portal sign-in: passwords, sessions and reset links (core.portal_accounts)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from core import portal_accounts as pa
from core.errors import ValidationError
from core.models import AuditEvent, Notification, PasswordReset, PortalSession
from tests.factories import make_customer

PASSWORD = "a long portal password"
BASE = "https://billing.example.net"


def _link_token(customer) -> str:
    body = Notification.select().where(Notification.customer == customer.id).order_by(Notification.id.desc()).get().body
    return re.search(r"/portal/reset/(\S+)", body).group(1)


def test_sign_in_by_email_or_phone_and_the_password_decides(db):
    amina = make_customer(name="Amina", email="Amina.W@Example.net", phone="+254 712 345 678")
    twin = make_customer(name="Twin", email="amina.w@example.net", phone="0712-345-678")  # shares both
    make_customer(name="No login", email="nologin@example.net", phone="+254700000001")
    pa.set_password(amina, PASSWORD)
    pa.set_password(twin, "the twin's own password")

    assert pa.authenticate("amina.w@EXAMPLE.net", PASSWORD) == amina
    assert pa.authenticate("  0712345678 ", PASSWORD) == amina  # phone compared on its digits
    assert pa.authenticate("254712345678", "the twin's own password") == twin
    for identifier, password in (("amina.w@example.net", PASSWORD + "x"), ("+254700000001", PASSWORD),
                                 ("nobody@example.net", PASSWORD)):
        assert pa.authenticate(identifier, password) is None, identifier
    assert pa.throttle_key("+254 712 345 678") == pa.throttle_key("0712345678") == "tel:712345678"
    assert pa.throttle_key(" Amina.W@Example.net") == "amina.w@example.net"

    with pytest.raises(ValidationError, match="at least 10 characters"):
        pa.set_password(amina, "short")
    actions = [e.action for e in AuditEvent.select().where(AuditEvent.object_type == "customer")]
    assert actions.count("customer.portal_password_set") == 2 and actions.count("customer.portal_login") == 3
    assert not any("hash" in str(e.after) for e in AuditEvent.select())


def test_sessions_end_on_sign_out_and_on_a_new_password(db):
    c = make_customer(email="s@example.net")
    pa.set_password(c, PASSWORD)
    first, second = pa.start_session(c, "phone", "10.0.0.1"), pa.start_session(c)
    assert pa.resolve(first) == c and pa.resolve(second) == c
    assert PortalSession.select().where(PortalSession.token_hash == first).count() == 0  # only the hash is kept
    pa.revoke(first)
    assert pa.resolve(first) is None and pa.resolve(second) == c
    pa.set_password(c, "another long password")
    assert pa.resolve(second) is None
    third = pa.start_session(c)
    PortalSession.update(expires_at=dt.datetime(2000, 1, 1)).execute()
    assert pa.resolve(third) is None and pa.resolve(None) is None and pa.resolve(12) is None
    fresh = pa.start_session(c)
    assert pa.purge() == 3 and pa.resolve(fresh) == c  # the long-ended ones go, the open one stays


def test_a_reset_link_works_once_within_the_hour_and_ends_sessions(db):
    c = make_customer(name="Baraka <b>", email="baraka@example.net", phone="+254711000222")
    pa.set_password(c, PASSWORD)
    session = pa.start_session(c)

    assert pa.request_reset("+254 711 000 222", BASE) is None
    [note] = Notification.select().where(Notification.template == "password_reset")
    assert note.recipient == "baraka@example.net" and note.status == "pending"
    assert f"{BASE}/portal/reset/" in note.body and "60 minutes" in note.body and "Baraka <b>" in note.body
    token = _link_token(c)
    assert PasswordReset.select().where(PasswordReset.token_hash == token).count() == 0

    with pytest.raises(ValidationError, match="at least"):
        pa.complete_reset(token, "short")
    assert pa.valid_reset(token) is not None  # a refused password leaves the link usable
    assert pa.complete_reset(token, "my brand new password") == c
    assert pa.authenticate("baraka@example.net", "my brand new password") == c
    assert pa.authenticate("baraka@example.net", PASSWORD) is None
    assert pa.resolve(session) is None
    with pytest.raises(ValidationError, match="expired or was already used"):
        pa.complete_reset(token, "yet another password")

    pa.request_reset("BARAKA@example.net", BASE)
    late = _link_token(c)
    PasswordReset.update(expires_at=dt.datetime(2000, 1, 1)).where(PasswordReset.used_at.is_null()).execute()
    with pytest.raises(ValidationError, match="expired"):
        pa.complete_reset(late, "yet another password")


def test_unknown_identifiers_get_the_same_answer_and_links_are_limited(db):
    c = make_customer(email="c@example.net", phone="+254722000333")
    make_customer(email=None, phone="+254733000444")
    for identifier in ("nobody@example.net", "+254799999999", "+254733000444", ""):
        assert pa.request_reset(identifier, BASE) is None
    assert Notification.select().count() == 0
    for _ in range(pa.RESETS_PER_HOUR + 2):
        pa.request_reset("c@example.net", BASE)
    assert PasswordReset.select().where(PasswordReset.customer == c.id).count() == pa.RESETS_PER_HOUR
    with pytest.raises(ValidationError, match="web.base_url"):
        pa.send_reset(c, "")
    with pytest.raises(ValidationError, match="no e-mail"):
        pa.send_reset(make_customer(email=None), BASE)
    # an invitation: a link lets a customer without a password choose one
    assert not pa.has_login(c)
    pa.complete_reset(_link_token(c), "chosen by the customer")
    assert pa.has_login(c)


def test_staff_set_a_portal_password_or_send_a_link_from_the_command_line(db, cli):
    from click.testing import CliRunner

    from core.cli import cli as command
    from core.settings import set_value

    c = make_customer(email="cli@example.net", phone="+254744000666")
    account = c.account_number
    db.close()
    result = CliRunner().invoke(command, ["customers", "portal-password", account, "--password-stdin"],
                                input="typed on stdin 123\n", env=cli.env)
    assert result.exit_code == 0, result.output
    assert "sign in with cli@example.net or +254744000666" in result.output
    assert pa.authenticate("cli@example.net", "typed on stdin 123") == c
    short = CliRunner().invoke(command, ["customers", "portal-password", account, "--password-stdin"],
                               input="short\n", env=cli.env)
    assert short.exit_code == 2 and "at least 10 characters" in short.output

    assert "set web.base_url" in cli("customers", "portal-password", account, "--send-reset").output
    set_value("web.base_url", BASE)
    db.close()
    sent = cli("customers", "portal-password", account, "--send-reset")
    assert sent.exit_code == 0 and "queued for cli@example.net" in sent.output
    assert f"{BASE}/portal/reset/" in Notification.get(Notification.template == "password_reset").body
    assert AuditEvent.get(AuditEvent.action == "customer.portal_reset_sent").actor.startswith("cli")
