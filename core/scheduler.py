"""The scheduler: the jobs that the core and plugins register, run by one leader at a time.

Jobs come from the ``register_jobs`` hook (the core's own jobs are registered by its
built-in plugins the same way). The ``scheduler.schedules`` setting may give any job
another schedule, or turn it off. :class:`Runner` runs the jobs only while its process
holds the ``scheduler`` lease (:mod:`core.lease`); another instance waits and takes over
when the leader stops or dies. Each run gets its own database connection; a job that
raises is logged with its id and the scheduler keeps going. See docs/scheduler.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import threading
import time

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from core import lease
from core.db import connection, database
from core.errors import ConfigError, PluginError
from core.hooktypes import Job, SettingSpec
from core.plugins import get_manager

log = logging.getLogger(__name__)
TRIGGERS = ("interval", "cron", "date")

LEASE_NAME = "scheduler"
LEASE_SECONDS = 15.0
RENEW_SECONDS = 5.0
LOOP_BELOW = dt.timedelta(seconds=1)  # interval jobs more frequent than this run in a loop thread of their own
MISFIRE_GRACE_SECONDS = 60
SCHEDULES_SETTING = "scheduler.schedules"
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_INTERVAL_KEYS = {"weeks", "days", "hours", "minutes", "seconds"}


# --- which jobs --------------------------------------------------------------------

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


# --- schedules as operators write them ------------------------------------------------

@dataclasses.dataclass(frozen=True)
class When:
    """A schedule: APScheduler ``trigger`` and its keyword arguments, or ``trigger=None`` for off."""

    trigger: str | None
    schedule: dict
    text: str


_EVERY = re.compile(r"^every\s+(\d+(?:\.\d+)?)\s*([smhd])$")
_DAILY = re.compile(r"^daily\s+(\d{1,2}):(\d{2})$")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
HELP = "every 30s, every 15m, every 6h, every 1d, daily 02:30, cron 0 2 * * * or off (times in UTC)"


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def parse_when(text: str) -> When:
    """Read one schedule as an operator writes it (see :data:`HELP`); ``ValueError`` if it is not one."""
    value = " ".join(str(text).split()).lower()
    if value == "off":
        return When(None, {}, "off")
    match = _EVERY.match(value)
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        if dt.timedelta(**{_UNITS[unit]: amount}) < dt.timedelta(seconds=0.1):
            raise ValueError(f"{text.strip()!r} is too often: the shortest interval is 0.1s")
        amount = _number(amount)
        return When("interval", {_UNITS[unit]: amount}, f"every {amount}{unit}")
    match = _DAILY.match(value)
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour > 23 or minute > 59:
            raise ValueError(f"{text.strip()!r}: no such time of day")
        return When("cron", {"hour": hour, "minute": minute}, f"daily {hour:02d}:{minute:02d}")
    if value.startswith("cron "):
        fields = value[5:].split()
        if len(fields) != 5:
            raise ValueError(f"{text.strip()!r}: a cron schedule has 5 fields: minute hour day month weekday")
        schedule = dict(zip(("minute", "hour", "day", "month", "day_of_week"), fields))
        schedule["day_of_week"] = _crontab_weekdays(fields[4])
        try:
            CronTrigger(timezone="UTC", **schedule)
        except ValueError as exc:
            raise ValueError(f"{text.strip()!r}: {exc}") from None
        return When("cron", schedule, "cron " + " ".join(fields))
    raise ValueError(f"expected {HELP}; got {text.strip()!r}")


def _crontab_weekdays(field: str) -> str:
    """A crontab weekday field (0 or 7 is Sunday) as APScheduler's day names (for which 0 is Monday)."""
    if not re.search(r"\d", field) or field == "*":
        return field
    days: set[int] = set()
    for part in field.split(","):
        match = re.match(r"^(\*|\d)(?:-(\d))?(?:/(\d+))?$", part)
        if not match:
            raise ValueError(f"weekday {part!r}: use numbers 0-7 or names like mon-fri, not both")
        first, last, step = match.group(1), match.group(2), int(match.group(3) or 1)
        start, stop = (0, 6) if first == "*" else (int(first), int(last) if last else int(first))
        if match.group(3) and first != "*" and not last:  # "1/2": from Monday, every other day
            stop = 6
        if stop > 7 or start > stop or step == 0:
            raise ValueError(f"weekday {part!r} is not a range of 0-7")
        days.update(d % 7 for d in range(start, stop + 1, step))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def describe(trigger: str, schedule: dict) -> str:
    """A job's own schedule in the words of :func:`parse_when` where it has them."""
    if trigger == "interval" and schedule and set(schedule) <= _INTERVAL_KEYS:
        seconds = dt.timedelta(**schedule).total_seconds()
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size and seconds % size == 0:
                return f"every {int(seconds // size)}{unit}"
        return f"every {_number(round(seconds, 3))}s"
    if trigger == "cron" and set(schedule) <= {"hour", "minute"} and "hour" in schedule:
        hour, minute = str(schedule["hour"]), str(schedule.get("minute", 0))
        if hour.isdigit() and minute.isdigit():
            return f"daily {int(hour):02d}:{int(minute):02d}"
    return f"{trigger} " + ", ".join(f"{k}={v}" for k, v in sorted(schedule.items()))


def parse_schedules(text: str, known=None) -> str:
    """Check a ``scheduler.schedules`` value and return it tidied (entries sorted by job id).

    The value is ``JOB=SCHEDULE`` entries separated by ``;`` or new lines; empty means
    every job keeps its own schedule. ``known`` are the job ids that may be named
    (default: the jobs registered now).
    """
    entries = _entries(text)
    if entries:
        known = set(known if known is not None else (job.id for job in collect_jobs()))
        unknown = sorted(set(entries) - known)
        if unknown:
            raise ValueError(f"no job {', '.join(map(repr, unknown))}; jobs: {', '.join(sorted(known)) or 'none'}")
    return "; ".join(f"{job_id}={when.text}" for job_id, when in sorted(entries.items()))


def _entries(text) -> dict[str, When]:
    entries: dict[str, When] = {}
    for part in re.split(r"[;\n]", str(text or "")):
        if not part.strip():
            continue
        job_id, sep, when = part.partition("=")
        job_id = job_id.strip()
        if not sep or not job_id or not when.strip():
            raise ValueError(f"expected JOB=SCHEDULE entries separated by ';', got {part.strip()!r}")
        if job_id in entries:
            raise ValueError(f"job {job_id!r} is named twice")
        try:
            entries[job_id] = parse_when(when)
        except ValueError as exc:
            raise ValueError(f"{job_id}: {exc}") from None
    return entries


def schedules_setting() -> SettingSpec:
    """The ``scheduler.schedules`` setting (declared by the built-in ``event_outbox`` plugin)."""
    return SettingSpec(SCHEDULES_SETTING, "Job schedules that differ from the jobs' own", default="",
                       parse=parse_schedules,
                       help=f"JOB=SCHEDULE entries separated by ';', each schedule one of {HELP}, e.g. "
                            "'billing.run=daily 02:30; housekeeping.purge_sessions=off'. "
                            "wispbill scheduler --list shows every job's schedule. "
                            "Takes effect when the scheduler (re)starts or takes over.")


@dataclasses.dataclass(frozen=True)
class Planned:
    """A job with its effective schedule: ``job`` carries it; ``enabled`` is False when it is off."""

    job: Job
    when: str
    overridden: bool
    enabled: bool


def planned(jobs: list[Job] | None = None, pm=None) -> list[Planned]:
    """Every job with the schedule it runs on: its own, or the one ``scheduler.schedules`` gives it.

    Reads the setting, so it needs a database connection.
    """
    from core import settings

    jobs = collect_jobs(pm) if jobs is None else jobs
    try:
        overrides = _entries(settings.get_or(SCHEDULES_SETTING, "", pm=pm))
    except ValueError as exc:  # stored before a plugin changed; the jobs keep their own schedules
        log.error("%s ignored: %s", SCHEDULES_SETTING, exc)
        overrides = {}
    for job_id in sorted(set(overrides) - {job.id for job in jobs}):
        log.warning("%s names job %r, which no plugin registers", SCHEDULES_SETTING, job_id)
    out = []
    for job in jobs:
        when = overrides.get(job.id)
        if when is None:
            out.append(Planned(job, describe(job.trigger, job.schedule), False, True))
        elif when.trigger is None:
            out.append(Planned(job, when.text, True, False))
        else:
            out.append(Planned(dataclasses.replace(job, trigger=when.trigger, schedule=dict(when.schedule)),
                               when.text, True, True))
    return out


# --- running jobs ------------------------------------------------------------------

def run_job(job: Job):
    """Run one job with a database connection held for its length; log failures."""
    with connection():
        try:
            return job.func()
        except Exception:
            log.exception("job %s failed", job.id)
            raise


def _run_scheduled(job: Job) -> None:
    """:func:`run_job` for APScheduler: a failure is logged there and goes no further."""
    started = time.monotonic()
    try:
        run_job(job)
    except Exception:
        return
    log.debug("job %s done in %.2f s", job.id, time.monotonic() - started)


def build_scheduler(jobs: list[Job], scheduler_cls=BlockingScheduler):
    """An APScheduler scheduler with ``jobs`` added (not started)."""
    scheduler = scheduler_cls(timezone="UTC")
    for job in jobs:
        try:
            scheduler.add_job(_run_scheduled, job.trigger, args=[job], id=job.id, name=job.description or job.id,
                              coalesce=True, max_instances=1, misfire_grace_time=MISFIRE_GRACE_SECONDS,
                              replace_existing=True, **job.schedule)
        except (TypeError, ValueError) as exc:  # a bad schedule leaves out its job, not the scheduler
            log.error("job %s not scheduled: bad schedule %r: %s", job.id, job.schedule, exc)
    return scheduler


def loop_interval(job: Job) -> float | None:
    """Seconds between runs for a job that runs in a loop thread (interval under a second), else ``None``."""
    if job.trigger != "interval" or not job.schedule or not set(job.schedule) <= _INTERVAL_KEYS:
        return None
    try:
        interval = dt.timedelta(**job.schedule)
    except TypeError:
        return None
    return interval.total_seconds() if dt.timedelta(0) < interval < LOOP_BELOW else None


def _close_quietly() -> None:
    try:
        if not database.is_closed():
            database.close()
    except Exception:  # a broken connection: nothing left to close
        log.debug("closing a broken connection", exc_info=True)


class _Loop(threading.Thread):
    """Runs one frequent job again and again on one connection; logs failures, not runs.

    A new connection per run would cost more than the run itself (on PostgreSQL, a new
    server process) when there is nothing to do, which is the common case.
    """

    REPORT_EVERY = 60.0

    def __init__(self, job: Job, interval: float):
        super().__init__(name=f"job-{job.id}", daemon=True)
        self.job, self.interval = job, interval
        self.halt = threading.Event()

    def run(self):
        failures, reported = 0, 0.0
        try:
            while not self.halt.is_set():
                started = time.monotonic()
                try:
                    database.connect(reuse_if_open=True)
                    self.job.func()
                except Exception as exc:
                    failures += 1
                    if failures == 1:
                        log.exception("job %s failed", self.job.id)
                        reported = started
                    elif started - reported >= self.REPORT_EVERY:
                        log.error("job %s still failing (%d times in a row): %s", self.job.id, failures, exc)
                        reported = started
                    _close_quietly()  # the next run starts on a fresh connection
                else:
                    if failures:
                        log.info("job %s works again after %d failure(s)", self.job.id, failures)
                        failures = 0
                self.halt.wait(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            _close_quietly()


def lease_timing(extra: dict) -> tuple[float, float]:
    """``(lease, renew)`` seconds from the configuration's ``scheduler_lease_seconds`` and
    ``scheduler_renew_seconds`` (``WISPBILL_SCHEDULER_...``), refused with :class:`ConfigError` when bad."""
    values = []
    for name, default in (("scheduler_lease_seconds", LEASE_SECONDS), ("scheduler_renew_seconds", RENEW_SECONDS)):
        raw = extra.get(name, default)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = 0.0
        if not 0.05 <= value <= 3600:
            raise ConfigError(f"WISPBILL_{name.upper()}: expected seconds from 0.05 to 3600, got {raw!r}")
        values.append(value)
    if values[1] >= values[0]:
        raise ConfigError("WISPBILL_SCHEDULER_RENEW_SECONDS must be less than WISPBILL_SCHEDULER_LEASE_SECONDS")
    return values[0], values[1]


def _load_jobs() -> list[Job]:
    with connection():
        return [p.job for p in planned() if p.enabled]


class Runner:
    """Runs the jobs while this process holds the scheduler lease; waits while another does.

    ``load_jobs`` gives the jobs to run (with their effective schedules); it is called each
    time this process takes the lease, so a standby that takes over uses the settings of
    that moment. ``announce`` receives one line for each change of role.
    """

    def __init__(self, load_jobs=_load_jobs, *, lease_seconds: float = LEASE_SECONDS,
                 renew_seconds: float = RENEW_SECONDS, announce=None, holder: str | None = None,
                 name: str = LEASE_NAME):
        if not 0 < renew_seconds < lease_seconds:
            raise ValueError("the lease must be renewed more often than it lasts")
        self.load_jobs = load_jobs
        self.lease_seconds, self.renew_seconds = float(lease_seconds), float(renew_seconds)
        self.announce = announce or log.info
        self.holder = holder or lease.make_holder()
        self.name = name
        self.leading = threading.Event()
        self._stop = threading.Event()
        self._db_failing = False

    def stop(self) -> None:
        """Ask :meth:`run` to stop jobs, release the lease and return (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> None:
        """Until :meth:`stop`: take the lease when it is free and run the jobs while it is held."""
        waiting_for = None
        while not self._stop.is_set():
            asked = time.monotonic()
            took = self._db(lease.acquire, self.name, self.holder, self.lease_seconds)
            if took:
                waiting_for = None
                self._lead(held_until=asked + self.lease_seconds)
                continue
            if took is False:
                state = self._db(lease.current, self.name)
                if state is not None and state.holder != waiting_for:
                    waiting_for = state.holder
                    self.announce(f"scheduler waiting: the lease is held by {state.holder}")
            self._stop.wait(self.renew_seconds)

    def _db(self, func, *args):
        """``func(*args)`` on a connection of its own; ``None`` (logged once per outage) if the database fails."""
        try:
            with connection():
                result = func(*args)
        except Exception as exc:
            if not self._db_failing:
                log.error("scheduler lease: database unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
                self._db_failing = True
            _close_quietly()
            return None
        if self._db_failing:
            log.info("scheduler lease: database reachable again")
            self._db_failing = False
        return result

    def _lead(self, held_until: float) -> None:
        try:
            jobs = self.load_jobs()
        except Exception:
            log.exception("scheduler: cannot load the jobs; running none this time")
            jobs = []
        scheduler, loops = self._start(jobs)
        self.leading.set()
        self.announce(f"scheduler running {len(jobs)} job(s): {self.holder} holds the lease")
        lost = False
        while not self._stop.wait(self.renew_seconds):
            started = time.monotonic()
            renewed = self._db(lease.renew, self.name, self.holder, self.lease_seconds)
            if renewed:
                held_until = started + self.lease_seconds
            elif renewed is False:
                self.announce("scheduler lost the lease: stopping the jobs")
                lost = True
            elif time.monotonic() >= held_until:  # the database is out of reach and the lease may have run out
                self.announce("scheduler could not renew the lease in time: stopping the jobs")
                lost = True
            if lost:
                break
        self.leading.clear()
        self._finish(scheduler, loops, renewing=not lost)
        if not lost and self._db(lease.release, self.name, self.holder):
            self.announce("scheduler released the lease")

    def _start(self, jobs: list[Job]):
        # APScheduler logs two lines for every run, and more each time the lead changes hands;
        # runs are logged by _run_scheduled (failures always, the others at DEBUG).
        for name in ("apscheduler.executors.default", "apscheduler.scheduler"):
            logging.getLogger(name).setLevel(logging.WARNING)
        loops = [_Loop(job, interval) for job in jobs if (interval := loop_interval(job)) is not None]
        scheduler = build_scheduler([job for job in jobs if loop_interval(job) is None],
                                    scheduler_cls=BackgroundScheduler)
        scheduler.start()
        for loop in loops:
            loop.start()
        return scheduler, loops

    def _finish(self, scheduler, loops, renewing: bool) -> None:
        """Stop starting runs, and wait for those under way; meanwhile keep the lease if it is still ours."""
        for loop in loops:
            loop.halt.set()
        # shutdown(wait=True) waits for runs already handed to the executor, queued ones too.
        stopper = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, name="scheduler-shutdown")
        stopper.start()
        began = time.monotonic()
        next_renewal = began + self.renew_seconds
        told = False
        while stopper.is_alive() or any(loop.is_alive() for loop in loops):
            stopper.join(0.05)
            if not told and time.monotonic() > began + 1:
                self.announce("scheduler waiting for running jobs to finish")
                told = True
            if renewing and time.monotonic() >= next_renewal:
                renewing = bool(self._db(lease.renew, self.name, self.holder, self.lease_seconds))
                next_renewal = time.monotonic() + self.renew_seconds
