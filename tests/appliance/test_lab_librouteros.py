"""The real librouteros 4.2.2 client against the lab router."""

from __future__ import annotations

import time

import librouteros
import pytest
from librouteros.exceptions import TrapError
from librouteros.query import And, Key, Or

from appliance.lab.server import LabRouter


@pytest.fixture
def lab():
    with LabRouter(users={"admin": "secret"}, identity="lab", version="7.18") as router:
        yield router


@pytest.fixture
def api(lab):
    connection = librouteros.connect("127.0.0.1", "admin", "secret", port=lab.port, timeout=5)
    yield connection
    connection.close()


def test_wrong_password_raises_a_trap(lab):
    with pytest.raises(TrapError, match="invalid user name or password"):
        librouteros.connect("127.0.0.1", "admin", "wrong", port=lab.port, timeout=5)


def test_add_select_update_remove(api, lab):
    lists = api.path("ip", "firewall", "address-list")
    first = lists.add(list="suspended", address="10.0.0.1", comment="acct 1")
    lists.add(list="suspended", address="10.0.0.2")
    lists.add(list="other", address="10.0.0.3")
    assert first == "*1"
    found = list(lists.select(Key(".id"), Key("address")).where(Key("list") == "suspended"))
    assert found == [{".id": "*1", "address": "10.0.0.1"}, {".id": "*2", "address": "10.0.0.2"}]

    lists.update(**{".id": first, "comment": "acct 1, paid", "disabled": True})
    (row,) = list(lists.select(Key("comment"), Key("disabled")).where(Key(".id") == first))
    assert row == {"comment": "acct 1, paid", "disabled": True}  # sent as yes, comes back true

    lists.remove("*1", "*3")
    assert [r["address"] for r in lists] == ["10.0.0.2"]
    assert lab.writes == 5


def test_a_duplicate_is_a_trap_and_the_connection_still_works(api):
    lists = api.path("ip", "firewall", "address-list")
    lists.add(list="suspended", address="10.0.0.1")
    with pytest.raises(TrapError) as trap:
        lists.add(list="suspended", address="10.0.0.1")
    assert trap.value.message == "failure: already have such entry"
    assert lists.add(list="suspended", address="10.0.0.2") == "*2"
    assert len(list(lists)) == 2


def test_unknown_parameter_trap_keeps_its_category(api):
    with pytest.raises(TrapError) as trap:
        api.path("queue", "simple").add(name="q", colour="red")
    assert (trap.value.category, trap.value.message) == (1, "unknown parameter")
    assert list(api.path("queue", "simple")) == []


def test_empty_reply_is_an_empty_result(api, lab):
    assert lab.send_empty
    assert list(api.path("ppp", "active")) == []
    assert list(api.path("ppp", "secret").select(Key("name")).where(Key("name") == "nobody")) == []
    assert api.path("ppp", "secret").add(name="after-empty") == "*1"


def test_query_helpers(api):
    secrets = api.path("ppp", "secret")
    for name in ("ann", "ben", "cy", "dee"):
        secrets.add(name=name, password="x", disabled=(name == "cy"))
    names = lambda *where: [r["name"] for r in secrets.select(Key("name")).where(*where)]  # noqa: E731
    assert names(Key("name").In("ann", "cy", "zed")) == ["ann", "cy"]
    assert names(Key("name") != "ben") == ["ann", "cy", "dee"]
    assert names(Key("disabled") == True) == ["cy"]  # noqa: E712 (librouteros sends yes)
    assert names(Or(Key("name") == "ann", Key("name") == "dee")) == ["ann", "dee"]
    assert names(And(Key("profile") == "default", Key("name") > "bz")) == ["cy", "dee"]


def test_queues_profiles_and_kicks(api, lab):
    api.path("ppp", "profile").add(name="10M", **{"rate-limit": "10M/10M"})
    secrets = api.path("ppp", "secret")
    secret_id = secrets.add(name="sub1", password="pw", profile="10M")
    api.path("queue", "simple").add(name="sub1", target="10.0.0.9", **{"max-limit": "5M/10M"})
    lab.connect_ppp("sub1", "10.8.0.9")

    secrets.update(**{".id": secret_id, "profile": "default"})
    (active,) = list(api.path("ppp", "active").select(Key(".id")).where(Key("name") == "sub1"))
    api.path("ppp", "active").remove(active[".id"])
    assert lab.kicks == 1
    assert lab.find("/ppp/secret", name="sub1")[0]["profile"] == "default"
    assert lab.find("/queue/simple", name="sub1")[0]["max-limit"] == "5M/10M"


def test_identity_and_resource(api):
    assert list(api.path("system", "identity")) == [{"name": "lab"}]
    (resource,) = list(api.path("system", "resource"))
    assert resource["version"] == "7.18 (stable)"
    assert resource["board-name"] == "CHR"


def test_bulk_sync_and_a_big_print_are_quick(api, lab):
    queues = api.path("queue", "simple")
    started = time.perf_counter()
    for i in range(2000):
        queues.add(name=f"sub{i}", target=f"10.{i >> 8}.{i & 255}.1", **{"max-limit": "2M/8M"})
    adds = time.perf_counter() - started
    started = time.perf_counter()
    rows = list(queues.select(Key(".id"), Key("name"), Key("max-limit")))
    printed = time.perf_counter() - started
    assert len(rows) == 2000 and rows[-1] == {".id": "*7D0", "name": "sub1999", "max-limit": "2M/8M"}
    # generous bounds: the benchmark itself measures 10k subscribers
    assert adds < 2.0, f"2000 adds took {adds:.2f}s"
    assert printed < 0.5, f"print of 2000 rows took {printed:.2f}s"
    assert lab.writes == 2000
