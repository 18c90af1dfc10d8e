"""Invoices and credit notes as documents a customer receives: their content, as HTML and as PDF.

``invoice_context`` and ``credit_note_context`` gather everything a document shows, with
amounts already formatted; the HTML and PDF renderers draw that same content. Rendering
needs a bound database but no Flask app, so the command line can produce documents too.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from decimal import Decimal
from importlib import resources
from pathlib import Path

import jinja2
from flask import current_app, has_app_context, has_request_context
from fpdf import FPDF
from fpdf.fonts import FontFace
from markupsafe import Markup

from core import settings
from core.models import Allocation, CreditNote, CreditNoteLine, Invoice, InvoiceLine, InvoiceTax
from core.money import Money

STYLESHEET = Path(__file__).resolve().parent / "web" / "static" / "document.css"
STAMPS = {"draft": "DRAFT", "void": "VOID"}


# --- content ------------------------------------------------------------------------

def invoice_context(invoice: Invoice) -> dict:
    """Everything an invoice shows: parties, dates, lines, tax per rate, totals and the amount due.

    The amount due is the total less every allocation to the invoice, whether from a
    payment ("paid") or from a credit note ("credited"); a void invoice is due nothing.
    """
    cur = invoice.currency
    lines = InvoiceLine.select().where(InvoiceLine.invoice == invoice).order_by(InvoiceLine.position)
    taxes = InvoiceTax.select().where(InvoiceTax.invoice == invoice).order_by(InvoiceTax.id)
    allocations = Allocation.select().where(Allocation.invoice == invoice)
    notes = (CreditNote.select().where(CreditNote.invoice == invoice)
             .order_by(CreditNote.issued_at, CreditNote.id))
    total = Money(invoice.total_minor, cur)
    paid = Money.sum((Money(a.amount_minor, a.currency) for a in allocations if a.credit_note_id is None), cur)
    credited = Money.sum((Money(a.amount_minor, a.currency) for a in allocations if a.credit_note_id), cur)
    due = Money.zero(cur) if invoice.status == "void" else total - paid - credited
    number = invoice.display_number
    return {
        "kind": "invoice",
        "title": "Invoice",
        "number": number,
        "document_name": f"Invoice {number}" if number else "Draft invoice",
        "status": invoice.status,
        "stamp": STAMPS.get(invoice.status),
        "operator": _operator(),
        "customer": _customer(invoice.customer),
        "currency": cur,
        "issue_date": _date(invoice.issue_date),
        "due_date": _date(invoice.due_date),
        "period": _period(invoice.period_start, invoice.period_end),
        "lines": [{
            "description": line.description,
            "quantity": _decimal_text(line.quantity),
            "unit_price": str(Money(line.unit_price_minor, cur)),
            "amount": str(Money(line.amount_minor, cur)),
            "period": _period(line.period_start, line.period_end),
        } for line in lines],
        "taxes": [{
            "name": tax.name,
            "rate": _percent(tax.rate),
            "taxable": str(Money(tax.taxable_minor, cur)),
            "tax": str(Money(tax.tax_minor, cur)),
        } for tax in taxes],
        "subtotal": str(Money(invoice.subtotal_minor, cur)),
        "tax": str(Money(invoice.tax_minor, cur)),
        "total": str(total),
        "paid": str(paid),
        "credited": str(credited) if credited else "",
        "amount_due": str(due),
        "prices_include_tax": bool(invoice.tax_inclusive),
        "credit_notes": [{
            "number": credit_note_number(note),
            "date": _date(note.issued_at),
            "total": str(Money(note.total_minor, note.currency)),
            "reason": note.reason,
        } for note in notes],
    }


def credit_note_context(note: CreditNote) -> dict:
    """Everything a credit note shows: parties, the invoice it corrects, the reason, lines and totals."""
    cur = note.currency
    lines = CreditNoteLine.select().where(CreditNoteLine.credit_note == note).order_by(CreditNoteLine.id)
    number = credit_note_number(note)
    return {
        "kind": "credit_note",
        "title": "Credit note",
        "number": number,
        "document_name": f"Credit note {number}",
        "status": "issued",
        "stamp": None,
        "operator": _operator(),
        "customer": _customer(note.customer),
        "currency": cur,
        "issue_date": _date(note.issued_at),
        "invoice_number": note.invoice.display_number or "",
        "reason": note.reason,
        "lines": [{
            "description": line.description,
            "amount": str(Money(line.amount_minor, cur)),
            "tax": str(Money(line.tax_minor, cur)),
        } for line in lines],
        "subtotal": str(Money(note.subtotal_minor, cur)),
        "tax": str(Money(note.tax_minor, cur)),
        "total": str(Money(note.total_minor, cur)),
        "prices_include_tax": bool(note.invoice.tax_inclusive),
    }


def credit_note_number(note: CreditNote) -> str:
    """``CN-2026-000007``: the series and the number, as invoices print theirs."""
    return f"{note.series}-{note.number:06d}"


def invoice_filename(invoice: Invoice) -> str:
    """``INV-2026-000123.pdf``, or ``draft-invoice-42.pdf`` for a draft."""
    return _safe_filename(invoice.display_number or f"draft-invoice-{invoice.id}") + ".pdf"


def credit_note_filename(note: CreditNote) -> str:
    """``CN-2026-000007.pdf``."""
    return _safe_filename(credit_note_number(note)) + ".pdf"


def _operator() -> dict:
    return {
        "name": _setting("company.name"),
        "address_lines": _lines(_setting("company.address")),
        "tax_id": _setting("company.tax_id"),
    }


def _setting(key: str) -> str:
    value = settings.get_or(key, "")
    return "" if value is None else str(value)


def _customer(customer) -> dict:
    return {
        "name": customer.name,
        "account_number": customer.account_number,
        "address_lines": _lines(customer.address),
        "email": customer.email or "",
        "tax_exempt": bool(customer.tax_exempt),
        "tax_exemption_ref": (customer.tax_exemption_ref or "") if customer.tax_exempt else "",
    }


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _date(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.date()
    return value.isoformat()


def _period(start, end) -> str:
    if start and end:
        return f"{_date(start)} to {_date(end)}"
    return _date(start or end)


def _decimal_text(value: Decimal) -> str:
    """``Decimal('2.500000')`` as ``2.5``, never in exponent form."""
    return format(Decimal(value).normalize(), "f")


def _percent(rate: Decimal) -> str:
    """A rate stored as a fraction, as a percent: ``0.16`` is ``16%``, ``0.075`` is ``7.5%``."""
    return _decimal_text(Decimal(rate) * 100) + "%"


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "document"


# --- HTML ---------------------------------------------------------------------------

def invoice_html(invoice: Invoice, pdf_url: str | None = None) -> str:
    """The invoice as a self-contained HTML page; ``pdf_url`` adds a link to its PDF."""
    return _render("documents/invoice.html", invoice_context(invoice), pdf_url)


def credit_note_html(note: CreditNote, pdf_url: str | None = None) -> str:
    """The credit note as a self-contained HTML page; ``pdf_url`` adds a link to its PDF."""
    return _render("documents/credit_note.html", credit_note_context(note), pdf_url)


def _render(name: str, context: dict, pdf_url: str | None) -> str:
    if has_app_context():
        env = current_app.jinja_env
        if has_request_context():
            from core.web.security import allow_inline_style

            allow_inline_style(str(_stylesheet()))
    else:
        env = _standalone_env()
    return env.get_template(name).render(doc=context, pdf_url=pdf_url, stylesheet=_stylesheet())


@functools.cache
def _standalone_env() -> jinja2.Environment:
    """The same templates without a Flask app, for the command line."""
    folder = resources.files("templates")
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True)


@functools.cache
def _stylesheet() -> Markup:
    # Inlined rather than linked so that a saved or mailed page keeps its layout.
    return Markup(STYLESHEET.read_text(encoding="utf-8"))


# --- PDF ----------------------------------------------------------------------------

def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice as a PDF; the same invoice always gives the same bytes."""
    return _pdf(invoice_context(invoice), invoice.issued_at or invoice.created_at, _draw_invoice)


def credit_note_pdf(note: CreditNote) -> bytes:
    """The credit note as a PDF; the same credit note always gives the same bytes."""
    return _pdf(credit_note_context(note), note.issued_at, _draw_credit_note)


class _Page(FPDF):
    """A4 pages with the document's number and the page count at the foot."""

    def __init__(self, footer_text: str):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_text = footer_text
        self.set_margins(18, 18, 18)
        self.set_auto_page_break(True, margin=18)

    def footer(self):
        self.set_y(-13)
        self.set_font("helvetica", size=8)
        self.set_text_color(110)
        self.cell(0, 5, f"{self.footer_text} - page {self.page_no()} of {{nb}}", align="C")
        self.set_text_color(0)


def _pdf(doc: dict, created: dt.datetime, draw) -> bytes:
    doc = _pdf_safe(doc)
    pdf = _Page(doc["document_name"])
    # The file's dates and /ID derive from the creation date, so fixing it makes the output reproducible.
    pdf.set_creation_date(created.replace(tzinfo=dt.timezone.utc))
    pdf.set_title(doc["document_name"])
    pdf.set_author(doc["operator"]["name"])
    pdf.set_creator("wispbill")
    pdf.add_page()
    _draw_header(pdf, doc)
    draw(pdf, doc)
    return bytes(pdf.output())


def _draw_header(pdf: FPDF, doc: dict) -> None:
    """Operator on the left, the document's title and facts on the right, then the customer."""
    top = pdf.get_y()
    half = pdf.epw / 2
    operator = doc["operator"]
    pdf.set_font("helvetica", "B", 14)
    pdf.multi_cell(half, 7, operator["name"], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=9)
    for line in operator["address_lines"]:
        pdf.multi_cell(half, 4.5, line, new_x="LMARGIN", new_y="NEXT")
    if operator["tax_id"]:
        pdf.multi_cell(half, 4.5, f"Tax number: {operator['tax_id']}", new_x="LMARGIN", new_y="NEXT")
    left_bottom = pdf.get_y()

    right = pdf.l_margin + half
    pdf.set_xy(right, top)
    pdf.set_font("helvetica", "B", 18)
    pdf.cell(half, 8, doc["title"].upper(), align="R", new_x="LEFT", new_y="NEXT")
    if doc["stamp"]:
        pdf.set_text_color(180, 35, 24)
        pdf.cell(half, 8, doc["stamp"], align="R", new_x="LEFT", new_y="NEXT")
        pdf.set_text_color(0)
    pdf.set_font("helvetica", size=9)
    facts = _facts(doc)
    value_width = min(half - 25, max(40, *(pdf.get_string_width(value) + 3 for _, value in facts)))
    for label, value in facts:
        pdf.set_x(right)
        pdf.cell(half - value_width, 5, label, align="R")
        pdf.cell(value_width, 5, value, align="R", new_x="LEFT", new_y="NEXT")
    pdf.set_y(max(left_bottom, pdf.get_y()) + 8)

    customer = doc["customer"]
    _label(pdf, "Bill to")
    pdf.set_font("helvetica", "B", 10)
    pdf.multi_cell(pdf.epw, 5, customer["name"], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", size=9)
    details = [f"Account {customer['account_number']}", *customer["address_lines"]]
    if customer["email"]:
        details.append(customer["email"])
    if customer["tax_exempt"]:
        details.append(f"Tax exempt: {customer['tax_exemption_ref']}".rstrip(": "))
    for line in details:
        pdf.multi_cell(pdf.epw, 4.5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)


def _facts(doc: dict) -> list[tuple[str, str]]:
    facts = [("Number", doc["number"] or "-"), ("Issue date", doc["issue_date"] or "-")]
    if doc["kind"] == "invoice":
        facts.append(("Due date", doc["due_date"] or "-"))
        if doc["period"]:
            facts.append(("Period", doc["period"]))
    elif doc["kind"] == "receipt":
        facts += [("Method", doc["method"]), ("Reference", doc["reference"])]
    else:
        facts.append(("Invoice", doc["invoice_number"] or "-"))
    return facts


def _draw_invoice(pdf: FPDF, doc: dict) -> None:
    rows = [[line["description"] + (f"\n{line['period']}" if line["period"] else ""),
             line["quantity"], line["unit_price"], line["amount"]] for line in doc["lines"]]
    _table(pdf, ["Description", "Qty", "Unit price", "Amount"], rows, (50, 10, 20, 20))
    if doc["taxes"]:
        _label(pdf, "Tax breakdown")
        rows = [[t["name"], t["rate"], t["taxable"], t["tax"]] for t in doc["taxes"]]
        _table(pdf, ["Tax", "Rate", "Taxable", "Tax"], rows, (50, 10, 20, 20))
    totals = [("Subtotal", doc["subtotal"]), ("Tax", doc["tax"]), ("Total", doc["total"]), ("Paid", doc["paid"])]
    if doc["credited"]:
        totals.append(("Credited", doc["credited"]))
    _totals(pdf, [*totals, ("Amount due", doc["amount_due"])])
    if doc["prices_include_tax"]:
        _note(pdf, "Prices include tax.")
    if doc["credit_notes"]:
        _label(pdf, "Credit notes")
        rows = [[n["number"], n["date"], n["reason"], n["total"]] for n in doc["credit_notes"]]
        _table(pdf, ["Number", "Date", "Reason", "Total"], rows, (20, 15, 45, 20), text_columns=3)


def _draw_credit_note(pdf: FPDF, doc: dict) -> None:
    _label(pdf, "Reason")
    pdf.set_font("helvetica", size=9)
    pdf.multi_cell(pdf.epw, 4.5, doc["reason"], new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    rows = [[line["description"], line["amount"], line["tax"]] for line in doc["lines"]]
    _table(pdf, ["Description", "Amount", "Tax"], rows, (60, 20, 20))
    _totals(pdf, [("Subtotal", doc["subtotal"]), ("Tax", doc["tax"]), ("Total credited", doc["total"])])
    if doc["prices_include_tax"]:
        _note(pdf, "Prices include tax.")


def _label(pdf: FPDF, text: str) -> None:
    pdf.set_font("helvetica", "B", 8)
    pdf.set_text_color(90)
    pdf.cell(0, 5, text.upper(), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)


def _note(pdf: FPDF, text: str) -> None:
    pdf.set_font("helvetica", "I", 9)
    pdf.cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")


def _table(pdf: FPDF, headings: list[str], rows: list[list[str]], widths: tuple, text_columns: int = 1) -> None:
    """A table whose first ``text_columns`` columns are text and the others right-aligned amounts."""
    pdf.set_font("helvetica", size=9)
    align = ("LEFT",) * text_columns + ("RIGHT",) * (len(headings) - text_columns)
    with pdf.table(col_widths=widths, text_align=align, borders_layout="HORIZONTAL_LINES",
                   line_height=5, padding=(1.2, 1.5), headings_style=FontFace(emphasis="BOLD")) as table:
        for row in [headings, *rows]:
            cells = table.row()
            for text in row:
                cells.cell(text)
    pdf.ln(4)


def _totals(pdf: FPDF, rows: list[tuple[str, str]]) -> None:
    """The totals, right-aligned under the tables, the last row in bold."""
    pdf.set_font("helvetica", size=10)
    with pdf.table(width=90, align="RIGHT", col_widths=(45, 45), text_align=("LEFT", "RIGHT"),
                   borders_layout="NONE", first_row_as_headings=False, line_height=6) as table:
        for i, (label, value) in enumerate(rows):
            style = FontFace(emphasis="BOLD") if i == len(rows) - 1 else None
            cells = table.row(style=style)
            cells.cell(label)
            cells.cell(value)
    pdf.ln(4)


# The PDF uses the built-in Helvetica, which can only draw Latin-1. Text is folded to it
# rather than embedding a font file, so a document can always be produced: typographic
# punctuation and letters with accents Latin-1 lacks become their plain forms, and
# anything else (Chinese, Arabic, emoji) becomes '?'. The HTML shows every character.
_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": ",", "\u201b": "'", "\u2032": "'", "\u02bc": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2026": "...", "\u2022": "*", "\u20ac": "EUR", "\u2122": "TM",
    "\u0141": "L", "\u0142": "l", "\u0110": "D", "\u0111": "d", "\u0131": "i", "\u0152": "OE", "\u0153": "oe",
    "\u014a": "NG", "\u014b": "ng", "\u0190": "E", "\u025b": "e", "\u0186": "O", "\u0254": "o",
    "\u0181": "B", "\u0253": "b", "\u018a": "D", "\u0257": "d", "\u0198": "K", "\u0199": "k",
})


def _latin1(char: str) -> bool:
    return " " <= char <= "~" or "\xa0" <= char <= "\xff"


def pdf_text(text: str) -> str:
    """``text`` as the PDF's built-in font can draw it: Latin-1, the rest folded or ``'?'``."""
    out = []
    for char in unicodedata.normalize("NFC", text).translate(_FOLD):
        if _latin1(char):
            out.append(char)
        elif char in "\t\n\r\x0b\x0c\u2028\u2029" or unicodedata.category(char) == "Zs":
            out.append(" ")
        elif unicodedata.category(char) in ("Cc", "Cf", "Mn", "Me"):
            continue  # controls, zero-width marks and stray accents draw nothing
        else:
            plain = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            out.append(plain if plain and all(_latin1(c) for c in plain) else "?")
    return "".join(out)


def _pdf_safe(value):
    """``value`` with every string passed through :func:`pdf_text`, keeping newlines in table cells."""
    if isinstance(value, str):
        return "\n".join(pdf_text(part) for part in value.split("\n"))
    if isinstance(value, dict):
        return {k: _pdf_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pdf_safe(v) for v in value]
    return value
