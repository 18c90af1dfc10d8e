"""Named leases in the ``scheduler_lease`` table: one holder at a time, until expiry unless renewed.

Taking, renewing and releasing a lease are each a single statement, so two processes
racing for a lease cannot both win, on SQLite or PostgreSQL. Times are the database's
own clock, so processes on hosts whose clocks disagree still agree on when a lease
expires. Times are stored as naive UTC like every other time in the database.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from dataclasses import dataclass

import peewee

from core.db import backend_name, database
from core.models import SchedulerLease

_TABLE = SchedulerLease._meta.table_name


@dataclass(frozen=True)
class LeaseState:
    """Who last took a lease, when, and whether it has expired since."""

    name: str
    holder: str
    acquired_at: dt.datetime
    expires_at: dt.datetime
    expired: bool


def make_holder() -> str:
    """A holder id naming this host and process, with a random part: ``host:1234:9f2c41d0``."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


def _real(db) -> peewee.Database:
    db = db or database
    return db.obj if isinstance(db, peewee.DatabaseProxy) else db


def _clock(db, seconds_param: bool) -> str:
    """SQL for the database's current UTC time, plus a number of seconds given as a parameter."""
    if backend_name(db) == "postgresql":
        now = "(clock_timestamp() AT TIME ZONE 'UTC')"
        return f"({now} + make_interval(secs => %s))" if seconds_param else now
    # Milliseconds, in the same text form peewee writes and reads back.
    return "strftime('%Y-%m-%d %H:%M:%f', 'now', ?)" if seconds_param else "strftime('%Y-%m-%d %H:%M:%f', 'now')"


def _seconds(db, seconds: float):
    if seconds <= 0:
        raise ValueError("a lease lasts a positive number of seconds")
    return float(seconds) if backend_name(db) == "postgresql" else f"+{float(seconds):.3f} seconds"


def acquire(name: str, holder: str, seconds: float, db=None) -> bool:
    """Take lease ``name`` for ``seconds`` if nobody holds it, it expired, or ``holder`` has it.

    Returns whether ``holder`` now holds it. Taking a lease it already holds extends it,
    keeping the time it was first acquired.
    """
    db = _real(db)
    p = db.param
    sql = (f'INSERT INTO "{_TABLE}" (name, holder, acquired_at, expires_at) '
           f"VALUES ({p}, {p}, {_clock(db, False)}, {_clock(db, True)}) "
           f"ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
           f'acquired_at = CASE WHEN "{_TABLE}".holder = excluded.holder '
           f'THEN "{_TABLE}".acquired_at ELSE excluded.acquired_at END, '
           f"expires_at = excluded.expires_at "
           f'WHERE "{_TABLE}".holder = excluded.holder OR "{_TABLE}".expires_at <= excluded.acquired_at')
    with db.atomic():
        return db.execute_sql(sql, (name, holder, _seconds(db, seconds))).rowcount == 1


def renew(name: str, holder: str, seconds: float, db=None) -> bool:
    """Extend ``holder``'s lease to ``seconds`` from now; False when it no longer holds it.

    A lease that expired but that nobody else took is still ``holder``'s and is renewed:
    no other process can have run in the meantime.
    """
    db = _real(db)
    p = db.param
    sql = f'UPDATE "{_TABLE}" SET expires_at = {_clock(db, True)} WHERE name = {p} AND holder = {p}'
    with db.atomic():
        return db.execute_sql(sql, (_seconds(db, seconds), name, holder)).rowcount == 1


def release(name: str, holder: str, db=None) -> bool:
    """Give up ``holder``'s lease at once so another process can take it; False if it was not held."""
    db = _real(db)
    p = db.param
    with db.atomic():
        return db.execute_sql(f'DELETE FROM "{_TABLE}" WHERE name = {p} AND holder = {p}', (name, holder)).rowcount == 1


def current(name: str, db=None) -> LeaseState | None:
    """The lease's last holder and its times, or ``None`` when nobody has taken it (or it was released)."""
    db = _real(db)
    p = db.param
    row = db.execute_sql(f'SELECT holder, acquired_at, expires_at, expires_at <= {_clock(db, False)} '
                         f'FROM "{_TABLE}" WHERE name = {p}', (name,)).fetchone()
    if row is None:
        return None
    holder, acquired_at, expires_at, expired = row
    field = SchedulerLease.expires_at
    return LeaseState(name, holder, field.python_value(acquired_at), field.python_value(expires_at), bool(expired))
