"""Staff console sessions kept in the database, so that signing out really ends them."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from core.clock import utcnow
from core.db import database
from core.models import StaffSession, User

LIFETIME = dt.timedelta(hours=12)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(user: User, user_agent: str | None = None, remote_addr: str | None = None) -> str:
    """Open a session for ``user``; return the token to put in the signed cookie."""
    token = secrets.token_urlsafe(32)
    StaffSession.create(token_hash=_hash(token), user=user, expires_at=utcnow() + LIFETIME,
                        user_agent=(user_agent or "")[:200] or None, remote_addr=(remote_addr or "")[:45] or None)
    return token


def resolve(token: str | None) -> User | None:
    """The active user whose open, unexpired session ``token`` names, or ``None``."""
    if not token or not isinstance(token, str):
        return None
    return (User.select()
            .join(StaffSession)
            .where((StaffSession.token_hash == _hash(token)) & StaffSession.revoked_at.is_null()
                   & (StaffSession.expires_at > utcnow()) & (User.active == True))  # noqa: E712
            .first())


def revoke(token: str | None) -> None:
    """End the session ``token`` names (no error if it is already ended or unknown)."""
    if token and isinstance(token, str):
        with database.atomic():
            (StaffSession.update(revoked_at=utcnow())
             .where((StaffSession.token_hash == _hash(token)) & StaffSession.revoked_at.is_null()).execute())


def revoke_all(user: User) -> int:
    """End every open session of ``user`` (after a password change or deactivation)."""
    with database.atomic():
        return (StaffSession.update(revoked_at=utcnow())
                .where((StaffSession.user == user) & StaffSession.revoked_at.is_null()).execute())
