"""The scheduler's own built-in plugin: outbox delivery every quarter second, and the schedules setting.

The outbox job runs in the scheduler that holds the lease, in a loop thread of its own
(its interval is under a second, see docs/scheduler.md), so an event committed by any
process reaches the ``handle_event`` plugins within about a quarter of a second.
"""

from core import events, hookimpl
from core.clock import utcnow
from core.db import database
from core.hooktypes import Job
from core.models import Event

INTERVAL_SECONDS = 0.25


def any_due() -> bool:
    """Whether an event waits to be offered now: one small query on the ``dispatched_at`` index.

    Four times a second, building the ORM query of a full dispatch would cost ten times
    more than the query itself. The condition is the one ``events.dispatch_pending`` uses,
    or looser, never stricter: at worst a dispatch runs and finds nothing.
    """
    db = database.obj
    p = db.param
    sql = (f'SELECT 1 FROM "{Event._meta.table_name}" WHERE dispatched_at IS NULL AND attempts < {p} '
           f"AND (next_attempt_at IS NULL OR next_attempt_at <= {p}) LIMIT 1")
    return db.execute_sql(sql, (events.MAX_ATTEMPTS, utcnow())).fetchone() is not None


def dispatch() -> int:
    """Offer the due events to plugins; return how many were delivered."""
    return events.dispatch_pending() if any_due() else 0


@hookimpl
def register_jobs():
    """One job: hand pending events to every ``handle_event`` implementation."""
    return [Job(id="event_outbox.dispatch", func=dispatch, trigger="interval",
                schedule={"seconds": INTERVAL_SECONDS}, description="deliver domain events to plugins")]


@hookimpl
def register_settings():
    """``scheduler.schedules``: other schedules for any registered job."""
    from core import scheduler

    return [scheduler.schedules_setting()]
