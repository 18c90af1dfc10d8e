"""Invoice and credit-note documents: what they show, as HTML and as PDF."""

from __future__ import annotations

import datetime as dt
import io
import time
from decimal import Decimal

import pytest
from pypdf import PdfReader

from core import documents, settings
from core.models import Allocation, CreditNote, CreditNoteLine, Invoice, InvoiceLine, InvoiceTax
from tests.factories import make_customer, make_payment

ISSUED_AT = dt.datetime(2026, 2, 1, 8, 30, 15)


@pytest.fixture
def company(db, pm):
    settings.set_value("company.name", "Kilimo Net Ltd", pm)
    settings.set_value("company.address", "Plot 12, Ngong Road\nNairobi", pm)
    settings.set_value("company.tax_id", "P051234567X", pm)


def issued_invoice(customer=None, **overrides) -> Invoice:
    """INV-2026-000123: two lines, VAT and excise duty, KES 3,855.00 in all."""
    customer = customer or make_customer(name="Zoë Ndung'u", email="zoe@example.org",
                                         address="House 4, Kileleshwa\nNairobi")
    data = {"customer": customer, "currency": customer.currency, "status": "issued", "series": "INV-2026",
            "number": 123, "subtotal_minor": 300_000, "tax_minor": 85_500, "total_minor": 385_500,
            "issue_date": dt.date(2026, 2, 1), "due_date": dt.date(2026, 2, 15),
            "period_start": dt.date(2026, 2, 1), "period_end": dt.date(2026, 2, 28), "issued_at": ISSUED_AT}
    data.update(overrides)
    invoice = Invoice.create(**data)
    InvoiceLine.create(invoice=invoice, position=1, kind="recurring", description="Home 10 Mbps",
                       quantity=Decimal("1.000000"), unit_price_minor=250_000, amount_minor=250_000,
                       period_start=dt.date(2026, 2, 1), period_end=dt.date(2026, 2, 28))
    InvoiceLine.create(invoice=invoice, position=2, kind="oneoff", description="Router installation",
                       quantity=Decimal("2"), unit_price_minor=25_000, amount_minor=50_000)
    InvoiceTax.create(invoice=invoice, name="VAT", rate=Decimal("0.16"), taxable_minor=300_000, tax_minor=48_000)
    InvoiceTax.create(invoice=invoice, name="Excise duty", rate=Decimal("0.150000"),
                      taxable_minor=250_000, tax_minor=37_500)
    return invoice


def credit_note(invoice, **overrides) -> CreditNote:
    """CN-2026-000007 against ``invoice``: three days of outage, KES 290.00 with VAT."""
    data = {"invoice": invoice, "customer": invoice.customer, "series": "CN-2026", "number": 7,
            "currency": invoice.currency, "subtotal_minor": 25_000, "tax_minor": 4_000, "total_minor": 29_000,
            "reason": "Outage from 3 to 5 February", "created_by": "user:admin",
            "issued_at": dt.datetime(2026, 2, 10, 9, 0)}
    data.update(overrides)
    note = CreditNote.create(**data)
    CreditNoteLine.create(credit_note=note, description="Home 10 Mbps, 3 days", amount_minor=25_000, tax_minor=4_000)
    return note


def allocate(invoice, amount_minor):
    payment = make_payment(invoice.customer, amount_minor=amount_minor)
    return Allocation.create(payment=payment, invoice=invoice, amount_minor=amount_minor, currency=invoice.currency)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


# --- content ------------------------------------------------------------------------

def test_context_holds_every_fact_formatted(company):
    invoice = issued_invoice()
    doc = documents.invoice_context(invoice)
    assert doc["number"] == "INV-2026-000123"
    assert doc["operator"] == {"name": "Kilimo Net Ltd", "address_lines": ["Plot 12, Ngong Road", "Nairobi"],
                               "tax_id": "P051234567X"}
    assert doc["customer"]["name"] == "Zoë Ndung'u"
    assert doc["customer"]["account_number"] == invoice.customer.account_number
    assert doc["customer"]["address_lines"] == ["House 4, Kileleshwa", "Nairobi"]
    assert (doc["issue_date"], doc["due_date"], doc["period"]) == ("2026-02-01", "2026-02-15",
                                                                   "2026-02-01 to 2026-02-28")
    assert doc["lines"] == [
        {"description": "Home 10 Mbps", "quantity": "1", "unit_price": "KES 2,500.00", "amount": "KES 2,500.00",
         "period": "2026-02-01 to 2026-02-28"},
        {"description": "Router installation", "quantity": "2", "unit_price": "KES 250.00", "amount": "KES 500.00",
         "period": ""},
    ]
    assert doc["taxes"] == [
        {"name": "VAT", "rate": "16%", "taxable": "KES 3,000.00", "tax": "KES 480.00"},
        {"name": "Excise duty", "rate": "15%", "taxable": "KES 2,500.00", "tax": "KES 375.00"},
    ]
    assert (doc["subtotal"], doc["tax"], doc["total"]) == ("KES 3,000.00", "KES 855.00", "KES 3,855.00")
    assert (doc["paid"], doc["credited"], doc["amount_due"]) == ("KES 0.00", "", "KES 3,855.00")
    assert doc["stamp"] is None and doc["prices_include_tax"] is False and doc["credit_notes"] == []


def test_amount_due_is_the_total_less_every_allocation(company):
    invoice = issued_invoice()
    allocate(invoice, 100_000)
    allocate(invoice, 50_000)
    doc = documents.invoice_context(invoice)
    assert (doc["total"], doc["paid"], doc["amount_due"]) == ("KES 3,855.00", "KES 1,500.00", "KES 2,355.00")
    html = documents.invoice_html(invoice)
    assert '<tr><th>Paid</th><td class="num">KES 1,500.00</td></tr>' in html and "Credited" not in html
    assert '<tr class="due"><th>Amount due</th><td class="num">KES 2,355.00</td></tr>' in html


def test_credit_note_allocations_are_shown_as_credited(company):
    invoice = issued_invoice()
    allocate(invoice, 150_000)
    note = credit_note(invoice)
    Allocation.create(credit_note=note, invoice=invoice, amount_minor=29_000, currency="KES")
    doc = documents.invoice_context(invoice)
    assert (doc["paid"], doc["credited"], doc["amount_due"]) == ("KES 1,500.00", "KES 290.00", "KES 2,065.00")
    html = documents.invoice_html(invoice)
    assert '<tr><th>Credited</th><td class="num">KES 290.00</td></tr>' in html
    assert '<tr class="due"><th>Amount due</th><td class="num">KES 2,065.00</td></tr>' in html
    text = pdf_text(documents.invoice_pdf(invoice))
    assert "Paid KES 1,500.00" in text and "Credited KES 290.00" in text and "Amount due KES 2,065.00" in text


def test_fractional_rates_and_quantities_print_exactly(db, pm):
    invoice = issued_invoice()
    InvoiceLine.create(invoice=invoice, position=3, kind="usage", description="Extra data (GB)",
                       quantity=Decimal("2.500000"), unit_price_minor=10_000, amount_minor=25_000)
    InvoiceTax.create(invoice=invoice, name="Levy", rate=Decimal("0.075"), taxable_minor=1_000, tax_minor=75)
    doc = documents.invoice_context(invoice)
    assert doc["lines"][2]["quantity"] == "2.5"
    assert doc["taxes"][2]["rate"] == "7.5%"


def test_operator_details_fall_back_to_the_defaults(db, pm):
    doc = documents.invoice_context(issued_invoice())
    assert doc["operator"] == {"name": "My ISP", "address_lines": [], "tax_id": ""}


@pytest.mark.parametrize("status, stamp", [("draft", "DRAFT"), ("void", "VOID")])
def test_draft_and_void_invoices_are_stamped(company, status, stamp):
    numbered = {} if status == "void" else {"series": None, "number": None, "issued_at": None}
    invoice = issued_invoice(status=status, **numbered)
    doc = documents.invoice_context(invoice)
    assert doc["stamp"] == stamp
    html = documents.invoice_html(invoice)
    assert f'<p class="stamp">{stamp}</p>' in html
    assert stamp in pdf_text(documents.invoice_pdf(invoice))
    if status == "void":
        assert doc["amount_due"] == "KES 0.00"  # a void invoice is not payable
    else:
        assert doc["number"] is None and documents.invoice_filename(invoice) == f"draft-invoice-{invoice.id}.pdf"


def test_tax_exempt_customer_and_tax_inclusive_prices(company):
    customer = make_customer(name="Kibera Community Clinic", tax_exempt=True, tax_exemption_ref="EXM/2026/0042")
    invoice = issued_invoice(customer, tax_inclusive=True, subtotal_minor=300_000, tax_minor=0, total_minor=300_000)
    html = documents.invoice_html(invoice)
    assert "Tax exempt: EXM/2026/0042" in html
    assert "Prices include tax." in html
    text = pdf_text(documents.invoice_pdf(invoice))
    assert "Tax exempt: EXM/2026/0042" in text and "Prices include tax." in text


def test_an_ordinary_customer_shows_no_exemption(company):
    assert "Tax exempt" not in documents.invoice_html(issued_invoice())


# --- HTML ---------------------------------------------------------------------------

def test_invoice_html_shows_parties_lines_taxes_and_totals(company):
    invoice = issued_invoice()
    allocate(invoice, 150_000)
    html = documents.invoice_html(invoice)
    for text in ("Kilimo Net Ltd", "Plot 12, Ngong Road<br>Nairobi", "Tax number: P051234567X",
                 "INV-2026-000123", "2026-02-15", "Zoë Ndung&#39;u", invoice.customer.account_number,
                 "zoe@example.org", "Home 10 Mbps", "Router installation",
                 "<td>VAT</td><td class=\"num\">16%</td><td class=\"num\">KES 3,000.00</td>"
                 "<td class=\"num\">KES 480.00</td>",
                 "<td>Excise duty</td><td class=\"num\">15%</td><td class=\"num\">KES 2,500.00</td>"
                 "<td class=\"num\">KES 375.00</td>",
                 "KES 3,855.00", "KES 2,355.00"):
        assert text in html
    assert "<style>" in html and ".document" in html  # the stylesheet travels with the page
    assert "Download PDF" not in html


def test_html_links_its_pdf_when_given_the_url(company):
    html = documents.invoice_html(issued_invoice(), pdf_url="/invoices/1.pdf")
    assert '<a href="/invoices/1.pdf">Download PDF</a>' in html


def test_html_escapes_everything(db, pm):
    settings.set_value("company.name", "Acme & <Sons>", pm)
    customer = make_customer(name="<script>alert(1)</script>", address='"><img src=x onerror=alert(2)>')
    invoice = issued_invoice(customer)
    InvoiceLine.create(invoice=invoice, position=3, kind="oneoff", description="<b>bold</b> & co",
                       unit_price_minor=0, amount_minor=0)
    html = documents.invoice_html(invoice)
    assert "<script>alert(1)</script>" not in html and "<img" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html
    assert "Acme &amp; &lt;Sons&gt;" in html


def test_credit_notes_are_listed_on_their_invoice(company):
    invoice = issued_invoice()
    credit_note(invoice)
    doc = documents.invoice_context(invoice)
    assert doc["credit_notes"] == [{"number": "CN-2026-000007", "date": "2026-02-10", "total": "KES 290.00",
                                    "reason": "Outage from 3 to 5 February"}]
    html = documents.invoice_html(invoice)
    assert "CN-2026-000007" in html and "Outage from 3 to 5 February" in html
    assert "CN-2026-000007" in pdf_text(documents.invoice_pdf(invoice))


def test_credit_note_html(company):
    note = credit_note(issued_invoice())
    doc = documents.credit_note_context(note)
    assert (doc["number"], doc["invoice_number"], doc["issue_date"]) == ("CN-2026-000007", "INV-2026-000123",
                                                                         "2026-02-10")
    assert doc["lines"] == [{"description": "Home 10 Mbps, 3 days", "amount": "KES 250.00", "tax": "KES 40.00"}]
    html = documents.credit_note_html(note)
    for text in ("Credit note", "Kilimo Net Ltd", "Tax number: P051234567X", "CN-2026-000007", "INV-2026-000123",
                 "Zoë Ndung&#39;u", "Outage from 3 to 5 February", "Home 10 Mbps, 3 days",
                 '<tr class="due"><th>Total credited</th><td class="num">KES 290.00</td></tr>'):
        assert text in html


# --- PDF ----------------------------------------------------------------------------

def test_invoice_pdf_shows_the_same_facts(company):
    invoice = issued_invoice()
    allocate(invoice, 150_000)
    data = documents.invoice_pdf(invoice)
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    for fact in ("Kilimo Net Ltd", "Plot 12, Ngong Road", "Tax number: P051234567X", "INVOICE", "INV-2026-000123",
                 "2026-02-15", "Zoë Ndung'u", invoice.customer.account_number, "Home 10 Mbps",
                 "2026-02-01 to 2026-02-28", "Router installation", "KES 250.00", "VAT 16% KES 3,000.00 KES 480.00",
                 "Excise duty 15% KES 2,500.00 KES 375.00", "Total KES 3,855.00", "Paid KES 1,500.00",
                 "Amount due KES 2,355.00"):
        assert fact in text, fact
    reader = PdfReader(io.BytesIO(data))
    assert reader.metadata.title == "Invoice INV-2026-000123"
    assert reader.metadata.creation_date == ISSUED_AT.replace(tzinfo=dt.timezone.utc)


def test_pdf_is_the_same_bytes_every_time(company):
    invoice = issued_invoice()
    first = documents.invoice_pdf(invoice)
    time.sleep(1.1)  # the clock must not leak into the file
    assert documents.invoice_pdf(Invoice.get_by_id(invoice.id)) == first
    note = credit_note(invoice)
    assert documents.credit_note_pdf(note) == documents.credit_note_pdf(CreditNote.get_by_id(note.id))


def test_pdf_draws_text_outside_latin1_without_failing(company):
    customer = make_customer(name="Ɔwusu Nyamekye “Kwame” Łukasz 田中")
    invoice = issued_invoice(customer)
    InvoiceLine.create(invoice=invoice, position=3, kind="oneoff", description="Fibre drop – 50 m … ok 🚀",
                       unit_price_minor=0, amount_minor=0)
    text = pdf_text(documents.invoice_pdf(invoice))
    assert 'Owusu Nyamekye "Kwame" Lukasz ??' in text
    assert "Fibre drop - 50 m ... ok ?" in text
    assert "Ɔwusu Nyamekye “Kwame” Łukasz 田中" in documents.invoice_html(invoice)  # HTML keeps every character


def test_pdf_text_folding():
    assert documents.pdf_text("Zoë Ndung’u") == "Zoë Ndung'u"
    assert documents.pdf_text("Ŋgoma\tŒuvre\u200b e\u0301") == "NGgoma OEuvre é"
    assert documents.pdf_text("ﬁbre 東京") == "fibre ??"


def test_credit_note_pdf(company):
    note = credit_note(issued_invoice())
    text = pdf_text(documents.credit_note_pdf(note))
    for fact in ("Kilimo Net Ltd", "CREDIT NOTE", "CN-2026-000007", "INV-2026-000123", "Zoë Ndung'u",
                 "Outage from 3 to 5 February", "Home 10 Mbps, 3 days", "Total credited KES 290.00"):
        assert fact in text, fact
    assert documents.credit_note_filename(note) == "CN-2026-000007.pdf"
    assert documents.invoice_filename(note.invoice) == "INV-2026-000123.pdf"


@pytest.mark.parametrize("currency, unit_minor, unit, total, tax", [
    ("KWD", 12_345, "KWD 12.345", "KWD 14.320", "KWD 1.975"),
    ("JPY", 1_500, "JPY 1,500", "JPY 1,740", "JPY 240"),
    ("UGX", 150_000, "UGX 150,000", "UGX 174,000", "UGX 24,000"),
])
def test_amounts_use_the_currency_exponent(company, currency, unit_minor, unit, total, tax):
    customer = make_customer(currency=currency)
    tax_minor = round(unit_minor * Decimal("0.16"))
    invoice = Invoice.create(customer=customer, currency=currency, status="issued", series="INV-2026", number=9,
                             subtotal_minor=unit_minor, tax_minor=tax_minor, total_minor=unit_minor + tax_minor,
                             issue_date=dt.date(2026, 3, 1), issued_at=ISSUED_AT)
    InvoiceLine.create(invoice=invoice, position=1, kind="recurring", description="Home plan",
                       unit_price_minor=unit_minor, amount_minor=unit_minor)
    InvoiceTax.create(invoice=invoice, name="VAT", rate=Decimal("0.16"), taxable_minor=unit_minor, tax_minor=tax_minor)
    html = documents.invoice_html(invoice)
    text = pdf_text(documents.invoice_pdf(invoice))
    for fact in (unit, total, tax):
        assert fact in html and fact in text, fact
    assert f"Amount due {total}" in text
