"""Finding and listing invoices, and what the CLI and the API show of them."""

from __future__ import annotations

from core.errors import NotFound
from core.models import Customer, Invoice, InvoiceLine
from core.money import Money
from core.validate import as_id


def find(number_or_id) -> Invoice:
    """An invoice by its number (``INV-2026-000123``) or its id."""
    text = str(number_or_id).strip()
    invoice = None
    if as_id(text) is not None:
        invoice = Invoice.get_or_none(Invoice.id == as_id(text))
    else:
        series, _, number = text.rpartition("-")
        if series and as_id(number) is not None:
            invoice = Invoice.get_or_none(Invoice.series == series, Invoice.number == as_id(number))
    if invoice is None:
        raise NotFound(f"no invoice {text!r}")
    return invoice


def listing(customer: Customer | None = None, status: str | None = None, limit: int = 100) -> list[Invoice]:
    """Invoices, newest first, optionally one customer's or of one status."""
    q = Invoice.select().order_by(Invoice.id.desc()).limit(limit)
    if customer is not None:
        q = q.where(Invoice.customer == customer.id)
    if status:
        q = q.where(Invoice.status == status)
    return list(q)


def as_dict(invoice: Invoice, lines: bool = False) -> dict:
    """An invoice as JSON; with ``lines``, its lines and taxes too."""
    def m(minor):
        return Money(minor, invoice.currency).to_dict()
    data = {
        "id": invoice.id, "number": invoice.display_number, "customer_id": invoice.customer_id,
        "status": invoice.status, "currency": invoice.currency, "subtotal": m(invoice.subtotal_minor),
        "tax": m(invoice.tax_minor), "total": m(invoice.total_minor), "settled": m(invoice.settled_minor),
        "due": m(max(invoice.total_minor - invoice.settled_minor, 0) if invoice.status == "issued" else 0),
        "issue_date": invoice.issue_date.isoformat() if invoice.issue_date else None,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "period_start": invoice.period_start.isoformat() if invoice.period_start else None,
        "period_end": invoice.period_end.isoformat() if invoice.period_end else None,
        "tax_inclusive": invoice.tax_inclusive,
    }
    if lines:
        data["lines"] = [{
            "position": line.position, "kind": line.kind, "description": line.description,
            "service_id": line.service_id, "quantity": str(line.quantity), "unit_price": m(line.unit_price_minor),
            "amount": m(line.amount_minor), "tax_category": line.tax_category,
            "period_start": line.period_start.isoformat() if line.period_start else None,
            "period_end": line.period_end.isoformat() if line.period_end else None,
        } for line in invoice.lines.order_by(InvoiceLine.position)]
        data["taxes"] = [{"name": t.name, "rate": str(t.rate), "compound": t.compound,
                          "taxable": m(t.taxable_minor), "tax": m(t.tax_minor)} for t in invoice.taxes]
    return data

