"""Payment receipts: what a payer takes home, as a printable page and as a PDF.

A receipt shows the operator, the customer, the receipt number, how and when the money
came, its reference, and what it paid; refunds made since are listed under it.
"""

from __future__ import annotations

from core import documents
from core.models import Payment
from core.money import Money

METHOD_NAMES = {"cash": "Cash", "bank_transfer": "Bank transfer", "cheque": "Cheque",
                "mobile_money": "Mobile money", "card": "Card", "mpesa": "M-Pesa", "other": "Other"}


def receipt_context(payment: Payment) -> dict:
    """Everything a receipt shows."""
    cur = payment.currency
    number = payment.receipt or f"payment {payment.id}"
    return {
        "kind": "receipt",
        "title": "Receipt",
        "number": number,
        "document_name": f"Receipt {number}",
        "stamp": "REFUNDED" if payment.status == "refunded" else None,
        "operator": documents._operator(),
        "customer": documents._customer(payment.customer),
        "issue_date": documents._date(payment.received_at),
        "method": METHOD_NAMES.get(payment.method or "", payment.method or payment.gateway),
        "reference": payment.reference,
        "amount": str(Money(payment.amount_minor, cur)),
        "unallocated": str(Money(payment.unallocated_minor, cur)) if payment.unallocated_minor else "",
        "note": payment.note or "",
        "lines": [{"invoice": a.invoice.display_number, "amount": str(Money(a.amount_minor, cur))}
                  for a in payment.allocations],
        "refunds": [{"date": documents._date(r.created_at), "reference": r.reference,
                     "amount": str(Money(r.amount_minor, cur))} for r in payment.refunds],
    }


def receipt_filename(payment: Payment) -> str:
    """``RCT-2026-000042.pdf``."""
    return documents._safe_filename(payment.receipt or f"payment-{payment.id}") + ".pdf"


def receipt_html(payment: Payment, pdf_url: str | None = None) -> str:
    """The receipt as a self-contained HTML page."""
    return documents._render("documents/receipt.html", receipt_context(payment), pdf_url)


def receipt_pdf(payment: Payment) -> bytes:
    """The receipt as a PDF; the same payment always gives the same bytes."""
    return documents._pdf(receipt_context(payment), payment.created_at, _draw)


def _draw(pdf, doc: dict) -> None:
    rows = [[line["invoice"], line["amount"]] for line in doc["lines"]]
    if rows:
        documents._label(pdf, "Applied to")
        documents._table(pdf, ["Invoice", "Amount"], rows, (70, 30))
    totals = [("Received", doc["amount"])]
    if doc["unallocated"]:
        totals.insert(0, ("Kept as account credit", doc["unallocated"]))
    documents._totals(pdf, totals)
    if doc["refunds"]:
        documents._label(pdf, "Refunded since")
        documents._table(pdf, ["Date", "Reference", "Amount"],
                         [[r["date"], r["reference"], r["amount"]] for r in doc["refunds"]], (25, 50, 25),
                         text_columns=2)
    if doc["note"]:
        documents._note(pdf, doc["note"])
