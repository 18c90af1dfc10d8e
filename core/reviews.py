"""The review queue: money a gateway reported that staff must place before it counts.

A held payment is applied by :func:`accept` to the customer staff choose (it then becomes
a ``Payment`` with the gateway's own reference, so a late repeat of the notice is still a
duplicate), or closed by :func:`reject` when the money is being returned or was never
ours. Held refunds are accepted once their payment is recorded.
"""

from __future__ import annotations

from core import allocation, audit, refunds
from core.clock import utcnow
from core.bulk import is_sqlite
from core.db import database
from core.errors import NotFound, ValidationError
from core.models import Customer, Invoice, Payment, PaymentAttempt, PaymentReview
from core.money import Money
from core.validate import as_id


def get(review_id) -> PaymentReview:
    """A review entry by id."""
    text = str(review_id).strip().lstrip("#")
    row = PaymentReview.get_or_none(PaymentReview.id == as_id(text)) if as_id(text) is not None else None
    if row is None:
        raise NotFound(f"no review entry {review_id!r}")
    return row


def listing(status: str | None = "open", limit: int = 100) -> list[PaymentReview]:
    """Review entries, oldest first (``status=None``: all)."""
    q = PaymentReview.select().order_by(PaymentReview.id).limit(limit)
    if status:
        q = q.where(PaymentReview.status == status)
    return list(q)


def _open(review: PaymentReview) -> PaymentReview:
    """The entry as it is now, locked until the decision commits (an accept and a reject may race)."""
    query = PaymentReview.select().where(PaymentReview.id == review.id)
    if not is_sqlite(database.obj):
        query = query.for_update()
    review = query.get()
    if review.status != "open":
        raise ValidationError(f"review entry {review.id} is already {review.status}", "review")
    return review


def accept(review: PaymentReview, customer: Customer | None = None, invoice: Invoice | None = None,
           note: str = "") -> PaymentReview:
    """Apply a held payment to ``customer`` (default: the one the notice suggested), or a held refund."""
    from core.payments import AlreadyRecorded, apply_payment

    if review.kind == "refund":
        return _accept_refund(review, note)
    customer = customer or (review.customer if review.customer_id else None)
    if customer is None:
        raise ValidationError("say which customer paid (--customer)", "customer")
    amount = Money(review.amount_minor, review.currency)
    if invoice is not None and invoice.customer_id != customer.id:
        raise ValidationError(f"invoice {invoice.display_number} belongs to another customer", "invoice")
    with database.atomic():
        allocation.lock_customer(customer.id)
        review = _open(review)
        if invoice is None and review.invoice_id and review.invoice.customer_id == customer.id:
            invoice = review.invoice  # the invoice the notice suggested, when it is this customer's
        try:
            payment = apply_payment(customer, amount, gateway=review.gateway, reference=review.reference,
                                    method=review.method, payer=review.payer, received_at=review.received_at,
                                    invoice=invoice, raw=review.raw, note=note or None)
        except AlreadyRecorded:
            raise ValidationError(f"{review.gateway} payment {review.reference} is already recorded",
                                  "review") from None
        if review.attempt_id and review.attempt.customer_id == customer.id:
            PaymentAttempt.update(status="succeeded", payment=payment.id, updated_at=utcnow()).where(
                PaymentAttempt.id == review.attempt_id).execute()
        _close(review, "accepted", note, payment_id=payment.id, customer_id=customer.id)
    return PaymentReview.get_by_id(review.id)


def _accept_refund(review: PaymentReview, note: str) -> PaymentReview:
    payment = Payment.get_or_none(Payment.gateway == review.gateway, Payment.reference == review.refund_of)
    if payment is None:
        raise ValidationError(f"payment {review.refund_of!r} is still not recorded; accept it first", "review")
    with database.atomic():
        review = _open(review)
        refunds.record(payment, Money(review.amount_minor, review.currency), reference=review.reference,
                       reason=note or review.reason)
        _close(review, "accepted", note, payment_id=payment.id, customer_id=payment.customer_id)
    return PaymentReview.get_by_id(review.id)


def reject(review: PaymentReview, reason: str) -> PaymentReview:
    """Close a held entry without applying it; ``reason`` says what became of the money."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("say why the entry is rejected (--reason)", "reason")
    with database.atomic():
        review = _open(review)
        _close(review, "rejected", reason)
    return PaymentReview.get_by_id(review.id)


def _close(review: PaymentReview, status: str, note: str, **fields) -> None:
    changed = PaymentReview.update(
        status=status, resolved_at=utcnow(), resolved_by=audit.current_actor(), resolution=(note or None),
        payment=fields.get("payment_id", review.payment_id), customer=fields.get("customer_id", review.customer_id),
    ).where(PaymentReview.id == review.id, PaymentReview.status == "open").execute()
    if not changed:
        raise ValidationError(f"review entry {review.id} was decided by someone else meanwhile", "review")
    audit.record(f"payment_review.{'accept' if status == 'accepted' else 'reject'}", "payment_review", review.id,
                 {"status": "open"}, {"status": status, "resolution": note or None, **fields})


def as_dict(review: PaymentReview) -> dict:
    """A review entry as JSON."""
    return {
        "id": review.id, "gateway": review.gateway, "reference": review.reference, "kind": review.kind,
        "status": review.status, "amount": Money(review.amount_minor, review.currency).to_dict(),
        "customer": review.customer.account_number if review.customer_id else None,
        "invoice": review.invoice.display_number if review.invoice_id else None,
        "account": review.account, "refund_of": review.refund_of, "payer": review.payer,
        "received_at": review.received_at.isoformat(timespec="seconds"), "reason": review.reason,
        "payment_id": review.payment_id, "resolved_by": review.resolved_by, "resolution": review.resolution,
    }
