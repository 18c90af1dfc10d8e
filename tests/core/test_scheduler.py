"""The scheduler runs the jobs plugins register; `wispbill scheduler --list` shows them."""

import json
import threading

from apscheduler.schedulers.background import BackgroundScheduler

from core import hookimpl
from core.hooktypes import Job
from core.models import Customer
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
    assert [j.id for j in scheduler.get_jobs()] == ["counting.tick"]
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
    jobs = json.loads(result.output)
    assert jobs == [{"id": "counting.tick", "trigger": "interval", "schedule": {"seconds": 0.2},
                     "description": "count customers"}]
    text = cli("scheduler", "--list")
    assert text.output.startswith("counting.tick\tinterval")
