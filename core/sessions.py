"""Staff console sessions kept in the database, so that signing out really ends them."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from core.clock import utcnow
from core.db import database
from core.models import StaffSession, User

LIFETIME = dt.timedelta(hours=12)  # since the last request: staff at work stay signed in
RENEW_AFTER = dt.timedelta(minutes=5)  # write the new expiry at most this often
KEEP_ENDED = dt.timedelta(days=30)  # ended sessions are kept this long, for the record


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(user: User, user_agent: str | None = None, remote_addr: str | None = None) -> str:
    """Open a session for ``user``; return the token to put in the signed cookie."""
    token = secrets.token_urlsafe(32)
    StaffSession.create(token_hash=_hash(token), user=user, expires_at=utcnow() + LIFETIME,
                        user_agent=(user_agent or "")[:200] or None, remote_addr=(remote_addr or "")[:45] or None)
    return token


def resolve(token: str | None) -> User | None:
    """The active user whose open, unexpired session ``token`` names, or ``None``.

    Each use pushes the expiry back to :data:`LIFETIME` from now.
    """
    if not token or not isinstance(token, str):
        return None
    now = utcnow()
    row = (StaffSession.select(StaffSession, User).join(User)
           .where((StaffSession.token_hash == _hash(token)) & StaffSession.revoked_at.is_null()
                  & (StaffSession.expires_at > now) & (User.active == True))  # noqa: E712
           .first())
    if row is None:
        return None
    if row.expires_at < now + LIFETIME - RENEW_AFTER:
        StaffSession.update(expires_at=now + LIFETIME).where(StaffSession.id == row.id).execute()
    return row.user


def revoke(token: str | None) -> None:
    """End the session ``token`` names (no error if it is already ended or unknown)."""
    if token and isinstance(token, str):
        with database.atomic():
            (StaffSession.update(revoked_at=utcnow())
             .where((StaffSession.token_hash == _hash(token)) & StaffSession.revoked_at.is_null()).execute())


def purge(now=None) -> int:
    """Delete sessions that ended (expired or revoked) more than :data:`KEEP_ENDED` ago."""
    cutoff = (now or utcnow()) - KEEP_ENDED
    with database.atomic():
        return (StaffSession.delete()
                .where((StaffSession.expires_at < cutoff) | (StaffSession.revoked_at < cutoff)).execute())
