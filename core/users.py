"""Staff users: creating them with argon2 password hashes and checking a login."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core import audit, validate
from core.clock import utcnow
from core.db import database, refuse_conflict
from core.errors import ValidationError
from core.models import USER_ROLES, User

_hasher = PasswordHasher()
MIN_PASSWORD = 10
# Verified against when the user does not exist, so a login takes as long either way.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def generate_password() -> str:
    """A random password for a first admin (about 100 bits, easy to type)."""
    return secrets.token_urlsafe(16)


def check_username(username, field="username") -> str:
    """A valid username (letters, digits, ``.``, ``-``, ``_``), or ``ValidationError``."""
    username = validate.text(username, field, max_length=150)
    if not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        raise ValidationError(f"{field} may hold letters, digits, '.', '-' and '_' only", field)
    return username


def check_password(password, field="password") -> str:
    """A password long enough to keep, or ``ValidationError``."""
    if password is None or len(password) < MIN_PASSWORD:
        raise ValidationError(f"{field} must be at least {MIN_PASSWORD} characters", field)
    return password


def create(username, password, role="admin") -> User:
    """Validate and create a staff user, audited."""
    username = check_username(username)
    role = validate.choice(role, "role", USER_ROLES)
    check_password(password)
    with refuse_conflict(f"user {username!r} already exists", "username"), database.atomic():
        if User.select().where(User.username == username).exists():
            raise ValidationError(f"user {username!r} already exists", "username")
        user = User.create(username=username, password_hash=_hasher.hash(password), role=role)
        audit.record("user.create", "user", user.id, None, audit.snapshot(user, exclude=("password_hash",)))
    return user


def authenticate(username: str, password: str) -> User | None:
    """The active user with these credentials, or ``None``; upgrades stale hashes."""
    user = User.get_or_none((User.username == (username or "").strip()) & (User.active == True))  # noqa: E712
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    with database.atomic():
        changes = {"last_login_at": utcnow()}
        if _hasher.check_needs_rehash(user.password_hash):
            changes["password_hash"] = _hasher.hash(password)
        User.update(**changes).where(User.id == user.id).execute()
        audit.record("user.login", "user", user.id)
    return user
