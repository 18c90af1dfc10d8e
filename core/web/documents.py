"""Invoices and credit notes for staff, as printable HTML pages and as PDF files."""

from __future__ import annotations

from flask import Blueprint, Response, url_for

from core import documents, receipts
from core.errors import NotFound
from core.models import CreditNote, Invoice, Payment
from core.web.auth import login_required

bp = Blueprint("documents", __name__)


def _pdf_response(data: bytes, filename: str) -> Response:
    response = Response(data, mimetype="application/pdf")
    # The filename is ASCII letters, digits, dots, dashes and underscores only (see core.documents).
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


def _invoice(invoice_id: int) -> Invoice:
    invoice = Invoice.get_or_none(Invoice.id == invoice_id)
    if invoice is None:
        raise NotFound(f"There is no invoice {invoice_id}.")
    return invoice


def _credit_note(credit_note_id: int) -> CreditNote:
    note = CreditNote.get_or_none(CreditNote.id == credit_note_id)
    if note is None:
        raise NotFound(f"There is no credit note {credit_note_id}.")
    return note


@bp.route("/invoices/<int:invoice_id>")
@login_required
def invoice_page(invoice_id: int):
    """The invoice as a page, with a link to its PDF."""
    invoice = _invoice(invoice_id)
    return documents.invoice_html(invoice, pdf_url=url_for(".invoice_pdf", invoice_id=invoice_id))


@bp.route("/invoices/<int:invoice_id>.pdf")
@login_required
def invoice_pdf(invoice_id: int):
    """The invoice as a PDF, shown in the browser, named after its number."""
    invoice = _invoice(invoice_id)
    return _pdf_response(documents.invoice_pdf(invoice), documents.invoice_filename(invoice))


@bp.route("/credit-notes/<int:credit_note_id>")
@login_required
def credit_note_page(credit_note_id: int):
    """The credit note as a page, with a link to its PDF."""
    note = _credit_note(credit_note_id)
    return documents.credit_note_html(note, pdf_url=url_for(".credit_note_pdf", credit_note_id=credit_note_id))


@bp.route("/credit-notes/<int:credit_note_id>.pdf")
@login_required
def credit_note_pdf(credit_note_id: int):
    """The credit note as a PDF, shown in the browser, named after its number."""
    note = _credit_note(credit_note_id)
    return _pdf_response(documents.credit_note_pdf(note), documents.credit_note_filename(note))


def _payment(payment_id: int) -> Payment:
    payment = Payment.get_or_none(Payment.id == payment_id)
    if payment is None or payment.customer_id is None:
        raise NotFound(f"There is no payment {payment_id}.")
    return payment


@bp.route("/payments/<int:payment_id>/receipt")
@login_required
def receipt_page(payment_id: int):
    """A payment's receipt as a printable page, with a link to its PDF."""
    return receipts.receipt_html(_payment(payment_id), pdf_url=url_for(".receipt_pdf", payment_id=payment_id))


@bp.route("/payments/<int:payment_id>/receipt.pdf")
@login_required
def receipt_pdf(payment_id: int):
    """A payment's receipt as a PDF."""
    payment = _payment(payment_id)
    return _pdf_response(receipts.receipt_pdf(payment), receipts.receipt_filename(payment))
