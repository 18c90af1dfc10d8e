"""Schema version 6: indexes for the console (payments by day, invoices by month, open invoices, customer search).

On PostgreSQL, customer search ("contains", in any case) is served by trigram indexes
from the ``pg_trgm`` extension, which ships with PostgreSQL and may be created by a
database owner. It is created in the ``public`` schema unless the database has it already,
and the indexes name its operator class with that schema, so they work whatever the
connection's ``search_path``.
"""

from pathlib import Path

import peewee

from core.db import backend_name
from core.migrations import run_sql_file

SEARCHED = ("name", "account_number", "email", "phone")


def _installed(db) -> str | None:
    row = db.execute_sql("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                         "WHERE e.extname = 'pg_trgm'").fetchone()
    return row[0] if row else None


def _trigram_schema(db) -> str:
    schema = _installed(db)
    if schema is not None:
        return schema
    try:
        with db.atomic():  # a savepoint: another migration creating it at the same moment is no failure
            db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    except peewee.IntegrityError:
        pass
    return _installed(db) or "public"


def up(migrator, db):
    """Apply the SQL for this database's dialect, then the trigram indexes on PostgreSQL."""
    backend = backend_name(db)
    run_sql_file(db, Path(__file__).with_name(f"0006_web_indexes.{backend}.sql"))
    if backend == "postgresql":
        schema = _trigram_schema(db)
        for column in SEARCHED:
            db.execute_sql(f'CREATE INDEX "customer_{column}_trgm" ON "customer" '
                           f'USING gin (lower("{column}") "{schema}".gin_trgm_ops)')
