"""Dunning as a built-in plugin: the daily run, and an account restored the moment its debt is paid.

The job ``dunning.run`` evaluates, once a day, the customers whose account state or prepaid
access changes that day. Between runs, the events that change what a customer owes
(a payment, a refund, a credit note, a new invoice) re-evaluate that customer at once, so
a subscriber who pays is back online without waiting for the run.
"""

import logging

from core import dunning, hookimpl
from core.errors import NotFound
from core.hooktypes import Job

log = logging.getLogger(__name__)

# The events after which a customer's overdue balance may have changed.
EVENTS = frozenset({"payment.received", "payment.refunded", "credit_note.issued", "invoice.issued"})
RUN_AT = {"hour": 1, "minute": 0}  # UTC, after the billing run has issued the day's invoices
ACTOR = "dunning"


def run_today():
    """The dunning run for today."""
    return dunning.run()


@hookimpl
def register_jobs():
    """``dunning.run``, daily at 01:00 UTC; running it again the same day changes nothing."""
    return [Job(id="dunning.run", func=run_today, trigger="cron", schedule=dict(RUN_AT),
                description="move overdue accounts through the dunning steps; expire prepaid services")]


@hookimpl
def handle_event(event):
    """Re-evaluate the customer an event names; a second delivery finds nothing to change."""
    if event.name not in EVENTS:
        return
    customer_id = (event.payload or {}).get("customer_id")
    if not isinstance(customer_id, int) or isinstance(customer_id, bool):
        return
    try:
        dunning.evaluate_customer(customer_id, actor=ACTOR)
    except NotFound:  # nothing to restore for a customer who does not exist
        log.warning("dunning: event %s names customer %s, who does not exist", event.id, customer_id)
