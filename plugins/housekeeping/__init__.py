"""Routine upkeep: collecting usage from the usage sources, and clean-up of ended staff sessions."""

from core import hookimpl, sessions, usage
from core.hooktypes import Job


@hookimpl
def register_jobs():
    """Usage collection every five minutes; at 03:17 UTC, staff sessions ended 30 days ago are deleted."""
    return [Job(id="housekeeping.purge_sessions", func=sessions.purge, trigger="cron",
                schedule={"hour": 3, "minute": 17}, description="delete long-ended staff sessions"),
            Job(id="usage.collect", func=usage.collect, trigger="interval", schedule={"minutes": 5},
                description="collect usage from the usage sources (RADIUS accounting, ...)")]
