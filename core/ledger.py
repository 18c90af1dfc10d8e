"""The customer ledger: every invoice, credit note, payment and refund as an entry.

An entry's amount is positive when the customer owes more (an invoice, a refund) and
negative when they owe less (a payment, a credit note). A customer's balance is the sum
of their entries: positive is money owed, negative is account credit. Entries are only
ever added, in the same transaction as the document they record.
"""

from __future__ import annotations

from peewee import fn

from core.bulk import insert_one
from core.clock import utcnow
from core.db import database
from core.models import Customer, LedgerEntry
from core.money import Money


def post(customer_id: int, kind: str, amount: Money, description: str, **links) -> LedgerEntry | None:
    """Add an entry (``links``: ``invoice``, ``payment``, ``credit_note`` or ``refund`` ids); nothing for zero."""
    if not database.in_transaction():
        raise RuntimeError("ledger.post must run inside the transaction of the document")
    if amount.minor == 0:
        return None
    row = {"customer_id": customer_id, "kind": kind, "amount_minor": amount.minor, "currency": amount.currency,
           "description": description[:300], "created_at": utcnow(), **{f"{k}_id": v for k, v in links.items()}}
    return LedgerEntry(id=insert_one(database.obj, "ledger_entry", row), **row)


def balance(customer: Customer) -> Money:
    """What the customer owes (negative: their account credit), in their currency."""
    total = (LedgerEntry.select(fn.COALESCE(fn.SUM(LedgerEntry.amount_minor), 0))
             .where(LedgerEntry.customer == customer.id, LedgerEntry.currency == customer.currency)
             .scalar())
    return Money(int(total), customer.currency)


def entries(customer: Customer) -> list[dict]:
    """The customer's entries, oldest first, with the running balance."""
    running = 0
    out = []
    query = LedgerEntry.select().where(LedgerEntry.customer == customer.id).order_by(LedgerEntry.id)
    for entry in query:
        running += entry.amount_minor
        out.append({
            "id": entry.id, "at": entry.created_at.isoformat(timespec="seconds"), "kind": entry.kind,
            "description": entry.description, "amount": Money(entry.amount_minor, entry.currency).to_dict(),
            "balance": Money(running, entry.currency).to_dict(),
            "invoice_id": entry.invoice_id, "payment_id": entry.payment_id,
            "credit_note_id": entry.credit_note_id, "refund_id": entry.refund_id,
        })
    return out
