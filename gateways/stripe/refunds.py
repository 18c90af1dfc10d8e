"""Refunds through Stripe's API: creating one for a recorded payment, and listing a charge's refunds."""

from __future__ import annotations

from core.errors import ValidationError
from core.hooktypes import RefundResult
from core.money import Money
from gateways.stripe import amounts, client
from gateways.stripe.settings import StripeConfig

GATEWAY = "stripe"
REASON_KEY = "wispbill_reason"
_METADATA_VALUE_LIMIT = 500  # Stripe's limit on one metadata value
_REFUND_FIELDS = ("id", "amount", "currency", "status", "charge", "payment_intent", "reason")


def refund(payment, amount: Money, reason: str, config: StripeConfig) -> RefundResult:
    """Refund ``amount`` of ``payment`` (a core Payment row whose reference is a payment intent)."""
    if amount.currency != payment.currency:
        raise ValidationError(f"cannot refund {amount} of a {payment.currency} payment", "amount")
    if amount.minor <= 0:
        raise ValidationError(f"cannot refund {amount}: the amount must be positive", "amount")
    paid = Money(payment.amount_minor, payment.currency)
    if amount > paid:
        raise ValidationError(f"cannot refund {amount}: the payment was {paid}", "amount")
    if payment.reference.startswith("cs_"):
        raise ValidationError(f"Stripe payment {payment.reference} has no payment intent to refund; "
                              "refund it in the Stripe Dashboard")
    params = {"payment_intent": payment.reference, "amount": amounts.to_stripe(amount)}
    if reason and reason.strip():
        # Stripe's own reason field takes three fixed values only; free text goes in metadata.
        params["metadata"] = {REASON_KEY: reason.strip()[:_METADATA_VALUE_LIMIT]}
    api = client.connect(config)
    with client.refusals(f"Stripe refused the refund of {payment.reference}", config):
        created = client.services(api).refunds.create(params=params)
    status = client.field(created, "status")
    reference = client.field(created, "id")
    if not reference:
        raise ValidationError("Stripe's answer to the refund has no refund id")
    if status in ("failed", "canceled"):
        raise ValidationError(f"Stripe refund {reference} of {payment.reference} {status}")
    refunded = amounts.from_stripe(client.field(created, "amount"), client.field(created, "currency"))
    return RefundResult(GATEWAY, reference=reference, amount=refunded,
                        status="succeeded" if status == "succeeded" else "pending")


def list_for_charge(charge_id: str, config: StripeConfig) -> list[dict]:
    """Every refund of charge ``charge_id``, as plain dicts, fetched page by page."""
    api = client.connect(config)
    with client.refusals(f"could not list the refunds of charge {charge_id}", config):
        page = client.services(api).refunds.list(params={"charge": charge_id, "limit": 100})
        return [{**{name: client.field(item, name) for name in _REFUND_FIELDS},
                 "metadata": client.plain(client.field(item, "metadata"))}
                for item in page.auto_paging_iter()]
