"""Customer-to-business payments (paying the paybill or till from the phone): URL registration, payloads."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from core.errors import ValidationError
from core.hooktypes import PaymentNotice
from core.money import Money

from gateways.mpesa import formats
from gateways.mpesa.daraja import Client
from gateways.mpesa.settings import MpesaConfig

GATEWAY = "mpesa"
REGISTER_PATH = "/mpesa/c2b/{version}/registerurl"
RESPONSE_TYPES = ("Completed", "Cancelled")
# Daraja's register URL documentation: URLs naming M-Pesa or Safaricom are filtered out.
FORBIDDEN_WORDS = re.compile(r"m-?pesa|safaricom", re.IGNORECASE)
_PLAIN_MSISDN = re.compile(r"254[0-9]{9}")


@dataclass(frozen=True)
class C2BPayment:
    """The fields of a validation or confirmation request that wispbill uses."""

    trans_id: str
    amount: Money
    shortcode: str
    bill_ref: str
    paid_at: dt.datetime
    transaction_type: str
    msisdn: str
    first_name: str

    @property
    def payer(self) -> str | None:
        """The payer's first name, and the phone number when Daraja sent it unmasked."""
        parts = [self.first_name]
        if _PLAIN_MSISDN.fullmatch(self.msisdn):
            parts.append(self.msisdn)
        return " ".join(p for p in parts if p)[:200] or None

    @property
    def raw(self) -> dict:
        """What is worth keeping with a recorded payment."""
        return {"TransactionType": self.transaction_type, "TransID": self.trans_id,
                "TransAmount": self.amount.format_plain(), "BusinessShortCode": self.shortcode,
                "BillRefNumber": self.bill_ref, "TransTime": self.paid_at.isoformat()}


def read_payment(data: dict, config: MpesaConfig, now: dt.datetime | None = None) -> C2BPayment:
    """Check and read a C2B validation or confirmation body.

    Refuses (``ValidationError``) a body missing a field, an amount that is not a
    positive shilling amount, a shortcode other than ``mpesa.c2b_shortcode`` and a
    ``TransTime`` older than ``mpesa.max_age_hours``.
    """
    for key in ("TransID", "TransTime", "TransAmount", "BusinessShortCode"):
        if data.get(key) in (None, ""):
            raise ValidationError(f"malformed M-Pesa payment notice: no {key}")
    shortcode = str(data["BusinessShortCode"]).strip()
    if shortcode != config.c2b_shortcode:
        raise ValidationError(f"M-Pesa payment notice for shortcode {shortcode[:20]!r}, which is not ours")
    paid_at = formats.read_kenya_time(data["TransTime"], "TransTime")
    formats.check_fresh(paid_at, "TransTime", config.max_age_hours, now)
    return C2BPayment(
        trans_id=formats.read_receipt(data["TransID"], "TransID"),
        amount=formats.read_amount(data["TransAmount"], "TransAmount"),
        shortcode=shortcode,
        bill_ref=_clean(data.get("BillRefNumber"), 100),
        paid_at=paid_at,
        transaction_type=_clean(data.get("TransactionType"), 40),
        msisdn=_clean(data.get("MSISDN"), 100),
        first_name=_clean(data.get("FirstName"), 100),
    )


def confirmation_notices(payment: C2BPayment) -> list[PaymentNotice]:
    """A confirmation is money received: one payment notice, placed by its account reference."""
    return [PaymentNotice(GATEWAY, reference=payment.trans_id, kind="payment", amount=payment.amount,
                          account=payment.bill_ref or None, received_at=payment.paid_at, method=GATEWAY,
                          payer=payment.payer, raw=payment.raw)]


def _clean(value, limit: int) -> str:
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    return " ".join(str(value).split())[:limit]


# --- registering the URLs ---------------------------------------------------------

def urls(config: MpesaConfig, hooks_base: str) -> dict[str, str]:
    """The confirmation and validation URLs under ``hooks_base`` (``<base>/hooks/mpesa``)."""
    base = hooks_base.rstrip("/")
    return {"ConfirmationURL": f"{base}/c2b/confirm/{config.callback_token}",
            "ValidationURL": f"{base}/c2b/validate/{config.callback_token}"}


def register_urls(client: Client, config: MpesaConfig, hooks_base: str, response_type: str = "Completed",
                  version: str = "v2") -> dict:
    """Register the C2B URLs of ``config.c2b_shortcode`` with Daraja; Daraja's answer.

    ``response_type`` says what M-Pesa does with a payment when the validation URL
    cannot be reached: ``Completed`` takes it, ``Cancelled`` refuses it.
    """
    if response_type not in RESPONSE_TYPES:
        raise ValidationError(f"response type must be one of {', '.join(RESPONSE_TYPES)}", "response_type")
    payload = {"ShortCode": config.c2b_shortcode, "ResponseType": response_type, **urls(config, hooks_base)}
    return client.post(REGISTER_PATH.format(version=version), payload, "the URL registration")
