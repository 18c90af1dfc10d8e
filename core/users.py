"""Staff users: creating them with argon2 password hashes and checking a login."""

from __future__ import annotations

import secrets

from core import audit, passwords, validate
from core.clock import utcnow
from core.db import database, refuse_conflict
from core.errors import ValidationError
from core.models import USER_ROLES, User

MIN_PASSWORD = 10


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
        user = User.create(username=username, password_hash=passwords.hash_password(password), role=role)
        audit.record("user.create", "user", user.id, None, audit.snapshot(user, exclude=("password_hash",)))
    return user


def authenticate(username: str, password: str) -> User | None:
    """The active user with these credentials, or ``None``; upgrades stale hashes."""
    user = User.get_or_none((User.username == (username or "").strip()) & (User.active == True))  # noqa: E712
    if not passwords.verify(user.password_hash if user else None, password) or user is None:
        return None
    with database.atomic():
        changes = {"last_login_at": utcnow()}
        if passwords.needs_rehash(user.password_hash):
            changes["password_hash"] = passwords.hash_password(password)
        User.update(**changes).where(User.id == user.id).execute()
        audit.record("user.login", "user", user.id)
    return user


# --- staff management (the console's staff page) -------------------------------------

def listing() -> list[User]:
    """Every staff user, active ones first, by username."""
    return list(User.select().order_by(User.active.desc(), User.username))


def get(user_id) -> User:
    """A staff user by id, or ``NotFound``."""
    from core.errors import NotFound

    found = User.get_or_none(User.id == validate.as_id(str(user_id))) if validate.as_id(str(user_id)) else None
    if found is None:
        raise NotFound(f"no staff user {user_id!r}")
    return found


def _locked(user: User) -> User:
    """``user`` as stored now, locked until the transaction ends (on PostgreSQL)."""
    from core.bulk import is_sqlite

    query = User.select().where(User.id == user.id)
    if not is_sqlite(database.obj):
        query = query.for_update()
    return query.get()


def _keep_an_admin(user: User, action: str) -> None:
    """Refuse ``action`` when ``user`` is the last active admin (no one could manage staff after)."""
    if user.role != "admin" or not user.active:
        return
    others = User.select().where((User.role == "admin") & (User.active == True) & (User.id != user.id))  # noqa: E712
    if not others.exists():
        raise ValidationError(f"{user.username} is the last active administrator; make another one first "
                              f"before you {action}", "role")


def _revoke_sessions(user: User) -> int:
    from core.models import StaffSession

    return (StaffSession.update(revoked_at=utcnow())
            .where((StaffSession.user == user.id) & StaffSession.revoked_at.is_null()).execute())


def _change(user: User, action: str, **changes) -> User:
    before = audit.snapshot(user, exclude=("password_hash",))
    User.update(**changes).where(User.id == user.id).execute()
    after = User.get_by_id(user.id)
    audit.record(action, "user", user.id, before, audit.snapshot(after, exclude=("password_hash",)))
    return after


def set_role(user: User, role) -> User:
    """Give ``user`` another role, audited; the last active admin keeps theirs."""
    role = validate.choice(role, "role", USER_ROLES)
    with database.atomic():
        _lock_admins()
        user = _locked(user)
        if role == user.role:
            return user
        if role != "admin":
            _keep_an_admin(user, "change their role")
        return _change(user, "user.role", role=role)


def set_active(user: User, active: bool) -> User:
    """Deactivate (signing them out everywhere at once) or reactivate ``user``, audited."""
    with database.atomic():
        _lock_admins()
        user = _locked(user)
        if bool(user.active) == bool(active):
            return user
        if not active:
            _keep_an_admin(user, "deactivate them")
            _revoke_sessions(user)
        return _change(user, "user.activate" if active else "user.deactivate", active=bool(active))


def reset_password(user: User, password) -> User:
    """Set a new password for ``user`` and end their sessions, audited (the hash is never recorded)."""
    check_password(password)
    with database.atomic():
        user = _locked(user)
        _revoke_sessions(user)
        User.update(password_hash=passwords.hash_password(password)).where(User.id == user.id).execute()
        audit.record("user.password_reset", "user", user.id)
    return User.get_by_id(user.id)


def _lock_admins() -> None:
    """Lock the active admins' rows, so that two demotions at once cannot leave none (PostgreSQL)."""
    from core.bulk import is_sqlite

    if not is_sqlite(database.obj):
        list(User.select(User.id).where((User.role == "admin") & (User.active == True)).for_update())  # noqa: E712
