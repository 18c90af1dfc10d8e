"""Keeps routers in step: retries pending changes, reconciles every router, follows service changes."""

from core import enforcement, hookimpl
from core.db import database
from core.hooktypes import Job

SERVICE_EVENTS = ("service.created", "service.changed", "service.cancelled")


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
