"""Gapless numbering per series (invoices, credit notes, customer accounts).

A number is taken by incrementing the series row inside the caller's transaction: the
row stays locked until commit, so concurrent callers queue, and a rollback returns the
number. Call it only inside ``database.atomic()``.
"""

from __future__ import annotations

from core.db import database


def take(series: str, db=None) -> int:
    """Reserve and return the next number of ``series`` (starting at 1)."""
    db = db or database
    if not db.in_transaction():
        raise RuntimeError("numbering.take must run inside a transaction")
    # One statement that writes: it creates the series at 1 or takes the next number, and
    # holds the row (SQLite: the write lock) until the caller commits.
    cursor = db.execute_sql(
        f"INSERT INTO number_series (name, next_number) VALUES ({db.param}, 2) ON CONFLICT (name) "
        "DO UPDATE SET next_number = number_series.next_number + 1 RETURNING next_number - 1",
        (series,),
    )
    return int(cursor.fetchone()[0])


def take_block(series: str, count: int, db=None) -> int:
    """Reserve ``count`` consecutive numbers of ``series``; return the first.

    The block is gapless like single numbers: it is taken in the caller's transaction and
    returned by a rollback.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    db = db or database
    if not db.in_transaction():
        raise RuntimeError("numbering.take_block must run inside a transaction")
    db.execute_sql(
        f"INSERT INTO number_series (name, next_number) VALUES ({db.param}, 1) ON CONFLICT DO NOTHING",
        (series,),
    )
    cursor = db.execute_sql(
        f"UPDATE number_series SET next_number = next_number + {db.param} WHERE name = {db.param} "
        f"RETURNING next_number - {db.param}",
        (count, series, count),
    )
    return int(cursor.fetchone()[0])
