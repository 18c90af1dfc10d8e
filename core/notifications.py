"""Customer notifications: queued once per key with their text, then delivered by notifier plugins.

:func:`queue` renders a message template for a customer and stores the result as a
``Notification`` row, once per ``key`` however often it is called: the caller names the
occasion in the key (``event:<id>:<template>``), so a repeated event or job sends
nothing twice. :func:`deliver_pending` sends waiting rows through
:func:`core.notify.send`, outside any transaction so that no lock is held while a mail
server (or any notifier's service) answers. Each try is claimed first, so two deliverers never send the same try.
A failed try is retried after a pause that doubles from a minute up to six hours,
counted from when the row was queued; after ``MAX_ATTEMPTS`` tries (about 20 hours) the
row is marked ``failed`` with its last error.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import peewee

from core import messages, notify, settings
from core.clock import utcnow
from core.db import database, is_unique_violation
from core.errors import ValidationError
from core.hooktypes import Message
from core.models import NOTIFICATION_STATUSES, Customer, Notification

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
FIRST_RETRY = dt.timedelta(minutes=1)
LONGEST_RETRY = dt.timedelta(hours=6)
KEY_MAX = 200


def retry_delay(attempts: int) -> dt.timedelta:
    """The pause after the ``attempts``-th failed try before the next one."""
    return min(FIRST_RETRY * 2 ** min(attempts - 1, 20), LONGEST_RETRY)


def _waited(attempts: int) -> dt.timedelta:
    """How long after queueing the try following ``attempts`` failed ones is due."""
    return sum((retry_delay(n) for n in range(1, attempts + 1)), dt.timedelta())


def next_attempt_at(row: Notification) -> dt.datetime | None:
    """When a pending row is tried next (``None`` once it is sent, failed or skipped)."""
    if row.status != "pending":
        return None
    return row.created_at + _waited(min(row.attempts, MAX_ATTEMPTS))


def recipient(customer: Customer, channel: str) -> str | None:
    """Where a message on ``channel`` goes: the e-mail address for ``email``, else the phone number."""
    return customer.email if channel == "email" else customer.phone


def queue(key: str, customer: Customer, template: str, context: dict, channel: str = "email") -> Notification:
    """Queue template ``template`` rendered with ``context`` for ``customer``, once per ``key``.

    A second call with the same key writes nothing and returns the row the first one made,
    also when both run at the same time. A customer with no address for the channel gets
    a ``skipped`` row saying so. Raises :class:`ValidationError` (writing nothing) when the
    template cannot be rendered.
    """
    if not key or len(key) > KEY_MAX:
        raise ValueError(f"a notification key is 1 to {KEY_MAX} characters, got {key!r}")
    existing = Notification.get_or_none(Notification.key == key)
    if existing is not None:
        return existing
    subject, body = messages.render(template, context)
    to = recipient(customer, channel)
    row = {"key": key, "customer": customer.id, "template": template, "channel": channel, "recipient": to,
           "subject": subject, "body": body, "status": "pending", "attempts": 0, "created_at": utcnow()}
    if not to:
        what = "e-mail address" if channel == "email" else "phone number"
        row |= {"status": "skipped", "last_error": f"customer {customer.account_number} has no {what}"}
    try:
        with database.atomic():
            return Notification.create(**row)
    except peewee.IntegrityError as exc:  # queued by someone else meanwhile: theirs is the one
        if not is_unique_violation(exc):
            raise
        return Notification.get(Notification.key == key)


@dataclass
class Outcome:
    """What one :func:`deliver_pending` call did; ``errors`` pairs each failed row's id with its error."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.sent} sent, {self.retrying} to retry, {self.failed} failed"


def _due(now: dt.datetime):
    """Pending rows whose next try has come, as a condition both backends evaluate the same."""
    condition = None
    for attempts in range(MAX_ATTEMPTS + 1):
        tries = Notification.attempts >= attempts if attempts == MAX_ATTEMPTS else Notification.attempts == attempts
        clause = tries & (Notification.created_at <= now - _waited(attempts))
        condition = clause if condition is None else condition | clause
    return condition


def _claim(row: Notification) -> bool:
    """Count this try on the row; ``False`` when another deliverer took it first."""
    with database.atomic():
        taken = (Notification.update(attempts=Notification.attempts + 1)
                 .where(Notification.id == row.id, Notification.status == "pending",
                        Notification.attempts == row.attempts)
                 .execute())
    return taken == 1


def _error_text(exc: Exception) -> str:
    return " ".join(str(exc).split())[:2000] or exc.__class__.__name__


def deliver_pending(limit: int = 100, pm=None, now: dt.datetime | None = None,
                    include_waiting: bool = False) -> Outcome:
    """Send up to ``limit`` pending notifications whose time has come, oldest first.

    ``include_waiting`` also sends those still waiting for their next try. Must not run
    inside a transaction: no lock is held while a notifier talks to its service.
    """
    if database.in_transaction():
        raise RuntimeError("deliver_pending waits on notifiers' services: call it outside a transaction")
    query = Notification.select().where(Notification.status == "pending")
    if not include_waiting:
        query = query.where(_due(now or utcnow()))
    outcome = Outcome()
    with settings.snapshot():
        for row in list(query.order_by(Notification.id).limit(limit)):
            if not _claim(row):
                continue
            message = Message(channel=row.channel, to=row.recipient or "", subject=row.subject or "",
                              body=row.body or "", customer_id=row.customer_id, template=row.template)
            try:
                delivery = notify.send(message, pm=pm)
            except Exception as exc:  # whatever the notifier raised: recorded, tried again later
                _failed(row, exc, outcome)
                continue
            with database.atomic():
                Notification.update(status="sent", notifier=delivery.notifier[:60],
                                    reference=None if delivery.reference is None else str(delivery.reference)[:200],
                                    sent_at=utcnow(), last_error=None).where(Notification.id == row.id).execute()
            outcome.sent += 1
    return outcome


def _failed(row: Notification, exc: Exception, outcome: Outcome) -> None:
    attempts = row.attempts + 1
    final = attempts >= MAX_ATTEMPTS
    error = _error_text(exc)
    with database.atomic():
        Notification.update(status="failed" if final else "pending", last_error=error).where(
            Notification.id == row.id).execute()
    outcome.errors.append((row.id, error))
    if final:
        outcome.failed += 1
        log.error("notification %s (%s to %s) failed after %d tries: %s", row.id, row.template, row.recipient,
                  attempts, error)
    else:
        outcome.retrying += 1
        log.warning("notification %s (%s to %s) not delivered, try %d of %d: %s", row.id, row.template,
                    row.recipient, attempts, MAX_ATTEMPTS, error)


def listing(status: str | None = None, customer: Customer | None = None, limit: int = 100) -> list[Notification]:
    """Notifications, newest first, optionally of one status or one customer."""
    query = Notification.select().order_by(Notification.id.desc()).limit(limit)
    if status is not None:
        if status not in NOTIFICATION_STATUSES:
            raise ValidationError(f"status must be one of {', '.join(NOTIFICATION_STATUSES)}", "status")
        query = query.where(Notification.status == status)
    if customer is not None:
        query = query.where(Notification.customer == customer.id)
    return list(query)


def as_dict(row: Notification) -> dict:
    """A notification as JSON for the CLI and the API (without its body)."""
    def when(value):
        return None if value is None else value.isoformat(timespec="seconds")
    return {
        "id": row.id, "key": row.key, "customer_id": row.customer_id, "template": row.template,
        "channel": row.channel, "recipient": row.recipient, "subject": row.subject, "status": row.status,
        "attempts": row.attempts, "last_error": row.last_error, "notifier": row.notifier,
        "reference": row.reference, "created_at": when(row.created_at), "sent_at": when(row.sent_at),
        "next_attempt_at": when(next_attempt_at(row)),
    }
