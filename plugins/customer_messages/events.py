"""Which message a domain event sends: invoices, receipts and account-state changes.

Each message is queued under the key ``event:<event id>:<template>``, so an event that
is delivered again sends nothing twice. An event naming a row that no longer exists
sends nothing.
"""

from __future__ import annotations

import logging

from core import messages, notifications
from core.hooktypes import DomainEvent
from core.models import Customer, Invoice, Payment

log = logging.getLogger(__name__)

ACCOUNT_TEMPLATES = {
    "account.reminded": "reminder",
    "account.throttled": "throttled",
    "account.suspended": "suspended",
    "account.terminated": "terminated",
    "account.restored": "restored",
}
RESTORED_FROM = ("throttled", "suspended")  # a reminded account that pays was never cut off: no message


def _row(model, value):
    try:
        return model.get_or_none(model.id == int(value))
    except (TypeError, ValueError):
        return None


def _queue(event: DomainEvent, customer: Customer, template: str, context: dict) -> None:
    notifications.queue(f"event:{event.id}:{template}", customer, template, context)


def handle(event: DomainEvent) -> None:
    """Queue the message ``event`` calls for, if any."""
    payload = event.payload or {}
    if event.name == "invoice.issued":
        invoice = _row(Invoice, payload.get("invoice_id"))
        if invoice is None or invoice.number is None:
            log.info("event %s: no issued invoice %r, no message", event.id, payload.get("invoice_id"))
            return
        _queue(event, invoice.customer, "invoice", messages.invoice_context(invoice))
    elif event.name == "payment.received":
        payment = _row(Payment, payload.get("payment_id"))
        if payment is None or payment.customer_id is None:
            log.info("event %s: no payment %r with a customer, no receipt", event.id, payload.get("payment_id"))
            return
        _queue(event, payment.customer, "receipt", messages.payment_context(payment))
    elif event.name in ACCOUNT_TEMPLATES:
        template = ACCOUNT_TEMPLATES[event.name]
        if template == "restored" and payload.get("from_state") not in RESTORED_FROM:
            return
        customer = _row(Customer, payload.get("customer_id"))
        if customer is None:
            log.info("event %s: no customer %r, no message", event.id, payload.get("customer_id"))
            return
        _queue(event, customer, template, messages.account_context(customer, payload))
