"""The MikroTik enforcer against the lab router over TCP on loopback, with the real librouteros client."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from appliance.lab.server import LabRouter
from core.hooktypes import Change, SubscriberState
from core.models import Router
from plugins import mikrotik
from plugins.mikrotik import connection, reader
from plugins.mikrotik.connection import LoginRefused

SUSPEND = "unpaid"
QUEUES, LISTS, SECRETS, PROFILES = "/queue/simple", "/ip/firewall/address-list", "/ppp/secret", "/ppp/profile"
USERS, PPP_ACTIVE, HOTSPOT_ACTIVE = "/ip/hotspot/user", "/ppp/active", "/ip/hotspot/active"
TABLES = (QUEUES, LISTS, SECRETS, PROFILES, USERS)
_ids = itertools.count(1000)


@pytest.fixture
def lab():
    router = LabRouter(users={"admin": "secret"}, identity="lab-core").start(port=0)
    yield router
    connection.close_all()
    router.stop()


def make_router(lab, secret="secret", **options):
    row = Router(name=f"lab-{next(_ids)}", kind="mikrotik", host="127.0.0.1", port=lab.port, username="admin",
                 secret=secret, options={"suspend_list": SUSPEND, "timeout_seconds": 2, **options})
    row.id = next(_ids)
    return row


@pytest.fixture
def router(lab):
    return make_router(lab)


@pytest.fixture
def targeted(monkeypatch):
    """Applies that cannot lean on an earlier read (as a push after a payment)."""
    monkeypatch.setattr(reader, "TRUST_SECONDS", 0.0)


def sub(key="svc-1", state="active", address="10.0.0.5", rate=(10000, 2000), access="dhcp", username=None,
        password=None, mac=None):
    if access in ("pppoe", "hotspot") and username is None:
        username, password = f"user-{key}", password or "pw"
    return SubscriberState(key, state, address, rate,
                           {"access": access, "username": username, "password": password, "mac": mac})


def apply(router, *subs, action="set"):
    return mikrotik.enforcer_apply(router=router, changes=[Change(action, s) for s in subs])


def read(router) -> dict:
    return {s.key: s for s in mikrotik.enforcer_read_state(router=router)}


def ours(lab, path):
    return [row for row in lab.rows(path) if str(row.get("comment", "")).startswith("wispbill:")]


def _with(s, **changes):
    fields = {"key": s.key, "state": s.state, "address": s.address, "rate": s.rate, "extra": dict(s.extra)}
    extra = {k: changes.pop(k) for k in list(changes) if k in s.extra}
    fields.update(changes)
    fields["extra"].update(extra)
    return SubscriberState(**fields)


# --- provisioning -------------------------------------------------------------------

def test_dhcp_and_static_subscribers_get_a_queue_at_the_plan_rate(lab, router):
    result = apply(router, sub("svc-1", mac="4C:5E:0C:12:34:56"), sub("svc-2", address="10.0.0.6", access="static"),
                   sub("svc-3", address="10.0.0.7", rate=None))
    assert result.applied == ("svc-1", "svc-2", "svc-3") and result.failed == {}
    queues = {row["name"]: row for row in lab.rows(QUEUES)}
    assert set(queues) == {"wispbill-svc-1", "wispbill-svc-2"}  # no rate, no queue
    assert queues["wispbill-svc-1"]["target"] == "10.0.0.5/32"
    assert queues["wispbill-svc-1"]["max-limit"] == "2000k/10000k"  # upload/download as the target sees it
    assert lab.rows(LISTS) == [] and lab.rows(SECRETS) == []
    assert read(router) == {"svc-1": sub("svc-1", mac="4C:5E:0C:12:34:56"),
                            "svc-2": sub("svc-2", address="10.0.0.6", access="static")}


def test_pppoe_subscribers_get_a_secret_and_a_managed_profile(lab, router):
    wanted = sub(access="pppoe", username="bob", password="s3cret", mac="4C:5E:0C:12:34:56")
    dynamic = sub("svc-2", address=None, access="pppoe", username="carol", rate=(5000, 1000))
    assert apply(router, wanted, dynamic).failed == {}
    secrets = {row["name"]: row for row in lab.rows(SECRETS)}
    bob = secrets["bob"]
    assert [bob[name] for name in ("password", "service", "profile", "remote-address", "caller-id", "comment")] == [
        "s3cret", "pppoe", "wispbill-10000k-2000k", "10.0.0.5", "4C:5E:0C:12:34:56", "wispbill:svc-1"]
    assert "remote-address" not in secrets["carol"]
    profiles = {row["name"]: row for row in lab.rows(PROFILES)}
    assert profiles["wispbill-10000k-2000k"]["rate-limit"] == "2000k/10000k"  # rx/tx: client upload first
    assert profiles["wispbill-5000k-1000k"]["comment"] == "wispbill"
    assert read(router) == {"svc-1": wanted, "svc-2": dynamic}


def test_hotspot_subscribers_get_a_user_and_a_queue_on_a_known_address(lab, router):
    wanted = sub(access="hotspot", username="eve", password="pw", mac="4C:5E:0C:12:34:56")
    roaming = sub("svc-2", address=None, access="hotspot", username="frank")
    assert apply(router, wanted, roaming).failed == {}
    users = {row["name"]: row for row in lab.rows(USERS)}
    assert (users["eve"]["password"], users["eve"]["mac-address"], users["eve"]["address"]) == (
        "pw", "4C:5E:0C:12:34:56", "10.0.0.5")
    assert users["frank"]["disabled"] == "false" and "address" not in users["frank"]
    assert [row["target"] for row in lab.rows(QUEUES)] == ["10.0.0.5/32"]
    assert read(router) == {"svc-1": wanted, "svc-2": roaming}


# --- state changes ------------------------------------------------------------------

@pytest.mark.parametrize("access", ["dhcp", "static", "pppoe", "hotspot"])
def test_throttle_suspend_restore_and_remove_read_back(lab, router, access):
    active = sub(access=access)
    throttled = _with(active, state="throttled", rate=(512, 256))
    suspended = _with(active, state="suspended")
    for wanted in (active, throttled, suspended, active):
        assert apply(router, wanted).applied == ("svc-1",)
        assert read(router) == {"svc-1": wanted}
        listed = [row["address"] for row in lab.find(LISTS, list=SUSPEND)]
        assert listed == (["10.0.0.5"] if wanted.state == "suspended" else [])
        if access == "pppoe":
            profile = lab.find(PROFILES, name=lab.find(SECRETS, name="user-svc-1")[0]["profile"])[0]
            assert profile["rate-limit"] == ("256k/512k" if wanted.state == "throttled" else "2000k/10000k")
            assert profile["address-list"] == (SUSPEND if wanted.state == "suspended" else "")
        else:
            assert [row["max-limit"] for row in lab.rows(QUEUES)] == [
                "256k/512k" if wanted.state == "throttled" else "2000k/10000k"]
        if access == "hotspot":
            assert lab.rows(USERS)[0]["disabled"] == ("true" if wanted.state == "suspended" else "false")
    assert apply(router, active, action="remove").applied == ("svc-1",)
    assert all(ours(lab, path) == [] for path in TABLES)
    assert read(router) == {}
    assert apply(router, active, action="remove").applied == ("svc-1",)  # removing what is gone: done


def test_a_pppoe_session_is_kicked_when_its_profile_changes(lab, router):
    wanted = sub(access="pppoe", username="bob", password="one")
    apply(router, wanted)
    lab.connect_ppp("bob", "10.0.0.5")
    lab.connect_ppp("walter", "10.0.0.99")  # someone else's session
    apply(router, _with(wanted, password="two"))  # the password counts at the next login only
    assert [row["name"] for row in lab.rows(PPP_ACTIVE)] == ["bob", "walter"]
    apply(router, _with(wanted, password="two", state="throttled", rate=(512, 256)))
    assert [row["name"] for row in lab.rows(PPP_ACTIVE)] == ["walter"]
    assert [row["name"] for row in lab.kicked] == ["bob"]
    lab.connect_ppp("bob", "10.0.0.5")
    apply(router, _with(wanted, password="two", state="suspended"))
    assert [row["name"] for row in lab.kicked] == ["bob", "bob"]


def test_a_hotspot_session_is_kicked_on_suspension_only(lab, router):
    wanted = sub(access="hotspot", username="eve")
    apply(router, wanted)
    lab.connect_hotspot("eve", "10.0.0.5")
    apply(router, _with(wanted, state="throttled", rate=(512, 256)))  # the queue limits the live session
    assert [row["user"] for row in lab.rows(HOTSPOT_ACTIVE)] == ["eve"]
    apply(router, _with(wanted, state="suspended"))
    assert lab.rows(HOTSPOT_ACTIVE) == [] and [row["user"] for row in lab.kicked] == ["eve"]
    apply(router, wanted)
    assert lab.find(USERS, name="eve")[0]["disabled"] == "false"


def test_the_sessions_of_one_apply_are_ended_with_one_print_and_one_remove(lab, router):
    subs = [sub(f"svc-{i}", address=f"10.0.0.{i}", access="pppoe", username=f"user{i}") for i in range(1, 5)]
    apply(router, *subs)
    for s in subs[:3]:
        lab.connect_ppp(s.extra["username"], s.address)
    lab.connect_ppp("walter", "10.0.0.99")  # someone else's session
    read(router)
    commands, writes = lab.commands, lab.writes
    throttled = [_with(s, state="throttled", rate=(512, 256)) for s in subs]
    assert apply(router, *throttled).failed == {}
    # four secrets set, one profile made, one print of the sessions of those users, one remove
    assert (lab.commands - commands, lab.writes - writes) == (7, 6)
    assert sorted(row["name"] for row in lab.kicked) == ["user1", "user2", "user3"]
    assert [row["name"] for row in lab.rows(PPP_ACTIVE)] == ["walter"]
    commands = lab.commands
    assert apply(router, *throttled).failed == {}
    assert lab.commands == commands  # nothing changed: no writes, and no sessions looked at


def test_sessions_not_ended_before_a_connection_error_are_ended_by_the_next_apply(lab, router, monkeypatch):
    wanted = sub(access="pppoe", username="bob")
    apply(router, wanted)
    lab.connect_ppp("bob", "10.0.0.5")
    real = connection.Link._exchange

    def dropping(self, cmd, words, raw):
        if cmd == PPP_ACTIVE + "/print":
            lab.drop()
        return real(self, cmd, words, raw)

    monkeypatch.setattr(connection.Link, "_exchange", dropping)
    throttled = _with(wanted, state="throttled", rate=(512, 256))
    with pytest.raises(OSError):
        apply(router, throttled)
    monkeypatch.setattr(connection.Link, "_exchange", real)
    assert lab.find(SECRETS, name="bob")[0]["profile"] == "wispbill-throttled-512k-256k"
    assert [row["name"] for row in lab.rows(PPP_ACTIVE)] == ["bob"]
    assert apply(router, throttled).failed == {}  # in place already, and the session is still owed its end
    assert lab.rows(PPP_ACTIVE) == [] and [row["name"] for row in lab.kicked] == ["bob"]


def test_removal_deletes_every_entry_and_ends_the_session(lab, router):
    wanted = sub(state="suspended", access="pppoe", username="bob")
    apply(router, wanted)
    lab.connect_ppp("bob", "10.0.0.5")
    assert ours(lab, SECRETS) and ours(lab, LISTS)
    apply(router, wanted, action="remove")
    assert ours(lab, SECRETS) == [] and ours(lab, LISTS) == [] and lab.rows(PPP_ACTIVE) == []


def test_a_changed_access_kind_replaces_the_entries(lab, router):
    pppoe = sub(access="pppoe", username="bob")
    apply(router, pppoe)
    lab.connect_ppp("bob", "10.0.0.5")
    dhcp = sub(access="dhcp")
    apply(router, dhcp)
    assert lab.rows(SECRETS) == [] and lab.rows(PPP_ACTIVE) == []
    assert [row["name"] for row in lab.rows(QUEUES)] == ["wispbill-svc-1"]
    assert read(router) == {"svc-1": dhcp}


def test_a_renamed_pppoe_user_keeps_its_secret_and_is_kicked(lab, router, targeted):
    apply(router, sub(access="pppoe", username="bob"))
    secret_id = lab.rows(SECRETS)[0][".id"]
    lab.connect_ppp("bob", "10.0.0.5")
    renamed = sub(access="pppoe", username="robert")
    apply(router, renamed)
    assert [(row[".id"], row["name"]) for row in lab.rows(SECRETS)] == [(secret_id, "robert")]
    assert lab.rows(PPP_ACTIVE) == []
    assert read(router) == {"svc-1": renamed}


def test_a_renamed_hotspot_user_is_tidied_by_the_next_reconcile(lab, router):
    apply(router, sub(access="hotspot", username="eve"))
    lab.connect_hotspot("eve", "10.0.0.5")
    renamed = sub(access="hotspot", username="evelyn")
    assert apply(router, renamed).failed == {}  # looked up by the new name: a second user
    assert sorted(row["name"] for row in lab.rows(USERS)) == ["eve", "evelyn"]
    held = read(router)["svc-1"]
    assert "2 hotspot entries" in held.extra["drift"]
    evelyn = lab.find(USERS, name="evelyn")[0][".id"]
    assert apply(router, renamed).failed == {}
    assert [(row[".id"], row["name"]) for row in lab.rows(USERS)] == [(evelyn, "evelyn")]
    assert lab.rows(HOTSPOT_ACTIVE) == []  # the old name's session ended
    assert read(router) == {"svc-1": renamed}


def test_a_moved_address_moves_the_suspension(lab, router, targeted):
    apply(router, sub(state="suspended"))
    moved = sub(state="suspended", address="10.0.0.77")
    apply(router, moved)
    assert [row["address"] for row in lab.rows(LISTS)] == ["10.0.0.77"]
    assert [row["target"] for row in lab.rows(QUEUES)] == ["10.0.0.77/32"]


def test_an_address_or_mac_taken_away_is_unset(lab, router):
    pppoe = sub("svc-1", access="pppoe", username="bob")
    hotspot = sub("svc-2", address="10.0.0.6", access="hotspot", username="eve", mac="4C:5E:0C:12:34:56")
    apply(router, pppoe, hotspot)
    lab.connect_ppp("bob", "10.0.0.5")
    dynamic, no_mac = _with(pppoe, address=None), _with(hotspot, mac=None)
    assert apply(router, dynamic, no_mac).failed == {}
    assert "remote-address" not in lab.find(SECRETS, name="bob")[0]
    assert "mac-address" not in lab.find(USERS, name="eve")[0]
    assert lab.rows(PPP_ACTIVE) == []  # a new address needs a new session
    assert read(router) == {"svc-1": dynamic, "svc-2": no_mac}


def test_a_managed_profile_deleted_by_hand_is_made_again(lab, router):
    apply(router, sub("svc-1", access="pppoe", username="bob"))
    profile = lab.find(PROFILES, name="wispbill-10000k-2000k")[0]
    lab.remove_row(PROFILES, profile[".id"])
    assert apply(router, sub("svc-2", address="10.0.0.6", access="pppoe", username="carol")).failed == {}
    assert lab.find(PROFILES, name="wispbill-10000k-2000k")[0]["rate-limit"] == "2000k/10000k"
    assert lab.find(SECRETS, name="carol")[0]["profile"] == "wispbill-10000k-2000k"


# --- the operator's own entries -----------------------------------------------------

def test_the_operators_own_entries_are_never_touched(lab, router):
    lab.add_row(LISTS, list=SUSPEND, address="10.0.0.5", comment="blocked by hand")
    lab.add_row(LISTS, list=SUSPEND, address="10.0.0.6")
    lab.add_row(QUEUES, name="customer-5", target="10.0.0.5/32", max_limit="1M/1M")
    lab.add_row(SECRETS, name="walter", password="x", profile="default")
    lab.add_row(USERS, name="guest", password="x", comment="lobby")
    before = {path: lab.rows(path) for path in TABLES}

    dhcp = sub("svc-1", state="suspended")  # the operator already lists its address
    clash = sub("svc-2", access="pppoe", username="walter")
    fine = sub("svc-3", address="10.0.0.6", access="pppoe", username="bob", state="suspended")
    result = apply(router, dhcp, clash, fine)
    assert result.applied == ("svc-1", "svc-3")
    assert result.failed["svc-2"].startswith("a PPP secret named 'walter' exists on router")
    assert "did not create" in result.failed["svc-2"]
    assert set(read(router)) == {"svc-1", "svc-3"}
    for wanted in (_with(dhcp, state="active"), _with(fine, state="active")):
        apply(router, wanted)
    apply(router, dhcp, fine, action="remove")
    after = {path: [row for row in lab.rows(path) if not str(row.get("comment", "")).startswith("wispbill")]
             for path in TABLES}
    for path in TABLES:
        assert after[path] == [row for row in before[path] if not str(row.get("comment", "")).startswith("wispbill")]
    assert lab.find(LISTS, address="10.0.0.5")[0]["comment"] == "blocked by hand"
    assert read(router) == {}


# --- reconcile: read, diff, apply ---------------------------------------------------

def _many() -> list[SubscriberState]:
    subs = []
    for i in range(48):
        access = ("dhcp", "static", "pppoe", "hotspot")[i % 4]
        state = ("active", "throttled", "suspended")[i % 3]
        address = None if access in ("pppoe", "hotspot") and i % 5 == 0 else f"10.0.{i // 200}.{i % 200 + 1}"
        rate = (512, 256) if state == "throttled" else (None if i % 7 == 0 else (10000 + i, 2000))
        if rate is None and access in ("dhcp", "static") and state != "suspended":
            rate = (3000, 1000)
        subs.append(sub(f"svc-{i}", state, address, rate, access, mac="4C:5E:0C:12:34:%02X" % i if i % 2 else None))
    return subs


def test_an_in_step_router_reads_back_exactly_what_was_asked(lab, router):
    subs = _many()
    result = apply(router, *subs)
    assert result.failed == {} and len(result.applied) == len(subs)
    held = read(router)
    assert held == {s.key: s for s in subs}  # the core's diff of this router is empty
    writes = lab.writes
    assert apply(router, *subs).failed == {}
    assert lab.writes == writes  # applying what is in place writes nothing


def test_a_second_read_rebuilds_only_what_changed(lab, router, monkeypatch):
    subs = _many()[:10]
    apply(router, *subs)
    rebuilt = []
    real = reader.state_from
    monkeypatch.setattr(reader, "state_from", lambda key, *args: rebuilt.append(key) or real(key, *args))
    assert read(router) == {s.key: s for s in subs}
    assert rebuilt == []  # the apply remembered what it wrote
    changed = _with(subs[1], state="throttled", rate=(256, 128))
    pppoe = _with(subs[2], state="throttled", rate=(256, 128))  # a new managed profile
    apply(router, changed, pppoe)
    assert rebuilt == [changed.key, pppoe.key]
    del rebuilt[:]
    held = read(router)
    assert (held[changed.key], held[pppoe.key]) == (changed, pppoe)
    assert rebuilt == []  # the other PPPoE subscribers' profiles did not change
    # Printed otherwise than written (RouterOS shows limits in bit/s): rebuilt, and still in step.
    queue = lab.find(QUEUES, name=f"wispbill-{changed.key}")[0]
    lab.set_row(QUEUES, queue[".id"], max_limit="128000/256000")
    assert read(router)[changed.key] == changed
    assert rebuilt == [changed.key]


def test_a_router_printing_words_in_another_order_still_hits_the_memo(lab, router, monkeypatch):
    real_encode = reader.encode
    # What an apply expects a print to look like, in the opposite order to the lab's.
    monkeypatch.setattr(reader, "encode", lambda words: real_encode(list(reversed(words))))
    subs = _many()[:8]
    apply(router, *subs)
    rebuilt = []
    real = reader.state_from
    monkeypatch.setattr(reader, "state_from", lambda key, *args: rebuilt.append(key) or real(key, *args))
    assert read(router) == {s.key: s for s in subs}
    assert rebuilt == []  # matched by what the entries say, whatever the order
    assert read(router) == {s.key: s for s in subs}
    assert rebuilt == []  # and from then on by the bytes read


def test_a_targeted_apply_without_a_read_is_idempotent(lab, router, targeted):
    subs = _many()[:6]
    apply(router, *subs)
    writes, commands = lab.writes, lab.commands
    for s in subs:
        assert apply(router, s).applied == (s.key,)
    assert lab.writes == writes
    assert lab.commands - commands <= 4 * len(subs)  # lookups only: a print per menu
    assert read(router) == {s.key: s for s in subs}


def test_a_reconcile_apply_after_a_read_needs_no_lookups(lab, router):
    subs = _many()[:8]
    apply(router, *subs)
    read(router)
    commands = lab.commands
    throttled = _with(subs[0], state="throttled", rate=(512, 256))  # a DHCP subscriber: one queue to change
    assert apply(router, throttled).applied == (throttled.key,)
    assert lab.commands - commands == 1
    assert lab.find(QUEUES, name="wispbill-svc-0")[0]["max-limit"] == "256k/512k"


def test_a_read_is_not_trusted_after_another_connection_wrote(lab, router):
    wanted = sub()
    apply(router, wanted)
    read(router)  # this thread's connection now holds a fresh read
    elsewhere = threading.Thread(target=apply, args=(router, _with(wanted, state="throttled", rate=(512, 256))))
    elsewhere.start()
    elsewhere.join(10)
    assert lab.find(QUEUES, name="wispbill-svc-1")[0]["max-limit"] == "256k/512k"
    assert apply(router, wanted).failed == {}  # the read said "already so", but it is out of date
    assert lab.find(QUEUES, name="wispbill-svc-1")[0]["max-limit"] == "2000k/10000k"


def test_an_entry_gone_since_the_read_is_added_again(lab, router):
    wanted = sub(state="suspended")
    apply(router, wanted)
    read(router)  # the read's .ids are kept for the apply that follows
    lab.remove_row(QUEUES, lab.rows(QUEUES)[0][".id"])
    faster = _with(wanted, rate=(20000, 4000))
    assert apply(router, faster).failed == {}  # "no such item": looked up, then added
    assert [row["max-limit"] for row in lab.rows(QUEUES)] == ["4000k/20000k"]
    assert read(router) == {"svc-1": faster}


def test_a_list_entry_gone_since_the_read_is_handled_both_ways(lab, router):
    wanted = sub(state="suspended")
    apply(router, wanted)
    read(router)
    lab.remove_row(LISTS, lab.rows(LISTS)[0][".id"])
    with_mac = _with(wanted, mac="4C:5E:0C:12:34:56")  # the entry's comment changes: a set on a gone .id
    assert apply(router, with_mac).failed == {}
    assert [row["comment"] for row in lab.rows(LISTS)] == ["wispbill:svc-1 access=dhcp mac=4C:5E:0C:12:34:56"]
    read(router)
    lab.remove_row(LISTS, lab.rows(LISTS)[0][".id"])
    assert apply(router, _with(with_mac, state="active")).failed == {}  # a remove of a gone .id: done
    assert lab.rows(LISTS) == []


def test_a_reboot_that_lost_the_suspend_list_is_repaired(lab, router):
    subs = [sub("svc-1", state="suspended"), sub("svc-2", "suspended", "10.0.0.6", access="pppoe")]
    apply(router, *subs)
    lab.reboot(lose=[LISTS])
    assert lab.rows(LISTS) == []
    held = read(router)  # the kept connection died with the reboot: reopened without an error
    assert all(held[s.key] != s and "address entry missing" in held[s.key].extra["drift"] for s in subs)
    assert apply(router, *[s for s in subs if held[s.key] != s]).failed == {}
    assert sorted(row["address"] for row in lab.rows(LISTS)) == ["10.0.0.5", "10.0.0.6"]
    assert read(router) == {s.key: s for s in subs}


# --- connections --------------------------------------------------------------------

def test_one_connection_per_router_and_thread_is_reused(lab, router):
    apply(router, sub("svc-1"))
    read(router)
    apply(router, sub("svc-2", address="10.0.0.6"))
    assert lab.logins == 1
    done = []
    worker = threading.Thread(target=lambda: done.append(apply(router, sub("svc-3", address="10.0.0.7"))))
    worker.start()
    worker.join(10)
    assert done and done[0].failed == {} and lab.logins == 2


def test_a_connection_the_router_closed_while_idle_is_reopened(lab, router):
    apply(router, sub("svc-1"))
    lab.drop()
    assert apply(router, sub("svc-2", address="10.0.0.6")).failed == {}
    assert lab.logins == 2


def test_a_connection_dropped_mid_apply_raises_and_the_next_call_reconnects(lab, router, monkeypatch):
    subs = [sub(f"svc-{i}", address=f"10.0.0.{i}") for i in range(1, 6)]
    apply(router, subs[0])
    real = connection.Link._exchange
    calls = []

    def dropping(self, cmd, words, raw):
        calls.append(cmd)
        if len(calls) == 6:
            lab.drop()
        return real(self, cmd, words, raw)

    monkeypatch.setattr(connection.Link, "_exchange", dropping)
    with pytest.raises(OSError):
        apply(router, *subs)
    monkeypatch.setattr(connection.Link, "_exchange", real)
    assert lab.logins == 1
    assert apply(router, *subs).failed == {}
    assert lab.logins == 2
    assert read(router) == {s.key: s for s in subs}


def test_a_stalled_router_times_out(lab):
    router = make_router(lab, timeout_seconds=0.3)
    apply(router, sub("svc-1"))
    lab.stall()
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            apply(router, sub("svc-2", address="10.0.0.6"))
        assert time.monotonic() - started < 2
    finally:
        lab.release()
    assert apply(router, sub("svc-2", address="10.0.0.6")).failed == {}
    assert read(router) == {"svc-1": sub("svc-1"), "svc-2": sub("svc-2", address="10.0.0.6")}


def test_an_unreachable_router_raises_oserror(lab, router):
    lab.stop()
    with pytest.raises(OSError):
        mikrotik.enforcer_read_state(router=router)
    with pytest.raises(OSError):
        apply(router, sub())


def test_a_wrong_password_is_reported_clearly(lab):
    router = make_router(lab, secret="wrong")
    with pytest.raises(LoginRefused) as refused:
        mikrotik.enforcer_check(router=router)
    assert str(refused.value) == f"login refused by {router.name}: invalid user name or password"
    assert not isinstance(refused.value, OSError)
    with pytest.raises(LoginRefused):
        mikrotik.enforcer_read_state(router=router)


def test_a_refusal_fails_only_its_change(lab):
    router = make_router(lab, ppp_profile={"no-such-setting": "1"})  # the lab refuses the profile
    result = mikrotik.enforcer_apply(router=router, changes=[
        Change("set", sub("svc-1", access="pppoe")), Change("set", sub("svc-2", address="10.0.0.6")),
        Change("upsert", sub("svc-3", address="10.0.0.7"))])
    assert result.applied == ("svc-2",)
    assert "refused: unknown parameter" in result.failed["svc-1"]
    assert result.failed["svc-3"] == "unknown action 'upsert'"
    assert set(read(router)) == {"svc-2"}


def test_managed_profiles_get_the_routers_base_attributes(lab):
    router = make_router(lab, ppp_profile={"local-address": "10.255.0.1", "remote-address": "pppoe-pool"})
    wanted = sub(access="pppoe")
    apply(router, wanted)
    profile = lab.find(PROFILES, name="wispbill-10000k-2000k")[0]
    assert (profile["local-address"], profile["remote-address"]) == ("10.255.0.1", "pppoe-pool")
    assert read(router) == {"svc-1": wanted}
    lab.set_row(PROFILES, profile[".id"], rate_limit="50M/50M")  # edited by hand
    assert read(router)["svc-1"] != wanted
    apply(router, wanted)
    assert lab.find(PROFILES, name="wispbill-10000k-2000k")[0]["rate-limit"] == "2000k/10000k"


def test_hook_enforcer_check(lab, router):
    check = mikrotik.enforcer_check(router=router)
    assert check.identity == "lab-core"
    assert check.version == "7.18 (stable)"
    assert check.detail.startswith("CHR, up ")
    assert mikrotik.enforcer_check(router=Router(name="x", kind="radius", host="127.0.0.1")) is None


def test_other_router_kinds_are_left_to_other_plugins(lab):
    other = Router(name="aaa", kind="radius", host="127.0.0.1", port=lab.port)
    assert mikrotik.enforcer_read_state(router=other) is None
    assert mikrotik.enforcer_apply(router=other, changes=[]) is None
    assert lab.accepted == 0


# --- TLS (api-ssl) ------------------------------------------------------------------

class TlsFront:
    """A TLS listener on loopback that hands each connection's bytes to the lab router and back."""

    def __init__(self, lab, cert, key):
        import socket
        import ssl

        self.lab = lab
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket

        while True:
            try:
                raw, _addr = self.listener.accept()
            except OSError:
                return
            try:
                tls = self.context.wrap_socket(raw, server_side=True)
            except OSError:
                raw.close()
                continue
            inner = socket.create_connection(("127.0.0.1", self.lab.port))
            threading.Thread(target=self._pump, args=(tls, inner), daemon=True).start()
            threading.Thread(target=self._pump, args=(inner, tls), daemon=True).start()

    @staticmethod
    def _pump(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self):
        self.listener.close()


@pytest.fixture
def tls_front(lab, tmp_path):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "router.pem", tmp_path / "router.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    front = TlsFront(lab, cert, key)
    yield front, cert
    front.close()


def test_tls_connections_work_with_and_without_checking_the_certificate(lab, tls_front):
    front, cert = tls_front
    unchecked = make_router(lab)
    unchecked.use_tls, unchecked.port = True, front.port
    assert mikrotik.enforcer_check(router=unchecked).identity == "lab-core"
    assert apply(unchecked, sub()).failed == {}
    assert read(unchecked) == {"svc-1": sub()}
    pinned = make_router(lab, tls_ca_file=str(cert))
    pinned.use_tls, pinned.port = True, front.port
    assert mikrotik.enforcer_check(router=pinned).identity == "lab-core"
    stranger = make_router(lab, tls_verify=True)  # the system's CAs do not know this certificate
    stranger.use_tls, stranger.port = True, front.port
    with pytest.raises(OSError):
        mikrotik.enforcer_check(router=stranger)
    plain = make_router(lab, timeout_seconds=0.3)
    plain.use_tls = True  # TLS spoken to the plain API port: refused, or no answer
    with pytest.raises(OSError):
        mikrotik.enforcer_check(router=plain)
