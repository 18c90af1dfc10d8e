"""Matching money to invoices: account credit pays the oldest open invoice first.

Account credit is what a customer has paid or been credited and that no invoice has
used yet: the ``unallocated_minor`` of their payments and credit notes. :func:`apply_credit`
spends it on their open invoices, oldest due date first, and records each match as an
:class:`~core.models.Allocation`. Allocations move no money, so they make no ledger entry;
the payment or credit note already did.
"""

from __future__ import annotations

from core import events
from core.bulk import is_sqlite
from core.db import database
from core.models import Allocation, CreditNote, Customer, Invoice, Payment

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
    allocation = Allocation.create(payment=payment_id, credit_note=credit_note_id, invoice=invoice.id,
                                   amount_minor=amount_minor, currency=invoice.currency)
    invoice.settled_minor += amount_minor
    fields = {Invoice.settled_minor: Invoice.settled_minor + amount_minor}
    if invoice.settled_minor >= invoice.total_minor:
        invoice.status = closing_status
        fields[Invoice.status] = closing_status
    Invoice.update(fields).where(Invoice.id == invoice.id).execute()
    if invoice.status == "paid":
        events.emit("invoice.paid", {"invoice_id": invoice.id, "customer_id": invoice.customer_id})
    return allocation


def apply_credit(customer_id: int) -> list[Allocation]:
    """Spend the customer's unallocated payments and credit notes on their open invoices."""
    if not database.in_transaction():
        raise RuntimeError("allocation.apply_credit must run inside a transaction")
    sources = [("credit_note", c.id, c.unallocated_minor, c.issued_at, c.currency) for c in
               CreditNote.select().where(CreditNote.customer == customer_id, CreditNote.unallocated_minor > 0)]
    sources += [("payment", p.id, p.unallocated_minor, p.received_at, p.currency) for p in
                Payment.select().where(Payment.customer == customer_id, Payment.unallocated_minor > 0,
                                       Payment.status.in_(("succeeded", "partially_refunded")))]
    if not sources:
        return []
    sources.sort(key=lambda s: (s[3], s[0], s[1]))
    made = []
    invoices = open_invoices(customer_id)
    for kind, source_id, available, _at, currency in sources:
        used = 0
        for invoice in invoices:
            due = invoice.total_minor - invoice.settled_minor
            if due <= 0 or available - used <= 0:
                continue
            if invoice.currency != currency:
                continue
            amount = min(due, available - used)
            made.append(settle(invoice, amount, **{f"{kind}_id": source_id}))
            used += amount
        if used:
            model = CreditNote if kind == "credit_note" else Payment
            model.update(unallocated_minor=model.unallocated_minor - used).where(model.id == source_id).execute()
    return made

