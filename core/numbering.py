"""Gapless numbering per series (invoices, credit notes, customer accounts).

A number is taken by incrementing the series row inside the caller's transaction: the
row stays locked until commit, so concurrent callers queue, and a rollback returns the
number. Call it only inside ``database.atomic()``.
"""

from __future__ import annotations

from core.db import database
from core.models import NumberSeries


def take(series: str) -> int:
    """Reserve and return the next number of ``series`` (starting at 1)."""
    if not database.in_transaction():
        raise RuntimeError("numbering.take must run inside a transaction")
    NumberSeries.insert(name=series, next_number=1).on_conflict_ignore().execute()
    cursor = database.execute_sql(
        f"UPDATE number_series SET next_number = next_number + 1 WHERE name = {database.param} "
        "RETURNING next_number - 1",
        (series,),
    )
    return int(cursor.fetchone()[0])
