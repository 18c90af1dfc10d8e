"""Payment gateway ``manual``: money staff received by hand (cash, bank transfer, cheque, mobile money).

Staff record these payments with ``wispbill payments add`` (or the console); each gets a
receipt. There are no webhooks. A refund is money handed back by staff, recorded with a
reference of its own.
"""

import secrets

from core import hookimpl
from core.errors import ValidationError
from core.hooktypes import GatewayInfo, RefundResult

NAME = "manual"


@hookimpl
def gateway_describe():
    """Manual payments: any currency, refundable, never offered on a pay link."""
    return GatewayInfo(NAME, "Received by staff (cash, transfer, cheque, mobile money)", can_refund=True,
                       interactive=False, webhooks=False)


@hookimpl
def gateway_start_payment(gateway, request):
    """Staff take manual payments in person; there is nothing to start."""
    if gateway != NAME:
        return None
    raise ValidationError("manual payments are recorded by staff when the money arrives", "gateway")


@hookimpl
def gateway_parse_notification(gateway, notification):
    """Manual payments have no webhooks: any notification is refused."""
    if gateway != NAME:
        return None
    raise ValidationError("manual payments are recorded by staff, not by notification")


@hookimpl
def gateway_refund(gateway, payment, amount, reason):
    """Money handed back by staff: accepted at once, with a reference of its own."""
    if gateway != NAME:
        return None
    return RefundResult(NAME, f"{payment.reference[:150]}-R{secrets.token_hex(4).upper()}", amount)
