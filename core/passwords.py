"""Password hashing for staff and customers: argon2id, with the library's recommended costs.

:func:`verify` takes ``None`` for "nobody has this name" and still spends the time of a
real check, so that a sign-in answers as fast for a name that does not exist as for a
wrong password.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

hasher = PasswordHasher()
_dummy: str | None = None


def hash_password(password: str) -> str:
    """The hash to store for ``password``."""
    return hasher.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches the hash ``stored`` (``None``: check a dummy, answer no)."""
    global _dummy
    if stored is None:
        if _dummy is None:
            _dummy = hasher.hash("not-a-real-password")
        _check(_dummy, password)
        return False
    return _check(stored, password)


def _check(stored: str, password: str) -> bool:
    try:
        return hasher.verify(stored, password or "")
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with older costs and should be replaced at the next sign-in."""
    return hasher.check_needs_rehash(stored)
