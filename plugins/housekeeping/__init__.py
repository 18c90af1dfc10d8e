"""Routine upkeep: collecting usage from the usage sources, and clean-up of ended sessions and old sign-in failures."""

from core import hookimpl, login_throttle, portal_accounts, sessions, usage
from core.hooktypes import Job


def purge_ended() -> dict:
    """Delete staff and portal sessions ended 30 days ago, used or expired reset links, and old sign-in failures."""
    return {"staff_sessions": sessions.purge(), "portal": portal_accounts.purge(),
            "login_failures": login_throttle.purge()}


@hookimpl
def register_jobs():
    """Usage collection every five minutes; at 03:17 UTC, ended sessions and old sign-in failures are deleted."""
    return [Job(id="housekeeping.purge_sessions", func=purge_ended, trigger="cron",
                schedule={"hour": 3, "minute": 17},
                description="delete long-ended sessions, spent reset links and old sign-in failures"),
            Job(id="usage.collect", func=usage.collect, trigger="interval", schedule={"minutes": 5},
                description="collect usage from the usage sources (RADIUS accounting, ...)")]
