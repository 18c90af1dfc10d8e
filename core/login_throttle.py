"""The login rate limit and account lockout, shared by staff sign-in, the portal and the API.

Failed sign-ins are rows of ``login_failure``. An account (a realm and the name that was
tried) is locked for :data:`LOCK_MINUTES` after :data:`ACCOUNT_LIMIT` failures within that
window; an address that fails :data:`ADDRESS_LIMIT` times within it is refused whatever
name it tries. A successful sign-in clears the account's failures. While locked, even the
right password is refused, and the answer says when to try again; the same answer is given
for names that do not exist, so a lockout does not tell which names are real.
"""

from __future__ import annotations

import datetime as dt
import math

from core.clock import utcnow
from core.db import database
from core.errors import WispbillError
from core.models import LoginFailure

ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20
LOCK_MINUTES = 15
WINDOW = dt.timedelta(minutes=LOCK_MINUTES)
KEEP = dt.timedelta(days=7)


class TooManyAttempts(WispbillError):
    """Sign-in refused for now; ``retry_after`` is the number of seconds to wait."""

    def __init__(self, retry_after: int):
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes != 1 else ''}.")
        self.retry_after = retry_after


def _account(account: str) -> str:
    return (account or "").strip().lower()[:254]


def _retry_after(rows: list, limit: int, now: dt.datetime) -> int | None:
    """Seconds until fewer than ``limit`` of the failure times ``rows`` (newest first) are in the window."""
    if len(rows) < limit:
        return None
    until = rows[limit - 1] + WINDOW
    return max(1, math.ceil((until - now).total_seconds())) if until > now else None


def check(realm: str, account: str, remote_addr: str | None, now: dt.datetime | None = None) -> None:
    """Raise :class:`TooManyAttempts` if the account is locked or the address is blocked."""
    now = now or utcnow()
    since = now - WINDOW
    by_account = [r[0] for r in LoginFailure.select(LoginFailure.at).where(
        (LoginFailure.realm == realm) & (LoginFailure.account == _account(account)) & (LoginFailure.at > since))
        .order_by(LoginFailure.at.desc()).limit(ACCOUNT_LIMIT).tuples()]
    wait = _retry_after(by_account, ACCOUNT_LIMIT, now)
    if wait is None and remote_addr:
        by_address = [r[0] for r in LoginFailure.select(LoginFailure.at).where(
            (LoginFailure.remote_addr == remote_addr[:45]) & (LoginFailure.at > since))
            .order_by(LoginFailure.at.desc()).limit(ADDRESS_LIMIT).tuples()]
        wait = _retry_after(by_address, ADDRESS_LIMIT, now)
    if wait is not None:
        raise TooManyAttempts(wait)


def failed(realm: str, account: str, remote_addr: str | None, now: dt.datetime | None = None) -> None:
    """Count a failed sign-in."""
    with database.atomic():
        LoginFailure.create(realm=realm, account=_account(account), remote_addr=(remote_addr or "")[:45] or None,
                            at=now or utcnow())


def succeeded(realm: str, account: str) -> None:
    """Forget the account's failures after a successful sign-in."""
    with database.atomic():
        LoginFailure.delete().where((LoginFailure.realm == realm)
                                    & (LoginFailure.account == _account(account))).execute()


def purge(now: dt.datetime | None = None) -> int:
    """Delete failures older than :data:`KEEP`; returns how many."""
    with database.atomic():
        return LoginFailure.delete().where(LoginFailure.at < (now or utcnow()) - KEEP).execute()
