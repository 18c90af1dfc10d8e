"""Plain ``executemany`` writes for the billing run, the same on SQLite and PostgreSQL.

The run writes hundreds of thousands of rows; building a model object per row would
cost more than the database does. Values go in as the driver expects them: dates as
ISO text on SQLite (as peewee stores them), as ``date`` objects on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

from core.db import backend_name


def is_sqlite(db) -> bool:
    """True for SQLite, False for PostgreSQL."""
    return backend_name(db) == "sqlite"


def to_date(value):
    """A date from what the driver returned (SQLite gives text)."""
    if value is None or type(value) is dt.date:
        return value
    if isinstance(value, dt.datetime):
        return value.date()
    return dt.date.fromisoformat(value[:10])


def converter(db):
    """A function turning dates and datetimes into what ``db``'s driver stores for them."""
    if not is_sqlite(db):
        return lambda v: v

    def convert(value):
        if isinstance(value, dt.datetime):
            return str(value)
        if isinstance(value, dt.date):
            return value.isoformat()
        return value
    return convert


def insert_rows(db, table: str, columns: tuple[str, ...], rows: list) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` with one ``executemany``."""
    if not rows:
        return
    placeholders = ", ".join([db.param] * len(columns))
    cols = ", ".join(f'"{c}"' for c in columns)
    execute_many(db, f'INSERT INTO "{table}" ({cols}) VALUES ({placeholders})', rows)


def execute_many(db, sql: str, rows: list) -> None:
    """Run ``sql`` once per row of parameters, converting dates for the driver."""
    if not rows:
        return
    convert = converter(db)
    if is_sqlite(db):
        rows = [tuple(convert(v) for v in row) for row in rows]
    cursor = db.cursor()
    cursor.executemany(sql, rows)
