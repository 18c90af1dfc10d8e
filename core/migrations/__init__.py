"""Versioned schema migrations.

Each migration is a module ``NNNN_name.py`` in this package with a function
``up(migrator, db)``; ``migrator`` is a ``playhouse.migrate`` schema migrator for the
database. Applied versions are kept in the ``schema_migrations`` table. Every migration
runs in its own transaction under a lock, so two ``wispbill migrate`` started together
apply each step once, and re-running applies nothing.

Plugins that keep tables of their own name a package of migrations in the same form
through the ``register_migrations`` hook; those are applied after the core's, and
recorded per plugin in ``plugin_migrations``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass

import peewee
from playhouse.migrate import SchemaMigrator

from core.clock import utcnow
from core.db import table_names

HISTORY_TABLE = "schema_migrations"
_NAME = re.compile(r"^(\d{4})_(\w+)$")
_PG_LOCK_KEY = 7_426_913_001  # arbitrary, constant advisory-lock key for migrations


PLUGIN_TABLE = "plugin_migrations"


@dataclass(frozen=True)
class Migration:
    """One migration module: its version number, name and ``up`` function (``plugin`` empty for the core's)."""

    version: int
    name: str
    up: object
    plugin: str = ""

    @property
    def label(self) -> str:
        """How the migration is named in output: ``0004_dunning`` or ``radius:0001_tables``."""
        own = f"{self.version:04d}_{self.name}"
        return f"{self.plugin}:{own}" if self.plugin else own


def _scan(package, plugin: str = "") -> list[Migration]:
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        match = _NAME.match(info.name)
        if not match:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found.append(Migration(int(match.group(1)), match.group(2), module.up, plugin))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {package.__name__}: {versions}")
    return found


def available() -> list[Migration]:
    """All the core's migrations, in version order."""
    return _scan(importlib.import_module(__name__))


def plugin_available(pm=None) -> list[Migration]:
    """The migrations plugins declare through ``register_migrations``, by plugin then version."""
    from core.plugins import get_manager

    pm = pm or get_manager()
    found = []
    results, _errors = pm.call_all("register_migrations")
    for plugin, package in sorted(results, key=lambda pair: pair[0]):
        for name in package if isinstance(package, (list, tuple)) else [package]:
            found += _scan(importlib.import_module(name), plugin)
    return found


def latest_version() -> int:
    """The schema version this code expects."""
    migrations = available()
    return migrations[-1].version if migrations else 0


def _ensure_history(db: peewee.Database) -> None:
    db.execute_sql(
        f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} ("
        "version INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    db.execute_sql(
        f"CREATE TABLE IF NOT EXISTS {PLUGIN_TABLE} (plugin VARCHAR(100) NOT NULL, version INTEGER NOT NULL, "
        "name VARCHAR(200) NOT NULL, applied_at TIMESTAMP NOT NULL, PRIMARY KEY (plugin, version))"
    )


def _plugin_applied(db: peewee.Database) -> set[tuple[str, int]]:
    if PLUGIN_TABLE not in table_names(db):
        return set()
    return {(r[0], r[1]) for r in db.execute_sql(f"SELECT plugin, version FROM {PLUGIN_TABLE}").fetchall()}


def applied_versions(db: peewee.Database) -> set[int]:
    """Versions recorded as applied; empty when the history table does not exist yet."""
    if HISTORY_TABLE not in table_names(db):
        return set()
    return {row[0] for row in db.execute_sql(f"SELECT version FROM {HISTORY_TABLE}").fetchall()}


def current_version(db: peewee.Database) -> int:
    """The highest applied version, 0 for an empty database."""
    return max(applied_versions(db), default=0)


def pending(db: peewee.Database) -> list[Migration]:
    """Migrations not yet applied to ``db``."""
    done, done_plugins = applied_versions(db), _plugin_applied(db)
    return ([m for m in available() if m.version not in done]
            + [m for m in plugin_available() if (m.plugin, m.version) not in done_plugins])


def _transaction(db: peewee.Database):
    if isinstance(db, peewee.SqliteDatabase):
        return db.atomic(lock_type="IMMEDIATE")
    return db.atomic()


def migrate(db: peewee.Database) -> list[Migration]:
    """Apply every pending migration in order; return the ones this call applied."""
    is_pg = isinstance(db, peewee.PostgresqlDatabase)
    if is_pg:
        # A session lock around the whole run: even creating the history table races.
        db.execute_sql("SELECT pg_advisory_lock(%s)", (_PG_LOCK_KEY,))
    try:
        _ensure_history(db)
        applied = []
        for migration in available():
            with _transaction(db):
                already = db.execute_sql(
                    f"SELECT 1 FROM {HISTORY_TABLE} WHERE version = {db.param}", (migration.version,)
                ).fetchone()
                if already:
                    continue
                migration.up(SchemaMigrator.from_database(db), db)
                db.execute_sql(
                    f"INSERT INTO {HISTORY_TABLE} (version, name, applied_at) "
                    f"VALUES ({db.param}, {db.param}, {db.param})",
                    (migration.version, migration.name, utcnow()),
                )
            applied.append(migration)
        p = db.param
        for migration in plugin_available():
            with _transaction(db):
                already = db.execute_sql(f"SELECT 1 FROM {PLUGIN_TABLE} WHERE plugin = {p} AND version = {p}",
                                         (migration.plugin, migration.version)).fetchone()
                if already:
                    continue
                migration.up(SchemaMigrator.from_database(db), db)
                db.execute_sql(f"INSERT INTO {PLUGIN_TABLE} (plugin, version, name, applied_at) "
                               f"VALUES ({p}, {p}, {p}, {p})",
                               (migration.plugin, migration.version, migration.name, utcnow()))
            applied.append(migration)
        return applied
    finally:
        if is_pg:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (_PG_LOCK_KEY,))


def run_sql_file(db: peewee.Database, path) -> None:
    """Execute the statements of a SQL file (separated by ``;`` at line ends).

    PostgreSQL takes them all in one round trip (a query without parameters may hold
    several statements); SQLite runs them one by one.
    """
    text = path.read_text()
    statements = []
    for statement in re.split(r";\s*\n", text):
        statement = "\n".join(
            line for line in statement.splitlines() if not line.lstrip().startswith("--")
        ).strip()
        if statement:
            statements.append(statement)
    if isinstance(db, peewee.PostgresqlDatabase) and statements:
        db.execute_sql(";\n".join(statements))
        return
    for statement in statements:
        db.execute_sql(statement)
