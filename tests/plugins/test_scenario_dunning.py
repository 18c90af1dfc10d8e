"""A subscriber's whole unpaid life, end to end: billing, dunning, e-mail, the MikroTik enforcer.

Real parts throughout: the lab router over TCP (read back with the real ``librouteros``
client), an SMTP server on 127.0.0.1, the database of the run, and for the restore a real
``wispbill scheduler`` process. Time travels by giving the dunning run its day.
"""

from __future__ import annotations

import datetime as dt
import time

import librouteros
import pytest
from librouteros.query import Key

from appliance.lab.server import LabRouter
from core import dunning, enforcement, events, notifications, payments, routers
from core.clock import today
from core.models import Customer, Enforcement
from core.money import Money
from plugins.mikrotik import connection
from tests.factories import make_customer, make_issued_invoice, make_plan, make_service
from tests.processes import Scheduler
from tests.smtp_standin import SmtpStandIn
from tests.web.conftest import wispbill_env

ADDRESS = "10.20.0.7"
SUSPEND_LIST = "wispbill-suspended"


@pytest.fixture
def lab():
    router = LabRouter(users={"admin": "lab-secret"}, identity="tower-1").start(port=0)
    yield router
    connection.close_all()
    router.stop()


@pytest.fixture
def smtp(db):
    with SmtpStandIn() as server:
        server.configure()
        yield server


class Reader:
    """What the lab router holds, read the way an operator's tool would: librouteros over TCP."""

    def __init__(self, lab):
        self.api = librouteros.connect("127.0.0.1", "admin", "lab-secret", port=lab.port, timeout=5)

    def queue_limit(self) -> str | None:
        found = [q for q in self.api.path("queue", "simple") if q.get("target") == f"{ADDRESS}/32"]
        return found[0]["max-limit"] if found else None

    def suspended(self) -> bool:
        lists = self.api.path("ip", "firewall", "address-list")
        return any(e.get("address") == ADDRESS for e in lists.select("address").where(Key("list") == SUSPEND_LIST))

    def close(self):
        self.api.close()


def _step(day: dt.date, smtp) -> str:
    """Run dunning for ``day``, hand its events to the plugins, send the mail; return the new state."""
    dunning.run(day)
    events.dispatch_pending()
    notifications.deliver_pending()
    return Customer.get_by_id(_step.customer_id).state


def _subjects(smtp) -> list[str]:
    return [r.message["Subject"] for r in smtp.received]


def _setup(lab, smtp):
    router = routers.add(name="tower-1", kind="mikrotik", host="127.0.0.1", port=lab.port, username="admin",
                         secret="lab-secret", options={"timeout_seconds": 2})
    customer = make_customer(name="Amina Wanjiru", email="amina@example.org")
    plan = make_plan(download_kbps=10_000, upload_kbps=2_000)
    service = make_service(customer=customer, plan=plan, status="active")
    routers.bind_service(service, router=router, access="dhcp", ip_address=ADDRESS)
    enforcement.push_pending()
    due = today() - dt.timedelta(days=20)
    make_issued_invoice(customer, 250_000, due_date=due)
    _step.customer_id = customer.id
    return router, customer, service, due


def test_unpaid_reminded_throttled_suspended_then_paid_and_restored_within_a_second(db, db_url, tmp_path, lab,
                                                                                      smtp):
    router, customer, service, due = _setup(lab, smtp)
    reader = Reader(lab)
    try:
        assert reader.queue_limit() == "2000k/10000k" and not reader.suspended()  # provisioned at plan speed

        assert _step(due, smtp) == "active"  # due today: nothing yet
        assert _step(due + dt.timedelta(days=1), smtp) == "reminded"
        reminder = smtp.received[-1]
        assert reminder.rcpt_tos == ["amina@example.org"] and "2,500.00" in reminder.body
        assert reader.queue_limit() == "2000k/10000k"  # a reminder does not touch the router

        assert _step(due + dt.timedelta(days=7), smtp) == "throttled"
        assert reader.queue_limit() == "256k/512k" and not reader.suspended()

        assert _step(due + dt.timedelta(days=14), smtp) == "suspended"
        assert reader.suspended()
        assert len(smtp.received) == 3  # reminder, throttled, suspended: one each
        assert _step(due + dt.timedelta(days=14), smtp) == "suspended"  # re-running the day changes nothing
        assert len(smtp.received) == 3

        db.close()
        scheduler = Scheduler(wispbill_env(db_url, tmp_path))
        try:
            scheduler.wait_for("holds the lease", timeout=20)
            time.sleep(0.3)  # its fast loop is up
            db.connect(reuse_if_open=True)
            started = time.perf_counter()
            payments.add_manual(Customer.get_by_id(customer.id), Money(250_000, "KES"), method="cash",
                                reference="CASH-1")
            while reader.suspended():
                assert time.perf_counter() - started < 5, f"not restored; scheduler said:\n{scheduler.output}"
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
        finally:
            scheduler.process.terminate()
            scheduler.process.wait(15)
        assert elapsed < 1.0, f"restored after {elapsed:.2f} s"
        assert reader.queue_limit() == "2000k/10000k"
        assert Customer.get_by_id(customer.id).state == "active"
        assert Enforcement.get(Enforcement.service == service.id).next_attempt_at is None

        notifications.deliver_pending(include_waiting=True)
        subjects = " | ".join(_subjects(smtp))
        assert len(smtp.received) >= 4 and "receipt" in subjects.lower()
    finally:
        reader.close()


def test_a_router_down_during_the_suspension_converges_when_it_returns(db, lab, smtp):
    router, customer, service, due = _setup(lab, smtp)
    lab.stop()
    assert _step(due + dt.timedelta(days=14), smtp) == "suspended"
    row = Enforcement.get(Enforcement.service == service.id)
    assert row.desired_state == "suspended" and row.applied_state == "active" and row.attempts >= 1
    assert "unreachable" in row.last_error
    assert [e.service_id for e in enforcement.pending()] == [service.id]

    lab.start()  # back on the same port
    enforcement.push_pending(now=row.next_attempt_at + dt.timedelta(seconds=1))
    reader = Reader(lab)
    try:
        assert reader.suspended() and reader.queue_limit() == "2000k/10000k"
        assert enforcement.pending() == []

        lab.reboot(lose=("/ip/firewall/address-list", "/queue/simple"))  # came back without its lists
        reader.close()
        reader = Reader(lab)  # a reboot closes every connection
        assert not reader.suspended() and reader.queue_limit() is None
        result = enforcement.reconcile(router)
        assert result.error is None and result.changes == 1, result
        assert reader.suspended() and reader.queue_limit() == "2000k/10000k"
        assert enforcement.reconcile(router).changes == 0
    finally:
        reader.close()


def test_an_operators_own_entries_survive_the_whole_cycle(db, lab, smtp):
    lab.add_row("/ip/firewall/address-list", list=SUSPEND_LIST, address="10.99.0.1", comment="office printer")
    lab.add_row("/queue/simple", name="backhaul", target="10.0.0.0/24", max_limit="100M/100M")
    router, customer, service, due = _setup(lab, smtp)
    _step(due + dt.timedelta(days=14), smtp)
    routers.bind_service(service, unbind=True)
    enforcement.push_pending()
    enforcement.reconcile(router)
    assert [r["address"] for r in lab.rows("/ip/firewall/address-list")] == ["10.99.0.1"]
    assert [r["name"] for r in lab.rows("/queue/simple")] == ["backhaul"]
