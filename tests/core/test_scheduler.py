"""The scheduler runs the jobs plugins register on their schedules, one leader at a time; `--list` shows them."""

import datetime as dt
import json
import logging
import threading
import time

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from core import hookimpl, lease
from core.db import connection
from core.errors import ConfigError
from core.hooktypes import Job
from core.models import Customer, SchedulerLease
from core.plugins import build_manager
from core.scheduler import LEASE_NAME, Runner, build_scheduler, collect_jobs, describe, lease_timing, parse_when


class CountingJobs:
    """A plugin whose job counts customers each time it runs."""

    def __init__(self):
        self.runs = []
        self.ran = threading.Event()

    def tick(self):
        self.runs.append(Customer.select().count())  # needs the job's own connection
        self.ran.set()

    @hookimpl
    def register_jobs(self):
        return [Job(id="counting.tick", func=self.tick, trigger="interval",
                    schedule={"seconds": 0.2}, description="count customers")]


def test_scheduler_runs_registered_jobs_with_a_database_connection(db, pm):
    plugin = CountingJobs()
    pm.add(plugin, "counting", "test")
    db.close()
    scheduler = build_scheduler(collect_jobs(pm), scheduler_cls=BackgroundScheduler)
    builtin = {j.id for j in collect_jobs(build_manager(entry_points=False))}
    assert {j.id for j in scheduler.get_jobs()} == {"counting.tick"} | builtin
    tick = scheduler.get_job("counting.tick")
    assert tick.coalesce is True and tick.max_instances == 1 and tick.misfire_grace_time == 60
    scheduler.start()
    try:
        assert plugin.ran.wait(10), "job never ran"
    finally:
        scheduler.shutdown(wait=True)
    assert plugin.runs and plugin.runs[0] == 0


def test_scheduler_list_shows_plugin_jobs(cli, pm):
    pm.add(CountingJobs(), "counting", "test")
    cli("migrate")
    result = cli("scheduler", "--list", "--json")
    assert result.exit_code == 0, result.output
    jobs = {job["id"]: job for job in json.loads(result.output)}
    assert jobs["counting.tick"] == {"id": "counting.tick", "trigger": "interval", "schedule": {"seconds": 0.2},
                                     "when": "every 0.2s", "overridden": False, "enabled": True,
                                     "description": "count customers"}
    assert jobs["event_outbox.dispatch"]["when"] == "every 0.25s"
    assert jobs["billing.run"]["when"] == "daily 00:30"
    text = cli("scheduler", "--list")
    assert "counting.tick\tevery 0.2s\tcount customers" in text.output


def test_built_in_outbox_job_delivers_events(db, pm):
    from core import events, hookimpl
    from core.db import database
    from core.models import Event
    from core.scheduler import run_job

    seen = []

    class Listener:
        @hookimpl
        def handle_event(self, event):
            seen.append((event.name, event.payload))

    pm.add(Listener(), "listener", "test")
    with database.atomic():
        events.emit("customer.created", {"customer_id": 1})
    job = {j.id: j for j in collect_jobs(pm)}["event_outbox.dispatch"]
    assert run_job(job) == 1
    assert seen == [("customer.created", {"customer_id": 1})]
    assert Event.get().dispatched_at is not None
    assert run_job(job) == 0  # delivered once


def test_scheduler_process_delivers_events_and_stops_on_sigterm(db, db_url, tmp_path):
    """`wispbill scheduler` as systemd runs it: jobs run, SIGTERM ends it cleanly."""
    import signal
    import subprocess
    import sys
    import time

    from core import events
    from core.db import database
    from core.models import Event
    from tests.web.conftest import wispbill_env

    with database.atomic():
        events.emit("customer.created", {"customer_id": 42})
    db.close()
    process = subprocess.Popen([sys.executable, "-m", "core.cli", "scheduler"], env=wispbill_env(db_url, tmp_path),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while Event.get().dispatched_at is None:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the outbox job never ran"
            time.sleep(0.25)
            database.close()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "scheduler starting with" in output and "scheduler stopped" in output


# --- schedules as operators write them ------------------------------------------------

@pytest.mark.parametrize("text, trigger, schedule, shown", [
    ("every 30s", "interval", {"seconds": 30}, "every 30s"),
    ("  Every  15m ", "interval", {"minutes": 15}, "every 15m"),
    ("every 6h", "interval", {"hours": 6}, "every 6h"),
    ("every 1d", "interval", {"days": 1}, "every 1d"),
    ("every 0.25s", "interval", {"seconds": 0.25}, "every 0.25s"),
    ("daily 2:30", "cron", {"hour": 2, "minute": 30}, "daily 02:30"),
    ("cron 0 2 * * *", "cron", {"minute": "0", "hour": "2", "day": "*", "month": "*", "day_of_week": "*"},
     "cron 0 2 * * *"),
    ("cron */10 * * * mon-fri", "cron", {"minute": "*/10", "hour": "*", "day": "*", "month": "*",
                                          "day_of_week": "mon-fri"}, "cron */10 * * * mon-fri"),
    ("off", None, {}, "off"),
])
def test_schedules_are_read_as_written(text, trigger, schedule, shown):
    when = parse_when(text)
    assert (when.trigger, when.schedule, when.text) == (trigger, schedule, shown)


@pytest.mark.parametrize("text, message", [
    ("every 0s", "shortest interval is 0.1s"),
    ("every 0.05s", "shortest interval is 0.1s"),
    ("every 5 minutes", "expected every 30s"),
    ("daily 24:00", "no such time of day"),
    ("daily 2", "expected every 30s"),
    ("cron 0 2 * *", "5 fields"),
    ("cron 61 * * * *", "61"),
    ("cron 0 0 * * 8", "not a range of 0-7"),
    ("sometimes", "expected every 30s, every 15m, every 6h"),
])
def test_bad_schedules_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_when(text)


def test_cron_weekdays_count_from_sunday_as_in_crontab():
    # APScheduler 3 counts weekdays from Monday; a crontab line means what it says in crontab.
    sunday = CronTrigger(timezone="UTC", **parse_when("cron 0 2 * * 0").schedule)
    after = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)  # a Monday
    assert sunday.get_next_fire_time(None, after).strftime("%A %H:%M") == "Sunday 02:00"
    assert parse_when("cron 0 2 * * 7").schedule["day_of_week"] == "sun"
    assert parse_when("cron 0 2 * * 1-5").schedule["day_of_week"] == "mon,tue,wed,thu,fri"
    assert parse_when("cron 0 2 * * 5-7").schedule["day_of_week"] == "sun,fri,sat"
    assert parse_when("cron 0 2 * * */2").schedule["day_of_week"] == "sun,tue,thu,sat"


def test_own_schedules_are_described_in_the_same_words():
    assert describe("interval", {"seconds": 0.25}) == "every 0.25s"
    assert describe("interval", {"minutes": 90}) == "every 90m"
    assert describe("interval", {"hours": 2}) == "every 2h"
    assert describe("cron", {"hour": 3, "minute": 17}) == "daily 03:17"
    assert describe("cron", {"hour": 2}) == "daily 02:00"
    assert describe("cron", {"day_of_week": "mon", "hour": 2}) == "cron day_of_week=mon, hour=2"


def test_schedules_setting_overrides_and_turns_off_jobs(cli, pm):
    pm.add(CountingJobs(), "counting", "test")
    cli("migrate")
    result = cli("settings", "set", "scheduler.schedules",
                 "counting.tick = every 10m; billing.run=cron 15 1 * * *\nhousekeeping.purge_sessions=off")
    assert result.exit_code == 0, result.output
    listed = {job["id"]: job for job in json.loads(cli("scheduler", "--list", "--json").output)}
    assert listed["counting.tick"]["trigger"] == "interval" and listed["counting.tick"]["schedule"] == {"minutes": 10}
    assert listed["counting.tick"]["overridden"] is True and listed["counting.tick"]["when"] == "every 10m"
    assert listed["billing.run"]["when"] == "cron 15 1 * * *" and listed["billing.run"]["enabled"] is True
    assert listed["housekeeping.purge_sessions"]["enabled"] is False
    assert listed["event_outbox.dispatch"]["overridden"] is False
    text = cli("scheduler", "--list").output
    assert "billing.run\tcron 15 1 * * * (scheduler.schedules)\t" in text
    assert "housekeeping.purge_sessions\toff (scheduler.schedules)\t" in text
    stored = {r["key"]: r["value"] for r in json.loads(cli("settings", "list", "--json").output)}
    assert stored["scheduler.schedules"] == ("billing.run=cron 15 1 * * *; counting.tick=every 10m; "
                                             "housekeeping.purge_sessions=off")


@pytest.mark.parametrize("value, message", [
    ("billing.run=every 0s", "billing.run: 'every 0s' is too often"),
    ("billing.run=weekly", "billing.run: expected every 30s"),
    ("nightly.nope=every 5m", "no job 'nightly.nope'; jobs: backups.nightly, billing.run"),
    ("billing.run", "expected JOB=SCHEDULE entries"),
    ("billing.run=off; billing.run=every 1h", "job 'billing.run' is named twice"),
])
def test_bad_schedules_setting_is_refused_with_exit_2(cli, value, message):
    cli("migrate")
    assert cli("settings", "set", "scheduler.schedules", "billing.run=daily 04:00").exit_code == 0
    result = cli("settings", "set", "scheduler.schedules", value)
    assert result.exit_code == 2
    assert f"scheduler.schedules: {message}" in result.output
    listed = {job["id"]: job for job in json.loads(cli("scheduler", "--list", "--json").output)}
    assert listed["billing.run"]["when"] == "daily 04:00"  # nothing was written


def test_lease_timing_comes_from_the_configuration():
    assert lease_timing({}) == (15.0, 5.0)
    assert lease_timing({"scheduler_lease_seconds": "2", "scheduler_renew_seconds": "0.5"}) == (2.0, 0.5)
    with pytest.raises(ConfigError, match="WISPBILL_SCHEDULER_LEASE_SECONDS: expected seconds"):
        lease_timing({"scheduler_lease_seconds": "soon"})
    with pytest.raises(ConfigError, match="must be less than"):
        lease_timing({"scheduler_lease_seconds": "5", "scheduler_renew_seconds": "5"})


def test_bad_lease_timing_stops_the_command_with_exit_2(cli, monkeypatch):
    cli("migrate")
    monkeypatch.setenv("WISPBILL_SCHEDULER_RENEW_SECONDS", "0")
    result = cli("scheduler")
    assert result.exit_code == 2 and "WISPBILL_SCHEDULER_RENEW_SECONDS" in result.output


def test_outbox_due_check_agrees_with_dispatch(db, pm):
    from core import events
    from core.clock import utcnow
    from core.db import database
    from core.models import Event
    from plugins import event_outbox

    assert not event_outbox.any_due() and event_outbox.dispatch() == 0
    with database.atomic():
        events.emit("customer.created", {"customer_id": 1})
    assert event_outbox.any_due()
    assert event_outbox.dispatch() == 1
    assert not event_outbox.any_due()
    Event.create(name="invoice.issued", payload={}, attempts=2, next_attempt_at=utcnow() + dt.timedelta(minutes=5))
    Event.create(name="invoice.issued", payload={}, attempts=events.MAX_ATTEMPTS)
    assert not event_outbox.any_due()  # a retry not yet due and an exhausted event
    Event.update(next_attempt_at=utcnow() - dt.timedelta(seconds=1)).where(Event.attempts == 2).execute()
    assert event_outbox.any_due() and event_outbox.dispatch() == 1


# --- one leader at a time, in one process ----------------------------------------------

class Ticker:
    """A plugin-free job that counts its runs and fails when told to."""

    def __init__(self, job_id="test.tick", seconds=0.1):
        self.runs = 0
        self.failing = False
        self.job = Job(id=job_id, func=self.tick, trigger="interval", schedule={"seconds": seconds})

    def tick(self):
        self.runs += 1
        if self.failing:
            raise RuntimeError("tick exploded")
        return Customer.select().count()  # on the loop's own connection


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def start_runner(db, pm):
    """Start Runners in threads; each is stopped and joined afterwards."""
    started = []

    def start(jobs, **options):
        lines = []
        options = {"lease_seconds": 1.0, "renew_seconds": 0.1, "announce": lines.append, **options}
        runner = Runner(lambda: list(jobs), **options)
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        runner.lines, runner.thread = lines, thread
        started.append(runner)
        return runner

    db.close()
    yield start
    for runner in started:
        runner.stop()
        runner.thread.join(10)


def test_a_runner_that_loses_the_lease_stops_its_jobs_and_waits(start_runner):
    ticker = Ticker()
    runner = start_runner([ticker.job])
    assert runner.leading.wait(5)
    assert wait_until(lambda: ticker.runs >= 2)
    with connection():
        SchedulerLease.update(holder="intruder").execute()  # as if it had expired and been taken
    assert wait_until(lambda: not runner.leading.is_set())
    assert wait_until(lambda: "scheduler waiting: the lease is held by intruder" in runner.lines)
    assert "scheduler lost the lease: stopping the jobs" in runner.lines
    stopped_at = ticker.runs
    time.sleep(0.4)
    assert ticker.runs == stopped_at  # no job runs without the lease

    with connection():
        lease.release(LEASE_NAME, "intruder")
    assert runner.leading.wait(5)  # takes it again when it is free
    assert wait_until(lambda: ticker.runs > stopped_at)
    runner.stop()
    runner.thread.join(5)
    assert not runner.thread.is_alive()
    assert runner.lines[-1] == "scheduler released the lease"
    with connection():
        assert lease.current(LEASE_NAME) is None


def test_a_second_runner_waits_and_takes_over_when_the_first_stops(start_runner):
    first_ticks, second_ticks = Ticker(), Ticker()
    first = start_runner([first_ticks.job], holder="first")
    assert first.leading.wait(5)
    second = start_runner([second_ticks.job], holder="second")
    assert wait_until(lambda: "scheduler waiting: the lease is held by first" in second.lines)
    time.sleep(0.3)
    assert second_ticks.runs == 0 and first_ticks.runs > 0
    first.stop()
    assert second.leading.wait(2)  # released, not left to expire
    assert wait_until(lambda: second_ticks.runs > 0)


def test_a_failing_job_is_logged_and_the_scheduler_keeps_going(start_runner, caplog):
    looped = Ticker("test.loop", seconds=0.05)
    scheduled = Ticker("test.scheduled", seconds=1)
    looped.failing = scheduled.failing = True
    with caplog.at_level(logging.INFO, logger="core.scheduler"):
        runner = start_runner([looped.job, scheduled.job])
        assert wait_until(lambda: looped.runs >= 4 and scheduled.runs >= 2, timeout=6)
        assert runner.leading.is_set()
        looped.failing = False
        assert wait_until(lambda: "job test.loop works again after" in caplog.text)
    assert caplog.text.count("job test.loop failed") == 1  # the first failure in a row; not one per run
    assert caplog.text.count("job test.scheduled failed") >= 2
    assert "RuntimeError: tick exploded" in caplog.text


def test_a_runner_keeps_the_lease_while_a_job_finishes(start_runner):
    release = threading.Event()
    ran = threading.Event()

    def slow():
        ran.set()
        release.wait(5)

    runner = start_runner([Job(id="test.slow", func=slow, trigger="interval", schedule={"seconds": 0.5})],
                          lease_seconds=0.6, renew_seconds=0.1)
    assert ran.wait(5)
    runner.stop()
    time.sleep(1.0)  # longer than the lease: it must still be renewed
    assert runner.thread.is_alive()
    with connection():
        state = lease.current(LEASE_NAME)
    assert state.holder == runner.holder and not state.expired
    assert "scheduler waiting for running jobs to finish" in runner.lines
    release.set()
    runner.thread.join(5)
    with connection():
        assert lease.current(LEASE_NAME) is None


def test_a_runner_that_cannot_reach_the_database_stops_its_jobs_before_the_lease_runs_out(start_runner, monkeypatch,
                                                                                          caplog):
    caplog.set_level(logging.INFO, logger="core.scheduler")
    ticker = Ticker()
    runner = start_runner([ticker.job], lease_seconds=0.6, renew_seconds=0.1)
    assert runner.leading.wait(5)

    def unreachable(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(lease, "renew", unreachable)
    monkeypatch.setattr(lease, "acquire", unreachable)
    cut = time.monotonic()
    assert wait_until(lambda: not runner.leading.is_set(), timeout=3)
    assert time.monotonic() - cut < 0.6 + 1.0
    assert "scheduler could not renew the lease in time: stopping the jobs" in runner.lines
    stopped_at = ticker.runs
    time.sleep(0.3)
    assert ticker.runs == stopped_at
    assert caplog.text.count("database unavailable: connection refused") == 1  # once per outage
    monkeypatch.undo()
    assert runner.leading.wait(5)  # nobody took it meanwhile: it is still this runner's
    assert "database reachable again" in caplog.text
