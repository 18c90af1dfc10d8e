"""Payment gateway: card payments through Stripe Checkout, with signed webhooks and API refunds.

The hooks only route: settings are in :mod:`.settings`, amounts in :mod:`.amounts`,
starting a payment in :mod:`.checkout`, webhooks in :mod:`.events` and refunds in
:mod:`.refunds`. Operator documentation: ``docs/gateways/stripe.md``.
"""

from __future__ import annotations

from core import hookimpl
from core.hooktypes import GatewayInfo
from gateways.stripe import checkout, events, refunds, settings

GATEWAY = checkout.GATEWAY


@hookimpl
def register_settings():
    """The API key, the webhook signing secret, the API address and the webhook tolerance."""
    return settings.specs()


@hookimpl
def register_commands(cli):
    """``wispbill bench payments``: signed webhooks through the web app, timed."""
    from gateways.stripe import commands

    commands.register(cli)

# What a browser loads to pay on Stripe Checkout: kept reachable for suspended subscribers.
CHECKOUT_HOSTS = ("checkout.stripe.com", "js.stripe.com", "api.stripe.com", "m.stripe.network", "m.stripe.com")


@hookimpl
def gateway_describe():
    """One gateway, ``stripe``, for any currency Stripe takes; configured once both keys are set."""
    return GatewayInfo(GATEWAY, "Card (Stripe)", can_refund=True, configured=settings.load().configured,
                       settings=(settings.SECRET_KEY, settings.WEBHOOK_SECRET), hosts=CHECKOUT_HOSTS)


@hookimpl
def gateway_start_payment(gateway, request):
    """Create a Checkout Session and send the payer to it."""
    if gateway != GATEWAY:
        return None
    return checkout.start(request, settings.load())


@hookimpl
def gateway_parse_notification(gateway, notification):
    """Verify a Stripe webhook and read the payments, failures and refunds it announces."""
    if gateway != GATEWAY:
        return None
    return events.parse(notification, settings.load())


@hookimpl
def gateway_refund(gateway, payment, amount, reason):
    """Refund part or all of a payment through Stripe's Refunds API."""
    if gateway != GATEWAY:
        return None
    return refunds.refund(payment, amount, reason, settings.load())
