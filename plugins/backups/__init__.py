"""Nightly backups: the ``backups.*`` settings and the ``backups.nightly`` job (see docs/backups.md)."""

import logging

from core import hookimpl
from core.hooktypes import Job, SettingSpec

log = logging.getLogger(__name__)
DEFAULT_AT = "02:30"


def _keep(text: str) -> int:
    """A whole number of archives from 1 to 1000."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"expected a whole number of backups, got {text!r}") from None
    if not 1 <= value <= 1000:
        raise ValueError("keep between 1 and 1000 backups")
    return value


def _at(text: str) -> str:
    """A time of day as HH:MM (24-hour, UTC)."""
    hour, minute = _hour_minute(text)
    return f"{hour:02d}:{minute:02d}"


def _hour_minute(text: str) -> tuple[int, int]:
    parts = str(text).strip().split(":")
    try:
        hour, minute = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected a time like 02:30, got {text!r}") from None
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"expected a time like 02:30, got {text!r}")
    return hour, minute


def _directory(text: str) -> str:
    """An absolute directory path, or empty for DATA_DIR/backups."""
    value = str(text).strip()
    if value and not value.startswith(("/", "~")):
        raise ValueError("give an absolute path, or leave empty for DATA_DIR/backups")
    return value


def nightly():
    """Write a backup with the configured directory and retention."""
    from core import backup

    return str(backup.create())


@hookimpl
def register_settings():
    """How many backups to keep, when the nightly one runs, and where they go."""
    return [
        SettingSpec("backups.keep", "Backups to keep", default=14, parse=_keep,
                    help="Older archives in the backup directory are deleted after each backup."),
        SettingSpec("backups.at", "Nightly backup time (HH:MM, UTC)", default=DEFAULT_AT, parse=_at,
                    help="Takes effect when the scheduler restarts."),
        SettingSpec("backups.dir", "Backup directory", default="", parse=_directory,
                    help="Absolute path; empty for DATA_DIR/backups."),
    ]


@hookimpl
def register_jobs():
    """``backups.nightly`` at the ``backups.at`` time (UTC), read when the scheduler starts."""
    from core import settings

    try:
        hour, minute = _hour_minute(settings.get_or("backups.at", DEFAULT_AT))
    except Exception as exc:  # no database bound or no settings table yet: the default time
        log.warning("backups.at not readable (%s); nightly backup at %s UTC", exc, DEFAULT_AT)
        hour, minute = _hour_minute(DEFAULT_AT)
    return [Job(id="backups.nightly", func=nightly, trigger="cron", schedule={"hour": hour, "minute": minute},
                description="back up the database and the settings")]
