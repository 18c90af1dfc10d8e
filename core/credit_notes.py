"""Credit notes: the only way to correct an issued invoice.

A credit note reverses all or part of an invoice. It is numbered in its own gapless
series (``CN-2026-000001``), posts a negative ledger entry, and first settles what is
still unpaid on its invoice; what is left becomes account credit, which pays the
customer's other open invoices and is applied to new ones. Voiding an unpaid invoice is
a whole credit note that also marks the invoice ``void``.

Tax on a partial credit is worked out by the same tax plugin, on the credited amounts,
with the invoice's inclusive or exclusive convention; a whole credit reverses exactly
the tax still on the invoice.
"""

from __future__ import annotations

from dataclasses import dataclass

from peewee import fn

from core import allocation, audit, events, ledger, numbering, pricing, settings
from core.clock import today, utcnow
from core.db import database
from core.errors import NotFound, ValidationError
from core.hooktypes import DraftInvoice, DraftLine
from core.models import Allocation, CreditNote, CreditNoteLine, Customer, Invoice, InvoiceLine
from core.money import Money
from core.validate import as_id


@dataclass(frozen=True)
class Part:
    """Credit ``amount`` (``None``: everything left) of invoice line ``line_id``."""

    line_id: int
    amount: Money | None = None


def _credited_per_line(invoice_id: int) -> dict[int, int]:
    rows = (CreditNoteLine.select(CreditNoteLine.invoice_line, fn.SUM(CreditNoteLine.amount_minor))
            .join(CreditNote).where(CreditNote.invoice == invoice_id)
            .group_by(CreditNoteLine.invoice_line).tuples())
    return {line_id: int(total) for line_id, total in rows if line_id is not None}


def credited(invoice: Invoice) -> tuple[int, int]:
    """``(total, tax)`` already credited on ``invoice``, in minor units."""
    total, tax = (CreditNote.select(fn.COALESCE(fn.SUM(CreditNote.total_minor), 0),
                                    fn.COALESCE(fn.SUM(CreditNote.tax_minor), 0))
                  .where(CreditNote.invoice == invoice.id).tuples().get())
    return int(total), int(tax)


def _tax_for(invoice: Invoice, customer: Customer, parts: list[tuple[InvoiceLine, int]], pm=None) -> int:
    """The tax on credited amounts, as the tax plugin computes it for the customer's region."""
    if not invoice.tax_minor:
        return 0
    lines = tuple(DraftLine(line.kind, line.description, Money(amount, invoice.currency), line.tax_category)
                  for line, amount in parts)
    draft = DraftInvoice(customer.id, invoice.currency, today(), lines, customer.tax_region, customer.tax_exempt,
                         invoice.tax_inclusive)
    taxes = pricing.taxes(draft, pm) if customer.tax_region else None
    if taxes is None:
        # No plugin answers for the region any more: credit tax in proportion to the invoice's.
        base = invoice.total_minor if invoice.tax_inclusive else invoice.subtotal_minor
        amount = sum(a for _line, a in parts)
        return (invoice.tax_minor * amount * 2 + base) // (2 * base) if base else 0
    return sum(t.tax.minor for t in taxes)


def issue(invoice: Invoice, *, reason: str, parts: list[Part] | None = None, amount: Money | None = None,
          void: bool = False, refund_id: int | None = None, pm=None) -> CreditNote:
    """Credit ``parts`` of ``invoice`` (or a lump ``amount``, or everything left) and record it.

    ``amount`` is spread over the invoice's charge lines in proportion to what is left on
    each. With ``void=True`` the whole invoice is credited and marked void; that is refused
    once anything has been paid on it. With ``refund_id`` the credit is paid out by that
    refund: it settles nothing and leaves no account credit.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("a credit note needs a reason", "reason")
    if parts and amount is not None:
        raise ValidationError("give either lines or an amount, not both", "amount")
    if void and (parts or amount is not None):
        raise ValidationError("voiding credits the whole invoice; give no lines or amount with it", "void")
    if amount is not None and amount.currency != invoice.currency:
        raise ValidationError(f"the invoice is in {invoice.currency}, not {amount.currency}", "amount")
    with database.atomic():
        allocation.lock_customer(invoice.customer_id)
        invoice = Invoice.get_by_id(invoice.id)
        customer = Customer.get_by_id(invoice.customer_id)
        if invoice.status not in ("issued", "paid"):
            raise ValidationError(f"invoice {invoice.display_number or invoice.id} is {invoice.status}; "
                                  "only issued or paid invoices can be credited", "invoice")
        done_total, done_tax = credited(invoice)
        left_total = invoice.total_minor - done_total
        if left_total <= 0:
            raise ValidationError(f"invoice {invoice.display_number} is already credited in full", "invoice")
        lines = {line.id: line for line in invoice.lines}
        taken = _credited_per_line(invoice.id)
        room = {lid: max(line.amount_minor - taken.get(lid, 0), 0) for lid, line in lines.items()}
        whole = void or (not parts and amount is None)
        if void and Allocation.select().where(Allocation.invoice == invoice.id,
                                              Allocation.payment.is_null(False)).exists():
            raise ValidationError(f"invoice {invoice.display_number} has payments against it; "
                                  "credit it instead of voiding it", "invoice")
        if whole:
            chosen = []
        elif parts:
            chosen = []
            for part in parts:
                line = lines.get(part.line_id)
                if line is None:
                    raise ValidationError(f"line {part.line_id} is not on invoice {invoice.display_number}", "line")
                want = room[line.id] if part.amount is None else part.amount.minor
                if part.amount is not None and part.amount.currency != invoice.currency:
                    raise ValidationError(f"the invoice is in {invoice.currency}", "amount")
                if want <= 0 or want > room[line.id]:
                    raise ValidationError(
                        f"line {line.position} has {Money(room[line.id], invoice.currency)} left to credit, "
                        f"not {Money(want, invoice.currency)}", "amount")
                chosen.append((line, want))
                room[line.id] -= want
        else:
            chosen = _spread(amount, lines, room, invoice, customer, invoice.tax_minor - done_tax, pm)
        tax_left = invoice.tax_minor - done_tax
        if whole or sum(room.values()) == 0:
            tax = tax_left  # nothing is left on the lines: the last credit takes the last of the tax
        else:
            tax = min(_tax_for(invoice, customer, chosen, pm), tax_left)
            if amount is not None and not invoice.tax_inclusive:
                tax = min(max(amount.minor - sum(a for _l, a in chosen), 0), tax_left)
        net_lines = sum(a for _line, a in chosen)
        total = net_lines if invoice.tax_inclusive else net_lines + tax
        if whole:
            total = left_total
        if total <= 0:
            raise ValidationError("nothing to credit", "amount")
        if total > left_total:
            raise ValidationError(f"only {Money(left_total, invoice.currency)} of invoice "
                                  f"{invoice.display_number} is left to credit", "amount")
        prefix = settings.get_or("billing.credit_note_prefix", "CN", pm=pm)
        series = f"{prefix}-{today().year}"
        note = CreditNote.create(invoice=invoice.id, customer=customer.id, series=series,
                                 number=numbering.take(series), currency=invoice.currency,
                                 subtotal_minor=total - tax, tax_minor=tax, total_minor=total,
                                 unallocated_minor=total, reason=reason[:2000], issued_at=utcnow(),
                                 created_by=audit.current_actor()[:100])
        if whole:
            what = "Void" if void else "Credit"
            net_part = total if invoice.tax_inclusive else total - tax
            description = f"{what}: invoice {invoice.display_number}" + (
                " (the part not yet credited)" if done_total else "")
            if net_part > 0:
                CreditNoteLine.create(credit_note=note.id, description=description, amount_minor=net_part,
                                      tax_minor=tax)
            else:  # only tax is left: the line is the tax itself
                CreditNoteLine.create(credit_note=note.id, description=description + ", tax", amount_minor=tax,
                                      tax_minor=0)
        shares = Money(tax, invoice.currency).allocate([a for _l, a in chosen]) if chosen and tax else []
        for i, (line, part_amount) in enumerate(chosen):
            CreditNoteLine.create(credit_note=note.id, invoice_line=line.id, description=line.description,
                                  amount_minor=part_amount, tax_minor=shares[i].minor if shares else 0)
        number = f"{series}-{note.number:06d}"
        links = {"refund": refund_id} if refund_id else {}
        ledger.post(customer.id, "credit_note", Money(-total, invoice.currency),
                    f"Credit note {number} for {invoice.display_number}", credit_note=note.id,
                    invoice=invoice.id, **links)
        due = invoice.total_minor - invoice.settled_minor
        if refund_id:
            CreditNote.update(unallocated_minor=0).where(CreditNote.id == note.id).execute()
        elif invoice.status == "issued" and due > 0:
            used = min(due, total)
            allocation.settle(invoice, used, credit_note_id=note.id, closing_status="void" if void else "paid")
            CreditNote.update(unallocated_minor=total - used).where(CreditNote.id == note.id).execute()
        if void:
            Invoice.update(status="void").where(Invoice.id == invoice.id).execute()
        if not refund_id:
            allocation.apply_credit(customer.id)
        events.emit("credit_note.issued", {"credit_note_id": note.id, "invoice_id": invoice.id,
                                           "customer_id": customer.id, "number": number, "total_minor": total})
        audit.record("invoice.void" if void else "credit_note.issue", "credit_note", note.id, None,
                     audit.snapshot(CreditNote.get_by_id(note.id)))
    return CreditNote.get_by_id(note.id)


def _spread(amount: Money, lines: dict, room: dict, invoice: Invoice, customer: Customer, tax_left: int,
            pm=None) -> list:
    """Spread a lump credit over the lines with something left, in proportion to what is left on each.

    ``room`` (what is left per line) is reduced by what is taken. On a tax-exclusive
    invoice the lump includes tax: the net part is the lump in the proportion of what is
    left on the lines to that plus the tax still due on them.
    """
    if amount.minor <= 0:
        raise ValidationError("the amount to credit must be more than zero", "amount")
    open_lines = [(lines[lid], left) for lid, left in sorted(room.items()) if left > 0]
    if not open_lines:
        raise ValidationError("nothing is left to credit on this invoice", "amount")
    capacity = sum(left for _line, left in open_lines)
    net = amount.minor
    if not invoice.tax_inclusive and tax_left:
        tax_open = min(_tax_for(invoice, customer, open_lines, pm), tax_left)
        net = (amount.minor * capacity * 2 + capacity + tax_open) // (2 * (capacity + tax_open))
    if net > capacity:
        raise ValidationError(f"only {Money(capacity, invoice.currency)} is left to credit before tax", "amount")
    shares = Money(net, invoice.currency).allocate([left for _line, left in open_lines])
    chosen = [(line, share.minor) for (line, _left), share in zip(open_lines, shares) if share.minor > 0]
    for line, part in chosen:
        room[line.id] -= part
    return chosen


def find(number_or_id: str) -> CreditNote:
    """A credit note by its number (``CN-2026-000001``) or id."""
    text = str(number_or_id).strip()
    if as_id(text) is not None:
        note = CreditNote.get_or_none(CreditNote.id == as_id(text))
    else:
        series, _, number = text.rpartition("-")
        note = CreditNote.get_or_none(CreditNote.series == series, CreditNote.number == as_id(number)) \
            if as_id(number) is not None else None
    if note is None:
        raise NotFound(f"no credit note {text!r}")
    return note


def as_dict(note: CreditNote) -> dict:
    """A credit note as JSON for the CLI and the API."""
    def m(minor):
        return Money(minor, note.currency).to_dict()
    return {
        "id": note.id, "number": f"{note.series}-{note.number:06d}", "invoice_id": note.invoice_id,
        "customer_id": note.customer_id, "subtotal": m(note.subtotal_minor), "tax": m(note.tax_minor),
        "total": m(note.total_minor), "unallocated": m(note.unallocated_minor), "reason": note.reason,
        "issued_at": note.issued_at.isoformat(timespec="seconds"),
        "lines": [{"invoice_line_id": line.invoice_line_id, "description": line.description,
                   "amount": m(line.amount_minor), "tax": m(line.tax_minor)} for line in note.lines],
    }
