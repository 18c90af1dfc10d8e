"""Daily clean-up of records that have served their purpose (ended staff sessions)."""

from core import hookimpl, sessions
from core.hooktypes import Job


@hookimpl
def register_jobs():
    """One job, at 03:17 UTC: delete staff sessions that ended more than 30 days ago."""
    return [Job(id="housekeeping.purge_sessions", func=sessions.purge, trigger="cron",
                schedule={"hour": 3, "minute": 17}, description="delete long-ended staff sessions")]
