"""The MikroTik enforcer's mapping between subscriber states and RouterOS entries (no router needed)."""

from __future__ import annotations

import itertools

import pytest

from core.hooktypes import SubscriberState
from plugins.mikrotik import mapping
from plugins.mikrotik.mapping import Held, Layout, Unenforceable, entries_for, state_from

LAYOUT = Layout(suspend_list="unpaid")


def sub(key="svc-1", state="active", address="10.0.0.5", rate=(10000, 2000), access="dhcp",
        username=None, password=None, mac=None):
    return SubscriberState(key, state, address, rate,
                           {"access": access, "username": username, "password": password, "mac": mac})


def held_from(entries, ids=itertools.count(1)):
    """The entries as the router would print them after adding them (an .id each)."""
    held = Held()
    for kind in mapping.KINDS:
        attrs = entries.get(kind)
        if attrs is not None:
            held.get(kind).append({".id": f"*{next(ids):X}", **attrs})
    return held


def profiles_for(entries):
    if entries.profile is None:
        return {}
    return {entries.profile.name: {".id": "*AA", **entries.profile.attributes(LAYOUT)}}


def _all_states():
    for access, state, address, rate, mac in itertools.product(
            ("pppoe", "dhcp", "static", "hotspot"), mapping.STATES, (None, "10.1.2.3"),
            (None, (10000, 2000), (512, 256)), (None, "4C:5E:0C:12:34:56")):
        username = "bob smith" if access in ("pppoe", "hotspot") else None
        password = "pa ss=word" if access in ("pppoe", "hotspot") else None
        yield sub(state=state, address=address, rate=rate, access=access, username=username, password=password,
                  mac=mac)


def test_every_state_the_router_can_hold_reads_back_equal():
    held_states = skipped = 0
    for wanted in _all_states():
        try:
            entries = entries_for(wanted, LAYOUT)
        except Unenforceable:
            skipped += 1
            continue
        read = state_from(wanted.key, held_from(entries), LAYOUT, profiles_for(entries))
        if entries == mapping.Entries():
            assert read is None  # DHCP/static, active without a limit: nothing to hold, nothing to read
            continue
        assert read == wanted, wanted
        held_states += 1
    assert held_states >= 100 and skipped > 0


def test_dhcp_and_static_entries():
    entries = entries_for(sub(state="throttled", rate=(512, 256), access="static", mac="4C:5E:0C:12:34:56"), LAYOUT)
    assert entries.queue == {"name": "wispbill-svc-1", "target": "10.0.0.5/32", "max-limit": "256k/512k",
                             "comment": "wispbill:svc-1 state=throttled access=static mac=4C:5E:0C:12:34:56",
                             "disabled": "false"}
    assert entries.address is None and entries.secret is None and entries.hotspot is None
    suspended = entries_for(sub(state="suspended", rate=None), LAYOUT)
    assert suspended.queue is None
    assert suspended.address == {"list": "unpaid", "address": "10.0.0.5", "comment": "wispbill:svc-1 access=dhcp",
                                 "disabled": "false"}
    assert entries_for(sub(rate=None), LAYOUT) == mapping.Entries()


def test_pppoe_entries_use_a_profile_per_state_and_rate():
    entries = entries_for(sub(state="suspended", access="pppoe", username="bob", password="pw",
                              mac="4C:5E:0C:12:34:56"), LAYOUT)
    assert entries.secret == {"name": "bob", "password": "pw", "service": "pppoe",
                              "profile": "wispbill-suspended-10000k-2000k", "caller-id": "4C:5E:0C:12:34:56",
                              "comment": "wispbill:svc-1", "disabled": "false", "remote-address": "10.0.0.5"}
    assert entries.address["list"] == "unpaid" and entries.queue is None
    attrs = entries.profile.attributes(Layout("unpaid", (("local-address", "10.0.0.1"),)))
    assert attrs == {"local-address": "10.0.0.1", "name": "wispbill-suspended-10000k-2000k", "comment": "wispbill",
                     "address-list": "unpaid", "rate-limit": "2000k/10000k"}
    dynamic = entries_for(sub(state="suspended", address=None, access="pppoe", username="bob"), LAYOUT)
    assert dynamic.address is None and "remote-address" not in dynamic.secret
    assert dynamic.secret["password"] == "" and dynamic.secret["caller-id"] == ""


def test_hotspot_entries_disable_the_user_and_queue_a_known_address():
    entries = entries_for(sub(state="suspended", access="hotspot", username="eve", password="pw",
                              mac="4C:5E:0C:12:34:56"), LAYOUT)
    assert entries.hotspot == {"name": "eve", "password": "pw", "disabled": "true", "mac-address": "4C:5E:0C:12:34:56",
                               "comment": "wispbill:svc-1 state=suspended rate=10000/2000", "address": "10.0.0.5"}
    assert entries.queue["comment"] == "wispbill:svc-1" and entries.address["address"] == "10.0.0.5"
    roaming = entries_for(sub(state="throttled", address=None, rate=(512, 256), access="hotspot", username="eve"),
                          LAYOUT)
    assert roaming.queue is None and roaming.address is None and roaming.hotspot["disabled"] == "false"


@pytest.mark.parametrize("wanted, message", [
    (sub(state="suspended", address=None), "cannot suspend a dhcp subscriber without an IP address"),
    (sub(state="throttled", address=None, access="static"), "cannot limit a static subscriber without an IP address"),
    (sub(access="pppoe"), "a PPPoE subscriber needs a user name"),
    (sub(access="hotspot"), "a hotspot subscriber needs a user name"),
    (sub(address="2001:db8::5"), "IPv4"),
    (sub(state="gone"), "unknown state"),
    (sub(access="wifi"), "unknown access kind"),
])
def test_states_the_router_cannot_hold_are_refused_with_a_reason(wanted, message):
    with pytest.raises(Unenforceable, match=message):
        entries_for(wanted, LAYOUT)


@pytest.mark.parametrize("text, rate", [
    ("2000k/10000k", (10000, 2000)), ("2M/10M", (10000, 2000)), ("2000000/10000000", (10000, 2000)),
    ("256k/512k 512k/1M 192k/384k 8/8", (512, 256)), ("0/0", None), ("", None), (None, None), ("fast", None),
    ("1.5M/3M", (3000, 1500)),
])
def test_parse_rate_reads_every_form_routeros_prints(text, rate):
    assert mapping.parse_rate(text) == rate


def test_rate_text_puts_upload_first():
    assert mapping.rate_text((10000, 2000)) == "2000k/10000k"
    assert mapping.parse_rate(mapping.rate_text((7, 3))) == (7, 3)


@pytest.mark.parametrize("state, rate, name", [
    ("active", (10000, 2000), "wispbill-10000k-2000k"), ("active", None, "wispbill-unlimited"),
    ("throttled", (512, 256), "wispbill-throttled-512k-256k"), ("throttled", None, "wispbill-throttled"),
    ("suspended", (10000, 2000), "wispbill-suspended-10000k-2000k"), ("suspended", None, "wispbill-suspended"),
])
def test_profile_names_round_trip(state, rate, name):
    profile = mapping.profile_for(state, rate)
    assert (profile.name, profile.suspended) == (name, state == "suspended")
    assert mapping.parse_profile(name) == (state, rate)


@pytest.mark.parametrize("name", ["default", "wispbill", "wispbill-", "wispbill-fast", "wispbill-suspended-unlimited",
                                  "wispbill-10k", "wispbill-throttled-10k-x", None])
def test_other_profiles_are_not_ours(name):
    assert mapping.parse_profile(name) is None


def test_comments_carry_the_key_and_quoted_words():
    text = mapping.comment("svc-9", state="active", user="ana maria=1", mac=None)
    assert text == "wispbill:svc-9 state=active user=ana%20maria%3D1"
    assert mapping.parse_comment(text) == ("svc-9", {"state": "active", "user": "ana maria=1"})
    assert mapping.key_of(text) == "svc-9" and mapping.key_of("wispbill:svc-9") == "svc-9"
    for other in ("customer 9", "wispbill", "wispbill:", "WISPBILL:svc-9", "", None):
        assert mapping.key_of(other) is None and mapping.parse_comment(other) is None


def test_entries_as_routeros_prints_them_still_match():
    wanted = entries_for(sub(), LAYOUT).queue
    printed = {**wanted, ".id": "*7", "target": "10.0.0.5/32", "max-limit": "2000000/10000000", "disabled": "no"}
    assert mapping.matches("queue", printed, wanted)
    assert mapping.differences("queue", {**printed, "max-limit": "1M/10M"}, wanted) == (
        {"max-limit": "2000k/10000k"}, [])
    secret = entries_for(sub(access="pppoe", username="bob", address=None), LAYOUT).secret
    assert mapping.differences("secret", {**secret, "remote-address": "10.0.0.9"}, secret) == ({}, ["remote-address"])


def test_read_state_reports_drift_so_the_reconciler_writes_again():
    wanted = sub(state="suspended")
    entries = entries_for(wanted, LAYOUT)
    lost_list = held_from(entries)
    lost_list.address.clear()
    read = state_from("svc-1", lost_list, LAYOUT)
    assert read != wanted and "address entry missing" in read.extra["drift"]
    assert (read.state, read.address, read.rate) == ("suspended", "10.0.0.5", (10000, 2000))

    twice = held_from(entries)
    twice.queue.append({**twice.queue[0], ".id": "*99"})
    assert "2 queue entries" in state_from("svc-1", twice, LAYOUT).extra["drift"]

    edited = held_from(entries)
    edited.queue[0]["comment"] = "wispbill:svc-1 state=suspended access=static"
    assert "address entry differs" in state_from("svc-1", edited, LAYOUT).extra["drift"]
    unlimited = held_from(entries)
    unlimited.queue[0]["max-limit"] = "0/0"  # an operator lifted the limit by hand
    assert "unexpected queue entry" in state_from("svc-1", unlimited, LAYOUT).extra["drift"]


def test_a_hand_edited_or_missing_profile_is_drift():
    wanted = sub(access="pppoe", username="bob")
    entries = entries_for(wanted, LAYOUT)
    profiles = profiles_for(entries)
    assert state_from("svc-1", held_from(entries), LAYOUT, profiles) == wanted
    profiles[entries.profile.name]["rate-limit"] = "1M/1M"
    assert "profile wispbill-10000k-2000k missing or changed" in state_from(
        "svc-1", held_from(entries), LAYOUT, profiles).extra["drift"]
    assert "drift" in state_from("svc-1", held_from(entries), LAYOUT, {}).extra
    foreign = held_from(entries)
    foreign.secret[0]["profile"] = "default"
    assert "not one wispbill manages" in state_from("svc-1", foreign, LAYOUT).extra["drift"]


def test_nothing_held_reads_as_nothing():
    assert state_from("svc-1", Held(), LAYOUT) is None
