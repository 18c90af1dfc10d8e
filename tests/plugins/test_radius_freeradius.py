"""The appliance's FreeRADIUS configuration, run for real on loopback with radclient, on SQLite and PostgreSQL.

One FreeRADIUS per database for the whole module (it reads the ``nas`` table only when it
starts); each test empties the other tables and writes the rows as wispbill does, with SQL.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core import migrations
from core.db import make_database
from tests.conftest import postgres_problem, postgres_schema
from plugins.radius.freeradius import FreeRadius, freeradius_problem

SECRET = "nas-shared-secret"
NAS = "127.0.0.1"
T0 = 1_700_000_000
GIGA = 2 ** 32
ACTIVE, SUSPENDED = "wispbill-active", "wispbill-suspended"
TABLES = ("radcheck", "radreply", "radusergroup", "radgroupcheck", "radgroupreply", "radacct", "radius_acct_log",
          "radpostauth")


@contextlib.contextmanager
def _module_database(dialect: str, workdir):
    """The URL of an empty database of ``dialect``: a SQLite file, or a PostgreSQL schema dropped after."""
    if dialect == "sqlite":
        yield f"sqlite:///{workdir / 'wispbill.db'}"
        return
    with postgres_schema() as url:
        yield url


class Setup:
    """The running server and a connection of our own to its database."""

    def __init__(self, dialect, url, db, server):
        self.dialect, self.url, self.db, self.server = dialect, url, db, server

    def sql(self, query: str, params=()):
        return self.db.execute_sql(query.replace("?", self.db.param), tuple(params))

    def rows(self, query: str, params=()) -> list[tuple]:
        return [tuple(row) for row in self.sql(query, params).fetchall()]

    def user(self, name, password=None, rate=None, address=None, group=ACTIVE, check=()):
        """A subscriber as wispbill writes one: radcheck, radreply and one radusergroup row."""
        if password is not None:
            self.sql("INSERT INTO radcheck (username, attribute, op, value, wispbill) VALUES (?, ?, ':=', ?, 'svc')",
                     (name, "Cleartext-Password", password))
        for attribute, value in check:
            self.sql("INSERT INTO radcheck (username, attribute, op, value, wispbill) VALUES (?, ?, ':=', ?, 'svc')",
                     (name, attribute, value))
        if rate:
            self.sql("INSERT INTO radreply (username, attribute, op, value, wispbill) VALUES (?, ?, ':=', ?, 'svc')",
                     (name, "Mikrotik-Rate-Limit", rate))
        if address:
            self.sql("INSERT INTO radreply (username, attribute, op, value, wispbill) VALUES (?, ?, ':=', ?, 'svc')",
                     (name, "Framed-IP-Address", address))
        self.sql("INSERT INTO radusergroup (username, groupname, priority, wispbill) VALUES (?, ?, 1, 'svc')",
                 (name, group))

    def walled_garden(self):
        """The group replies of walled-garden suspension."""
        for attribute, value in (("Mikrotik-Address-List", SUSPENDED), ("Mikrotik-Rate-Limit", "64k/64k")):
            self.sql("INSERT INTO radgroupreply (groupname, attribute, op, value, wispbill) "
                     "VALUES (?, ?, ':=', ?, 'w')", (SUSPENDED, attribute, value))

    def auth(self, user, password=None, **options):
        return self.server.auth(user, password, secret=options.pop("secret", SECRET), **options)

    def acct(self, status, session_id="sess-1", user="alice", when=None, session_time=None, octets=None,
             **options):
        """An Accounting-Request; ``octets`` is ``(input, input_gigawords, output, output_gigawords)``."""
        attributes = [("NAS-Port-Id", "ether2"), ("Framed-IP-Address", "10.20.0.7"),
                      ("Calling-Station-Id", "AA:BB:CC:00:11:22")]
        if when is not None:
            attributes.append(("Event-Timestamp", when))
        if session_time is not None:
            attributes.append(("Acct-Session-Time", session_time))
        if octets is not None:
            for name, value in zip(("Acct-Input-Octets", "Acct-Input-Gigawords", "Acct-Output-Octets",
                                    "Acct-Output-Gigawords"), octets):
                attributes.append((name, value))
        if status == "Stop":
            attributes.append(("Acct-Terminate-Cause", "User-Request"))
        return self.server.acct(status, secret=options.pop("secret", SECRET), user=user, session_id=session_id,
                                attributes=attributes, **options)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_server(request, tmp_path_factory):
    """FreeRADIUS on a migrated database of each kind, with this module's NAS in ``nas``."""
    dialect = request.param
    problem = freeradius_problem(dialect) or (postgres_problem() if dialect == "postgresql" else None)
    if problem:
        pytest.skip(problem)
    workdir = tmp_path_factory.mktemp(f"freeradius-{dialect}")
    with _module_database(dialect, workdir) as url:
        db = make_database(url)
        db.connect()
        migrations.migrate(db)
        db.execute_sql(f"INSERT INTO nas (nasname, shortname, type, ports, secret, wispbill) "
                       f"VALUES ({db.param}, 'core', 'other', 3799, {db.param}, 'router-1')", (NAS, SECRET))
        server = FreeRadius(url, workdir).start()
        try:
            yield Setup(dialect, url, db, server)
        finally:
            server.stop()
            db.close()


@pytest.fixture
def radius(module_server):
    """The module's server with empty subscriber and accounting tables."""
    for table in TABLES:
        module_server.sql(f"DELETE FROM {table}")
    mark = module_server.server.mark()
    yield module_server
    # Captured, so shown only when the test fails.
    print(module_server.server.output_since(mark)[-20000:])


# --- authentication ----------------------------------------------------------------------

def test_pap_login_gets_its_rate_limit_and_static_address(radius):
    radius.user("alice", "s3cret", rate="10000k/20000k", address="10.20.0.7")

    reply = radius.auth("alice", "s3cret")

    assert reply.code == "Access-Accept", reply.output
    assert reply.get("Mikrotik-Rate-Limit") == "10000k/20000k"
    assert reply.get("Framed-IP-Address") == "10.20.0.7"


def test_wrong_password_is_rejected_without_the_users_replies(radius):
    radius.user("alice", "s3cret", rate="10000k/20000k", address="10.20.0.7")

    reply = radius.auth("alice", "guess")

    assert reply.code == "Access-Reject", reply.output
    assert reply.attributes == []


def test_unknown_user_is_rejected(radius):
    assert radius.auth("nobody", "s3cret").code == "Access-Reject"


def test_chap_login(radius):
    radius.user("hotspot-7", "chap-pw", rate='"2000k/4000k"')

    reply = radius.auth("hotspot-7", "chap-pw", method="chap")

    assert reply.code == "Access-Accept", reply.output
    assert reply.get("Mikrotik-Rate-Limit") == "2000k/4000k"  # the quotes around a stored value are dropped
    assert radius.auth("hotspot-7", "other", method="chap").code == "Access-Reject"


def test_mschap_login_carries_the_mppe_keys_and_a_failure_its_error(radius):
    radius.user("ppp-9", "ms-pw", rate="1000k/1000k")

    reply = radius.auth("ppp-9", "ms-pw", method="mschap")
    refused = radius.auth("ppp-9", "wrong", method="mschap")

    assert reply.code == "Access-Accept", reply.output
    assert reply.get("MS-CHAP-MPPE-Keys") and reply.get("Mikrotik-Rate-Limit") == "1000k/1000k"
    assert refused.code == "Access-Reject"
    assert "E=691" in refused.get("MS-CHAP-Error")
    assert refused.get("Mikrotik-Rate-Limit") is None


def test_auth_type_reject_refuses_the_right_password(radius):
    radius.user("suspended", "s3cret", rate="10000k/20000k", group=SUSPENDED, check=[("Auth-Type", "Reject")])

    assert radius.auth("suspended", "s3cret").code == "Access-Reject"
    assert radius.auth("suspended", "s3cret", method="chap").code == "Access-Reject"


def test_walled_garden_group_replaces_the_users_rate_and_adds_the_address_list(radius):
    radius.walled_garden()
    radius.user("bob", "pw", rate="10000k/20000k", group=SUSPENDED)
    radius.user("carol", "pw", rate="10000k/20000k")

    garden, active = radius.auth("bob", "pw"), radius.auth("carol", "pw")

    assert garden.code == "Access-Accept", garden.output
    assert garden.all("Mikrotik-Rate-Limit") == ["64k/64k"]
    assert garden.get("Mikrotik-Address-List") == SUSPENDED
    assert active.all("Mikrotik-Rate-Limit") == ["10000k/20000k"]
    assert active.get("Mikrotik-Address-List") is None


def test_dhcp_mac_with_auth_type_accept_needs_no_password(radius):
    mac = "AA:BB:CC:DD:EE:01"
    radius.user(mac, rate="5000k/5000k", check=[("Auth-Type", "Accept")])

    reply = radius.auth(mac)

    assert reply.code == "Access-Accept", reply.output
    assert reply.get("Mikrotik-Rate-Limit") == "5000k/5000k"
    assert radius.auth("AA:BB:CC:DD:EE:02").code == "Access-Reject"


def test_wrong_secret_gets_no_answer(radius):
    radius.user("alice", "s3cret")

    with ThreadPoolExecutor(2) as pool:
        login = pool.submit(radius.auth, "alice", "s3cret", secret="not-the-secret", timeout=0.3)
        start = pool.submit(radius.acct, "Start", secret="not-the-secret", timeout=0.3)

    assert login.result().code is None
    assert start.result().code is None
    assert radius.rows("SELECT COUNT(*) FROM radacct") == [(0,)]


def test_nas_missing_from_the_nas_table_gets_no_answer(radius):
    assert radius.server.answers_from("127.0.0.2", timeout=0.3) is False
    assert "unknown client 127.0.0.2" in radius.server.output


def test_status_server_is_answered(radius):
    reply = radius.server.radclient("status", [("Message-Authenticator", "0x00")], SECRET)
    assert reply.code == "Access-Accept"


def test_post_auth_records_rejects_without_the_password(radius):
    radius.user("alice", "s3cret-pw")
    before = int(time.time())

    assert radius.auth("alice", "s3cret-pw").code == "Access-Accept"  # an accept shows in radacct instead
    radius.auth("alice", "wrong-pw")
    radius.auth("nobody", "other-pw")

    rows = radius.rows("SELECT username, reply, nasipaddress, authdate FROM radpostauth ORDER BY id")
    assert [row[:3] for row in rows] == [("alice", "Access-Reject", NAS), ("nobody", "Access-Reject", NAS)]
    assert all(before <= row[3] <= time.time() + 1 for row in rows)
    assert not any("pw" in str(value) for row in rows for value in row)


# --- accounting --------------------------------------------------------------------------

RADACCT = ("SELECT acctsessionid, username, nasipaddress, nasportid, framedipaddress, callingstationid, "
           "acctstarttime, acctupdatetime, acctstoptime, acctsessiontime, acctinputoctets, acctoutputoctets, "
           "acctterminatecause FROM radacct ORDER BY radacctid")
LOG = ("SELECT acctuniqueid, acctsessionid, username, nasipaddress, status, event_time, session_time, input_octets, "
       "input_gigawords, output_octets, output_gigawords, received_at FROM radius_acct_log ORDER BY id")


def test_start_interim_stop_make_one_session_and_one_log_row_per_packet(radius):
    before = int(time.time())
    assert radius.acct("Start", when=T0).code == "Accounting-Response"
    assert radius.acct("Interim-Update", when=T0 + 300, session_time=300,
                       octets=(1_000, 1, 2_000, 0)).code == "Accounting-Response"
    assert radius.acct("Stop", when=T0 + 900, session_time=900,
                       octets=(5_000, 2, 7_000, 1)).code == "Accounting-Response"

    assert radius.rows(RADACCT) == [
        ("sess-1", "alice", NAS, "ether2", "10.20.0.7", "AA:BB:CC:00:11:22", T0, T0 + 900, T0 + 900, 900,
         2 * GIGA + 5_000, GIGA + 7_000, "User-Request")]
    log = radius.rows(LOG)
    (unique,) = {row[0] for row in log}
    assert radius.rows("SELECT acctuniqueid FROM radacct") == [(unique,)]
    assert [row[1:11] for row in log] == [
        ("sess-1", "alice", NAS, "Start", T0, 0, 0, 0, 0, 0),
        ("sess-1", "alice", NAS, "Interim-Update", T0 + 300, 300, 1_000, 1, 2_000, 0),
        ("sess-1", "alice", NAS, "Stop", T0 + 900, 900, 5_000, 2, 7_000, 1)]
    assert all(before <= row[11] <= time.time() + 1 for row in log)


def test_a_late_interim_does_not_lower_the_counters(radius):
    radius.acct("Start", when=T0)
    radius.acct("Interim-Update", when=T0 + 600, session_time=600, octets=(9_000, 3, 8_000, 0))

    late = radius.acct("Interim-Update", when=T0 + 300, session_time=300, octets=(4_000, 1, 1_000, 0))

    assert late.code == "Accounting-Response", late.output
    assert radius.rows("SELECT acctupdatetime, acctsessiontime, acctinputoctets, acctoutputoctets FROM radacct") == [
        (T0 + 600, 600, 3 * GIGA + 9_000, 8_000)]
    assert [row[4:7] for row in radius.rows(LOG)][-1] == ("Interim-Update", T0 + 300, 300)

    radius.acct("Stop", when=T0 + 700, session_time=700, octets=(9_500, 3, 8_500, 0))
    radius.acct("Interim-Update", when=T0 + 650, session_time=650, octets=(9_200, 3, 8_200, 0))
    assert radius.rows("SELECT acctstoptime, acctsessiontime, acctinputoctets FROM radacct") == [
        (T0 + 700, 700, 3 * GIGA + 9_500)]


def test_an_interim_without_its_start_opens_the_session(radius):
    assert radius.acct("Interim-Update", when=T0 + 120, session_time=120, octets=(10, 0, 20, 0)).code \
        == "Accounting-Response"

    assert radius.rows("SELECT acctstarttime, acctstoptime, acctinputoctets FROM radacct") == [(T0, None, 10)]


def test_accounting_on_closes_the_open_sessions_of_that_nas(radius):
    radius.acct("Start", session_id="s-1", user="alice", when=T0)
    radius.acct("Start", session_id="s-2", user="bob", when=T0 + 10)
    radius.acct("Stop", session_id="s-3", user="carol", when=T0 + 50, session_time=40)
    radius.sql("INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime) "
               "VALUES ('other', 'elsewhere-1', 'dave', '10.9.9.9', ?)", (T0,))

    reply = radius.server.acct("Accounting-On", secret=SECRET, attributes=[("Event-Timestamp", T0 + 100)])

    assert reply.code == "Accounting-Response", reply.output
    assert radius.rows("SELECT acctsessionid, acctstoptime, acctterminatecause FROM radacct ORDER BY acctsessionid") \
        == [("other", None, ""), ("s-1", T0 + 100, "NAS-Reboot"), ("s-2", T0 + 100, "NAS-Reboot"),
            ("s-3", T0 + 50, "User-Request")]
    assert radius.server.acct("Accounting-On", secret=SECRET).code == "Accounting-Response"  # nothing left open


def test_a_failed_log_write_gets_no_answer_so_the_nas_resends(radius):
    radius.acct("Start", when=T0)
    radius.sql("ALTER TABLE radius_acct_log RENAME TO radius_acct_log_away")
    try:
        lost = radius.acct("Interim-Update", when=T0 + 60, session_time=60, octets=(100, 0, 200, 0), timeout=0.3)
    finally:
        radius.sql("ALTER TABLE radius_acct_log_away RENAME TO radius_acct_log")
    resent = radius.acct("Interim-Update", when=T0 + 60, session_time=60, octets=(100, 0, 200, 0))

    assert lost.code is None
    assert resent.code == "Accounting-Response", resent.output
    assert [row[4] for row in radius.rows(LOG)] == ["Start", "Interim-Update"]
    assert radius.rows("SELECT acctsessiontime, acctinputoctets FROM radacct") == [(60, 100)]


@pytest.mark.parametrize("module_server", ["sqlite"], indirect=True)
def test_sqlite_write_lock_delays_a_reject_by_busy_timeout_at_most_and_fails_accounting(radius):
    radius.user("alice", "s3cret")
    path = radius.url[len("sqlite:///"):]
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        replies = {}
        accounting = threading.Thread(target=lambda: replies.update(acct=radius.acct("Start", when=T0, timeout=1.3)))
        accounting.start()
        started = time.monotonic()
        accepted = radius.auth("alice", "s3cret", timeout=3)
        accept_took = time.monotonic() - started
        started = time.monotonic()
        login = radius.auth("alice", "wrong", timeout=3)
        waited = time.monotonic() - started
        accounting.join()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    resent = radius.acct("Start", when=T0)

    assert accepted.code == "Access-Accept" and accept_took < 0.9  # reads never wait in WAL mode
    assert login.code == "Access-Reject", login.output
    assert 0.9 <= waited < 2.5  # the radpostauth insert gave up after busy_timeout (1000 ms)
    assert replies["acct"].code is None
    assert resent.code == "Accounting-Response"
    assert radius.rows("SELECT username FROM radpostauth") == []
    assert radius.rows("SELECT acctstarttime FROM radacct") == [(T0,)]


@pytest.mark.parametrize("module_server", ["sqlite"], indirect=True)
def test_accounting_while_a_wispbill_write_is_under_way_waits_for_it(radius):
    path = radius.url[len("sqlite:///"):]
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO radius_state (name, value) VALUES ('lock-test', 1)")
    release = threading.Timer(0.3, lambda: (holder.execute("COMMIT"), holder.close()))
    release.start()
    try:
        reply = radius.acct("Start", when=T0, timeout=3)
    finally:
        release.join()
        radius.sql("DELETE FROM radius_state WHERE name = 'lock-test'")

    assert reply.code == "Accounting-Response", reply.output
    assert radius.rows("SELECT acctstarttime FROM radacct") == [(T0,)]
