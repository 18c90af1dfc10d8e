"""Plain ``executemany`` writes for the billing run, the same on SQLite and PostgreSQL.

The run writes hundreds of thousands of rows; building a model object per row would
cost more than the database does. Dates go in as ``date`` objects: PostgreSQL's driver
sends them as dates, and on SQLite the adapters registered in :mod:`core.db` store them
as the ISO text peewee reads back.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

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
    return _parse_date(value)


@lru_cache(maxsize=1 << 14)  # a run reads the same few dates on every row
def _parse_date(text: str) -> dt.date:
    return dt.date.fromisoformat(text[:10])


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
    db.cursor().executemany(sql, rows)
