"""``/invoices``: listing, one invoice with its lines, its PDF, and credit notes against it."""

from __future__ import annotations

from flask import Response

from core import credit_notes, documents, invoices
from core.models import INVOICE_STATUSES, Customer, Invoice
from core.validate import INT64_MAX
from core.web.api import bp
from core.web.api.auth import api_call
from core.web.api.common import ID, answer, one, paged
from core.web.api.fields import Field, Fields, page_fields
from core.web.api.openapi import operation

LIST = page_fields(Field("customer_id", "integer", minimum=1, maximum=INT64_MAX, description="Only this customer's."),
                   Field("status", enum=INVOICE_STATUSES))
CREDIT = Fields(
    Field("reason", required=True, max_length=2000),
    Field("amount", "money", minimum=1, description="Spread over the lines; default everything left."),
    Field("void", "boolean", description="Credit the whole invoice and mark it void (only if nothing is paid)."),
)


@bp.route("/invoices", methods=["GET"])
@api_call("invoices:read")
@operation("Invoices, newest first", query=LIST, answer="InvoiceList")
def list_invoices():
    args = LIST.parse_query()
    query = Invoice.select().order_by(Invoice.id.desc())
    if "customer_id" in args:
        query = query.where(Invoice.customer == one(Customer, args["customer_id"], "customer").id)
    if args.get("status"):
        query = query.where(Invoice.status == args["status"])
    return answer(paged(query, args, invoices.as_dict))


@bp.route(f"/invoices/<{ID}:invoice_id>", methods=["GET"])
@api_call("invoices:read")
@operation("An invoice with its lines and taxes", answer="InvoiceDetail")
def get_invoice(invoice_id: int):
    return answer(invoices.as_dict(one(Invoice, invoice_id, "invoice"), lines=True))


@bp.route(f"/invoices/<{ID}:invoice_id>/pdf", methods=["GET"])
@api_call("invoices:read")
@operation("An invoice as a PDF file", media="application/pdf")
def invoice_pdf(invoice_id: int):
    invoice = one(Invoice, invoice_id, "invoice")
    response = Response(documents.invoice_pdf(invoice), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{documents.invoice_filename(invoice)}"'
    return response


@bp.route(f"/invoices/<{ID}:invoice_id>/credit-notes", methods=["POST"])
@api_call("invoices:write")
@operation("Issue a credit note against an invoice", body=CREDIT, answer="CreditNote", status=201)
def credit_invoice(invoice_id: int):
    data = CREDIT.parse_body()
    invoice = one(Invoice, invoice_id, "invoice")
    note = credit_notes.issue(invoice, reason=data["reason"], amount=data.get("amount"), void=bool(data.get("void")))
    return answer(credit_notes.as_dict(note), 201)
