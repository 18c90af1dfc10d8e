"""Console: invoices, payments (with refunds) and the payment review queue."""

from __future__ import annotations

from flask import request
from peewee import JOIN, fn

from core import customers, invoices, payments, refunds, reviews, validate
from core.errors import NotFound, PluginError, ValidationError
from core.models import INVOICE_STATUSES, CreditNote, Customer, Invoice, Payment, PaymentReview
from core.money import Money
from core.web.auth import staff
from core.web.console import PER_PAGE, bp, done, page, page_number


def _search(query, q: str, number_field, series_field, extra=None):
    """Narrow ``query`` to documents whose number, or whose customer's name or account, matches ``q``."""
    if not q:
        return query
    series, _, number = q.rpartition("-")
    if series and validate.as_id(number) is not None:
        match = (series_field == series) & (number_field == validate.as_id(number))
    else:
        text = q.lower()
        match = fn.LOWER(Customer.name).contains(text) | (fn.LOWER(Customer.account_number) == text)
        if validate.as_id(q) is not None:
            match |= number_field == validate.as_id(q)
    if extra is not None:
        match |= extra
    return query.where(match)


def _paged(query, number: int):
    """``(rows, has_next)`` of page ``number`` of ``query``."""
    rows = list(query.offset((number - 1) * PER_PAGE).limit(PER_PAGE + 1))
    return rows[:PER_PAGE], len(rows) > PER_PAGE


@bp.route("/invoices", endpoint="invoices")
@staff("view")
def invoices_page():
    """Invoices, newest first: by status, by number or customer, fifty a page; with their credit notes."""
    status = request.args.get("status", "")
    status = status if status in INVOICE_STATUSES else ""
    q = request.args.get("q", "").strip()[:100]
    number = page_number(request.args.get("page"))
    query = Invoice.select(Invoice, Customer).join(Customer).order_by(Invoice.id.desc())
    if status:
        query = query.where(Invoice.status == status)
    rows, more = _paged(_search(query, q, Invoice.number, Invoice.series), number)
    notes: dict[int, list] = {}
    if rows:
        for note in CreditNote.select().where(CreditNote.invoice.in_([i.id for i in rows])).order_by(CreditNote.id):
            notes.setdefault(note.invoice_id, []).append(note)
    return page("console/invoices.html", invoices=rows, notes=notes, status=status, q=q, page_no=number,
                more=more, statuses=INVOICE_STATUSES)


@bp.route("/payments", endpoint="payments")
@staff("view")
def payments_page():
    """Payments, newest first, fifty a page; by gateway, by receipt number or customer."""
    gateway = request.args.get("gateway", "").strip()[:40]
    q = request.args.get("q", "").strip()[:100]
    number = page_number(request.args.get("page"))
    query = Payment.select(Payment, Customer).join(Customer, JOIN.LEFT_OUTER).order_by(Payment.id.desc())
    if gateway:
        query = query.where(Payment.gateway == gateway)
    query = _search(query, q, Payment.receipt_number, Payment.receipt_series, extra=(Payment.reference == q))
    rows, more = _paged(query, number)
    gateways = [g for (g,) in Payment.select(Payment.gateway).distinct().order_by(Payment.gateway).tuples()]
    return page("console/payments.html", payments=rows, gateway=gateway, gateways=gateways, q=q,
                page_no=number, more=more)


def _payment(payment_id: int) -> Payment:
    found = Payment.get_or_none(Payment.id == payment_id)
    if found is None:
        raise NotFound(f"no payment {payment_id}")
    return found


def _refund_page(payment, status=200, form=None, error=None):
    return page("console/refund.html", status, payment=payment, refundable=refunds.refundable(payment),
                form=form or {"amount": "", "reason": "", "outside_reference": ""}, error=error,
                detail=payments.as_dict(payment))


@bp.route("/payments/<int:payment_id>/refund")
@staff("view")
def refund_form(payment_id: int):
    """A payment with what it paid, its refunds and (for ``payments.refund``) the refund form."""
    return _refund_page(_payment(payment_id))


@bp.route("/payments/<int:payment_id>/refund", methods=("POST",))
@staff("payments.refund")
def refund(payment_id: int):
    """Refund a payment through its gateway, or record one made outside wispbill."""
    payment = _payment(payment_id)
    form = {k: request.form.get(k, "").strip() for k in ("amount", "reason", "outside_reference")}
    try:
        amount = validate.money(form["amount"], payment.currency, "amount", allow_zero=False) \
            if form["amount"] else None
        row = refunds.refund(payment, amount, reason=form["reason"],
                             outside_reference=form["outside_reference"] or None)
    except ValidationError as exc:
        return _refund_page(payment, 400, form, exc)
    except (PluginError, NotFound) as exc:  # the gateway failed or is gone: nothing was recorded
        return _refund_page(payment, 502, form, f"The refund did not go through: {exc}")
    label = payment.receipt or payment.reference
    return done(f"Refunded {Money(row.amount_minor, row.currency)} of payment {label} (reference {row.reference}).",
                "console.payments")


# --- the review queue ----------------------------------------------------------------

def _reviews_page(status=200, error=None, error_id=None, form=None):
    return page("console/reviews.html", status, reviews=reviews.listing("open", limit=200),
                decided=list(PaymentReview.select().where(PaymentReview.status != "open")
                             .order_by(PaymentReview.resolved_at.desc(), PaymentReview.id.desc()).limit(20)),
                error=error, error_id=error_id,
                form=form or {})


@bp.route("/reviews", endpoint="reviews")
@staff("view")
def reviews_page():
    """Money waiting for a person: open review entries, and the last decided ones."""
    return _reviews_page()


@bp.route("/reviews/<int:review_id>/accept", methods=("POST",))
@staff("payments.record")
def review_accept(review_id: int):
    """Apply a held payment to a customer (and invoice), as the form says."""
    entry = reviews.get(review_id)
    form = {k: request.form.get(k, "").strip() for k in ("customer", "invoice", "note")}
    try:
        customer = _find(customers.find, form["customer"], "customer")
        invoice = _find(invoices.find, form["invoice"], "invoice")
        entry = reviews.accept(entry, customer, invoice, form["note"][:500])
    except ValidationError as exc:
        return _reviews_page(400, exc, review_id, form)
    return done(f"Entry #{entry.id} accepted for {entry.customer.account_number}.", "console.reviews")


@bp.route("/reviews/<int:review_id>/reject", methods=("POST",))
@staff("payments.record")
def review_reject(review_id: int):
    """Close a held entry without applying it, with the reason."""
    entry = reviews.get(review_id)
    form = {"reason": request.form.get("reason", "").strip()[:500]}
    try:
        entry = reviews.reject(entry, form["reason"])
    except ValidationError as exc:
        return _reviews_page(400, exc, review_id, form)
    return done(f"Entry #{entry.id} rejected.", "console.reviews")


def _find(finder, text: str, field: str):
    """``finder(text)``, ``None`` for no text; an unknown one is a form error, not a 404 page."""
    if not text:
        return None
    try:
        return finder(text)
    except NotFound as exc:
        raise ValidationError(str(exc), field) from None
