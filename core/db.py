"""The database: one peewee ``DatabaseProxy`` initialised from a URL.

SQLite (the default, a file in the data directory) runs in WAL mode with foreign keys
on; PostgreSQL is used through psycopg 3. Code opens a connection per request and per
job with :func:`connection` and wraps every write in ``database.atomic()``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import peewee
import playhouse.pool
from playhouse.db_url import parse as parse_url

from core.config import redact, validate_database_url
from core.errors import DatabaseUnavailable, ValidationError

database = peewee.DatabaseProxy()

# Dates go into SQLite as the ISO text peewee stores and reads back, converted in C by the
# driver; stated here rather than left to the driver's deprecated defaults.
sqlite3.register_adapter(dt.date, dt.date.isoformat)
sqlite3.register_adapter(dt.datetime, lambda value: value.isoformat(" "))

SQLITE_PRAGMAS = (
    ("foreign_keys", 1),
    ("busy_timeout", 10000),
    ("synchronous", "normal"),
)


class SqliteDatabase(peewee.SqliteDatabase):
    """SQLite for a multi-process server: WAL, and write transactions that queue instead of failing.

    Transactions begin ``IMMEDIATE``: the write lock is taken at ``BEGIN`` and waits on
    the busy timeout. A deferred transaction that reads first and writes later would
    instead fail at once with "database is locked" when another writer got there first.
    """

    def begin(self, lock_type=None):
        super().begin(lock_type or "IMMEDIATE")

    def _set_pragmas(self, conn):
        super()._set_pragmas(conn)
        if self.database == ":memory:":
            return
        # Changing the journal mode needs the file to itself and does not wait on the
        # busy handler, so a second connection opening a brand-new file retries here.
        deadline = time.monotonic() + 10
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    conn.execute("PRAGMA journal_mode = wal")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


class PooledSqliteDatabase(playhouse.pool.PooledSqliteDatabase, SqliteDatabase):
    """:class:`SqliteDatabase` whose closed connections wait in a pool for the next request.

    Opening a connection sets the pragmas, and closing the last one checkpoints the
    write-ahead log: both cost more than a short request's own queries.
    """


class PooledPostgresqlDatabase(playhouse.pool.PooledPostgresqlDatabase):
    """PostgreSQL with connections kept between requests (a new one costs a round trip and a login)."""


POOL_SIZE = 80  # more than the web server can have threads (serve --threads is at most 64)
POOL_STALE_SECONDS = 300


def make_database(url: str, pooled: bool = False) -> peewee.Database:
    """Build (but do not connect) the peewee database that ``url`` names.

    ``pooled`` keeps closed connections for reuse: for the web server, which opens one
    per request. Commands and jobs open one and close it when done.
    """
    validate_database_url(url)
    parsed = urlparse(url)
    pool = {"max_connections": POOL_SIZE, "stale_timeout": POOL_STALE_SECONDS} if pooled else {}
    if parsed.scheme == "sqlite":
        path = unquote(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else parsed.path
        if path != ":memory:":
            path = str(Path(path))
        if pooled and path != ":memory:":
            return PooledSqliteDatabase(path, pragmas=SQLITE_PRAGMAS, check_same_thread=False, **pool)
        return SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=10)
    params = parse_url(url)
    name = params.pop("database")
    params.setdefault("connect_timeout", 5)
    cls = PooledPostgresqlDatabase if pooled else peewee.PostgresqlDatabase
    return cls(name, prefer_psycopg3=True, autorollback=False, **pool, **params)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]


def bind(url: str, pooled: bool = False) -> peewee.Database:
    """Point the shared ``database`` proxy at ``url`` and return the real database."""
    db = make_database(url, pooled=pooled)
    database.initialize(db)
    return db


def check_connection(url: str | None = None) -> None:
    """Open and close a connection; raise :class:`DatabaseUnavailable` in one line if it fails."""
    db = database.obj if url is None else make_database(url)
    target = redact(url) if url else "the database"
    if isinstance(db, peewee.SqliteDatabase) and db.database != ":memory:":
        parent = Path(db.database).parent
        if not parent.is_dir():
            raise DatabaseUnavailable(f"cannot open {target}: directory {parent} does not exist")
    try:
        with connection(db):
            db.execute_sql("SELECT 1")
    except peewee.PeeweeException as exc:
        raise DatabaseUnavailable(f"cannot reach {target}: {_first_line(exc)}") from None
    except Exception as exc:  # driver errors that peewee does not wrap
        if isinstance(exc, DatabaseUnavailable):
            raise
        raise DatabaseUnavailable(f"cannot reach {target}: {_first_line(exc)}") from None


@contextlib.contextmanager
def connection(db=None):
    """Hold a connection for the length of the block, reusing one that is already open."""
    db = db or database
    opened = db.connect(reuse_if_open=True)
    try:
        yield db
    finally:
        if opened and not db.is_closed():
            db.close()


@contextlib.contextmanager
def refuse_conflict(message: str, field: str | None = None):
    """Turn a unique-key violation inside the block into a :class:`ValidationError`.

    Input is validated before it is written, so a duplicate that still happens is
    another writer racing for the same unique value; the transaction inside the block
    has rolled back and nothing was written. Other integrity errors (a foreign key, a
    check) are bugs and pass through unchanged.
    """
    try:
        yield
    except peewee.IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        raise ValidationError(message, field) from None


def is_unique_violation(exc: peewee.IntegrityError) -> bool:
    """Whether ``exc`` reports a duplicate key (SQLite and PostgreSQL)."""
    original = getattr(exc, "orig", None) or exc
    if getattr(original, "sqlstate", None) == "23505":
        return True
    return "UNIQUE constraint failed" in str(original)


def backend_name(db=None) -> str:
    """``sqlite`` or ``postgresql`` for the bound (or given) database."""
    db = db or database.obj
    if isinstance(db, peewee.DatabaseProxy):
        db = db.obj
    return "postgresql" if isinstance(db, peewee.PostgresqlDatabase) else "sqlite"


def table_names(db=None) -> list[str]:
    """Tables in the database (on PostgreSQL, in the current schema of ``search_path``)."""
    db = db or database.obj
    if isinstance(db, peewee.PostgresqlDatabase):
        rows = db.execute_sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")
        return [r[0] for r in rows.fetchall()]
    return db.get_tables()
