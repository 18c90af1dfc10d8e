"""The daily reminders: an invoice falling due soon, and overdue accounts reminded again.

Keys make a run safe to repeat: an invoice gets one ``due_soon`` message ever
(``due_soon:invoice:<id>``), and an account one repeated reminder per round of
``reminders.repeat_days`` in its current state
(``reminder:<customer id>:<state changed at>:<round>``). A run missed is made up by the
next one.
"""

from __future__ import annotations

import datetime as dt

from core import messages, notifications, settings
from core.clock import today as utc_today
from core.models import Customer, Invoice, Notification

REPEAT_STATES = ("reminded", "throttled", "suspended")  # a terminated account is not chased by mail


def _new(key: str) -> bool:
    return not Notification.select().where(Notification.key == key).exists()


def queue_due_soon(today: dt.date, days_before: int) -> int:
    """Queue ``due_soon`` for unpaid invoices due within ``days_before`` days; return how many were new.

    An invoice issued that close to its due date is left out: its own message said when
    it is due.
    """
    invoices = (Invoice.select(Invoice, Customer).join(Customer)
                .where(Invoice.status == "issued", Invoice.total_minor > Invoice.settled_minor,
                       Invoice.due_date >= today, Invoice.due_date <= today + dt.timedelta(days=days_before),
                       Customer.state != "terminated")
                .order_by(Invoice.id))
    queued = 0
    for invoice in invoices:
        if invoice.issue_date is not None and (invoice.due_date - invoice.issue_date).days <= days_before:
            continue
        key = f"due_soon:invoice:{invoice.id}"
        if _new(key):
            notifications.queue(key, invoice.customer, "due_soon", messages.invoice_context(invoice, today))
            queued += 1
    return queued


def queue_repeats(today: dt.date, every_days: int) -> int:
    """Queue ``reminder`` again for accounts overdue for each further ``every_days`` in their state."""
    customers = (Customer.select()
                 .where(Customer.state.in_(REPEAT_STATES), Customer.state_changed_at.is_null(False))
                 .order_by(Customer.id))
    queued = 0
    for customer in customers:
        if customer.promise_until is not None and customer.promise_until >= today:
            continue
        since = customer.state_changed_at
        round_ = (today - since.date()).days // every_days
        if round_ < 1:
            continue
        key = f"reminder:{customer.id}:{since.isoformat(timespec='seconds')}:{round_}"
        if not _new(key):
            continue
        if not messages.overdue(customer, today)[0]:
            continue  # paid meanwhile: dunning restores the account on its next run
        notifications.queue(key, customer, "reminder", messages.account_context(customer, today=today))
        queued += 1
    return queued


def send(today: dt.date | None = None) -> int:
    """One run of the reminders job; returns how many messages it queued."""
    today = today or utc_today()
    queued = 0
    days_before = settings.get("reminders.days_before_due")
    if days_before:
        queued += queue_due_soon(today, days_before)
    every = settings.get("reminders.repeat_days")
    if every:
        queued += queue_repeats(today, every)
    return queued
