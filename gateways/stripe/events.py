"""Webhooks: verifying a Stripe event's signature, and reading the events that move money.

A payment made through Checkout is announced twice, by ``checkout.session.completed``
and by ``payment_intent.succeeded``. Both name the payment intent as the notice's
reference, so the core records one payment whichever arrives first, and however often
Stripe delivers either.
"""

from __future__ import annotations

import datetime as dt
import json

import stripe

from core.errors import ValidationError
from core.hooktypes import Notification, PaymentNotice
from gateways.stripe import amounts, refunds
from gateways.stripe.checkout import ATTEMPT_KEY, GATEWAY
from gateways.stripe.settings import TOLERANCE, WEBHOOK_SECRET, StripeConfig

SIGNATURE_HEADER = "Stripe-Signature"
METHOD = "card"
_GONE_REFUNDS = ("failed", "canceled")  # no money went back


class _Event:
    """A verified event and the helpers that read its ``data.object`` strictly."""

    def __init__(self, data: dict):
        self.id = data.get("id")
        self.type = data.get("type")
        body = data.get("data")
        self.object = body.get("object") if isinstance(body, dict) else None
        if not isinstance(self.id, str) or not isinstance(self.type, str) or not isinstance(self.object, dict):
            raise ValidationError("Stripe webhook refused: not an event (it needs id, type and data.object)")
        self.created = _utc(data.get("created"))

    def missing(self, name: str) -> ValidationError:
        return ValidationError(f"Stripe event {self.id} ({self.type}) has no {name}")

    def text(self, obj: dict, name: str) -> str:
        value = obj.get(name)
        if not isinstance(value, str) or not value:
            raise self.missing(name)
        return value

    def money(self, obj: dict, name: str, currency: str | None = None):
        if name not in obj or obj[name] is None:
            raise self.missing(name)
        money = amounts.from_stripe(obj[name], currency or self.text(obj, "currency"))
        if money.minor <= 0:
            raise ValidationError(f"Stripe event {self.id} ({self.type}) has {name} {obj[name]}, not a positive amount")
        return money

    def raw(self, **ids) -> dict:
        return {"event": self.id, "type": self.type, **ids}


def _utc(stamp) -> dt.datetime | None:
    """A Unix time as a naive UTC datetime; ``None`` when it is missing or absurd."""
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        return None
    try:
        return dt.datetime.fromtimestamp(stamp, dt.timezone.utc).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        return None


def _header(headers: dict, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value
    return None


def _signature_problem(exc: stripe.SignatureVerificationError) -> str:
    text = exc.user_message or str(exc)
    if "tolerance" in text:
        return f"it was signed longer ago than {TOLERANCE} allows (a replayed or delayed event)"
    if "matching the expected signature" in text:
        return f"the signature does not match (check {WEBHOOK_SECRET})"
    return f"the {SIGNATURE_HEADER} header is malformed"


def verify(notification: Notification, config: StripeConfig) -> dict:
    """The event's JSON once Stripe's library has checked its signature and age; ValidationError otherwise."""
    if not config.webhook_secret:
        raise ValidationError(f"Stripe webhook refused: {WEBHOOK_SECRET} is not set")
    header = _header(notification.headers, SIGNATURE_HEADER)
    if not header:
        raise ValidationError(f"Stripe webhook refused: no {SIGNATURE_HEADER} header")
    try:
        # The library's own check of the signature and its age; the event is then read once,
        # as plain JSON, rather than built into the library's objects and thrown away.
        stripe.WebhookSignature.verify_header(notification.body, header, config.webhook_secret,
                                              tolerance=config.tolerance)
        data = json.loads(notification.body)
    except stripe.SignatureVerificationError as exc:
        raise ValidationError(f"Stripe webhook refused: {_signature_problem(exc)}") from None
    except ValueError:  # not UTF-8, or not JSON
        raise ValidationError("Stripe webhook refused: the body is not a Stripe event in JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("Stripe webhook refused: the body is not a JSON object")
    if data.get("object", "event") != "event":  # a thin (v2) event notification
        raise ValidationError("Stripe webhook refused: the body is not a Stripe event in JSON")
    return data


def _id_of(value) -> str | None:
    """An id from a field that is either the id or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _metadata(obj: dict) -> dict:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _number(value) -> int | None:
    """A positive id from metadata ("42"), or None for anything else."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and not value.startswith("0"):
        return int(value)
    return None


def _payment(event: _Event, obj: dict, reference: str, amount, attempt, payer, raw) -> PaymentNotice:
    meta = _metadata(obj)
    return PaymentNotice(
        GATEWAY, reference, "payment", amount,
        customer_id=_number(meta.get("customer_id")), invoice_id=_number(meta.get("invoice_id")),
        attempt=attempt or meta.get(ATTEMPT_KEY) or None, method=METHOD,
        payer=payer if isinstance(payer, str) and payer else None,
        received_at=event.created, raw=raw,
    )


def _session_paid(event: _Event, config: StripeConfig) -> list[PaymentNotice]:
    session = event.object
    if session.get("payment_status") != "paid":
        return []
    session_id = event.text(session, "id")
    reference = _id_of(session.get("payment_intent")) or session_id
    details = session.get("customer_details")
    payer = details.get("email") if isinstance(details, dict) else None
    attempt = session.get("client_reference_id")
    return [_payment(event, session, reference, event.money(session, "amount_total"),
                     attempt if isinstance(attempt, str) else None, payer, event.raw(session=session_id))]


def _intent_succeeded(event: _Event, config: StripeConfig) -> list[PaymentNotice]:
    intent = event.object
    intent_id = event.text(intent, "id")
    return [_payment(event, intent, intent_id, event.money(intent, "amount_received"), None,
                     intent.get("receipt_email"), event.raw(payment_intent=intent_id))]


def _intent_failed(event: _Event, config: StripeConfig) -> list[PaymentNotice]:
    intent = event.object
    intent_id = event.text(intent, "id")
    meta = _metadata(intent)
    error = intent.get("last_payment_error")
    error = error if isinstance(error, dict) else {}
    raw = event.raw(payment_intent=intent_id, code=error.get("decline_code") or error.get("code"))
    return [PaymentNotice(
        GATEWAY, intent_id, "failure", event.money(intent, "amount"),
        customer_id=_number(meta.get("customer_id")), invoice_id=_number(meta.get("invoice_id")),
        attempt=meta.get(ATTEMPT_KEY) or None, method=METHOD, received_at=event.created, raw=raw,
        message=str(error.get("message") or "")[:200] or None,
    )]


def _charge_refunds(charge: dict, charge_id: str, config: StripeConfig) -> list:
    listed = charge.get("refunds")
    if isinstance(listed, dict) and isinstance(listed.get("data"), list) and not listed.get("has_more"):
        return listed["data"]
    # Since API version 2022-11-15 a charge no longer embeds its refunds: ask for them.
    try:
        return refunds.list_for_charge(charge_id, config)
    except ValidationError as exc:
        # Nothing is wrong with the event: answer 500 so that Stripe delivers it again.
        raise ConnectionError(str(exc)) from None


def _charge_refunded(event: _Event, config: StripeConfig) -> list[PaymentNotice]:
    charge = event.object
    charge_id = event.text(charge, "id")
    refund_of = _id_of(charge.get("payment_intent")) or charge_id
    notices = []
    for item in _charge_refunds(charge, charge_id, config):
        if not isinstance(item, dict):
            raise event.missing("refund object")
        if item.get("status") in _GONE_REFUNDS:
            continue
        refund_id = event.text(item, "id")
        currency = item.get("currency") or event.text(charge, "currency")
        raw = event.raw(charge=charge_id, refund=refund_id)
        reason = _metadata(item).get(refunds.REASON_KEY) or item.get("reason")
        notices.append(PaymentNotice(
            GATEWAY, refund_id, "refund", event.money(item, "amount", currency), refund_of=refund_of,
            received_at=event.created, raw=raw,
            message=f"refunded in Stripe: {reason}"[:200] if isinstance(reason, str) and reason else None,
        ))
    return notices


HANDLERS = {
    "checkout.session.completed": _session_paid,
    "checkout.session.async_payment_succeeded": _session_paid,
    "payment_intent.succeeded": _intent_succeeded,
    "payment_intent.payment_failed": _intent_failed,
    "charge.refunded": _charge_refunded,
}


def parse(notification: Notification, config: StripeConfig) -> list[PaymentNotice]:
    """Verify a webhook and read it into notices; [] for an event type that moves no money."""
    event = _Event(verify(notification, config))
    handler = HANDLERS.get(event.type)
    return [] if handler is None else handler(event, config)
