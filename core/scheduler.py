"""The scheduler: APScheduler running the jobs that the core and plugins register.

Jobs come from the ``register_jobs`` hook (the core's own jobs are registered by its
built-in plugins the same way). Each run gets its own database connection. A job that
raises is logged with its id; the scheduler keeps going.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.blocking import BlockingScheduler

from core.db import connection
from core.errors import PluginError
from core.hooktypes import Job
from core.plugins import get_manager

log = logging.getLogger(__name__)
TRIGGERS = ("interval", "cron", "date")


def collect_jobs(pm=None) -> list[Job]:
    """Every registered job, checked: unique ids, known triggers, callable functions."""
    pm = pm or get_manager()
    jobs: dict[str, Job] = {}
    # Registration order: a built-in's job id cannot be taken over by an installed plugin.
    for plugin, job in reversed(pm.call_items("register_jobs", Job)):
        problem = None
        if job.id in jobs:
            problem = f"job id {job.id!r} is already registered"
        elif job.trigger not in TRIGGERS:
            problem = f"job {job.id!r}: unknown trigger {job.trigger!r}"
        elif not callable(job.func):
            problem = f"job {job.id!r}: func is not callable"
        if problem:
            log.error("%s", PluginError(plugin, "register_jobs", problem))
            continue
        jobs[job.id] = job
    return list(jobs.values())


def run_job(job: Job):
    """Run one job with a database connection held for its length; log failures."""
    with connection():
        try:
            return job.func()
        except Exception:
            log.exception("job %s failed", job.id)
            raise


def build_scheduler(jobs: list[Job], scheduler_cls=BlockingScheduler):
    """An APScheduler scheduler with ``jobs`` added (not started)."""
    scheduler = scheduler_cls(timezone="UTC")
    for job in jobs:
        try:
            scheduler.add_job(run_job, job.trigger, args=[job], id=job.id, name=job.description or job.id,
                              coalesce=True, max_instances=1, replace_existing=True, **job.schedule)
        except (TypeError, ValueError) as exc:  # a bad schedule leaves out its job, not the scheduler
            log.error("job %s not scheduled: bad schedule %r: %s", job.id, job.schedule, exc)
    return scheduler
