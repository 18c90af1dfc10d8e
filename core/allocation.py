"""Matching money to invoices: account credit pays the oldest open invoice first.

Account credit is what a customer has paid or been credited and that no invoice has
used yet: the ``unallocated_minor`` of their payments and credit notes. :func:`apply_credit`
spends it on their open invoices, oldest due date first, and records each match as an
:class:`~core.models.Allocation`. Allocations move no money, so they make no ledger entry;
the payment or credit note already did.
"""

from __future__ import annotations

import json

from core import events
from core.bulk import execute_many, insert_one, insert_rows, is_sqlite
from core.clock import utcnow
from core.db import database
from core.models import Allocation, Customer, Invoice

OPEN_STATUSES = ("issued",)


def open_invoices(customer_id: int) -> list[Invoice]:
    """The customer's issued invoices with something left to pay, oldest due date first."""
    return list(Invoice.select()
                .where(Invoice.customer == customer_id, Invoice.status.in_(OPEN_STATUSES),
                       Invoice.settled_minor < Invoice.total_minor)
                .order_by(Invoice.due_date, Invoice.id))


def lock_customer(customer_id: int) -> None:
    """Serialize money changes for one customer (a row lock on PostgreSQL; SQLite writes one at a time)."""
    if is_sqlite(database.obj):
        return  # the write transaction already excludes every other writer
    list(Customer.select(Customer.id).where(Customer.id == customer_id).for_update())


def settle(invoice: Invoice, amount_minor: int, *, payment_id=None, credit_note_id=None,
           closing_status: str = "paid") -> Allocation:
    """Apply ``amount_minor`` of one source to ``invoice``; when nothing is left it becomes ``closing_status``.

    ``paid`` (the default) emits ``invoice.paid``; a void closes the invoice without it.
    """
    db = database.obj
    row = {"payment_id": payment_id, "credit_note_id": credit_note_id, "invoice_id": invoice.id,
           "amount_minor": amount_minor, "currency": invoice.currency, "created_at": utcnow()}
    allocation = Allocation(id=insert_one(db, "allocation", row), **row)
    invoice.settled_minor += amount_minor
    if invoice.settled_minor >= invoice.total_minor:
        invoice.status = closing_status
    db.execute_sql(f"UPDATE invoice SET settled_minor = settled_minor + {db.param}, status = {db.param} "
                   f"WHERE id = {db.param}", (amount_minor, invoice.status, invoice.id))
    if invoice.status == "paid":
        events.emit("invoice.paid", {"invoice_id": invoice.id, "customer_id": invoice.customer_id})
    return allocation


def apply_credit(customer_id: int) -> int:
    """Spend one customer's unallocated payments and credit notes on their open invoices."""
    return apply_credit_many([customer_id])


def apply_credit_many(customer_ids) -> int:
    """Spend account credit on open invoices for each of ``customer_ids``; return the allocations made.

    Oldest credit first (by when it was received or issued), oldest due date first; only
    in matching currencies. One query per table per 500 customers, one write per table:
    the billing run calls this for every customer with credit in a chunk.
    """
    if not database.in_transaction():
        raise RuntimeError("allocation.apply_credit must run inside a transaction")
    ids = sorted(set(customer_ids))
    made = 0
    for i in range(0, len(ids), 500):
        made += _apply(ids[i:i + 500])
    return made


def _apply(ids: list[int]) -> int:
    db = database
    marks = ", ".join([db.param] * len(ids))
    if not is_sqlite(db):
        # Hold the customers (in id order, as every locker does) while their credit is matched.
        db.execute_sql(f"SELECT id FROM customer WHERE id IN ({marks}) ORDER BY id FOR UPDATE", ids)
    sources: dict[int, list] = {}
    for row in db.execute_sql(
            f"SELECT customer_id, issued_at, 'credit_note', id, unallocated_minor, currency FROM credit_note "
            f"WHERE customer_id IN ({marks}) AND unallocated_minor > 0 "
            f"UNION ALL SELECT customer_id, received_at, 'payment', id, unallocated_minor, currency FROM payment "
            f"WHERE customer_id IN ({marks}) AND unallocated_minor > 0 "
            f"AND status IN ('succeeded', 'partially_refunded')", ids + ids):
        sources.setdefault(row[0], []).append(list(row[1:]))
    if not sources:
        return 0
    wanted = sorted(sources)
    marks = ", ".join([db.param] * len(wanted))
    invoices: dict[int, list] = {}
    settled_before = {}
    for row in db.execute_sql(
            f"SELECT customer_id, id, currency, total_minor, settled_minor FROM invoice "
            f"WHERE customer_id IN ({marks}) AND status = 'issued' AND settled_minor < total_minor "
            f"ORDER BY due_date, id", wanted):
        invoices.setdefault(row[0], []).append(list(row[1:]))
        settled_before[row[1]] = row[4]
    now = utcnow()
    allocations, invoice_rows, note_rows, payment_rows, events = [], [], [], [], []
    for cid, own in sources.items():
        own.sort(key=lambda s: (str(s[0]), s[1], s[2]))
        open_invoices = invoices.get(cid, [])
        touched = {}
        for _at, kind, source_id, available, currency in own:
            left = available
            for inv in open_invoices:
                inv_id, inv_currency, total, settled = inv
                if left <= 0:
                    break
                if inv_currency != currency or settled >= total:
                    continue
                amount = min(total - settled, left)
                inv[3] = settled + amount
                left -= amount
                touched[inv_id] = inv
                allocations.append((source_id if kind == "payment" else None,
                                    source_id if kind == "credit_note" else None, inv_id, amount, currency, now))
            if left != available:
                (note_rows if kind == "credit_note" else payment_rows).append((available - left, source_id))
        for inv_id, (_id, _cur, total, settled) in touched.items():
            status = "paid" if settled >= total else "issued"
            invoice_rows.append((settled - settled_before[inv_id], status, inv_id))
            if status == "paid":
                events.append(("invoice.paid", json.dumps({"customer_id": cid, "invoice_id": inv_id},
                                                          sort_keys=True, separators=(",", ":")), now, 0))
    p = db.param
    insert_rows(db, "allocation", ("payment_id", "credit_note_id", "invoice_id", "amount_minor", "currency",
                                   "created_at"), allocations)
    # Relative updates: should anything have moved since the reads, the checks on these
    # columns refuse the transaction rather than let a stale value win.
    execute_many(db, f"UPDATE invoice SET settled_minor = settled_minor + {p}, status = {p} WHERE id = {p}",
                 invoice_rows)
    execute_many(db, f"UPDATE credit_note SET unallocated_minor = unallocated_minor - {p} WHERE id = {p}", note_rows)
    execute_many(db, f"UPDATE payment SET unallocated_minor = unallocated_minor - {p} WHERE id = {p}", payment_rows)
    insert_rows(db, "event", ("name", "payload", "created_at", "attempts"), events)
    return len(allocations)
