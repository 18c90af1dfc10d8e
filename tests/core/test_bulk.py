"""The billing run's bulk writes: the same rows on SQLite (executemany) and PostgreSQL (COPY)."""

from __future__ import annotations

import datetime as dt

import pytest

from core import bulk
from core.db import database
from core.models import Customer, Event

AWKWARD = ["tab\there", "line\nbreak", "back\\slash \\N \\.", "quote ' and \"", "Zoë Ndung'u ✓", "", None]


def test_insert_and_update_round_trip_awkward_values(db):
    now = dt.datetime(2026, 3, 1, 12, 30, 15, 250000)
    with database.atomic():
        bulk.insert_rows(database, "event", ("name", "payload", "created_at", "attempts", "last_error"),
                         [("test.bulk", f'{{"i":{i}}}', now, i, text) for i, text in enumerate(AWKWARD)])
    rows = list(Event.select().where(Event.name == "test.bulk").order_by(Event.id))
    assert [r.last_error for r in rows] == AWKWARD
    assert [r.payload for r in rows] == [{"i": i} for i in range(len(AWKWARD))]
    assert all(r.created_at == now for r in rows)

    customers = [Customer.create(account_number=f"B{i}", name=f"Bulk {i}", currency="KES") for i in range(3)]
    with database.atomic():
        bulk.update_rows(database, "customer", "id", (("name", "VARCHAR(200)"), ("tax_exempt", "BOOLEAN")),
                         [(f"Renamed\t{c.id}", True, c.id) for c in customers[:2]])
        # a second shape in the same transaction gets a table of its own
        bulk.update_rows(database, "customer", "id", (("terms_days", "INTEGER"),), [(30, customers[2].id)])
    got = [(c.name, c.tax_exempt, c.terms_days) for c in Customer.select().order_by(Customer.id)]
    assert got == [(f"Renamed\t{customers[0].id}", True, 14), (f"Renamed\t{customers[1].id}", True, 14),
                   ("Bulk 2", False, 30)]


def test_updates_outside_a_transaction_are_refused(db):
    c = Customer.create(account_number="B9", name="Alone", currency="KES")
    with pytest.raises(RuntimeError, match="inside a transaction"):
        bulk.update_rows(database, "customer", "id", (("name", "VARCHAR(200)"),), [("Changed", c.id)])
    assert Customer.get_by_id(c.id).name == "Alone"


def test_dates_come_back_as_dates(db):
    assert bulk.to_date("2026-03-01") == dt.date(2026, 3, 1)
    assert bulk.to_date(dt.datetime(2026, 3, 1, 23, 59)) == dt.date(2026, 3, 1)
    assert bulk.to_date(None) is None
