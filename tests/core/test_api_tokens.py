"""API tokens: made with scopes the owner's role may hold, shown once, resolved by hash, expiring,
revoked, audited; and ``wispbill tokens`` create, list and revoke."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from core import api_tokens, audit
from core.clock import utcnow
from core.db import connection
from core.errors import NotFound, ValidationError
from core.models import ApiToken, AuditEvent, User


def _staff(username: str, role: str) -> User:
    # No password: tokens need none, and hashing one costs time.
    return User.create(username=username, password_hash="!", role=role)


def test_a_token_is_made_resolved_touched_expired_and_revoked(db):
    support = _staff("sam", "support")
    with audit.acting_as("user:sam"):
        row, text = api_tokens.create(support, name="helpdesk sync", scopes=["routers:read", "customers:write",
                                                                             "customers:read", "customers:read"],
                                      expires_days=30)
    assert text.startswith("wb_") and len(text) > 40 and row.prefix == text[:11]
    assert row.scopes == ["customers:read", "customers:write", "routers:read"]  # cleaned, in the usual order
    stored = ApiToken.get_by_id(row.id)
    assert stored.token_hash != text and text not in stored.token_hash and len(stored.token_hash) == 64
    assert dt.timedelta(days=29) < stored.expires_at - utcnow() <= dt.timedelta(days=30)
    event = AuditEvent.get(AuditEvent.action == "api_token.create")
    assert event.actor == "user:sam" and text not in json.dumps(event.after) and "token_hash" not in event.after

    now = utcnow()
    found = api_tokens.resolve(text, now=now)
    assert found.id == row.id and found.user.username == "sam" and found.last_used_at == now
    api_tokens.resolve(text, now=now + dt.timedelta(seconds=30))  # within the minute: not written again
    assert ApiToken.get_by_id(row.id).last_used_at == now
    api_tokens.resolve(text, now=now + dt.timedelta(seconds=61))
    assert ApiToken.get_by_id(row.id).last_used_at == now + dt.timedelta(seconds=61)

    for wrong in (None, 42, "", "wb_", text + "x", text[3:], "wb_" + "a" * 300):
        assert api_tokens.resolve(wrong) is None
    assert api_tokens.resolve(text, now=stored.expires_at + dt.timedelta(seconds=1)) is None  # expired
    User.update(active=False).where(User.id == support.id).execute()
    assert api_tokens.resolve(text) is None  # a deactivated owner's tokens stop working
    User.update(active=True).where(User.id == support.id).execute()

    other = _staff("olga", "support")
    with pytest.raises(NotFound):
        api_tokens.revoke(row.id, actor=other)  # not hers: as if it did not exist
    admin = _staff("root", "admin")
    assert api_tokens.may_manage(admin, row) and api_tokens.may_manage(support, row)
    assert not api_tokens.may_manage(other, row)
    revoked = api_tokens.revoke(row.id, actor=admin)
    assert revoked.revoked_at is not None and api_tokens.status(revoked) == "revoked"
    assert api_tokens.resolve(text) is None
    with pytest.raises(ValidationError, match="already revoked"):
        api_tokens.revoke(row.id)
    assert AuditEvent.get(AuditEvent.action == "api_token.revoke").after["revoked_at"] is not None
    assert [t.id for t in api_tokens.listing(support)] == [row.id] and api_tokens.listing(other) == []
    assert api_tokens.as_dict(revoked)["status"] == "revoked" and "token_hash" not in api_tokens.as_dict(revoked)


REFUSED = [
    ("readonly", ["customers:write"], None, "scopes"),     # beyond the role
    ("support", ["plans:write"], None, "scopes"),
    ("billing", ["routers:write"], None, "scopes"),
    ("admin", ["everything"], None, "scopes"),            # unknown
    ("admin", [], None, "scopes"),
    ("admin", [7], None, "scopes"),
    ("admin", "customers:read", 0, "expires_days"),
    ("admin", ["customers:read"], "soon", "expires_days"),
    ("admin", ["customers:read"], 10**20, "expires_days"),
]


def test_scopes_beyond_the_role_and_bad_expiries_are_refused(db):
    staff = {role: _staff(f"u-{role}", role)
             for role in ("admin", "billing", "support", "readonly")}
    for role, scopes, expires, field in REFUSED:
        with pytest.raises(ValidationError) as caught:
            api_tokens.create(staff[role], name="x", scopes=scopes, expires_days=expires)
        assert caught.value.field == field, (role, scopes, expires)
    with pytest.raises(ValidationError) as caught:
        api_tokens.create(staff["admin"], name="  ", scopes=["usage:read"])
    assert caught.value.field == "name"
    assert ApiToken.select().count() == 0
    # what each role may hold, as the token page offers it
    row, _text = api_tokens.create(staff["readonly"], name="dashboards", scopes=list(
        s for s in ("customers:read", "invoices:read", "usage:read")))
    assert row.scopes == ["customers:read", "invoices:read", "usage:read"]


def test_cli_creates_lists_and_revokes_tokens(db, cli):
    _staff("ops", "billing")
    db.close()
    made = cli("tokens", "create", "ops", "--name", "accounting export", "--scope", "payments:read",
               "--scope", "invoices:read", "--expires", "90")
    assert made.exit_code == 0, made.output
    text = [line for line in made.output.splitlines() if line.startswith("wb_")][0]
    assert "invoices:read, payments:read" in made.output and "only time" in made.output
    with connection():
        assert api_tokens.resolve(text).user.username == "ops"
        token_id = ApiToken.get().id
        assert AuditEvent.get(AuditEvent.action == "api_token.create").actor.startswith("cli:")

    listed = json.loads(cli("tokens", "list", "--json").output)
    assert listed[0]["user"] == "ops" and listed[0]["status"] == "active" and text not in json.dumps(listed)
    assert listed[0]["prefix"] in cli("tokens", "list").output

    refused = cli("tokens", "create", "ops", "--name", "x", "--scope", "routers:write")
    assert refused.exit_code == 2 and "may not hold the scope 'routers:write'" in refused.output
    assert cli("tokens", "create", "nobody", "--name", "x", "--scope", "usage:read").exit_code == 2

    revoked = cli("tokens", "revoke", str(token_id))
    assert revoked.exit_code == 0 and "revoked token" in revoked.output
    assert cli("tokens", "revoke", str(token_id)).exit_code == 2
    assert cli("tokens", "revoke", "999").exit_code == 2
    with connection():
        assert api_tokens.resolve(text) is None
