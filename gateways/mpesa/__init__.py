"""Payment gateway ``mpesa``: Safaricom M-Pesa through the Daraja API.

Payments start as an M-Pesa Express (STK) push to the payer's phone; the result comes
back to ``/hooks/mpesa/stk/<token>``. Customers who pay the paybill or till directly
are confirmed at ``/hooks/mpesa/c2b/confirm/<token>`` (and, when Safaricom has turned
validation on, asked about first at ``/hooks/mpesa/c2b/validate/<token>``). Refunds
are not offered: see docs/gateways/mpesa.md.
"""

from core import hookimpl
from core.hooktypes import GatewayInfo

from gateways.mpesa import callbacks, stk
from gateways.mpesa import settings as mpesa_settings

NAME = "mpesa"


@hookimpl
def register_settings():
    """The ``mpesa.*`` settings."""
    return mpesa_settings.specs()


@hookimpl
def register_commands(cli):
    """``wispbill mpesa register-urls``."""
    from gateways.mpesa.cli import mpesa_group

    cli.add_command(mpesa_group)


@hookimpl
def gateway_describe():
    """M-Pesa, in KES, asking the payer for a phone number; offered once its settings are complete."""
    config = mpesa_settings.load()
    return GatewayInfo(NAME, "M-Pesa", currencies=("KES",), can_refund=False, configured=config.configured,
                       asks_for=("phone",), settings=tuple(config.needed()))


@hookimpl
def gateway_start_payment(gateway, request):
    """Send an STK push to the payer's phone."""
    if gateway != NAME:
        return None
    return stk.start(request, mpesa_settings.load())


@hookimpl
def gateway_parse_notification(gateway, notification):
    """Verify and read an STK result or a C2B validation or confirmation."""
    if gateway != NAME:
        return None
    return callbacks.parse(notification, mpesa_settings.load())


@hookimpl
def gateway_reply(gateway, notification, error):
    """Answer Daraja in its own terms (accept or reject a validation, acknowledge the rest)."""
    if gateway != NAME:
        return None
    return callbacks.reply(notification, error, mpesa_settings.load(), _match_reference)


def _match_reference(text: str):
    """The customer (and invoice) that ``text`` names, or ``None``."""
    from core import customers
    from core.models import Customer

    match = getattr(customers, "match_reference", None)
    if match is not None:
        return match(text)
    # Until the core can match invoice numbers and free text: the account number alone.
    wanted = {text.strip(), text.strip().upper()}
    customer = Customer.select().where(Customer.account_number.in_(wanted)).first()
    return (customer, None) if customer else None
