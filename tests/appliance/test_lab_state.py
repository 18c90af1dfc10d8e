"""The lab router's Python API: rows, operator entries, sessions, save/load, reboot."""

from __future__ import annotations

import json

import librouteros
import pytest

from appliance.lab.server import LabRouter, version_tuple
from appliance.lab.state import RouterError, format_duration

ADDRESS_LIST = "/ip/firewall/address-list"


@pytest.fixture
def lab():
    with LabRouter(users={"admin": "secret"}, identity="lab") as router:
        yield router


def test_context_manager_listens_on_loopback_and_stops(lab):
    assert lab.running and lab.host == "127.0.0.1" and lab.port > 0
    lab.stop()
    assert not lab.running
    with pytest.raises(ConnectionRefusedError):
        librouteros.connect("127.0.0.1", "admin", "secret", port=lab.port, timeout=1)


def test_rows_are_copies_with_ids(lab):
    row_id = lab.add_row(ADDRESS_LIST, list="blocked", address="10.9.9.9")
    (row,) = lab.rows(ADDRESS_LIST)
    assert row[".id"] == row_id == "*1"
    row["list"] = "changed"
    assert lab.rows(ADDRESS_LIST)[0]["list"] == "blocked"


def test_add_row_takes_underscores_for_dashes_and_read_only_attributes(lab):
    lab.add_row("/queue/simple", name="q", max_limit="1M/1M", dynamic="yes")
    (queue,) = lab.find("/queue/simple", name="q")
    assert (queue["max-limit"], queue["dynamic"]) == ("1M/1M", "true")
    with pytest.raises(RouterError, match="unknown parameter"):
        lab.add_row("/queue/simple", name="r", colour="red")
    with pytest.raises(RouterError, match="already have such name"):
        lab.add_row("/queue/simple", name="q")
    with pytest.raises(KeyError):
        lab.rows("/interface")


def test_set_and_remove_rows(lab):
    row_id = lab.add_row("/ppp/secret", name="s", password="a")
    lab.set_row("/ppp/secret", row_id, password="b")
    assert lab.find("/ppp/secret", name="s")[0]["password"] == "b"
    lab.remove_row("/ppp/secret", row_id)
    assert lab.rows("/ppp/secret") == []
    assert lab.writes == 0  # only API commands count as writes


def test_sessions_show_uptime():
    assert format_duration(0) == "0s"
    assert format_duration(3725) == "1h2m5s"
    assert format_duration(604800 + 86400 + 61) == "1w1d1m1s"
    lab = LabRouter()
    row_id = lab.connect_ppp("sub1", "10.8.0.2", caller_id="AA:BB:CC:00:00:01")
    (session,) = lab.rows("/ppp/active")
    assert session[".id"] == row_id
    assert (session["name"], session["address"], session["service"], session["uptime"]) == (
        "sub1", "10.8.0.2", "pppoe", "0s")
    lab.connect_hotspot("guest", "10.9.0.2")
    assert lab.rows("/ip/hotspot/active")[0]["user"] == "guest"


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "router.json"
    lab = LabRouter(identity="tower", state_file=path)
    lab.add_row(ADDRESS_LIST, list="suspended", address="10.0.0.1")
    lab.add_row(ADDRESS_LIST, list="suspended", address="10.0.0.2")
    lab.remove_row(ADDRESS_LIST, "*2")
    lab.add_row("/ppp/profile", name="gold", rate_limit="20M/20M")
    lab.save()
    assert json.loads(path.read_text())["identity"] == "tower"

    again = LabRouter(state_file=path)
    again.load()
    assert again.identity == "tower"
    assert again.rows(ADDRESS_LIST) == lab.rows(ADDRESS_LIST)
    assert [p["name"] for p in again.rows("/ppp/profile")] == ["default", "gold", "default-encryption"]
    # ids keep counting from where they were, and the unique index is rebuilt
    assert again.add_row(ADDRESS_LIST, list="suspended", address="10.0.0.3") == "*3"
    with pytest.raises(RouterError):
        again.add_row(ADDRESS_LIST, list="suspended", address="10.0.0.1")


def test_loading_a_bad_file_is_a_value_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        LabRouter().load(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a lab router state"):
        LabRouter().load(bad)
    with pytest.raises(ValueError):
        LabRouter().save()  # no state file configured


def test_reboot_forgets_sessions_and_dynamic_rows(lab, request):
    lab.add_row(ADDRESS_LIST, list="suspended", address="10.0.0.1")
    lab.add_row(ADDRESS_LIST, list="suspended", address="10.0.0.2", timeout="1d")  # dynamic
    lab.add_row("/queue/simple", name="q")
    lab.connect_ppp("sub1", "10.8.0.2")
    api = librouteros.connect("127.0.0.1", "admin", "secret", port=lab.port, timeout=5)
    request.addfinalizer(api.close)
    lab.reboot()
    assert [r["address"] for r in lab.rows(ADDRESS_LIST)] == ["10.0.0.1"]
    assert lab.rows("/ppp/active") == []
    assert len(lab.rows("/queue/simple")) == 1
    with pytest.raises((librouteros.exceptions.ConnectionClosed, OSError)):
        list(api.path("queue", "simple"))


def test_reboot_can_lose_whole_tables(lab):
    lab.add_row(ADDRESS_LIST, list="suspended", address="10.0.0.1")
    lab.add_row("/ppp/profile", name="gold")
    lab.reboot(lose=(ADDRESS_LIST, "/ppp/profile"))
    assert lab.rows(ADDRESS_LIST) == []
    assert [p["name"] for p in lab.rows("/ppp/profile")] == ["default", "default-encryption"]
    assert lab.add_row(ADDRESS_LIST, list="suspended", address="10.0.0.1") == "*2"  # ids not reused
    with pytest.raises(KeyError):
        lab.reboot(lose=("/nowhere",))


def test_version_parsing():
    assert version_tuple("7.18.2") == (7, 18, 2)
    assert version_tuple("7.19beta3 (testing)") == (7, 19)
    assert version_tuple("6.49.10 (long-term)") == (6, 49, 10)
    assert LabRouter(version="7.17.2").send_empty is False
    assert LabRouter(version="7.18").send_empty is True
