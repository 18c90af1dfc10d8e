"""Keeps routers in step: retries pending changes, reconciles every router, follows service changes."""

from core import enforcement, hookimpl
from core.db import database
from core.hooktypes import Job, SettingSpec

SERVICE_EVENTS = ("service.created", "service.changed", "service.cancelled")


def _portal_url(text: str) -> str:
    from core.routers import parse_portal_url, portal_url

    if not text.strip():
        return ""
    return portal_url(*parse_portal_url(text))


@hookimpl
def register_settings():
    """Where routers send suspended subscribers."""
    return [SettingSpec("web.portal_url", "Address routers send suspended subscribers to",
                        default="", parse=_portal_url,
                        help="This server's portal port by IP address, e.g. http://10.0.0.2:8081 "
                             "('wispbill serve --portal-port 8081'); used by 'wispbill routers script'.")]


@hookimpl
def register_jobs():
    """Two jobs: push pending changes (retries), and the full reconcile of every router."""
    return [
        Job(id="enforcement.push", func=lambda: enforcement.push_pending(), trigger="interval",
            schedule={"seconds": 2}, description="apply pending router changes (with retries)"),
        Job(id="enforcement.reconcile", func=enforcement.reconcile_all, trigger="interval",
            schedule={"minutes": 15}, description="full reconcile of every router (repairs drift)"),
    ]


@hookimpl
def handle_event(event):
    """A service created, changed or cancelled: recompute what its router should hold, and push it."""
    if event.name not in SERVICE_EVENTS:
        return None
    service_id = event.payload.get("service_id")
    if service_id is None:
        return None
    with database.atomic():
        changed = enforcement.refresh_services([service_id])
    if changed:
        enforcement.push_pending(changed)
    return None
