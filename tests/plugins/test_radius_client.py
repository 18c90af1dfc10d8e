"""The RADIUS plugin's Disconnect/CoA client against a stand-in NAS on 127.0.0.1, and its dictionary."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from pyrad.dictionary import Dictionary

from plugins.radius import client
from plugins.radius.client import Reply, send
from tests.radius_nas import StandInNAS

SECRET = "s3cret-shared"
SESSION = {
    "User-Name": "alice",
    "Acct-Session-Id": "81a0002f",
    "Framed-IP-Address": "10.20.30.40",
    "NAS-IP-Address": "192.0.2.1",
}


@pytest.fixture
def nas():
    with StandInNAS(secret=SECRET) as n:
        yield n


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the dictionary ------------------------------------------------------------------------

MIKROTIK = {
    "Mikrotik-Recv-Limit": (1, "integer"),
    "Mikrotik-Xmit-Limit": (2, "integer"),
    "Mikrotik-Group": (3, "string"),
    "Mikrotik-Rate-Limit": (8, "string"),
    "Mikrotik-Total-Limit": (17, "integer"),
    "Mikrotik-Address-List": (19, "string"),
}

STANDARD = {
    "User-Name": (1, "string"), "User-Password": (2, "string"), "CHAP-Password": (3, "octets"),
    "NAS-IP-Address": (4, "ipaddr"), "NAS-Port": (5, "integer"), "Service-Type": (6, "integer"),
    "Framed-Protocol": (7, "integer"), "Framed-IP-Address": (8, "ipaddr"), "Reply-Message": (18, "string"),
    "Class": (25, "octets"), "Session-Timeout": (27, "integer"), "Idle-Timeout": (28, "integer"),
    "Called-Station-Id": (30, "string"), "Calling-Station-Id": (31, "string"),
    "NAS-Identifier": (32, "string"), "Acct-Status-Type": (40, "integer"), "Acct-Delay-Time": (41, "integer"),
    "Acct-Input-Octets": (42, "integer"), "Acct-Output-Octets": (43, "integer"),
    "Acct-Session-Id": (44, "string"), "Acct-Session-Time": (46, "integer"),
    "Acct-Terminate-Cause": (49, "integer"), "Acct-Input-Gigawords": (52, "integer"),
    "Acct-Output-Gigawords": (53, "integer"), "Event-Timestamp": (55, "date"),
    "NAS-Port-Type": (61, "integer"), "Message-Authenticator": (80, "octets"),
    "Acct-Interim-Interval": (85, "integer"), "NAS-Port-Id": (87, "string"), "Error-Cause": (101, "integer"),
}


def test_the_dictionary_file_parses_with_the_mikrotik_block():
    d = Dictionary(str(client.DICTIONARY_PATH))
    assert d.vendors.GetForward("Mikrotik") == 14988
    for name, (code, kind) in MIKROTIK.items():
        attr = d.attributes[name]
        assert (attr.vendor, attr.code, attr.type) == ("Mikrotik", code, kind), name
        assert d.attrindex.GetForward(name) == (14988, code)


def test_the_dictionary_has_the_standard_attributes_and_values():
    d = client.dictionary()
    assert client.dictionary() is d
    for name, (code, kind) in STANDARD.items():
        attr = d.attributes[name]
        assert (attr.vendor, attr.code, attr.type) == ("", code, kind), name
    assert d.attributes["User-Password"].encrypt == 1
    status = d.attributes["Acct-Status-Type"].values
    assert {n: struct.unpack("!I", status.GetForward(n))[0] for n in status.forward} == {
        "Start": 1, "Stop": 2, "Interim-Update": 3, "Accounting-On": 7, "Accounting-Off": 8, "Failed": 15}
    causes = d.attributes["Error-Cause"].values
    assert struct.unpack("!I", causes.GetForward("Session-Context-Not-Found"))[0] == 503
    assert len(causes.forward) == 17


# -- answers ------------------------------------------------------------------------------

def test_disconnect_ack_and_what_the_nas_saw(nas):
    reply = send("disconnect", nas.address, nas.port, SECRET, SESSION)
    assert reply == Reply("ack", 41, {}, None, f"Disconnect-ACK from 127.0.0.1:{nas.port}")
    [got] = nas.wait_for(1)
    assert got.code == 40
    assert got.attributes == SESSION
    assert got.message_authenticator is True  # present and valid
    assert nas.dropped == []


def test_coa_carries_the_mikrotik_rate_limit(nas):
    reply = send("coa", nas.address, nas.port, SECRET,
                 {"User-Name": "bob", "Acct-Session-Id": "81a00030", "Mikrotik-Rate-Limit": "5M/10M 8M/16M"})
    assert (reply.outcome, reply.code, reply.detail) == ("ack", 44, f"CoA-ACK from 127.0.0.1:{nas.port}")
    [got] = nas.wait_for(1)
    assert got.code == 43
    assert got.attributes["Mikrotik-Rate-Limit"] == "5M/10M 8M/16M"
    # on the wire: a Vendor-Specific attribute (26) of vendor 14988, sub-attribute 8
    vsa = struct.pack("!BBIBB", 26, 6 + 2 + 13, 14988, 8, 2 + 13) + b"5M/10M 8M/16M"
    assert vsa in got.raw


def test_repeated_and_integer_attributes_are_sent(nas):
    send("coa", nas.address, nas.port, SECRET,
         {"User-Name": "carol", "Class": [b"one", b"two"], "Session-Timeout": 3600, "Acct-Status-Type": "Stop"})
    [got] = nas.wait_for(1)
    assert got.attributes["Class"] == [b"one", b"two"]
    assert got.attributes["Session-Timeout"] == 3600
    assert got.attributes["Acct-Status-Type"] == "Stop"


def test_a_nak_reports_its_error_cause():
    with StandInNAS(secret=SECRET, behaviour="nak", error_cause=503) as nas:
        reply = send("disconnect", nas.address, nas.port, SECRET, SESSION)
        assert (reply.outcome, reply.code, reply.error_cause) == ("nak", 42, 503)
        assert reply.attributes == {"Error-Cause": "Session-Context-Not-Found"}
        assert reply.detail == f"Disconnect-NAK from 127.0.0.1:{nas.port}: Error-Cause 503 (Session-Context-Not-Found)"

        nas.behaviour = "nak"
        nas.error_cause = None
        reply = send("coa", nas.address, nas.port, SECRET, {"User-Name": "alice", "Mikrotik-Rate-Limit": "1M/1M"})
        assert (reply.outcome, reply.code, reply.error_cause) == ("nak", 45, None)
        assert reply.detail.endswith("without an Error-Cause")


def test_a_reply_with_a_message_authenticator_is_accepted():
    with StandInNAS(secret=SECRET, behaviour=[("nak", 404)], message_authenticator=True) as nas:
        reply = send("coa", nas.address, nas.port, SECRET, SESSION)
        assert (reply.outcome, reply.error_cause) == ("nak", 404)
        assert "Message-Authenticator" not in reply.attributes


# -- silence and retries ------------------------------------------------------------------

def test_silence_times_out_after_each_attempt_with_identical_retransmissions():
    with StandInNAS(secret=SECRET, behaviour="silent") as nas:
        started = time.monotonic()
        reply = send("disconnect", nas.address, nas.port, SECRET, SESSION, timeout=0.3, retries=2)
        elapsed = time.monotonic() - started
        assert reply == Reply("timeout", None, {}, None,
                              f"no reply from 127.0.0.1:{nas.port} to the Disconnect-Request after 3 attempt(s) of 0.3 s")
        assert 0.85 <= elapsed < 1.5
        got = nas.wait_for(3)
        assert len(got) == 3
        assert len({(r.identifier, r.authenticator, r.raw) for r in got}) == 1
        assert 0.25 <= got[1].time - got[0].time < 0.5


def test_a_lost_first_attempt_is_answered_by_the_retry():
    with StandInNAS(secret=SECRET, behaviour=["silent", "ack"]) as nas:
        reply = send("coa", nas.address, nas.port, SECRET, SESSION, timeout=0.3, retries=1)
        assert reply.outcome == "ack"
        assert len(nas.received) == 2

        nas.behaviour = ["silent", "nak", "ack"]
        reply = send("coa", nas.address, nas.port, SECRET, SESSION, timeout=0.3, retries=0)
        assert reply.outcome == "timeout"
        assert send("coa", nas.address, nas.port, SECRET, SESSION, timeout=0.3, retries=0).outcome == "nak"
        assert send("coa", nas.address, nas.port, SECRET, SESSION, timeout=0.3, retries=0).outcome == "ack"
        # the script is used up: silent from now on
        assert send("coa", nas.address, nas.port, SECRET, SESSION, timeout=0.2, retries=0).outcome == "timeout"


# -- wrong secret, nothing there ----------------------------------------------------------

def test_a_nas_answering_with_another_secret_is_not_an_ack():
    with StandInNAS(secret="another-secret", verify_requests=False) as nas:
        reply = send("disconnect", nas.address, nas.port, SECRET, SESSION, timeout=0.3, retries=1)
        assert reply.outcome == "timeout" and reply.code is None
        assert "ignored 2 invalid reply(ies)" in reply.detail
        assert "another shared secret" in reply.detail
        assert len(nas.wait_for(2)) == 2


def test_a_nas_with_another_secret_drops_the_request():
    with StandInNAS(secret="another-secret") as nas:
        reply = send("coa", nas.address, nas.port, SECRET, SESSION, timeout=0.2, retries=1)
        assert reply.outcome == "timeout"
        assert reply.detail.startswith(f"no reply from 127.0.0.1:{nas.port}")
        assert nas.received == []
        deadline = time.monotonic() + 2
        while len(nas.dropped) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert nas.dropped == ["Packet verification failed"] * 2


def test_nothing_listening_is_a_refused_reply_not_an_exception():
    port = free_udp_port()
    started = time.monotonic()
    reply = send("disconnect", "127.0.0.1", port, SECRET, SESSION, timeout=1.0, retries=3)
    assert time.monotonic() - started < 1.0
    assert reply.outcome == "timeout" and reply.code is None
    assert reply.detail == (f"127.0.0.1:{port} refused the Disconnect-Request (ICMP port unreachable): "
                            "nothing listens for RADIUS requests on that port")


def test_ipv6_loopback_with_nothing_listening_is_a_reply_too():
    # Whether or not this host has IPv6, the answer is a Reply naming [::1].
    reply = send("coa", "::1", free_udp_port(), SECRET, SESSION, timeout=0.3, retries=0)
    assert reply.outcome == "timeout"
    assert "[::1]:" in reply.detail


class _UnreachableSocket:
    def __init__(self, *args):
        self.closed = False

    def connect(self, address):
        raise OSError(101, "Network is unreachable")

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_a_network_error_is_a_timeout_reply_and_the_socket_is_closed(monkeypatch):
    made = []
    monkeypatch.setattr(client.socket, "socket", lambda *a: made.append(_UnreachableSocket()) or made[-1])
    reply = send("disconnect", "192.0.2.1", 3799, SECRET, SESSION)
    assert reply == Reply("timeout", None, {}, None, "cannot reach 192.0.2.1:3799: Network is unreachable")
    assert [s.closed for s in made] == [True]


def test_sockets_are_closed_after_each_send(nas, monkeypatch):
    opened = []

    class Tracked(socket.socket):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            opened.append(self)

    closed_port = free_udp_port()
    monkeypatch.setattr(client.socket, "socket", Tracked)
    assert send("coa", nas.address, nas.port, SECRET, SESSION).outcome == "ack"
    assert send("coa", "127.0.0.1", closed_port, SECRET, SESSION).outcome == "timeout"
    assert len(opened) == 2 and all(s.fileno() == -1 for s in opened)


def test_concurrent_sends_from_threads_each_get_their_own_answer(nas):
    results = {}

    def one(i):
        results[i] = send("coa", nas.address, nas.port, SECRET,
                          {"User-Name": f"user{i}", "Mikrotik-Rate-Limit": f"{i}M/{i}M"})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(1, 21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == list(range(1, 21))
    assert all(r.outcome == "ack" for r in results.values())
    seen = {r.attributes["User-Name"]: r.attributes["Mikrotik-Rate-Limit"] for r in nas.wait_for(20)}
    assert seen == {f"user{i}": f"{i}M/{i}M" for i in range(1, 21)}


# -- bad arguments ------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (("pod", "127.0.0.1", 3799, SECRET, SESSION), "unknown request kind 'pod'"),
    (("Disconnect", "127.0.0.1", 3799, SECRET, SESSION), "unknown request kind 'Disconnect'"),
    (("coa", "nas.example.net", 3799, SECRET, SESSION), "invalid NAS address 'nas.example.net'"),
    (("coa", "300.1.2.3", 3799, SECRET, SESSION), "invalid NAS address '300.1.2.3'"),
    (("coa", None, 3799, SECRET, SESSION), "the NAS address must be an IP address string"),
    (("coa", "127.0.0.1", 0, SECRET, SESSION), "invalid NAS port 0"),
    (("coa", "127.0.0.1", 65536, SECRET, SESSION), "invalid NAS port 65536"),
    (("coa", "127.0.0.1", "3799", SECRET, SESSION), "invalid NAS port '3799'"),
    (("coa", "127.0.0.1", 3799, "", SESSION), "the shared secret must be a non-empty string"),
    (("coa", "127.0.0.1", 3799, b"bytes", SESSION), "the shared secret must be a non-empty string"),
    (("coa", "127.0.0.1", 3799, SECRET, {}), "attributes must be a non-empty dict"),
    (("coa", "127.0.0.1", 3799, SECRET, {"User-Name": "a", "Mikrotik-Speed": "1M"}),
     "unknown RADIUS attribute 'Mikrotik-Speed'"),
    (("coa", "127.0.0.1", 3799, SECRET, {"User-Name": "a", "Message-Authenticator": b"x" * 16}),
     "Message-Authenticator is computed by send()"),
    (("coa", "127.0.0.1", 3799, SECRET, {"Framed-IP-Address": "10.0.0.300"}),
     "Framed-IP-Address: cannot send '10.0.0.300' as ipaddr"),
    (("coa", "127.0.0.1", 3799, SECRET, {"User-Name": "a", "Session-Timeout": "soon"}),
     "Session-Timeout: cannot send 'soon' as integer"),
    (("coa", "127.0.0.1", 3799, SECRET, {"User-Name": "a" * 254}), "User-Name: cannot send"),
    (("coa", "127.0.0.1", 3799, SECRET, {"User-Name": None}), "User-Name: cannot send None"),
])
def test_bad_arguments_raise_value_error(args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        send(*args)


@pytest.mark.parametrize("kwargs, message", [
    ({"timeout": 0}, "timeout must be a positive number"),
    ({"timeout": float("nan")}, "timeout must be a positive number"),
    ({"retries": -1}, "retries must be a whole number"),
    ({"retries": 1.5}, "retries must be a whole number"),
])
def test_bad_timing_raises_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        send("coa", "127.0.0.1", 3799, SECRET, SESSION, **kwargs)
