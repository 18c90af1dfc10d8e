"""The daily billing run as a scheduled job, at a time the operator sets."""

from core import billing, hookimpl, settings
from core.clock import today
from core.hooktypes import Job, SettingSpec


def _time_of_day(text: str) -> str:
    """``HH:MM`` on a 24-hour clock, in UTC."""
    hour, _, minute = text.strip().partition(":")
    if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60 and len(minute) == 2):
        raise ValueError(f"expected a time like 00:30, got {text!r}")
    return f"{int(hour):02d}:{minute}"


def run_today():
    """Bill everything due today; what could not be billed is logged by the run."""
    return billing.run(today())


@hookimpl
def register_settings():
    """When the daily run starts."""
    return [SettingSpec("billing.run_at", "Daily billing run at (UTC, HH:MM)", default="00:30", parse=_time_of_day)]


@hookimpl
def register_jobs():
    """The billing run, once a day at ``billing.run_at``; re-running it the same day bills nothing twice."""
    hour, minute = settings.get("billing.run_at").split(":")
    return [Job(id="billing.run", func=run_today, trigger="cron", schedule={"hour": int(hour), "minute": int(minute)},
                description="bill everything due today")]
