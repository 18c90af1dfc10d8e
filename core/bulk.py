"""Plain ``executemany`` writes for the billing run, the same on SQLite and PostgreSQL.

The run writes hundreds of thousands of rows; building a model object per row would
cost more than the database does. Dates go in as ``date`` objects: PostgreSQL's driver
sends them as dates, and on SQLite the adapters registered in :mod:`core.db` store them
as the ISO text peewee reads back.
"""

from __future__ import annotations

import datetime as dt
import zlib
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


@lru_cache(maxsize=256)
def _insert_one_sql(param: str, table: str, columns: tuple[str, ...]) -> str:
    cols = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({cols}) VALUES ({", ".join([param] * len(columns))}) RETURNING "id"'


@lru_cache(maxsize=64)
def _insert_new_sql(param: str, table: str, columns: tuple[str, ...], key: tuple[str, ...]) -> str:
    plain = _insert_one_sql(param, table, columns)
    head, _, returning = plain.rpartition(" RETURNING ")
    return f'{head} ON CONFLICT ({", ".join(key)}) DO NOTHING RETURNING {returning}'


def insert_one(db, table: str, row: dict, unless: tuple[str, ...] = ()) -> int | None:
    """Insert one row (column -> value; JSON already as text) and return its id.

    With ``unless`` (the columns of a unique key) a row whose key exists already is not
    inserted and ``None`` is returned, without an error that would end a PostgreSQL
    transaction. For the rows written on every payment and event: building the statement
    from a model costs more than the database does.
    """
    sql = _insert_new_sql(db.param, table, tuple(row), unless) if unless else \
        _insert_one_sql(db.param, table, tuple(row))
    found = db.execute_sql(sql, tuple(row.values())).fetchone()
    return None if found is None else int(found[0])


def insert_rows(db, table: str, columns: tuple[str, ...], rows: list) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table``.

    SQLite takes one ``executemany``; PostgreSQL takes ``COPY``, which streams the rows
    instead of sending a statement for each.
    """
    if not rows:
        return
    cols = ", ".join(f'"{c}"' for c in columns)
    if is_sqlite(db):
        placeholders = ", ".join([db.param] * len(columns))
        execute_many(db, f'INSERT INTO "{table}" ({cols}) VALUES ({placeholders})', rows)
        return
    with db.cursor().copy(f'COPY "{table}" ({cols}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def update_rows(db, table: str, key: str, columns: tuple[tuple[str, str], ...], rows: list,
                key_type: str = "BIGINT") -> None:
    """Set ``columns`` of ``table`` for each row, matched on ``key``; each row is ``(*values, key)``.

    ``columns`` pairs each column with its SQL type, and ``key_type`` is the key's (for
    PostgreSQL, which copies the rows into a temporary table and updates from it in one
    statement; SQLite runs one ``UPDATE`` per row).
    """
    if not rows:
        return
    if not db.in_transaction():
        raise RuntimeError("update_rows must run inside a transaction")
    p = db.param
    if is_sqlite(db):
        sets = ", ".join(f'"{c}" = {p}' for c, _type in columns)
        execute_many(db, f'UPDATE "{table}" SET {sets} WHERE "{key}" = {p}', rows)
        return
    names = ", ".join(f'"{c}"' for c, _type in columns)
    defs = ", ".join(f'"{c}" {t}' for c, t in columns)
    temp = f"bulk_{table}_{zlib.crc32(f'{key} {key_type}|{defs}'.encode()):08x}"  # one temporary table per shape
    cursor = db.cursor()
    cursor.execute(f'CREATE TEMPORARY TABLE IF NOT EXISTS "{temp}" ({defs}, "{key}" {key_type}) '
                   'ON COMMIT DELETE ROWS')
    with cursor.copy(f'COPY "{temp}" ({names}, "{key}") FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)
    sets = ", ".join(f'"{c}" = t."{c}"' for c, _type in columns)
    cursor.execute(f'UPDATE "{table}" SET {sets} FROM "{temp}" t WHERE "{table}"."{key}" = t."{key}"')
    cursor.execute(f'DELETE FROM "{temp}"')


def execute_many(db, sql: str, rows: list) -> None:
    """Run ``sql`` once per row of parameters, converting dates for the driver."""
    if not rows:
        return
    db.cursor().executemany(sql, rows)
