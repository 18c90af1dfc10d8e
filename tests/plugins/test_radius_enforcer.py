"""The RADIUS enforcer on both databases: the tables follow the account in its own transaction,
reconcile is a diff, and live sessions get Disconnect and CoA requests through a stand-in NAS.

FreeRADIUS itself answering from these tables is tested in ``test_radius_freeradius.py``.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from core import enforcement, routers, settings
from core.db import database
from core.models import Customer, Enforcement
from plugins.radius import actions, sessions
from tests.factories import make_plan, make_service
from tests.radius_nas import StandInNAS

DAY = dt.date(2026, 3, 1)


@pytest.fixture
def nas():
    with StandInNAS(secret="nas-secret") as stand_in:
        yield stand_in


@pytest.fixture
def router(db, pm, nas):
    return routers.add(name="tower-aaa", kind="radius", host="127.0.0.1", secret="nas-secret",
                       options={"coa_port": nas.port})


def _rows(sql, params=()):
    return [tuple(r) for r in database.obj.execute_sql(sql, params).fetchall()]


def _user_rows(user):
    p = database.obj.param
    return {
        "check": sorted(_rows(f"SELECT attribute, op, value FROM radcheck WHERE username = {p}", (user,))),
        "reply": sorted(_rows(f"SELECT attribute, op, value FROM radreply WHERE username = {p}", (user,))),
        "groups": sorted(r[0] for r in _rows(f"SELECT groupname FROM radusergroup WHERE username = {p}", (user,))),
    }


def _pppoe(router, user="alice", password="s3cret", ip=None, **plan):
    plan = make_plan(download_kbps=plan.get("down", 10_000), upload_kbps=plan.get("up", 2_000))
    service = make_service(plan=plan, status="active")
    routers.bind_service(service, router=router, access="pppoe", username=user, password=password,
                         **({"ip_address": ip} if ip else {}))
    return service


def _set_account(service, state):
    with database.atomic():
        Customer.update(state=state).where(Customer.id == service.customer_id).execute()
        return enforcement.refresh_customer(service.customer_id, today=DAY)


def _open_session(user, session_id="81a00001", nas_ip="127.0.0.1", framed="10.9.0.7"):
    database.obj.execute_sql(
        "INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, framedipaddress) "
        f"VALUES ({', '.join([database.obj.param] * 6)})", (session_id, f"u-{session_id}", user, nas_ip, 1_700_000_000,
                                                            framed))


def _actions():
    return [(a["username"], a["action"], a["reason"], a["status"], a["attributes"])
            for a in reversed(actions.listing())]


def test_binding_writes_the_rows_in_the_same_transaction(router):
    service = _pppoe(router, ip="10.9.0.7")
    assert _user_rows("alice") == {
        "check": [("Cleartext-Password", ":=", "s3cret")],
        "reply": [("Framed-IP-Address", ":=", "10.9.0.7"), ("Mikrotik-Rate-Limit", ":=", "2000k/10000k")],
        "groups": ["wispbill-active"],
    }
    row = Enforcement.get(Enforcement.service == service.id)
    assert row.next_attempt_at is None and row.applied_state == "active"  # applied, nothing left to push
    assert enforcement.push_pending() .applied == []
    # The NAS is a client FreeRADIUS can read, with its CoA port.
    assert _rows("SELECT nasname, secret, ports FROM nas") == [("127.0.0.1", "nas-secret", router.options["coa_port"])]


def test_a_change_rolled_back_leaves_the_tables_as_they_were(router):
    service = _pppoe(router)
    with pytest.raises(RuntimeError):
        with database.atomic():
            Customer.update(state="suspended").where(Customer.id == service.customer_id).execute()
            enforcement.refresh_customer(service.customer_id, today=DAY)
            assert _user_rows("alice")["groups"] == ["wispbill-suspended"]  # visible inside the transaction
            raise RuntimeError("the payment failed")
    assert _user_rows("alice")["groups"] == ["wispbill-active"]
    assert _actions() == []


def test_throttle_suspend_and_restore_rows_and_session_actions(router, nas):
    service = _pppoe(router)
    _open_session("alice")
    _set_account(service, "throttled")
    assert _user_rows("alice")["reply"] == [("Mikrotik-Rate-Limit", ":=", "256k/512k")]
    assert _user_rows("alice")["groups"] == ["wispbill-throttled"]
    assert sessions.send_due().done
    coa = nas.wait_for(1)[0]
    assert coa.code == 43 and coa.attributes["Mikrotik-Rate-Limit"] == "256k/512k"
    assert coa.attributes["User-Name"] == "alice" and coa.attributes["Acct-Session-Id"] == "81a00001"
    assert coa.attributes["Framed-IP-Address"] == "10.9.0.7"

    _set_account(service, "suspended")
    rows = _user_rows("alice")
    assert rows["groups"] == ["wispbill-suspended"]
    assert ("Auth-Type", ":=", "Reject") not in rows["check"]  # walled garden by default
    walled = sorted(_rows("SELECT attribute, op, value FROM radgroupreply WHERE groupname = 'wispbill-suspended'"))
    assert walled == [("Mikrotik-Address-List", ":=", "wispbill-suspended"), ("Mikrotik-Rate-Limit", ":=", "64k/64k")]
    _set_account(service, "active")
    assert _user_rows("alice")["reply"] == [("Mikrotik-Rate-Limit", ":=", "2000k/10000k")]
    # Suspension and restoration each need a reconnect; the restore supersedes the unsent suspension.
    assert _actions()[1:] == [("alice", "disconnect", "suspended", "superseded", {}),
                              ("alice", "disconnect", "restored", "pending", {})]
    sessions.send_due()
    packets = nas.wait_for(2)
    assert packets[1].code == 40 and packets[1].attributes["User-Name"] == "alice"
    assert _actions()[-1][3] == "done"


def test_reject_mode_refuses_suspended_subscribers(router):
    settings.set_value("radius.suspend_mode", "reject")
    service = _pppoe(router)
    _set_account(service, "suspended")
    assert ("Auth-Type", ":=", "Reject") in _user_rows("alice")["check"]
    assert _rows("SELECT attribute FROM radgroupreply WHERE groupname = 'wispbill-suspended'") == []
    with pytest.raises(Exception, match="expected one of"):
        settings.set_value("radius.suspend_mode", "maybe")


def test_dhcp_by_mac_and_static_without_login(router):
    dhcp = make_service(status="active")
    routers.bind_service(dhcp, router=router, access="dhcp", ip_address="10.9.1.5", mac_address="4c:5e:0c:12:34:56")
    assert _user_rows("4C:5E:0C:12:34:56") == {
        "check": [("Auth-Type", ":=", "Accept")],
        "reply": [("Framed-IP-Address", ":=", "10.9.1.5"), ("Mikrotik-Rate-Limit", ":=", "2000k/10000k")],
        "groups": ["wispbill-active"],
    }
    static = make_service(status="active")
    routers.bind_service(static, router=router, access="static", ip_address="10.9.1.6")
    assert _rows("SELECT COUNT(*) FROM radcheck")[0][0] == 1  # nothing for a subscriber without a login
    assert Enforcement.get(Enforcement.service == static.id).next_attempt_at is None
    assert enforcement.reconcile(router, today=DAY).changes == 0


def test_reconcile_is_a_diff_and_repairs_rows_changed_by_hand(router):
    _pppoe(router, user="alice")
    _pppoe(router, user="bob", password="pw-bob")
    database.obj.execute_sql("INSERT INTO radcheck (username, attribute, op, value) VALUES ('guest', "
                             "'Cleartext-Password', ':=', 'mine')")  # the operator's own row
    first = enforcement.reconcile(router, today=DAY)
    assert (first.desired, first.changes, first.error) == (2, 0, None)

    database.obj.execute_sql("UPDATE radreply SET value = '99M/99M' WHERE username = 'bob'")
    database.obj.execute_sql("DELETE FROM radusergroup WHERE username = 'alice'")
    database.obj.execute_sql("INSERT INTO radcheck (username, attribute, op, value, wispbill) "
                             "VALUES ('ghost', 'Cleartext-Password', ':=', 'x', 'svc-999999')")
    repair = enforcement.reconcile(router, today=DAY)
    assert (repair.changes, repair.applied, repair.failed) == (3, 3, {})
    assert _user_rows("bob")["reply"] == [("Mikrotik-Rate-Limit", ":=", "2000k/10000k")]
    assert _user_rows("alice")["groups"] == ["wispbill-active"]
    assert _user_rows("ghost")["check"] == []
    assert _user_rows("guest")["check"] == [("Cleartext-Password", ":=", "mine")]
    assert enforcement.reconcile(router, today=DAY).changes == 0


def test_a_user_name_another_service_holds_fails_alone(router, db):
    _pppoe(router, user="alice")
    other = _pppoe(router, user="carol")
    # Two services claiming one RADIUS user: the database refuses the second binding outright...
    with pytest.raises(Exception, match="taken"):
        routers.bind_service(other, username="alice")
    # ...and a collision the enforcer meets (rows left by another NAS router) fails that change only.
    second = routers.add(name="tower-aaa-2", kind="radius", host="127.0.0.2", secret="other")
    dhcp = make_service(status="active")
    routers.bind_service(dhcp, router=second, access="dhcp", ip_address="10.9.1.5", mac_address="4C:5E:0C:00:00:01")
    database.obj.execute_sql("UPDATE radius_subscriber SET radius_user = 'dave' WHERE radius_user = 'carol'")
    moved = make_service(status="active")
    routers.bind_service(moved, router=router, access="pppoe", username="dave", password="pw")
    row = Enforcement.get(Enforcement.service == moved.id)
    assert row.next_attempt_at is not None and "already service svc-" in row.last_error
    assert _user_rows("4C:5E:0C:00:00:01")["groups"] == ["wispbill-active"]


def test_removal_deletes_the_rows_and_disconnects(router, nas):
    service = _pppoe(router)
    _open_session("alice")
    routers.bind_service(service, unbind=True)
    assert _user_rows("alice") == {"check": [], "reply": [], "groups": []}
    assert _rows("SELECT COUNT(*) FROM radius_subscriber")[0][0] == 0
    sessions.send_due()
    assert nas.wait_for(1)[0].code == 40
    assert _actions() == [("alice", "disconnect", "removed", "done", {})]


def test_nak_and_silence_are_retried_with_backoff_and_shown(router, nas):
    service = _pppoe(router)
    _open_session("alice")
    settings.set_value("radius.coa_timeout_seconds", "0.3")
    nas.behaviour = ["silent", "silent", ("nak", 506), "ack"]  # the client tries twice per send
    _set_account(service, "suspended")
    t0 = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    first = sessions.send_due(now=t0 + dt.timedelta(seconds=1))
    assert not first.done and "TIMEOUT" in next(iter(first.retry.values()))
    [row] = actions.listing()
    assert row["status"] == "pending" and row["attempts"] == 1
    assert sessions.send_due(now=t0 + dt.timedelta(seconds=2)).retry == {}  # not due yet: nothing sent
    second = sessions.send_due(now=t0 + dt.timedelta(seconds=30))
    assert "Error-Cause 506" in next(iter(second.retry.values()))
    assert actions.listing()[0]["attempts"] == 2
    third = sessions.send_due(now=t0 + dt.timedelta(minutes=5))
    assert third.done and actions.listing()[0]["status"] == "done"
    assert len(nas.received) == 4


def test_a_session_already_gone_or_absent_completes_the_action(router, nas):
    service = _pppoe(router)
    _set_account(service, "suspended")
    assert sessions.send_due().done  # no open session: nothing to send
    assert nas.received == [] and actions.listing()[0]["result"] == "no open session"
    _open_session("alice")
    nas.behaviour = [("nak", 503)]
    _set_account(service, "active")
    assert sessions.send_due().done
    assert "already gone" in actions.listing()[0]["result"]


def test_an_unknown_nas_keeps_the_action_pending_with_the_reason(router, nas):
    service = _pppoe(router)
    _open_session("alice", nas_ip="192.0.2.55")
    _set_account(service, "suspended")
    result = sessions.send_due()
    assert "NAS 192.0.2.55 is not a RADIUS router here" in next(iter(result.retry.values()))
    assert nas.received == []


def test_an_action_failing_for_a_day_is_given_up(router, nas):
    service = _pppoe(router)
    _open_session("alice")
    nas.behaviour = "silent"
    _set_account(service, "suspended")
    later = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(days=1, minutes=1)
    settings.set_value("radius.coa_timeout_seconds", "0.2")
    result = sessions.send_due(now=later)
    assert result.failed and actions.listing()[0]["status"] == "failed"


def test_a_bad_nas_definition_fails_the_change_with_a_clear_error(db, pm):
    bad = routers.add(name="no-secret", kind="radius", host="127.0.0.1")
    service = make_service(status="active")
    routers.bind_service(service, router=bad, access="pppoe", username="erin", password="pw")
    row = Enforcement.get(Enforcement.service == service.id)
    assert row.next_attempt_at is not None and "needs its shared secret" in row.last_error
    assert _rows("SELECT COUNT(*) FROM radcheck")[0][0] == 0


def test_the_actions_command_lists_the_queue(router, cli, pm):
    from core import cli as cli_module

    cli_module.add_plugin_commands(pm)
    service = _pppoe(router)
    _open_session("alice")
    _set_account(service, "throttled")
    out = cli("radius", "actions").output
    assert "pending: 1" in out and "coa\talice\tthrottled" in out and "Mikrotik-Rate-Limit=256k/512k" in out
    data = json.loads(cli("radius", "actions", "--json").output)
    assert data["counts"] == {"pending": 1} and data["actions"][0]["action"] == "coa"
    assert "alice\t127.0.0.1\t81a00001" in cli("radius", "sessions").output


def test_check_and_setup_script_describe_the_nas(router, nas):
    from core.errors import PluginError

    _open_session("alice")
    found = routers.check(router)
    assert found.identity == "tower-aaa" and f"CoA port {nas.port}" in found.detail
    assert "1 open session(s)" in found.detail and "restart it after adding a NAS" in found.detail
    settings.set_value("web.portal_url", "http://10.0.0.2:8081")
    script = routers.setup_script(router)
    assert 'add address=10.0.0.2 secret="nas-secret" service=ppp,hotspot,dhcp' in script
    assert f"/radius incoming set accept=yes port={nas.port}" in script
    assert "/ppp aaa set use-radius=yes accounting=yes interim-update=5m" in script
    assert "wispbill-suspended" in script  # the walled garden's address list is named

    unusable = routers.add(name="by-name", kind="radius", host="nas.example.net", secret="x")
    with pytest.raises(PluginError, match="the NAS address must be an IP address"):
        routers.check(unusable)
    odd_port = routers.add(name="odd-port", kind="radius", host="127.0.0.3", secret="x", options={"coa_port": "99999"})
    with pytest.raises(PluginError, match="coa_port must be between 1 and 65535"):
        routers.check(odd_port)
