"""Refunds: money returned against a recorded payment, asked for by staff or reported by a gateway.

A refund is recorded once per (gateway, reference). It posts a positive ledger entry and
takes the money back from what the payment has not yet paid (account credit) first; the
rest is credited on the invoices the payment paid, newest first, by credit notes that the
refund pays out. So a refund never makes an invoice show more due than it did: what the
customer gets back is credited, not owed again. A refund larger than what the payment
still has, or than its invoices can be credited, is refused for staff; reported by a
gateway (the money is already gone) it is held for review.
"""

from __future__ import annotations

from peewee import fn

from core import allocation, audit, credit_notes, events, gateways, ledger
from core.db import database
from core.errors import ValidationError
from core.hooktypes import PaymentNotice
from core.models import Allocation, Invoice, Payment, PaymentReview, Refund
from core.money import Money


def refunded(payment: Payment) -> int:
    """Minor units already refunded on ``payment``."""
    return int(Refund.select(fn.COALESCE(fn.SUM(Refund.amount_minor), 0))
               .where(Refund.payment == payment.id).scalar())


def _creditable(payment: Payment) -> int:
    """What a refund of ``payment`` can take back: its account credit, plus what the invoices it
    paid can still be credited (each up to what the payment paid on it)."""
    room = payment.unallocated_minor
    for alloc in Allocation.select(Allocation, Invoice).join(Invoice).where(Allocation.payment == payment.id):
        done, _tax = credit_notes.credited(alloc.invoice)
        room += max(min(alloc.amount_minor, alloc.invoice.total_minor - done), 0)
    return room


def refundable(payment: Payment) -> Money:
    """What can still be refunded on ``payment``: not more than is left of it, nor than can be credited."""
    left = payment.amount_minor - refunded(payment)
    return Money(max(min(left, _creditable(payment)), 0), payment.currency)


def _check(payment: Payment, amount: Money) -> None:
    if payment.customer_id is None:
        raise ValidationError(f"payment {payment.reference} has no customer", "payment")
    if amount.currency != payment.currency:
        raise ValidationError(f"the payment is in {payment.currency}, not {amount.currency}", "amount")
    if amount.minor <= 0:
        raise ValidationError("a refund must be more than zero", "amount")
    label = payment.receipt or payment.reference
    left = payment.amount_minor - refunded(payment)
    if amount.minor > left:
        raise ValidationError(f"only {Money(left, payment.currency)} of payment {label} is left to refund",
                              "amount")
    room = _creditable(payment)
    if amount.minor > room:
        raise ValidationError(f"only {Money(room, payment.currency)} of payment {label} can be refunded: the "
                              "invoices it paid have been credited already; correct them by hand", "amount")


def refund(payment: Payment, amount: Money | None = None, *, reason: str, outside_reference: str | None = None,
           pm=None) -> Refund:
    """Refund ``amount`` (default: all that is left) of ``payment`` through its gateway.

    With ``outside_reference`` the money was returned outside wispbill (cash handed back,
    a reversal made on the gateway's own portal) and is only recorded.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("a refund needs a reason", "reason")
    amount = refundable(payment) if amount is None else amount
    _check(payment, amount)
    if outside_reference is not None:
        reference = outside_reference.strip()
        if not reference or len(reference) > 200:
            raise ValidationError("give the reference of the refund made outside wispbill (1-200 characters)",
                                  "reference")
    else:
        result = gateways.refund(payment.gateway, payment, amount, reason, pm=pm)
        if result.amount != amount:
            raise ValidationError(f"gateway {payment.gateway!r} refunded {result.amount}, not {amount}; "
                                  "record the difference by hand", "amount")
        reference = result.reference
    row, _created = record(payment, amount, reference=reference, reason=reason)
    return row


def record(payment: Payment, amount: Money, *, reference: str, reason: str | None = None) -> tuple[Refund, bool]:
    """Write a refund of ``payment`` once per (gateway, reference); ``(refund, created)``."""
    with database.atomic():
        allocation.lock_customer(payment.customer_id)
        existing = Refund.get_or_none(Refund.gateway == payment.gateway, Refund.reference == reference)
        if existing is not None:
            if existing.payment_id != payment.id or existing.amount_minor != amount.minor:
                raise ValidationError(f"refund reference {reference!r} is already used for "
                                      f"{Money(existing.amount_minor, existing.currency)} of another payment "
                                      "or amount", "reference")
            return existing, False
        payment = Payment.get_by_id(payment.id)
        _check(payment, amount)
        row = Refund.create(payment=payment.id, gateway=payment.gateway, reference=reference,
                            amount_minor=amount.minor, currency=amount.currency, reason=(reason or "")[:2000] or None)
        label = payment.receipt or payment.reference
        ledger.post(payment.customer_id, "refund", amount, f"Refund {reference} of payment {label}",
                    refund=row.id, payment=payment.id)
        from_credit = min(payment.unallocated_minor, amount.minor)
        left = amount.minor - from_credit
        if left:
            left = _credit_invoices(payment, row, left, reference)
        if left:  # _check measured the room; a credit note that took less is a bug, not input
            raise RuntimeError(f"refund {reference}: {Money(left, amount.currency)} could not be credited")
        status = "refunded" if refunded(payment) == payment.amount_minor else "partially_refunded"
        before = {"status": payment.status, "unallocated_minor": payment.unallocated_minor}
        Payment.update(status=status, unallocated_minor=Payment.unallocated_minor - from_credit).where(
            Payment.id == payment.id).execute()
        events.emit("payment.refunded", {"payment_id": payment.id, "refund_id": row.id,
                                         "customer_id": payment.customer_id, "amount_minor": amount.minor,
                                         "currency": amount.currency, "reference": reference})
        audit.record("payment.refund", "payment", payment.id, before,
                     {"status": status, "unallocated_minor": payment.unallocated_minor - from_credit,
                      "refund_id": row.id, "refund_reference": reference, "amount_minor": amount.minor})
    return row, True


def _credit_invoices(payment: Payment, refund_row: Refund, left: int, reference: str) -> int:
    """Credit the invoices ``payment`` paid, newest first, for up to ``left``; return what could not be."""
    paid = (Allocation.select(Allocation, Invoice).join(Invoice)
            .where(Allocation.payment == payment.id)
            .order_by(Invoice.due_date.desc(), Invoice.id.desc()))
    for alloc in paid:
        if left <= 0:
            break
        invoice = alloc.invoice
        done, _tax = credit_notes.credited(invoice)
        room = min(alloc.amount_minor, invoice.total_minor - done, left)
        if room <= 0:
            continue
        credit_notes.issue(invoice, reason=f"Refund {reference} of payment {payment.receipt or payment.reference}",
                           amount=Money(room, invoice.currency), refund_id=refund_row.id)
        left -= room
    return left


def record_notice(notice: PaymentNotice, pm=None):
    """Record a refund a gateway reported (``kind == "refund"``); hold it when it cannot be placed."""
    from core.payments import Outcome, hold

    existing = Refund.get_or_none(Refund.gateway == notice.gateway, Refund.reference == notice.reference)
    if existing is not None:
        return Outcome("duplicate", notice.reference, payment_id=existing.payment_id, refund_id=existing.id)
    held = PaymentReview.get_or_none(PaymentReview.gateway == notice.gateway,
                                     PaymentReview.reference == notice.reference)
    if held is not None:  # held once: staff decide it, a repeat changes nothing
        return Outcome("duplicate", notice.reference, review_id=held.id)
    payment = Payment.get_or_none(Payment.gateway == notice.gateway, Payment.reference == notice.refund_of)
    reason = None
    if payment is None:
        reason = f"refund of payment {notice.refund_of!r}, which is not recorded"
    else:
        try:
            row, _created = record(payment, notice.amount, reference=notice.reference,
                                   reason=notice.message or "reported by the gateway")
            return Outcome("recorded", notice.reference, payment_id=payment.id, refund_id=row.id)
        except ValidationError as exc:
            reason = str(exc)
    with database.atomic():
        if PaymentReview.select().where(PaymentReview.gateway == notice.gateway,
                                        PaymentReview.reference == notice.reference).exists():
            return Outcome("duplicate", notice.reference)  # a racing delivery held it meanwhile
        customer = payment.customer if payment is not None and payment.customer_id else None
        return hold(notice, reason, customer=customer)
