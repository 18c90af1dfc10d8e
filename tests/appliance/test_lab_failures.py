"""Failure controls: drop, stall, down and back, from Python and through /lab commands."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import librouteros
import pytest
from librouteros.exceptions import ConnectionClosed, TrapError

from appliance.lab.server import LabRouter


_opened = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _opened:
        _opened.pop().close()


@pytest.fixture
def lab(tmp_path):
    with LabRouter(users={"admin": "secret"}, identity="lab", state_file=tmp_path / "state.json") as router:
        yield router


def connect(lab, timeout=5.0):
    api = librouteros.connect("127.0.0.1", "admin", "secret", port=lab.port, timeout=timeout)
    _opened.append(api)
    return api


def open_socket(lab, timeout: float) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", lab.port), timeout=timeout)
    _opened.append(sock)
    return sock


def identity(api) -> str:
    return next(iter(api.path("system", "identity")))["name"]


def wait_until(condition, timeout=3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def raw_send(sock: socket.socket, *words: str) -> None:
    sock.sendall(b"".join(bytes([len(w)]) + w.encode() for w in words) + b"\x00")


# -- drop ----------------------------------------------------------------------


def test_drop_cuts_every_connection(lab):
    first, second = connect(lab), connect(lab)
    assert lab.drop() == 2
    for api in (first, second):
        with pytest.raises((ConnectionClosed, OSError)):
            identity(api)
    assert identity(connect(lab)) == "lab"


def test_drop_with_reset_is_a_connection_reset(lab):
    api = connect(lab)
    lab.drop(reset=True)
    with pytest.raises(ConnectionResetError):
        identity(api)


# -- stall ---------------------------------------------------------------------


def test_stall_for_seconds_times_clients_out_then_answers_again(lab):
    api = connect(lab, timeout=0.2)
    lab.stall(0.6)
    assert lab.stalled
    with pytest.raises(TimeoutError):
        identity(api)
    assert wait_until(lambda: not lab.stalled)
    assert identity(connect(lab)) == "lab"


def test_stall_until_released_then_carries_out_what_came_meanwhile(lab):
    sock = open_socket(lab, 0.3)
    lab.stall()
    raw_send(sock, "/login", "=name=admin", "=password=secret")
    with pytest.raises(TimeoutError):
        sock.recv(100)
    assert lab.stalled and lab.logins == 0
    lab.release()
    assert sock.recv(100) == b"\x05!done\x00"
    assert lab.logins == 1


def test_drop_during_a_stall_cuts_the_waiting_connections(lab):
    api = connect(lab, timeout=1)
    lab.stall()
    sock = open_socket(lab, 1)
    raw_send(sock, "/login", "=name=admin", "=password=secret")
    assert wait_until(lambda: lab.connections == 2)
    assert lab.drop() == 2
    assert sock.recv(100) == b""
    with pytest.raises((ConnectionClosed, OSError)):
        identity(api)
    lab.release()
    assert lab.logins == 1  # only the first connection ever logged in


# -- down and back -------------------------------------------------------------


def test_stop_and_start_on_the_same_port(lab):
    api = connect(lab)
    port = lab.port
    lab.stop()
    with pytest.raises((ConnectionClosed, OSError)):
        identity(api)
    with pytest.raises(ConnectionRefusedError):
        connect(lab)
    lab.start()
    assert lab.port == port
    assert identity(connect(lab)) == "lab"


def test_restart_keeps_the_state(lab):
    lab.add_row("/queue/simple", name="q")
    lab.restart(down_for=0.05)
    assert [q["name"] for q in connect(lab).path("queue", "simple")] == ["q"]


def test_down_for_seconds_comes_back_by_itself(lab):
    lab.down(0.3)
    with pytest.raises(ConnectionRefusedError):
        connect(lab)
    assert wait_until(lambda: lab.running)
    assert identity(connect(lab)) == "lab"


# -- the same controls as API commands (for a lab router in another process) ------


def test_lab_stats_and_connect_commands(lab):
    api = connect(lab)
    (ret,) = tuple(api("/lab/connect-ppp", name="sub1", address="10.8.0.2"))
    assert ret == {"ret": "*1"}
    tuple(api("/lab/connect-hotspot", user="guest", address="10.9.0.2"))
    assert [s["name"] for s in api.path("ppp", "active")] == ["sub1"]
    assert [s["user"] for s in api.path("ip", "hotspot", "active")] == ["guest"]
    api.path("ip", "firewall", "address-list").add(list="x", address="10.0.0.1")
    (stats,) = tuple(api("/lab/stats"))
    assert stats["writes"] == 1 and stats["connections"] == 1 and stats["logins"] == 1


def test_lab_drop_answers_then_cuts(lab):
    api = connect(lab)
    assert tuple(api("/lab/drop")) == ()
    with pytest.raises((ConnectionClosed, OSError)):
        identity(api)


def test_lab_stall_and_release_from_another_connection_without_login(lab):
    api = connect(lab, timeout=0.2)
    tuple(api("/lab/stall"))
    with pytest.raises(TimeoutError):
        identity(api)
    sock = open_socket(lab, 2)
    raw_send(sock, "/lab/release")
    assert sock.recv(100) == b"\x05!done\x00"
    assert not lab.stalled
    assert identity(connect(lab)) == "lab"


def test_lab_stall_for_seconds(lab):
    api = connect(lab, timeout=0.15)
    tuple(api("/lab/stall", seconds="0.4"))
    with pytest.raises(TimeoutError):
        identity(api)
    assert wait_until(lambda: not lab.stalled)


def test_lab_down_for_seconds(lab):
    api = connect(lab)
    tuple(api("/lab/down", seconds="0.3"))
    assert wait_until(lambda: not lab.running, 1)
    with pytest.raises(ConnectionRefusedError):
        connect(lab)
    assert wait_until(lambda: lab.running)
    assert identity(connect(lab)) == "lab"


def test_lab_reboot_loses_the_named_tables(lab):
    lab.add_row("/ip/firewall/address-list", list="suspended", address="10.0.0.1")
    lab.add_row("/queue/simple", name="q")
    api = connect(lab)
    with pytest.raises(TrapError, match="no such table"):
        tuple(api("/lab/reboot", lose="/nowhere"))
    tuple(api("/lab/reboot", lose="/ip/firewall/address-list"))
    assert wait_until(lambda: lab.rows("/ip/firewall/address-list") == [])
    assert [q["name"] for q in lab.rows("/queue/simple")] == ["q"]
    with pytest.raises((ConnectionClosed, OSError)):
        identity(api)


def test_lab_save_writes_the_state_file(lab):
    api = connect(lab)
    api.path("ppp", "secret").add(name="sub1", password="pw")
    tuple(api("/lab/save"))
    saved = json.loads(Path(lab.state_file).read_text())
    assert [r["name"] for r in saved["tables"]["/ppp/secret"]["rows"]] == ["sub1"]


def test_lab_save_without_a_state_file_is_a_trap():
    with LabRouter(users={"admin": "secret"}) as lab:
        with pytest.raises(TrapError, match="no state file"):
            tuple(connect(lab)("/lab/save"))
