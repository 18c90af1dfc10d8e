"""`wispbill scheduler` as real processes: one leader, a standby that takes over, fast event delivery."""

from __future__ import annotations

import signal
import time

import pytest

from core import events, lease
from core.db import connection, database
from core.models import Event
from core.scheduler import LEASE_NAME
from tests.processes import Scheduler
from tests.web.conftest import wispbill_env

LEASE_SECONDS = 2.0
RENEW_SECONDS = 0.25


@pytest.fixture
def start(db, db_url, tmp_path):
    """Start scheduler processes on the test database; any still running are killed afterwards."""
    env = wispbill_env(db_url, tmp_path)
    env.update({"WISPBILL_SCHEDULER_LEASE_SECONDS": str(LEASE_SECONDS),
                "WISPBILL_SCHEDULER_RENEW_SECONDS": str(RENEW_SECONDS)})
    started: list[Scheduler] = []
    db.close()

    def run(**extra_env) -> Scheduler:
        scheduler = Scheduler({**env, **extra_env})
        started.append(scheduler)
        return scheduler

    yield run
    for scheduler in started:
        if scheduler.process.poll() is None:
            scheduler.process.kill()
        scheduler.process.wait(10)


def holder_now() -> str | None:
    with connection():
        state = lease.current(LEASE_NAME)
    return None if state is None or state.expired else state.holder


def emit_and_time_delivery(payload: dict, timeout: float = 5.0) -> tuple[float, Event]:
    """Commit an event from this process; seconds until a scheduler marked it delivered, and the row."""
    with connection(), database.atomic():
        event_id = events.emit("customer.created", payload).id
    committed = time.monotonic()
    while time.monotonic() - committed < timeout:
        with connection():
            row = Event.get_by_id(event_id)
        if row.dispatched_at is not None:
            return time.monotonic() - committed, row
        time.sleep(0.01)
    raise AssertionError(f"event {event_id} not delivered within {timeout}s")


def test_one_leader_runs_the_jobs_and_a_standby_takes_over_after_kill_9(start):
    leader = start()
    leader.wait_for("scheduler running")
    standby = start()
    standby.wait_for(f"scheduler waiting: the lease is held by {leader.holder}")
    assert holder_now() == leader.holder

    # An event committed by another process (this one) reaches the leader's outbox loop fast, once.
    latency, row = emit_and_time_delivery({"customer_id": 1})
    assert latency < 2.0 and row.attempts == 1  # well under the old 5 s; bench enforce times it
    assert holder_now() == leader.holder
    assert not any("scheduler running" in line for line in standby.lines)

    leader.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    standby.wait_for("scheduler running", timeout=LEASE_SECONDS + 5)
    took_over = time.monotonic() - killed
    assert took_over < LEASE_SECONDS + RENEW_SECONDS + 1.0, took_over
    assert holder_now() == standby.holder

    latency, row = emit_and_time_delivery({"customer_id": 2})
    assert latency < 2.0 and row.attempts == 1  # well under the old 5 s; bench enforce times it


def test_sigterm_releases_the_lease_so_the_standby_takes_over_at_once(start):
    leader = start(WISPBILL_SCHEDULER_LEASE_SECONDS="30", WISPBILL_SCHEDULER_RENEW_SECONDS="0.25")
    leader.wait_for("scheduler running")
    standby = start(WISPBILL_SCHEDULER_LEASE_SECONDS="30", WISPBILL_SCHEDULER_RENEW_SECONDS="0.25")
    standby.wait_for("scheduler waiting")

    leader.process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    assert leader.process.wait(10) == 0
    assert "scheduler released the lease" in leader.output and leader.lines[-1] == "scheduler stopped"
    standby.wait_for("scheduler running", timeout=5)
    assert time.monotonic() - stopped < 5  # far sooner than the 30-second lease would expire
    assert holder_now() == standby.holder

    standby.process.send_signal(signal.SIGINT)  # Ctrl-C stops it the same way
    assert standby.process.wait(10) == 0
    assert holder_now() is None
    with connection():
        assert lease.current(LEASE_NAME) is None


def test_a_lone_scheduler_takes_a_lease_left_by_a_dead_one(start):
    # The dead holder's lease outlasts a slow start of the new process, so that it is seen waiting.
    left = LEASE_SECONDS * 4
    with connection():
        assert lease.acquire(LEASE_NAME, "crashed-host:1:deadbeef", left)
    acquired = time.monotonic()
    scheduler = start()
    scheduler.wait_for("scheduler waiting: the lease is held by crashed-host:1:deadbeef")
    scheduler.wait_for("scheduler running", timeout=left + 5)
    assert left - 0.5 < time.monotonic() - acquired < left + 1.5
    assert holder_now() == scheduler.holder
