"""M-Pesa Express (STK push): asking the payer's phone for a payment, and reading the result callback."""

from __future__ import annotations

import base64
import datetime as dt

from core.errors import ValidationError
from core.hooktypes import PaymentNotice, PaymentRequest, PaymentStart
from core.money import Money

from gateways.mpesa import formats
from gateways.mpesa.daraja import Client, DarajaError
from gateways.mpesa.settings import MpesaConfig, check_public_url

GATEWAY = "mpesa"
PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
ACCOUNT_REFERENCE_MAX = 12
DESCRIPTION_MAX = 13


def password(shortcode: str, passkey: str, timestamp: str) -> str:
    """Daraja's request password: base64 of shortcode, passkey and timestamp run together."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode()


def callback_base(config: MpesaConfig, notify_url: str | None) -> str:
    """Where this gateway's callbacks are received: the override, else the core's notify URL."""
    base = (config.callback_base_url or notify_url or "").rstrip("/")
    if not base:
        raise ValidationError("M-Pesa needs the public address of wispbill for its callbacks: set web.base_url "
                              "or mpesa.callback_base_url", "notify_url")
    try:
        return check_public_url(base, "the M-Pesa callback address")
    except ValueError as exc:
        raise ValidationError(str(exc), "notify_url") from None


def client_for(config: MpesaConfig) -> Client:
    """A Daraja client for the configured app."""
    return Client(config.api_base, config.consumer_key or "", config.consumer_secret or "",
                  secrets=config.secrets)


def push_payload(request: PaymentRequest, config: MpesaConfig, shillings: int, phone: str,
                 now: dt.datetime | None = None) -> dict:
    """The documented processrequest body for ``request``."""
    timestamp = formats.kenya_timestamp(now)
    base = callback_base(config, request.notify_url)
    account = (request.account or request.reference or "wispbill").strip()[:ACCOUNT_REFERENCE_MAX]
    description = (request.description or "Payment").strip()[:DESCRIPTION_MAX] or "Payment"
    return {
        "BusinessShortCode": config.shortcode,
        "Password": password(config.shortcode, config.passkey, timestamp),
        "Timestamp": timestamp,
        "TransactionType": config.transaction_type,
        "Amount": shillings,
        "PartyA": phone,
        "PartyB": config.party_b,
        "PhoneNumber": phone,
        "CallBackURL": f"{base}/stk/{config.callback_token}",
        "AccountReference": account,
        "TransactionDesc": description,
    }


def start(request: PaymentRequest, config: MpesaConfig, now: dt.datetime | None = None) -> PaymentStart:
    """Send an STK push for ``request``; the push's CheckoutRequestID is the start's reference.

    Cents are rounded up to the next shilling, and the start then names the amount asked.
    Every refusal (settings missing, a bad phone number, Daraja saying no or not answering)
    is a :class:`ValidationError` with a one-line message.
    """
    if not config.configured:
        raise ValidationError("M-Pesa is not set up yet: set " + ", ".join(config.missing), "gateway")
    phone = formats.normalise_phone(request.phone)
    shillings, asked = formats.whole_shillings(request.amount)
    payload = push_payload(request, config, shillings, phone, now)
    try:
        answer = client_for(config).post(PUSH_PATH, payload, "the payment request")
    except DarajaError as exc:
        raise ValidationError(str(exc)) from None
    code = str(answer.get("ResponseCode", "")).strip()
    checkout = str(answer.get("CheckoutRequestID") or "").strip()
    if code != "0" or not checkout:
        detail = " ".join(str(answer.get("ResponseDescription") or "no reason given").split())[:200]
        raise ValidationError(f"M-Pesa refused the payment request: {detail}")
    message = " ".join(str(answer.get("CustomerMessage") or "").split()) or (
        f"Check your phone: enter your M-Pesa PIN to pay {asked}.")
    return PaymentStart(GATEWAY, reference=checkout, message=message,
                        amount=asked if asked != request.amount else None)


# --- the result callback ----------------------------------------------------------

def read_callback(data: dict, config: MpesaConfig, now: dt.datetime | None = None) -> list[PaymentNotice]:
    """The notice in an STK result callback (``Body.stkCallback``): a payment or a failure."""
    body = data.get("Body")
    result = body.get("stkCallback") if isinstance(body, dict) else None
    if not isinstance(result, dict):
        raise ValidationError("malformed M-Pesa callback: no Body.stkCallback")
    checkout = _text(result, "CheckoutRequestID")
    code = result.get("ResultCode")
    if code is None or isinstance(code, bool) or str(code).strip() == "":
        raise ValidationError("malformed M-Pesa callback: no ResultCode")
    code = str(code).strip()
    desc = " ".join(str(result.get("ResultDesc") or "").split())[:200]
    raw = {"MerchantRequestID": str(result.get("MerchantRequestID") or ""), "CheckoutRequestID": checkout,
           "ResultCode": code, "ResultDesc": desc}
    if code != "0":
        return [PaymentNotice(GATEWAY, reference=checkout, kind="failure", amount=Money(0, formats.CURRENCY),
                              attempt=checkout, method=GATEWAY, raw=raw, message=desc or None)]

    items = _metadata(result)
    for name in ("Amount", "MpesaReceiptNumber", "TransactionDate"):
        if items.get(name) in (None, ""):
            raise ValidationError(f"malformed M-Pesa callback: no {name} in CallbackMetadata")
    amount = formats.read_amount(items["Amount"], "Amount")
    receipt = formats.read_receipt(items["MpesaReceiptNumber"], "MpesaReceiptNumber")
    received = formats.read_kenya_time(items["TransactionDate"], "TransactionDate")
    formats.check_fresh(received, "TransactionDate", config.max_age_hours, now)
    phone = items.get("PhoneNumber")
    payer = str(phone).strip() if phone not in (None, "") and not isinstance(phone, bool) else None
    raw.update({"Amount": str(items["Amount"]), "MpesaReceiptNumber": receipt,
                "TransactionDate": str(items["TransactionDate"]), "PhoneNumber": payer})
    return [PaymentNotice(GATEWAY, reference=receipt, kind="payment", amount=amount, attempt=checkout,
                          payer=payer, method=GATEWAY, received_at=received, raw=raw)]


def _text(mapping: dict, key: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
        raise ValidationError(f"malformed M-Pesa callback: no {key}")
    return str(value).strip()[:200]


def _metadata(result: dict) -> dict:
    """``CallbackMetadata.Item`` (a list of ``{"Name", "Value"}``) as a dict."""
    meta = result.get("CallbackMetadata")
    items = meta.get("Item") if isinstance(meta, dict) else None
    if not isinstance(items, list):
        raise ValidationError("malformed M-Pesa callback: no CallbackMetadata.Item list")
    found = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("Name"), str):
            found[item["Name"]] = item.get("Value")
    return found
