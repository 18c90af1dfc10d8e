"""A request's domain events, handed to plugins as soon as the request has committed.

Without this, an event waits for the dispatch job (every few seconds). With it, a payment
recorded by a gateway's notification or by staff restores the subscriber at once: the
events the request emitted are delivered on a thread of their own after the view
returns. The response waits for that thread up to ``EVENTS_WAIT_SECONDS`` (1 s unless
the app's config says otherwise), so a staff member who records a payment usually sees
its effect on the next page; a slow router does not hold the response longer than that.
The dispatch job still picks up anything this misses, and delivery is claimed per event,
so the two never deliver the same event twice at once.
"""

from __future__ import annotations

import logging
import threading

from flask import current_app, g

from core import events
from core.db import database

log = logging.getLogger(__name__)

WAIT_SECONDS = 1.0


def begin() -> None:
    """Start collecting the events this request emits."""
    g.events_token = events.collect()


def _deliver(ids: list[int], pm) -> None:
    try:
        database.connect(reuse_if_open=True)
        events.dispatch_ids(ids, pm=pm)
    except Exception:  # the dispatch job delivers them later
        log.exception("delivering events %s after the request failed; the dispatch job will retry", ids)
    finally:
        if not database.is_closed():
            database.close()


def finish(exc) -> None:
    """Hand the request's events to plugins (on success), waiting a little for them."""
    token = g.pop("events_token", None)
    if token is None:
        return
    ids = events.collected(token)
    if exc is not None or not ids:
        return
    wait = current_app.config.get("EVENTS_WAIT_SECONDS", WAIT_SECONDS)
    worker = threading.Thread(target=_deliver, args=(ids, current_app.extensions["wispbill.plugins"]),
                              name="wispbill-events", daemon=True)
    worker.start()
    worker.join(wait)
