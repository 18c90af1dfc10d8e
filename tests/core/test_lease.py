"""The scheduler lease: one holder at a time, taken over only once it expires, on both backends."""

import threading
import time

from core import lease
from core.models import SchedulerLease
from tests.conftest import run_concurrently

NAME = "scheduler"


def test_holder_id_names_host_process_and_a_random_part():
    import os
    import socket

    first, second = lease.make_holder(), lease.make_holder()
    host, pid, random_part = first.rsplit(":", 2)
    assert host == socket.gethostname()[:120] and pid == str(os.getpid())
    assert len(random_part) == 8 and first != second


def test_acquire_refuses_a_second_holder_until_released(db):
    assert lease.acquire(NAME, "a", 30)
    assert not lease.acquire(NAME, "b", 30)
    state = lease.current(NAME)
    assert state.holder == "a" and not state.expired
    assert 29 <= (state.expires_at - state.acquired_at).total_seconds() <= 31

    assert not lease.release(NAME, "b")  # only the holder can release
    assert lease.current(NAME).holder == "a"
    assert lease.release(NAME, "a")
    assert lease.current(NAME) is None
    assert lease.acquire(NAME, "b", 30)
    assert lease.current(NAME).holder == "b"


def test_renew_extends_and_keeps_the_acquired_time(db):
    assert lease.acquire(NAME, "a", 1)
    before = lease.current(NAME)
    time.sleep(0.05)
    assert lease.renew(NAME, "a", 60)
    after = lease.current(NAME)
    assert after.acquired_at == before.acquired_at
    assert (after.expires_at - before.expires_at).total_seconds() > 50
    assert lease.acquire(NAME, "a", 60)  # taking a lease one holds is a renewal too
    assert lease.current(NAME).acquired_at == before.acquired_at
    assert not lease.renew(NAME, "b", 60)
    assert lease.current(NAME).holder == "a"


def test_an_expired_lease_is_taken_over_and_the_old_holder_learns_it_lost(db):
    assert lease.acquire(NAME, "a", 1.0)
    assert not lease.acquire(NAME, "b", 30)
    time.sleep(1.1)
    assert lease.current(NAME).expired
    assert lease.acquire(NAME, "b", 30)
    state = lease.current(NAME)
    assert state.holder == "b" and not state.expired
    assert not lease.renew(NAME, "a", 30)  # "a" must stop running jobs
    assert not lease.release(NAME, "a")
    assert lease.current(NAME).holder == "b"


def test_an_expired_lease_nobody_took_can_still_be_renewed(db):
    assert lease.acquire(NAME, "a", 0.5)
    time.sleep(0.6)
    assert lease.renew(NAME, "a", 30)
    assert not lease.current(NAME).expired


def test_leases_are_independent_by_name(db):
    assert lease.acquire("one", "a", 30)
    assert lease.acquire("two", "b", 30)
    assert {row.name: row.holder for row in SchedulerLease.select()} == {"one": "a", "two": "b"}


def test_only_one_of_many_racing_processes_wins(db, db_url):
    db.close()
    start = threading.Barrier(8)

    def race(conn):
        holder = f"racer-{threading.get_ident()}"
        start.wait()
        return holder, lease.acquire(NAME, holder, 30, db=conn)

    results = run_concurrently(db_url, race, workers=8)
    winners = [holder for holder, won in results if won]
    assert len(results) == 8 and len(winners) == 1
    assert lease.current(NAME).holder == winners[0]
