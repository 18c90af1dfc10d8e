"""The scheduler runs the jobs plugins register; `wispbill scheduler --list` shows them."""

import json
import threading

from apscheduler.schedulers.background import BackgroundScheduler

from core import hookimpl
from core.hooktypes import Job
from core.models import Customer
from core.plugins import build_manager
from core.scheduler import build_scheduler, collect_jobs


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
                                     "description": "count customers"}
    assert jobs["event_outbox.dispatch"]["trigger"] == "interval"
    text = cli("scheduler", "--list")
    assert "counting.tick\tinterval" in text.output


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
