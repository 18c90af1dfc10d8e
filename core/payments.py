"""Recording money that arrives: payments from gateway notices, and payments staff enter.

Every payment is recorded once per (gateway, reference): a notice delivered a hundred
times, or by two workers at the same instant, makes one ``Payment``. The customer is
locked while their payment is recorded, so concurrent notices for one customer queue,
and a second delivery finds the first one's row.

A recorded payment posts a negative ledger entry, pays the invoice it was meant for (if
it names one that is open), then the customer's other open invoices oldest due date
first; what is left is account credit, spent on the next invoices. It emits
``payment.received``, delivered to plugins after commit by the event outbox.

A notice the core cannot place safely (no customer matches, the amount or currency is
not what was asked for, a started payment that does not exist) is held for staff in the
review queue (:mod:`core.reviews`) and applies nothing.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import peewee

from core import allocation, audit, customers, events, gateways, ledger, numbering, settings
from core.clock import utcnow
from core.bulk import insert_one, is_sqlite
from core.db import database
from core.errors import NotFound, ValidationError
from core.hooktypes import PaymentNotice, PaymentRequest, PaymentStart
from core.models import Customer, Invoice, JSONText, Payment, PaymentAttempt, PaymentReview, to_json
from core.money import Money
from core.validate import as_id

NOTICE_KINDS = ("payment", "failure", "refund")
MANUAL_METHODS = ("cash", "bank_transfer", "cheque", "mobile_money", "card", "other")


class AlreadyRecorded(Exception):
    """A payment with this (gateway, reference) was committed by a racing writer; roll back and look again."""


@dataclass(frozen=True)
class Outcome:
    """What the core did with one notice.

    ``status``: ``recorded`` (a new payment or refund), ``duplicate`` (already recorded or
    held: nothing changed), ``held`` (put in the review queue), ``failed`` (a started
    payment failed; no money moved).
    """

    status: str
    reference: str
    payment_id: int | None = None
    refund_id: int | None = None
    review_id: int | None = None
    reason: str | None = None


# --- reading notices ---------------------------------------------------------------

def check_notice(notice: PaymentNotice) -> None:
    """Refuse a notice a gateway should never have produced, before anything is written."""
    if not isinstance(notice, PaymentNotice):
        raise ValidationError(f"not a payment notice: {notice!r}")
    if notice.kind not in NOTICE_KINDS:
        raise ValidationError(f"notice kind {notice.kind!r} is not one of {', '.join(NOTICE_KINDS)}", "kind")
    if not isinstance(notice.reference, str) or not notice.reference.strip() or len(notice.reference) > 200:
        raise ValidationError("a notice needs a reference of 1 to 200 characters", "reference")
    if not isinstance(notice.amount, Money):
        raise ValidationError("a notice's amount must be Money", "amount")
    if notice.kind != "failure" and notice.amount.minor <= 0:
        raise ValidationError(f"{notice.kind} {notice.reference}: the amount must be more than zero", "amount")
    if notice.kind == "refund" and not notice.refund_of:
        raise ValidationError(f"refund {notice.reference} does not name the payment it refunds", "refund_of")


def record(notices, pm=None) -> list[Outcome]:
    """Record each notice (see :func:`record_notice`); all are checked before any is recorded."""
    notices = list(notices)
    for notice in notices:
        check_notice(notice)
    return [record_notice(notice, pm=pm) for notice in notices]


def record_notice(notice: PaymentNotice, pm=None) -> Outcome:
    """Record one verified notice idempotently on (gateway, reference)."""
    check_notice(notice)
    if notice.kind == "payment":
        return _record_payment(notice, pm)
    if notice.kind == "failure":
        return _record_failure(notice)
    from core import refunds

    return refunds.record_notice(notice, pm=pm)


# Every notice runs these lookups, so they are plain SQL: building a statement from a
# model costs several times what the database takes to answer it.

def _one(sql: str, params) -> tuple | None:
    db = database.obj
    return db.execute_sql(sql.replace("?", db.param), params).fetchone()


_ATTEMPT_COLUMNS = ("id", "token", "gateway", "gateway_reference", "customer_id", "invoice_id", "amount_minor",
                    "currency", "status")


def find_attempt(gateway: str, reference: str | None) -> PaymentAttempt | None:
    """The payment the core started that ``reference`` names (the core's token or the gateway's id)."""
    if not reference:
        return None
    cols = ", ".join(_ATTEMPT_COLUMNS)
    row = _one(f"SELECT {cols} FROM payment_attempt WHERE gateway = ? AND token = ? UNION ALL "
               f"SELECT {cols} FROM payment_attempt WHERE gateway = ? AND gateway_reference = ?",
               (gateway, reference, gateway, reference))
    return None if row is None else PaymentAttempt(**dict(zip(_ATTEMPT_COLUMNS, row)))


def _customer(customer_id) -> Customer | None:
    row = _one("SELECT id, account_number, currency FROM customer WHERE id = ?", (customer_id,))
    return None if row is None else Customer(id=row[0], account_number=row[1], currency=row[2])


_INVOICE_COLUMNS = ("id", "customer_id", "series", "number", "status", "currency", "total_minor", "settled_minor")


def _invoice(invoice_id) -> Invoice | None:
    row = _one(f"SELECT {', '.join(_INVOICE_COLUMNS)} FROM invoice WHERE id = ?", (invoice_id,))
    return None if row is None else Invoice(**dict(zip(_INVOICE_COLUMNS, row)))


def _already(gateway: str, reference: str) -> Outcome | None:
    row = _one("SELECT 'payment', id, id FROM payment WHERE gateway = ? AND reference = ? UNION ALL "
               "SELECT 'review', id, payment_id FROM payment_review WHERE gateway = ? AND reference = ?",
               (gateway, reference, gateway, reference))
    if row is None:
        return None
    if row[0] == "payment":
        return Outcome("duplicate", reference, payment_id=row[1])
    return Outcome("duplicate", reference, payment_id=row[2], review_id=row[1])


def _place(notice: PaymentNotice, attempt: PaymentAttempt | None):
    """``(customer, invoice, reason)``: who paid and for what, or why a person must decide."""
    customer = invoice = None
    if notice.customer_id is not None:
        customer = _customer(notice.customer_id)
        if customer is None:
            return None, None, f"the gateway names customer {notice.customer_id}, who does not exist"
    if notice.attempt and attempt is None:
        return customer, None, f"no payment was started with reference {notice.attempt!r}"
    if attempt is not None:
        if customer is not None and customer.id != attempt.customer_id:
            return customer, None, (f"the gateway names customer {customer.account_number}, but the payment "
                                    f"was started for customer {attempt.customer.account_number}")
        customer = customer or _customer(attempt.customer_id)
        invoice = _invoice(attempt.invoice_id) if attempt.invoice_id else None
    if notice.invoice_id is not None:
        named = _invoice(notice.invoice_id)
        if named is None:
            return customer, None, f"the gateway names invoice {notice.invoice_id}, which does not exist"
        if customer is not None and named.customer_id != customer.id:
            return customer, None, f"invoice {named.display_number} belongs to another customer"
        invoice, customer = named, customer or _customer(named.customer_id)
    if customer is None and notice.account:
        found = customers.match_reference(notice.account)
        if found is not None:
            customer, invoice = found
    if customer is None:
        what = f"account {notice.account!r}" if notice.account else "the notice"
        return None, None, f"no customer matches {what}"
    if notice.amount.currency != customer.currency:
        return customer, invoice, (f"paid in {notice.amount.currency}, but customer {customer.account_number} "
                                   f"is billed in {customer.currency}")
    if attempt is not None:
        asked = Money(attempt.amount_minor, attempt.currency)
        if notice.amount != asked:
            return customer, invoice, f"{notice.amount} received where {asked} was asked for"
    return customer, invoice, None


def _insert_once(model, receipt_series: str | None = None, **fields):
    """Insert a row unique on (gateway, reference), or ``None`` when a racing writer got there first.

    With ``receipt_series`` the row takes the next receipt number, and a lost race raises
    :class:`AlreadyRecorded` so that the caller's transaction rolls back and gives the
    number back.
    """
    db = database.obj
    if receipt_series is not None:
        fields = {**fields, "receipt_series": receipt_series, "receipt_number": numbering.take(receipt_series)}
    row = {(f"{k}_id" if isinstance(model._meta.fields.get(k), peewee.ForeignKeyField) else k):
           (to_json(v) if isinstance(model._meta.fields.get(k), JSONText) else v) for k, v in fields.items()}
    for name, field in model._meta.fields.items():
        if name not in fields and field.default is not None and name != "id":
            row[field.column_name] = field.default() if callable(field.default) else field.default
    row_id = insert_one(db, model._meta.table_name, row, unless=("gateway", "reference"))
    if row_id is None:
        if receipt_series is not None:
            raise AlreadyRecorded(fields["reference"])
        return None
    return model(id=row_id, **fields)


def _naive_utc(when: dt.datetime | None) -> dt.datetime | None:
    """``when`` as the naive UTC the tables keep (a gateway may give an aware time)."""
    if when is not None and when.tzinfo is not None:
        return when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return when


def hold(notice: PaymentNotice, reason: str, customer=None, invoice=None, attempt=None) -> Outcome:
    """Put a notice in the review queue (once); call inside a transaction."""
    review = _insert_once(
        PaymentReview, gateway=notice.gateway, reference=notice.reference, kind=notice.kind,
        customer=customer.id if customer else None, invoice=invoice.id if invoice else None,
        attempt=attempt.id if attempt else None, amount_minor=notice.amount.minor,
        currency=notice.amount.currency, account=(notice.account or None) and notice.account[:200],
        refund_of=notice.refund_of, payer=(notice.payer or None) and notice.payer[:200],
        method=(notice.method or None) and notice.method[:40], received_at=_naive_utc(notice.received_at) or utcnow(),
        reason=reason, raw=notice.raw or None)
    if review is None:
        return _already(notice.gateway, notice.reference)
    events.emit("payment.held", {"review_id": review.id, "gateway": notice.gateway,
                                 "reference": notice.reference, "reason": reason})
    audit.record("payment.hold", "payment_review", review.id, None,
                 {"gateway": notice.gateway, "reference": notice.reference, "amount_minor": notice.amount.minor,
                  "currency": notice.amount.currency, "reason": reason, "account": notice.account,
                  "customer_id": customer.id if customer else None})
    return Outcome("held", notice.reference, review_id=review.id, reason=reason)


def _record_payment(notice: PaymentNotice, pm=None) -> Outcome:
    try:
        return _record_payment_once(notice, pm)
    except AlreadyRecorded:  # a racing delivery committed it first; this transaction rolled back
        return _already(notice.gateway, notice.reference)


def _record_payment_once(notice: PaymentNotice, pm=None) -> Outcome:
    with database.atomic():
        done = _already(notice.gateway, notice.reference)
        if done is not None:
            _close_attempt(notice, done)
            return done
        attempt = find_attempt(notice.gateway, notice.attempt)
        customer, invoice, reason = _place(notice, attempt)
        if reason is not None:
            return hold(notice, reason, customer, invoice, attempt)
        # A delivery racing this one and committed while we wait for the lock makes the insert
        # in apply_payment find its row: AlreadyRecorded rolls this transaction back.
        allocation.lock_customer(customer.id)
        payment = apply_payment(customer, notice.amount, gateway=notice.gateway, reference=notice.reference,
                                method=notice.method, payer=notice.payer, received_at=notice.received_at,
                                invoice=invoice, raw=notice.raw, pm=pm,
                                invoice_is_current=is_sqlite(database.obj))  # read in this write transaction
        if attempt is not None:
            database.execute_sql(
                f"UPDATE payment_attempt SET status = 'succeeded', payment_id = {database.param}, "
                f"updated_at = {database.param} WHERE id = {database.param}", (payment.id, utcnow(), attempt.id))
    return Outcome("recorded", notice.reference, payment_id=payment.id)


def _close_attempt(notice: PaymentNotice, done: Outcome) -> None:
    """A started payment whose money was already recorded by another notice (a push whose
    paybill confirmation came first) is marked succeeded with that payment."""
    if not notice.attempt or done.payment_id is None:
        return
    attempt = find_attempt(notice.gateway, notice.attempt)
    if attempt is not None and attempt.status == "started":
        database.execute_sql(
            f"UPDATE payment_attempt SET status = 'succeeded', payment_id = {database.param}, "
            f"updated_at = {database.param} WHERE id = {database.param} AND status = 'started'",
            (done.payment_id, utcnow(), attempt.id))


def apply_payment(customer: Customer, amount: Money, *, gateway: str, reference: str, method=None, payer=None,
                  received_at: dt.datetime | None = None, invoice: Invoice | None = None, raw=None, note=None,
                  pm=None, invoice_is_current: bool = False) -> Payment:
    """Write a payment, its ledger entry and allocations, the event and the audit record.

    Call inside a transaction holding the customer's lock. Raises :class:`AlreadyRecorded`
    when a payment with this (gateway, reference) exists; returns the new row as far as it
    was written (read it again for its allocations and what is left unallocated).
    """
    if amount.currency != customer.currency:
        raise ValidationError(f"customer {customer.account_number} is billed in {customer.currency}, "
                              f"not {amount.currency}", "currency")
    if invoice is not None and invoice.customer_id != customer.id:
        raise ValidationError(f"invoice {invoice.display_number} belongs to another customer", "invoice")
    received_at = _naive_utc(received_at)
    prefix = settings.get_or("payments.receipt_prefix", "RCT", pm=pm)
    series = f"{prefix}-{utcnow().year}"
    used = 0
    if invoice is not None:
        if not invoice_is_current:
            invoice = _invoice(invoice.id)  # as it is now, under the customer's lock
        due = invoice.total_minor - invoice.settled_minor
        if invoice.status == "issued" and due > 0 and invoice.currency == amount.currency:
            used = min(due, amount.minor)
    payment = _insert_once(
        Payment, customer=customer.id, gateway=gateway, reference=reference, method=method and method[:40],
        status="succeeded", amount_minor=amount.minor, currency=amount.currency,
        received_at=received_at or utcnow(), payer=payer and payer[:200], unallocated_minor=amount.minor - used,
        raw=raw or None, receipt_series=series, recorded_by=audit.current_actor(), note=note)
    ledger.post(customer.id, "payment", -amount, f"Payment {payment.receipt} ({gateway} {reference})",
                payment=payment.id)
    if used:
        allocation.settle(invoice, used, payment_id=payment.id)
    if used < amount.minor:
        # Older credit was spent when it arose, so only money left over here can pay anything more.
        allocation.apply_credit(customer.id)
    payment.unallocated_minor = None  # apply_credit may have spent some: read it again when needed
    events.emit("payment.received", {
        "payment_id": payment.id, "customer_id": customer.id, "gateway": gateway, "reference": reference,
        "amount_minor": amount.minor, "currency": amount.currency, "receipt": payment.receipt})
    audit.record("payment.record", "payment", payment.id, None, {
        "customer_id": customer.id, "gateway": gateway, "reference": reference, "method": payment.method,
        "amount_minor": amount.minor, "currency": amount.currency, "receipt": payment.receipt,
        "received_at": payment.received_at.isoformat(), "recorded_by": payment.recorded_by})
    return payment


def _record_failure(notice: PaymentNotice) -> Outcome:
    attempt = find_attempt(notice.gateway, notice.attempt or notice.reference)
    if attempt is None or attempt.status != "started":
        return Outcome("duplicate" if attempt else "failed", notice.reference,
                       reason=None if attempt else "no started payment matches")
    with database.atomic():
        changed = (PaymentAttempt.update(status="failed", updated_at=utcnow(),
                                         message=(notice.message or "the payment failed")[:500])
                   .where(PaymentAttempt.id == attempt.id, PaymentAttempt.status == "started").execute())
        if changed:
            audit.record("payment.failed", "payment_attempt", attempt.id, {"status": "started"},
                         {"status": "failed", "reference": notice.reference})
    return Outcome("failed", notice.reference)


# --- payments staff enter ----------------------------------------------------------

def add_manual(customer: Customer, amount: Money, *, method: str = "cash", reference: str | None = None,
               invoice: Invoice | None = None, received_on: dt.date | None = None, note: str | None = None,
               pm=None) -> tuple[Payment, bool]:
    """Record money staff received (cash, transfer, cheque, mobile money); ``(payment, created)``.

    The same reference again with the same customer and amount returns the payment already
    recorded (``created`` false), so a retried command is harmless; with other details it
    is refused, since two payments cannot share a reference.
    """
    if method not in MANUAL_METHODS:
        raise ValidationError(f"method must be one of {', '.join(MANUAL_METHODS)}", "method")
    if amount.minor <= 0:
        raise ValidationError("a payment must be more than zero", "amount")
    if amount.currency != customer.currency:
        raise ValidationError(f"customer {customer.account_number} is billed in {customer.currency}", "amount")
    if invoice is not None and invoice.customer_id != customer.id:
        raise ValidationError(f"invoice {invoice.display_number} belongs to another customer", "invoice")
    reference = (reference or "").strip() or f"{method.upper().replace('_', '-')}-{secrets.token_hex(5).upper()}"
    if len(reference) > 200:
        raise ValidationError("a reference has at most 200 characters", "reference")
    received_at = dt.datetime.combine(received_on, dt.time(12)) if received_on else None
    try:
        with database.atomic():
            allocation.lock_customer(customer.id)
            existing = Payment.get_or_none(Payment.gateway == "manual", Payment.reference == reference)
            if existing is None:
                made = apply_payment(customer, amount, gateway="manual", reference=reference, method=method,
                                     received_at=received_at, invoice=invoice, note=note, pm=pm)
                return Payment.get_by_id(made.id), True
    except AlreadyRecorded:  # entered at the same moment by someone else
        existing = Payment.get(Payment.gateway == "manual", Payment.reference == reference)
    if existing.customer_id == customer.id and existing.amount_minor == amount.minor \
            and existing.currency == amount.currency:
        return existing, False
    raise ValidationError(f"reference {reference!r} is already payment {existing.receipt} "
                          f"of {Money(existing.amount_minor, existing.currency)}", "reference")


# --- starting payments -------------------------------------------------------------

def start_payment(gateway: str, *, customer: Customer, invoice: Invoice | None = None, amount: Money | None = None,
                  phone: str | None = None, email: str | None = None, return_url: str | None = None,
                  base_url: str | None = None, pm=None) -> tuple[PaymentAttempt, PaymentStart]:
    """Ask ``gateway`` to collect an invoice's due amount (or ``amount``), or a top-up without an invoice.

    ``{attempt}`` in ``return_url`` is replaced by the attempt's token, so the page the
    payer comes back to can show how that payment is doing.
    The gateway is called outside any transaction (it may be a network call); the attempt
    is recorded once it answers, with what was asked for, so the notice that reports the
    money can be checked against it.
    """
    info = gateways.available(pm).get(gateway)
    if info is None:
        raise NotFound(f"no payment gateway named {gateway!r}")
    if not info.interactive:
        raise ValidationError(f"gateway {gateway!r} takes no online payments", "gateway")
    if not info.configured:
        raise ValidationError(f"gateway {gateway!r} is not set up yet", "gateway")
    if invoice is not None:
        if invoice.customer_id != customer.id:
            raise ValidationError(f"invoice {invoice.display_number} belongs to another customer", "invoice")
        due = invoice.total_minor - invoice.settled_minor if invoice.status == "issued" else 0
        if due <= 0:
            raise ValidationError(f"invoice {invoice.display_number} has nothing left to pay", "invoice")
        amount = Money(due, invoice.currency) if amount is None else amount
        if amount.currency != invoice.currency or not 0 < amount.minor <= due:
            raise ValidationError(f"pay between {Money(1, invoice.currency)} and {Money(due, invoice.currency)}",
                                  "amount")
        description = f"Invoice {invoice.display_number}"
    else:
        if amount is None or amount.minor <= 0:
            raise ValidationError("a top-up needs an amount of more than zero", "amount")
        if amount.currency != customer.currency:
            raise ValidationError(f"customer {customer.account_number} is billed in {customer.currency}", "amount")
        description = f"Top-up for account {customer.account_number}"
    token = f"PA-{secrets.token_hex(8).upper()}"
    if return_url:
        return_url = return_url.replace("{attempt}", token)
    base = (base_url or settings.get_or("web.base_url", "", pm=pm) or "").rstrip("/")
    request = PaymentRequest(
        customer_id=customer.id, amount=amount, reference=token, description=description,
        invoice_id=invoice.id if invoice else None, return_url=return_url, phone=phone or customer.phone,
        email=email or customer.email, account=customer.account_number,
        notify_url=f"{base}/hooks/{gateway}" if base else None)
    started = gateways.start_payment(gateway, request, pm=pm)
    asked = started.amount if isinstance(started.amount, Money) else amount
    if asked.currency != amount.currency or asked.minor < amount.minor:
        raise ValidationError(f"gateway {gateway!r} asked for {asked} instead of {amount}", "amount")
    with database.atomic():
        attempt = PaymentAttempt.create(
            token=token, gateway=gateway, gateway_reference=(started.reference or None),
            customer=customer.id, invoice=invoice.id if invoice else None, amount_minor=asked.minor,
            currency=asked.currency, redirect_url=started.redirect_url, message=started.message)
        audit.record("payment.start", "payment_attempt", attempt.id, None, audit.snapshot(attempt))
    return attempt, started


# --- finding and showing -----------------------------------------------------------

def find(text) -> Payment:
    """A payment by receipt number (``RCT-2026-000042``), id, or ``gateway:reference``."""
    text = str(text).strip()
    payment = None
    if as_id(text) is not None:
        payment = Payment.get_or_none(Payment.id == as_id(text))
    elif ":" in text:
        gateway, _, reference = text.partition(":")
        payment = Payment.get_or_none(Payment.gateway == gateway, Payment.reference == reference)
    else:
        series, _, number = text.rpartition("-")
        if series and as_id(number) is not None:
            payment = Payment.get_or_none(Payment.receipt_series == series, Payment.receipt_number == as_id(number))
    if payment is None:
        raise NotFound(f"no payment {text!r}")
    return payment


def listing(customer: Customer | None = None, gateway: str | None = None, limit: int = 100) -> list[Payment]:
    """Payments, newest first."""
    q = Payment.select().order_by(Payment.id.desc()).limit(limit)
    if customer is not None:
        q = q.where(Payment.customer == customer.id)
    if gateway:
        q = q.where(Payment.gateway == gateway)
    return list(q)


def as_dict(payment: Payment) -> dict:
    """A payment as JSON, with its allocations and refunds."""
    def m(minor):
        return Money(minor, payment.currency).to_dict()
    return {
        "id": payment.id, "receipt": payment.receipt, "customer_id": payment.customer_id,
        "account_number": payment.customer.account_number if payment.customer_id else None,
        "gateway": payment.gateway, "reference": payment.reference, "method": payment.method,
        "status": payment.status, "amount": m(payment.amount_minor), "unallocated": m(payment.unallocated_minor),
        "received_at": payment.received_at.isoformat(timespec="seconds"), "payer": payment.payer,
        "note": payment.note, "recorded_by": payment.recorded_by,
        "allocations": [{"invoice": a.invoice.display_number, "invoice_id": a.invoice_id, "amount": m(a.amount_minor)}
                        for a in payment.allocations],
        "refunds": [{"id": r.id, "reference": r.reference, "amount": m(r.amount_minor), "reason": r.reason,
                     "at": r.created_at.isoformat(timespec="seconds")} for r in payment.refunds],
    }


def outcome_counts(outcomes) -> dict:
    """How many outcomes of each status, for a webhook answer or an import report."""
    counts = {"recorded": 0, "duplicate": 0, "held": 0, "failed": 0}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts
