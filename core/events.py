"""Domain events: written to an outbox with the change, handed to plugins after commit.

:func:`emit` must run inside the transaction of the change, so an event exists exactly
when its change does. :func:`dispatch_pending` offers undelivered events to every
``handle_event`` implementation; an event whose handler raised stays pending (with the
error) and is offered again after a growing pause (5 s, 10 s, 20 s, ... up to an hour),
so handlers must be idempotent on ``event.id``. After ``MAX_ATTEMPTS`` failures (about
a day and a half of retrying) the event is left for staff, with its last error.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import re

from core.bulk import insert_one
from core.clock import utcnow
from core.db import database
from core.hooktypes import DomainEvent
from core.models import Event, to_json
from core.plugins import get_manager

_NAME = re.compile(r"^[a-z_]+\.[a-z_]+$")
MAX_ATTEMPTS = 40
FIRST_RETRY = dt.timedelta(seconds=5)
LONGEST_RETRY = dt.timedelta(hours=1)
CLAIM = dt.timedelta(minutes=2)  # a dispatcher that dies mid-delivery leaves the event for this long
_collected: contextvars.ContextVar[list | None] = contextvars.ContextVar("wispbill_events_collected", default=None)


def retry_delay(attempts: int) -> dt.timedelta:
    """How long to wait before offering an event again after ``attempts`` failures."""
    return min(FIRST_RETRY * (2 ** min(attempts - 1, 20)), LONGEST_RETRY)


def emit(name: str, payload: dict) -> Event:
    """Record event ``name`` (``noun.verb``) in the outbox of the current transaction."""
    if not _NAME.match(name):
        raise ValueError(f"event name {name!r} must look like 'invoice.issued'")
    if not database.in_transaction():
        raise RuntimeError("events.emit must run inside the transaction of the change")
    now = utcnow()
    row_id = insert_one(database.obj, "event", {"name": name, "payload": to_json(payload), "created_at": now,
                                                "attempts": 0})
    collected = _collected.get()
    if collected is not None:
        collected.append(row_id)
    return Event(id=row_id, name=name, payload=payload, created_at=now, attempts=0)


def collect():
    """Start remembering the ids of events emitted in this context; returns a token for :func:`collected`.

    The web app uses it to hand a request's events to plugins as soon as the request is
    done, rather than at the dispatch job's next run.
    """
    return _collected.set([])


def collected(token) -> list[int]:
    """Stop remembering (``token`` from :func:`collect`); the ids emitted since, committed or not."""
    ids = _collected.get() or []
    _collected.reset(token)
    return ids


def _claim(row_id: int, now: dt.datetime) -> bool:
    """Take an event for delivery, so that two dispatchers at once do not both deliver it."""
    with database.atomic():
        return Event.update(next_attempt_at=now + CLAIM).where(
            (Event.id == row_id) & Event.dispatched_at.is_null() & (Event.attempts < MAX_ATTEMPTS)
            & (Event.next_attempt_at.is_null() | (Event.next_attempt_at <= now))).execute() == 1


def _deliver(pm, rows) -> int:
    delivered = 0
    for row in rows:
        if not _claim(row.id, utcnow()):
            continue
        event = DomainEvent(id=row.id, name=row.name, payload=row.payload, created_at=row.created_at)
        _results, errors = pm.call_all("handle_event", event=event)
        with database.atomic():
            if errors:
                Event.update(attempts=Event.attempts + 1,
                             next_attempt_at=utcnow() + retry_delay(row.attempts + 1),
                             last_error="; ".join(str(e) for e in errors)[:2000]).where(Event.id == row.id).execute()
            else:
                Event.update(dispatched_at=utcnow(), attempts=Event.attempts + 1,
                             last_error=None).where(Event.id == row.id).execute()
                delivered += 1
    return delivered


def dispatch_pending(pm=None, limit: int = 500) -> int:
    """Offer pending events to plugins in order; return how many were delivered."""
    now = utcnow()
    pending = (Event.select()
               .where(Event.dispatched_at.is_null() & (Event.attempts < MAX_ATTEMPTS)
                      & (Event.next_attempt_at.is_null() | (Event.next_attempt_at <= now)))
               .order_by(Event.id).limit(limit))
    return _deliver(pm or get_manager(), list(pending))


def dispatch_ids(ids, pm=None) -> int:
    """Offer the pending events among ``ids`` to plugins now, in order; return how many were delivered."""
    ids = sorted(set(ids))
    if not ids:
        return 0
    rows = list(Event.select().where(Event.id.in_(ids) & Event.dispatched_at.is_null()).order_by(Event.id))
    return _deliver(pm or get_manager(), rows)
