"""Receiving Daraja's callbacks: which kind a path is, whether to believe it, and what to answer.

Daraja signs nothing, so a callback is believed only when its URL ends in the secret
``mpesa.callback_token``, it comes from an allowed address (when ``mpesa.allowed_ips``
is set) and the transaction time is recent.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from decimal import Decimal

from core.errors import ValidationError
from core.hooktypes import Notification, PaymentNotice, WebhookReply

from gateways.mpesa import c2b, stk
from gateways.mpesa.settings import MpesaConfig

log = logging.getLogger(__name__)

STK = "stk"
CONFIRM = "c2b/confirm"
VALIDATE = "c2b/validate"
KINDS = (STK, CONFIRM, VALIDATE)

ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}
VALIDATION_ACCEPTED = {"ResultCode": "0", "ResultDesc": "Accepted"}
# Daraja's documented validation rejection codes.
INVALID_ACCOUNT = "C2B00012"
OTHER_ERROR = "C2B00016"


def split_path(path: str) -> tuple[str | None, str | None]:
    """``(kind, token)`` for ``stk/<token>``, ``c2b/confirm/<token>``, ``c2b/validate/<token>``."""
    parts = [p for p in (path or "").strip("/").split("/") if p]
    for kind in KINDS:
        head = kind.split("/")
        if parts[:len(head)] == head and len(parts) <= len(head) + 1:
            return kind, (parts[len(head)] if len(parts) > len(head) else None)
    return None, None


def parse(notification: Notification, config: MpesaConfig) -> list[PaymentNotice]:
    """Verify ``notification`` and read its notices; ``ValidationError`` for anything not believed."""
    if not config.callback_token:
        raise ValidationError("M-Pesa callbacks are refused until mpesa.callback_token is set")
    kind, token = split_path(notification.path)
    if kind is None:
        raise ValidationError("unknown M-Pesa callback path")
    if not token:
        raise ValidationError("M-Pesa callback URL without its token")
    if not hmac.compare_digest(token.encode(), config.callback_token.encode()):
        raise ValidationError("wrong M-Pesa callback token")
    check_source(notification.remote_addr, config.allowed_ips)
    data = read_json(notification.body)
    if kind == STK:
        return stk.read_callback(data, config)
    payment = c2b.read_payment(data, config)
    return c2b.confirmation_notices(payment) if kind == CONFIRM else []


def check_source(remote_addr: str | None, allowed: tuple[str, ...]) -> None:
    """Refuse a source address outside ``allowed`` (no list: any address)."""
    if not allowed:
        return
    try:
        address = ipaddress.ip_address((remote_addr or "").strip())
    except ValueError:
        raise ValidationError(f"M-Pesa callback from an unknown address {remote_addr!r}") from None
    if not any(address in ipaddress.ip_network(net, strict=False) for net in allowed):
        raise ValidationError(f"M-Pesa callback from {address}, which is not in mpesa.allowed_ips")


def read_json(body: bytes) -> dict:
    """The JSON object in ``body``, numbers with decimals as ``Decimal``."""
    try:
        data = json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError):
        raise ValidationError("malformed M-Pesa callback: the body is not JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("malformed M-Pesa callback: the body is not a JSON object")
    return data


# --- answers ------------------------------------------------------------------------

def reply(notification: Notification, error: str | None, config: MpesaConfig, match_reference) -> WebhookReply:
    """The answer Daraja expects.

    A validation request (already checked, so its amount is positive) is accepted when
    ``match_reference(BillRefNumber)`` finds a customer, else rejected with the
    invalid-account code. Confirmations and push results are acknowledged. A refused
    callback gets status 400 and a rejection body.
    """
    kind, _token = split_path(notification.path)
    if error is not None:
        code = OTHER_ERROR if kind == VALIDATE else 1
        return _json({"ResultCode": code, "ResultDesc": f"Rejected: {error}"[:200]}, 400)
    if kind != VALIDATE:
        return _json(ACCEPTED)
    try:
        payment = c2b.read_payment(read_json(notification.body), config)
    except ValidationError as exc:  # the core read it already; only a setting changed in between lands here
        return _json({"ResultCode": OTHER_ERROR, "ResultDesc": f"Rejected: {exc}"[:200]})
    try:
        found = match_reference(payment.bill_ref) if payment.bill_ref else None
    except Exception:
        log.exception("M-Pesa validation of account %r failed", payment.bill_ref)
        return _json({"ResultCode": OTHER_ERROR, "ResultDesc": "Rejected"})
    if not found:
        return _json({"ResultCode": INVALID_ACCOUNT, "ResultDesc": "Rejected"})
    return _json(VALIDATION_ACCEPTED)


def _json(data: dict, status: int = 200) -> WebhookReply:
    return WebhookReply(status=status, body=json.dumps(data), content_type="application/json")
