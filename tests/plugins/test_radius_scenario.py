"""Billing to FreeRADIUS and back, on both databases: wispbill writes the rows, the real FreeRADIUS
answers from them, live sessions get Disconnect and CoA on a stand-in NAS, and accounting
turns into usage.
"""

from __future__ import annotations

import datetime as dt

import pytest

from core import enforcement, routers, settings, usage
from core.db import database
from core.models import Customer
from plugins.radius import sessions
from plugins.radius import usage as radius_usage
from plugins.radius.freeradius import FreeRadius, freeradius_problem
from tests.factories import make_plan, make_service
from tests.radius_nas import StandInNAS

SECRET = "nas-shared-secret"
DAY = dt.date(2026, 3, 1)
T0 = int(dt.datetime(2026, 3, 1, 23, 0, tzinfo=dt.timezone.utc).timestamp())  # an hour before midnight


@pytest.fixture
def world(db, db_url, pm, tmp_path, monkeypatch):
    problem = freeradius_problem("postgresql" if db_url.startswith("postgresql") else "sqlite")
    if problem:
        pytest.skip(problem)
    monkeypatch.setattr(radius_usage, "SETTLE_SECONDS", 0)  # count packets as soon as they are logged
    nas = StandInNAS(secret=SECRET).start()
    router = routers.add(name="tower-aaa", kind="radius", host="127.0.0.1", secret=SECRET,
                         options={"coa_port": nas.port})
    plan = make_plan(download_kbps=10_000, upload_kbps=2_000)
    service = make_service(plan=plan, status="active")
    routers.bind_service(service, router=router, access="pppoe", username="alice", password="correct horse",
                         ip_address="10.9.0.7")
    server = FreeRadius(db_url, tmp_path).start()  # after the NAS row: FreeRADIUS reads its clients at start
    yield server, nas, service, router
    server.stop()
    nas.stop()


def _account(service, state):
    with database.atomic():
        Customer.update(state=state).where(Customer.id == service.customer_id).execute()
        enforcement.refresh_customer(service.customer_id, today=DAY)


def _acct(server, status, session_time=0, octets_in=0, octets_out=0, giga_out=0, event=T0):
    return server.acct(status, secret=SECRET, user="alice", session_id="81a00001", attributes=[
        ("Framed-IP-Address", "10.9.0.7"), ("Acct-Session-Time", session_time),
        ("Acct-Input-Octets", octets_in), ("Acct-Output-Octets", octets_out),
        ("Acct-Output-Gigawords", giga_out), ("Event-Timestamp", event + session_time)])


def test_the_money_decides_what_freeradius_answers(world):
    server, nas, service, _router = world
    accepted = server.auth("alice", "correct horse", secret=SECRET)
    assert accepted.code == "Access-Accept"
    assert accepted.get("Mikrotik-Rate-Limit") == "2000k/10000k"
    assert accepted.get("Framed-IP-Address") == "10.9.0.7"
    assert server.auth("alice", "wrong", secret=SECRET).code == "Access-Reject"
    assert server.auth("alice", "correct horse", secret=SECRET, method="chap").code == "Access-Accept"

    assert _acct(server, "Start").code == "Accounting-Response"
    _account(service, "throttled")
    throttled = server.auth("alice", "correct horse", secret=SECRET)
    assert throttled.get("Mikrotik-Rate-Limit") == "256k/512k"
    sessions.send_due()
    coa = nas.wait_for(1)[0]
    assert coa.code == 43 and coa.attributes["Mikrotik-Rate-Limit"] == "256k/512k"
    assert coa.attributes["Acct-Session-Id"] == "81a00001" and coa.attributes["Framed-IP-Address"] == "10.9.0.7"

    _account(service, "suspended")
    walled = server.auth("alice", "correct horse", secret=SECRET)
    assert walled.code == "Access-Accept"
    assert walled.get("Mikrotik-Address-List") == "wispbill-suspended"
    assert walled.all("Mikrotik-Rate-Limit") == ["64k/64k"]
    sessions.send_due()
    assert nas.wait_for(2)[1].code == 40  # Disconnect-Request: reconnect into the walled garden

    settings.set_value("radius.suspend_mode", "reject")
    assert enforcement.reconcile(_router, today=DAY).applied == 1
    assert server.auth("alice", "correct horse", secret=SECRET).code == "Access-Reject"

    _account(service, "active")
    restored = server.auth("alice", "correct horse", secret=SECRET)
    assert restored.code == "Access-Accept" and restored.get("Mikrotik-Rate-Limit") == "2000k/10000k"
    assert restored.get("Mikrotik-Address-List") is None
    sessions.send_due()
    assert [p.code for p in nas.wait_for(3)] == [43, 40, 40]


def test_accounting_shows_up_as_usage_per_day(world):
    server, _nas, service, _router = world
    _acct(server, "Start")
    _acct(server, "Interim-Update", 1800, 1_000_000, 3_000_000)
    _acct(server, "Interim-Update", 1800, 1_000_000, 3_000_000)  # a retransmission
    assert usage.collect() >= 1
    # Across midnight, past 4 GiB of download (Gigawords), then a late interim and the stop.
    _acct(server, "Interim-Update", 5400, 2_000_000, 1_000, giga_out=1)
    _acct(server, "Interim-Update", 3600, 1_500_000, 9_000_000)  # late: older than what came before
    _acct(server, "Stop", 7200, 4_000_000, 5_000, giga_out=1)
    usage.collect()
    assert usage.collect() == 0  # nothing new: nothing stored twice
    days = radius_usage.usage_by_day(service.id, dt.date(2026, 3, 1), dt.date(2026, 3, 3))
    assert sum(d[1] for d in days) == 4_000_000
    assert sum(d[2] for d in days) == 2 ** 32 + 5_000
    assert [d[0] for d in days] == [dt.date(2026, 3, 1), dt.date(2026, 3, 2)]
    closed = database.obj.execute_sql("SELECT acctstoptime, acctoutputoctets FROM radacct").fetchall()
    assert closed[0][0] is not None and closed[0][1] == 2 ** 32 + 5_000
