"""Starting a payment: one Stripe Checkout Session (hosted payment page) per wispbill attempt."""

from __future__ import annotations

import urllib.parse

from core.errors import ValidationError
from core.hooktypes import PaymentRequest, PaymentStart
from gateways.stripe import amounts, client
from gateways.stripe.settings import StripeConfig

GATEWAY = "stripe"
ATTEMPT_KEY = "wispbill_attempt"  # metadata key naming the core's attempt reference
_NAME_LIMIT = 250


def metadata(request: PaymentRequest) -> dict:
    """What the session and its payment intent carry back to us in every event."""
    data = {ATTEMPT_KEY: request.reference, "customer_id": str(request.customer_id)}
    if request.invoice_id is not None:
        data["invoice_id"] = str(request.invoice_id)
    return data


def _return_url(request: PaymentRequest) -> str:
    url = request.return_url
    parts = urllib.parse.urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("Stripe Checkout needs an absolute http(s) return URL for the payer", "return_url")
    return url


def session_params(request: PaymentRequest) -> dict:
    """The Checkout Session to create for ``request`` (one line item, payment mode)."""
    if request.amount.minor <= 0:
        raise ValidationError(f"cannot collect {request.amount}: the amount must be positive", "amount")
    unit_amount = amounts.to_stripe(request.amount)
    return_url = _return_url(request)
    name = (request.description or request.reference).strip()[:_NAME_LIMIT] or request.reference
    meta = metadata(request)
    params = {
        "mode": "payment",
        "line_items": [{
            "price_data": {
                "currency": request.amount.currency.lower(),
                "unit_amount": unit_amount,
                "product_data": {"name": name},
            },
            "quantity": 1,
        }],
        "client_reference_id": request.reference,
        "metadata": meta,
        "payment_intent_data": {"metadata": dict(meta)},
        "success_url": return_url,
        "cancel_url": return_url,
    }
    if request.email:
        params["customer_email"] = request.email
    return params


def start(request: PaymentRequest, config: StripeConfig) -> PaymentStart:
    """Create the Checkout Session and send the payer to its page."""
    if not config.configured:
        raise ValidationError("Stripe is not configured: set stripe.secret_key and stripe.webhook_secret",
                              "gateway")
    params = session_params(request)
    api = client.connect(config)
    # One session per attempt even if the request is retried after a lost answer.
    options = {"idempotency_key": f"wispbill-checkout-{request.reference}"}
    with client.refusals("could not start the Stripe checkout", config):
        session = client.services(api).checkout.sessions.create(params=params, options=options)
    session_id, url = client.field(session, "id"), client.field(session, "url")
    if not session_id or not url:
        raise ValidationError("could not start the Stripe checkout: Stripe's answer has no session id or URL")
    return PaymentStart(GATEWAY, reference=session_id, redirect_url=url)
