"""Health checks behind ``wispbill doctor``: each one says what it checked and, when not ok, what to do.

Every check returns a :class:`Check` and catches its own exceptions, so one broken check
is reported as a failure in one line and never hides the others. The thresholds live in
small pure functions (:func:`disk_status`, :func:`backup_status`, :func:`clock_status`)
so they can be tested with given numbers.
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import peewee

from core import migrations
from core.clock import utcnow
from core.config import Config
from core.db import backend_name, bind, check_connection, database
from core.errors import DatabaseUnavailable

STATUSES = ("ok", "warn", "fail", "skip")
GIB = 1024 ** 3
EVENT_STALE_AFTER = dt.timedelta(minutes=5)
BACKUP_WARN_AFTER = dt.timedelta(hours=26)
BACKUP_FAIL_AFTER = dt.timedelta(hours=72)
CLOCK_MAX_DRIFT = 60.0  # seconds
CLOCK_YEARS = (2024, 2100)
ROUTER_TIMEOUT = 2.0  # seconds
RADIUS_PORT = 1812
BACKUP_GLOB = "wispbill-*.tar.gz"


@dataclass(frozen=True)
class Check:
    """The result of one check: ``status`` is ok, warn, fail or skip; ``message`` is one line."""

    name: str
    status: str
    message: str

    def as_dict(self) -> dict:
        """The check as a plain dict, for ``--json``."""
        return asdict(self)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]


def guarded(name: str):
    """Decorate a check so that any exception becomes a ``fail`` with a one-line message."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs) -> Check:
            try:
                return func(*args, **kwargs)
            except Exception as exc:  # a broken check is reported, never raised
                return Check(name, "fail", f"check failed: {exc.__class__.__name__}: {_one_line(exc)}")
        return wrapper
    return decorate


def _age(delta: dt.timedelta) -> str:
    """A short human age: ``45 s``, ``12 min``, ``5.2 h``, ``3.1 days``."""
    seconds = delta.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# --- database -------------------------------------------------------------------------

def _database(url: str) -> tuple[Check, bool]:
    """The database check and whether the database could be reached at all."""
    try:
        bind(url)
        check_connection(url)
    except DatabaseUnavailable as exc:
        return Check("database", "fail", f"{exc} (start the database server or fix WISPBILL_DATABASE_URL)"), False
    db = database.obj
    current, latest = migrations.current_version(db), migrations.latest_version()
    waiting = migrations.pending(db)
    backend = backend_name(db)
    if waiting:
        return Check("database", "fail", f"reachable ({backend}), schema at version {current}, this code needs "
                                         f"{latest} ({len(waiting)} migration(s) pending): run wispbill migrate"), True
    if current > latest:
        return Check("database", "warn", f"reachable ({backend}), schema at version {current} is newer than this "
                                         f"code ({latest}): upgrade wispbill to match the database"), True
    return Check("database", "ok", f"reachable ({backend}), schema at version {current} (latest)"), True


@guarded("database")
def check_database(url: str) -> Check:
    """The database at ``url`` answers and its schema is at the version this code needs.

    Binds the shared database proxy to ``url`` so the checks after it can use it.
    """
    return _database(url)[0]


# --- scheduler ------------------------------------------------------------------------

@guarded("scheduler")
def check_scheduler(now: dt.datetime | None = None) -> Check:
    """Whether a scheduler is running, from its lease, and whether it keeps up with the event outbox.

    No lease, or one that expired without being renewed, means no scheduler is running
    (fail). An event that used up its attempts will never be delivered (fail); one that has
    been due for more than five minutes and is still undelivered means the scheduler is not
    keeping up (warn).
    """
    from core import lease
    from core.events import MAX_ATTEMPTS
    from core.models import Event
    from core.scheduler import LEASE_NAME

    now = now or utcnow()
    held = lease.current(LEASE_NAME)
    if held is None:
        return Check("scheduler", "fail", "no scheduler has run yet: start wispbill scheduler "
                                          "(on the appliance: systemctl start wispbill-scheduler)")
    if held.expired:
        return Check("scheduler", "fail", f"no scheduler is running: the lease of {held.holder} ran out "
                                          f"{_age(now - held.expires_at)} ago (start wispbill scheduler)")
    leader = f"{held.holder} holds the lease"
    undelivered = Event.dispatched_at.is_null()
    dead = list(Event.select(Event.id, Event.name).where(undelivered & (Event.attempts >= MAX_ATTEMPTS))
                .order_by(Event.id).limit(6))
    if dead:
        total = Event.select().where(undelivered & (Event.attempts >= MAX_ATTEMPTS)).count()
        names = ", ".join(f"#{e.id} {e.name}" for e in dead[:5]) + (", ..." if total > 5 else "")
        return Check("scheduler", "fail", f"{total} event(s) failed {MAX_ATTEMPTS} times and will not be retried: "
                                          f"{names} (see their last_error, fix the plugin, then reset attempts)")
    due = peewee.fn.COALESCE(Event.next_attempt_at, Event.created_at)
    stale = Event.select().where(undelivered & (Event.attempts < MAX_ATTEMPTS) & (due <= now - EVENT_STALE_AFTER))
    count = stale.count()
    if count:
        oldest = stale.select(peewee.fn.MIN(due)).scalar()
        if isinstance(oldest, str):  # SQLite hands back text from an expression
            oldest = dt.datetime.fromisoformat(oldest)
        return Check("scheduler", "warn", f"{leader}, but {count} event(s) are due and undelivered, oldest due "
                                          f"{_age(now - oldest)} ago: see the scheduler's log")
    waiting = Event.select().where(undelivered).count()
    if waiting:
        return Check("scheduler", "ok", f"{leader}; event outbox: {waiting} event(s) waiting, none overdue by "
                                        f"more than {_age(EVENT_STALE_AFTER)}")
    return Check("scheduler", "ok", f"{leader}; event outbox: nothing waiting")


# --- routers --------------------------------------------------------------------------

def tcp_reachable(host: str, port: int, timeout: float = ROUTER_TIMEOUT) -> str | None:
    """``None`` when a TCP connection to ``host:port`` opens within ``timeout``, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.timeout:
        return f"no answer in {timeout:g} s"
    except OSError as exc:
        return exc.strerror or _one_line(exc)


@guarded("routers")
def check_routers(timeout: float = ROUTER_TIMEOUT) -> Check:
    """Each active router accepts a TCP connection on its configured port."""
    from core.models import Router

    routers = list(Router.select().where(Router.active == True).order_by(Router.name))  # noqa: E712
    if not routers:
        return Check("routers", "skip", "no routers configured")
    portless = [r.name for r in routers if not r.port]
    targets = [r for r in routers if r.port]
    note = f"; not checked (no port set): {', '.join(portless)}" if portless else ""
    if not targets:
        return Check("routers", "skip", f"{len(routers)} active router(s), none with a port to check{note}")
    with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
        results = list(pool.map(lambda r: tcp_reachable(r.host, r.port, timeout), targets))
    down = [f"{r.name} ({r.host}:{r.port}: {why})" for r, why in zip(targets, results) if why]
    if down:
        return Check("routers", "fail", f"{len(down)} of {len(targets)} unreachable: {'; '.join(down)} "
                                        f"(check the router is up and its host and port in wispbill){note}")
    return Check("routers", "ok", f"{len(targets)} router(s) accept TCP connections{note}")


# --- FreeRADIUS -----------------------------------------------------------------------

@guarded("freeradius")
def check_freeradius(config: Config, timeout: int = 2) -> Check:
    """FreeRADIUS answers a Status-Server request, when WISPBILL_RADIUS_HOST and _SECRET configure one.

    Uses ``radclient`` from the FreeRADIUS utilities; without it the check is skipped.
    """
    host = str(config.extra.get("radius_host") or "").strip()
    secret = str(config.extra.get("radius_secret") or "")
    if not host:
        return Check("freeradius", "skip", "FreeRADIUS is not configured (set WISPBILL_RADIUS_HOST to check it)")
    port = int(config.extra.get("radius_port") or RADIUS_PORT)
    if not secret:
        return Check("freeradius", "warn", f"WISPBILL_RADIUS_HOST is {host} but WISPBILL_RADIUS_SECRET is not set")
    radclient = shutil.which("radclient")
    if not radclient:
        return Check("freeradius", "skip", f"cannot check {host}:{port}: radclient is not installed "
                                           "(install freeradius-utils)")
    proc = subprocess.run(
        [radclient, "-t", str(timeout), "-r", "1", f"{host}:{port}", "status", secret],
        input="Message-Authenticator = 0x00\n", capture_output=True, text=True, timeout=timeout * 3 + 5,
    )
    if proc.returncode == 0:
        return Check("freeradius", "ok", f"{host}:{port} answered a Status-Server request")
    reason = (proc.stderr or proc.stdout).strip().splitlines()
    why = reason[-1] if reason else f"radclient exited {proc.returncode}"
    return Check("freeradius", "fail", f"{host}:{port} did not answer Status-Server: {why} (check radiusd is "
                                       "running, status_server is enabled and the secret matches)")


# --- disk -----------------------------------------------------------------------------

def disk_status(free: int, total: int) -> tuple[str, str]:
    """Status and message for ``free`` of ``total`` bytes: fail under 1 GiB or 5 %, warn under 5 GiB or 10 %."""
    percent = 100.0 * free / total if total else 0.0
    numbers = f"{free / GIB:.1f} GiB free of {total / GIB:.1f} GiB ({percent:.0f}%)"
    if free < 1 * GIB or percent < 5:
        return "fail", f"{numbers}: free space now (below 1 GiB or 5%)"
    if free < 5 * GIB or percent < 10:
        return "warn", f"{numbers}: free some space soon (below 5 GiB or 10%)"
    return "ok", numbers


def _existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@guarded("disk")
def check_disk(path: Path) -> Check:
    """Free space on the filesystem holding ``path`` (the data directory)."""
    usage = shutil.disk_usage(_existing(Path(path)))
    status, message = disk_status(usage.free, usage.total)
    return Check("disk", status, f"{message} at {path}")


# --- backups --------------------------------------------------------------------------

def backup_status(age: dt.timedelta | None) -> tuple[str, str]:
    """Status for the newest backup's ``age`` (``None``: no backup): warn after 26 h, fail after 72 h."""
    if age is None:
        return "warn", "no backup yet: run wispbill backup"
    text = f"newest backup is {_age(age)} old"
    if age > BACKUP_FAIL_AFTER:
        return "fail", f"{text} (over {_age(BACKUP_FAIL_AFTER)}): run wispbill backup and check the backup job"
    if age > BACKUP_WARN_AFTER:
        return "warn", f"{text} (over {_age(BACKUP_WARN_AFTER)}): run wispbill backup and check the backup job"
    return "ok", text


def newest_backup(directory: Path) -> Path | None:
    """The most recently modified ``wispbill-*.tar.gz`` in ``directory``, or ``None``."""
    if not directory.is_dir():
        return None
    found = [p for p in directory.glob(BACKUP_GLOB) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def backup_dir(config: Config, use_settings: bool = True) -> Path:
    """Where backups are kept: the ``backups.dir`` setting when declared, else ``<data_dir>/backups``."""
    default = config.data_dir / "backups"
    if not use_settings:
        return default
    try:
        from core import settings

        value = settings.get_or("backups.dir", None)
    except Exception:  # no settings table or plugins yet: the default place
        return default
    if not value:
        return default
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else config.data_dir / path


@guarded("backups")
def check_backups(directory: Path, now: float | None = None) -> Check:
    """Age of the newest backup archive in ``directory``."""
    newest = newest_backup(Path(directory))
    if newest is None:
        status, message = backup_status(None)
        return Check("backups", status, f"{message} (looked in {directory})")
    now = time.time() if now is None else now
    status, message = backup_status(dt.timedelta(seconds=max(0.0, now - newest.stat().st_mtime)))
    return Check("backups", status, f"{message}: {newest.name}")


# --- clock ----------------------------------------------------------------------------

def clock_status(now: dt.datetime, drift: float | None) -> tuple[str, str]:
    """Status for the system clock ``now`` (UTC) and its ``drift`` in seconds from the database server's."""
    low, high = CLOCK_YEARS
    if not low <= now.year <= high:
        return "fail", (f"system clock says {now:%Y-%m-%d %H:%M} UTC, not a plausible date: set the time "
                        "and enable NTP (timedatectl set-ntp true)")
    if drift is None:
        return "ok", f"system clock {now:%Y-%m-%d %H:%M} UTC is plausible"
    if abs(drift) > CLOCK_MAX_DRIFT:
        return "fail", (f"system clock differs from the database server's by {drift:+.0f} s (more than "
                        f"{CLOCK_MAX_DRIFT:.0f} s): enable NTP on both machines")
    return "ok", f"system clock {now:%Y-%m-%d %H:%M} UTC, within {abs(drift):.1f} s of the database server"


def database_drift(db) -> float:
    """Seconds the database server's clock is ahead of this machine's (PostgreSQL)."""
    before = time.time()
    value = db.execute_sql("SELECT CURRENT_TIMESTAMP").fetchone()[0]
    after = time.time()
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp() - (before + after) / 2


@guarded("clock")
def check_clock(database_ok: bool, now: dt.datetime | None = None) -> Check:
    """The system clock has a plausible year and agrees with the PostgreSQL server's clock."""
    now = now or utcnow()
    db = database.obj
    if db is None or backend_name(db) == "sqlite":
        status, message = clock_status(now, None)
        return Check("clock", status, message + ("; no database server to compare with (SQLite is local)"
                                                 if status == "ok" else ""))
    if not database_ok:
        status, message = clock_status(now, None)
        return Check("clock", status, message + ("; not compared with the database server (unreachable)"
                                                 if status == "ok" else ""))
    status, message = clock_status(now, database_drift(db))
    return Check("clock", status, message)


# --- all ------------------------------------------------------------------------------

def run_all(config: Config) -> list[Check]:
    """Run every check against ``config`` in order; checks needing the database skip when it is not ok."""
    try:
        db_check, reachable = _database(config.database_url)
    except Exception as exc:  # reported like any broken check
        db_check, reachable = Check("database", "fail", f"check failed: {_one_line(exc)}"), False
    results = [db_check]
    usable = db_check.status != "fail"
    why = "database unreachable" if not reachable else "database schema not current"
    try:
        if usable:
            results.append(check_scheduler())
            results.append(check_routers())
        else:
            results.append(Check("scheduler", "skip", f"not checked: {why}"))
            results.append(Check("routers", "skip", f"not checked: {why}"))
        results.append(check_freeradius(config))
        results.append(check_disk(config.data_dir))
        results.append(check_backups(backup_dir(config, use_settings=usable)))
        results.append(check_clock(reachable))
    finally:
        if database.obj is not None and not database.is_closed():
            database.close()
    return results


def exit_code(checks: list[Check]) -> int:
    """1 when any check failed, else 0 (warnings and skips do not fail)."""
    return 1 if any(c.status == "fail" for c in checks) else 0

