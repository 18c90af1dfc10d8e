"""Delivers the domain-event outbox to plugins from the scheduler, every few seconds."""

from core import events, hookimpl
from core.hooktypes import Job

INTERVAL_SECONDS = 5


@hookimpl
def register_jobs():
    """One job: hand pending events to every ``handle_event`` implementation."""
    return [Job(id="event_outbox.dispatch", func=events.dispatch_pending, trigger="interval",
                schedule={"seconds": INTERVAL_SECONDS}, description="deliver domain events to plugins")]
