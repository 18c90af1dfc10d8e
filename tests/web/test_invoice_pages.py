"""Invoice and credit-note pages and PDFs in the console: staff only, 404 for unknown ids."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from pypdf import PdfReader

from core import documents
from core.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine, InvoiceTax
from tests.factories import make_customer


def make_documents(name="Zoë Ndung'u"):
    """INV-2026-000123 (KES 1,160.00 with VAT) and the credit note CN-2026-000007 against it."""
    customer = make_customer(name=name)
    invoice = Invoice.create(customer=customer, currency="KES", status="issued", series="INV-2026", number=123,
                             subtotal_minor=100_000, tax_minor=16_000, total_minor=116_000,
                             issue_date=dt.date(2026, 2, 1), due_date=dt.date(2026, 2, 15),
                             issued_at=dt.datetime(2026, 2, 1, 8, 30))
    InvoiceLine.create(invoice=invoice, position=1, kind="recurring", description="Home 10 Mbps",
                       quantity=Decimal(1), unit_price_minor=100_000, amount_minor=100_000)
    InvoiceTax.create(invoice=invoice, name="VAT", rate=Decimal("0.16"), taxable_minor=100_000, tax_minor=16_000)
    note = CreditNote.create(invoice=invoice, customer=customer, series="CN-2026", number=7, currency="KES",
                             subtotal_minor=10_000, tax_minor=1_600, total_minor=11_600, reason="Outage",
                             created_by="user:admin", issued_at=dt.datetime(2026, 2, 10, 9, 0))
    CreditNoteLine.create(credit_note=note, description="Home 10 Mbps, 3 days", amount_minor=10_000, tax_minor=1_600)
    return invoice, note


def urls(invoice, note):
    return [f"/invoices/{invoice.id}", f"/invoices/{invoice.id}.pdf",
            f"/credit-notes/{note.id}", f"/credit-notes/{note.id}.pdf"]


def test_anonymous_visitors_are_sent_to_sign_in(client):
    invoice, note = make_documents()
    for url in urls(invoice, note):
        response = client.get(url)
        assert response.status_code == 302, url
        location = urlsplit(response.headers["Location"])
        assert (location.path, parse_qs(location.query)["next"]) == ("/auth/login", [url])


def test_staff_see_the_invoice_page(logged_in):
    invoice, _ = make_documents()
    response = logged_in.get(f"/invoices/{invoice.id}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for text in ("INV-2026-000123", "Zoë Ndung&#39;u", "Home 10 Mbps",
                 '<td>VAT</td><td class="num">16%</td><td class="num">KES 1,000.00</td><td class="num">KES 160.00</td>',
                 '<tr class="due"><th>Amount due</th><td class="num">KES 1,160.00</td></tr>', "CN-2026-000007",
                 f'<a href="/invoices/{invoice.id}.pdf">Download PDF</a>'):
        assert text in page


def test_staff_get_the_invoice_pdf_inline(logged_in):
    invoice, _ = make_documents()
    response = logged_in.get(f"/invoices/{invoice.id}.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'inline; filename="INV-2026-000123.pdf"'
    text = PdfReader(io.BytesIO(response.data)).pages[0].extract_text()
    assert "INV-2026-000123" in text and "Zoë Ndung'u" in text and "Amount due KES 1,160.00" in text


def test_staff_see_the_credit_note_page_and_pdf(logged_in):
    invoice, note = make_documents()
    page = logged_in.get(f"/credit-notes/{note.id}").get_data(as_text=True)
    assert "CN-2026-000007" in page and "INV-2026-000123" in page and "KES 116.00" in page
    assert f'<a href="/credit-notes/{note.id}.pdf">Download PDF</a>' in page
    response = logged_in.get(f"/credit-notes/{note.id}.pdf")
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'inline; filename="CN-2026-000007.pdf"'
    assert "Total credited KES 116.00" in PdfReader(io.BytesIO(response.data)).pages[0].extract_text()


@pytest.mark.parametrize("url", ["/invoices/999999", "/invoices/999999.pdf",
                                 "/credit-notes/999999", "/credit-notes/999999.pdf"])
def test_unknown_ids_are_404(logged_in, url):
    response = logged_in.get(url)
    assert response.status_code == 404
    assert "Not found" in response.get_data(as_text=True)


def test_customer_names_are_escaped_on_the_page(logged_in):
    invoice, note = make_documents(name="<script>alert(1)</script>")
    for url in (f"/invoices/{invoice.id}", f"/credit-notes/{note.id}"):
        page = logged_in.get(url).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_app_renders_the_same_document_as_the_command_line(app, db):
    invoice, note = make_documents()
    standalone = documents.invoice_html(invoice), documents.credit_note_html(note)
    with app.app_context():
        assert (documents.invoice_html(invoice), documents.credit_note_html(note)) == standalone
