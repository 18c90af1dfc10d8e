"""Staff API tokens: creating them (shown once), resolving a presented token, revoking, listing.

A token is ``wb_`` followed by 43 random URL-safe characters. Only its SHA-256 hash is
stored, with a short prefix that staff recognise it by. A token carries scopes
(:data:`core.permissions.SCOPES`), which must be ones its owner's role may hold; a call
is still checked against the owner's role when it is made, so a token never does more
than its owner could do in the console today.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from core import audit, permissions, validate
from core.clock import utcnow
from core.db import database
from core.errors import NotFound, ValidationError
from core.models import ApiToken, User

TOKEN_PREFIX = "wb_"
PREFIX_LENGTH = 11  # "wb_" and 8 random characters: enough to tell tokens apart on a list
MAX_TOKEN_LENGTH = 200
MAX_EXPIRY_DAYS = 3650
TOUCH_EVERY = dt.timedelta(minutes=1)  # last_used_at is written at most this often


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_scopes(user: User, scopes) -> list[str]:
    """``scopes`` as a clean list in the order of :data:`core.permissions.SCOPES`, or ``ValidationError``.

    Each must be a known scope that ``user``'s role may hold.
    """
    if isinstance(scopes, str):
        scopes = scopes.replace(",", " ").split()
    if not isinstance(scopes, (list, tuple, set, frozenset)) or not all(isinstance(s, str) for s in scopes):
        raise ValidationError("scopes must be a list of scope names", "scopes")
    wanted = {s.strip() for s in scopes if s.strip()}
    if not wanted:
        raise ValidationError("a token needs at least one scope", "scopes")
    unknown = sorted(wanted - set(permissions.SCOPES))
    if unknown:
        raise ValidationError(f"unknown scope {unknown[0]!r} (known: {', '.join(permissions.SCOPES)})", "scopes")
    mine = permissions.scopes_for(user.role)
    beyond = [s for s in permissions.SCOPES if s in wanted and s not in mine]
    if beyond:
        raise ValidationError(f"the role {user.role} of {user.username} may not hold the scope "
                              f"{beyond[0]!r}", "scopes")
    return [s for s in permissions.SCOPES if s in wanted]


def create(user: User, *, name, scopes, expires_days=None) -> tuple[ApiToken, str]:
    """Make a token for ``user``; returns ``(row, token text)``. The text is not kept: show it once."""
    name = validate.text(name, "name", max_length=100)
    scopes = check_scopes(user, scopes)
    days = validate.integer(expires_days, "expires_days", minimum=1, maximum=MAX_EXPIRY_DAYS, required=False)
    if not user.active:
        raise ValidationError(f"{user.username} is deactivated", "user")
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    with database.atomic():
        row = ApiToken.create(user=user.id, name=name, token_hash=_hash(text), prefix=text[:PREFIX_LENGTH],
                              scopes=scopes, created_at=now,
                              expires_at=now + dt.timedelta(days=days) if days else None)
        audit.record("api_token.create", "api_token", row.id, None, snapshot(row))
    return row, text


def snapshot(row: ApiToken) -> dict:
    """A token as the audit trail keeps it: never its hash."""
    data = audit.snapshot(row, exclude=("token_hash",))
    data["scopes"] = list(row.scopes or [])
    return data


def resolve(text, now: dt.datetime | None = None) -> ApiToken | None:
    """The open, unexpired token ``text`` names, of an active user (``row.user`` loaded), or ``None``."""
    if not isinstance(text, str) or not text.startswith(TOKEN_PREFIX) or len(text) > MAX_TOKEN_LENGTH:
        return None
    now = now or utcnow()
    row = (ApiToken.select(ApiToken, User).join(User)
           .where((ApiToken.token_hash == _hash(text)) & ApiToken.revoked_at.is_null()
                  & (ApiToken.expires_at.is_null() | (ApiToken.expires_at > now))
                  & (User.active == True))  # noqa: E712 (peewee expression)
           .first())
    if row is None:
        return None
    if row.last_used_at is None or row.last_used_at <= now - TOUCH_EVERY:
        with database.atomic():
            ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()
        row.last_used_at = now
    return row


def get(token_id) -> ApiToken:
    """A token by id, or ``NotFound``."""
    number = validate.as_id(token_id)
    row = ApiToken.get_or_none(ApiToken.id == number) if number is not None else None
    if row is None:
        raise NotFound(f"no API token {token_id!r}")
    return row


def may_manage(actor: User | None, row: ApiToken) -> bool:
    """Whether ``actor`` may see and revoke ``row``: its owner, or staff with ``users.manage``."""
    return actor is not None and (row.user_id == actor.id or permissions.allowed(actor.role, "users.manage"))


def revoke(token_id, actor: User | None = None) -> ApiToken:
    """Revoke a token at once, audited. With ``actor``, only one they may manage (else ``NotFound``)."""
    with database.atomic():
        row = get(token_id)
        if actor is not None and not may_manage(actor, row):
            raise NotFound(f"no API token {token_id!r}")
        if row.revoked_at is not None:
            raise ValidationError(f"API token {row.id} ({row.prefix}…) is already revoked", "token")
        before = snapshot(row)
        ApiToken.update(revoked_at=utcnow()).where(ApiToken.id == row.id).execute()
        row = ApiToken.get_by_id(row.id)
        audit.record("api_token.revoke", "api_token", row.id, before, snapshot(row))
    return row


def listing(user: User | None = None) -> list[ApiToken]:
    """Tokens, newest first: ``user``'s, or everyone's (each with its owner loaded)."""
    q = ApiToken.select(ApiToken, User).join(User).order_by(ApiToken.id.desc())
    if user is not None:
        q = q.where(ApiToken.user == user.id)
    return list(q)


def status(row: ApiToken, now: dt.datetime | None = None) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def as_dict(row: ApiToken) -> dict:
    """A token for listings and JSON: its prefix, never its hash."""
    def when(value):
        return value.isoformat(timespec="seconds") if value else None
    return {"id": row.id, "user": row.user.username, "name": row.name, "prefix": row.prefix,
            "scopes": list(row.scopes or []), "status": status(row), "created_at": when(row.created_at),
            "expires_at": when(row.expires_at), "last_used_at": when(row.last_used_at),
            "revoked_at": when(row.revoked_at)}
