"""The lab router byte by byte over a real socket on 127.0.0.1.

The client here encodes and decodes words by hand, independently of appliance.lab.wire.
"""

from __future__ import annotations

import hashlib
import socket
import time

import pytest

from appliance.lab.server import LabRouter

ADDRESS_LIST = "/ip/firewall/address-list"


def enc_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x4000:
        return bytes([0x80 | (n >> 8), n & 0xFF])
    if n < 0x200000:
        return bytes([0xC0 | (n >> 16), (n >> 8) & 0xFF, n & 0xFF])
    return bytes([0xE0 | (n >> 24), (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])


def sentence(*words: str | bytes) -> bytes:
    out = b""
    for w in words:
        data = w.encode() if isinstance(w, str) else w
        out += enc_len(len(data)) + data
    return out + b"\x00"


_opened: list[Raw] = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _opened:
        _opened.pop().close()


class Raw:
    """A hand-rolled API client that also remembers each word's length prefix."""

    def __init__(self, port: int, timeout: float = 5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        _opened.append(self)
        self.buf = b""
        self.prefixes: dict[str, bytes] = {}

    def close(self):
        self.sock.close()

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("router closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_word(self) -> str:
        first = self._take(1)
        b0 = first[0]
        if b0 < 0x80:
            prefix, n = first, b0
        elif b0 < 0xC0:
            rest = self._take(1)
            prefix, n = first + rest, ((b0 & 0x3F) << 8) | rest[0]
        elif b0 < 0xE0:
            rest = self._take(2)
            prefix, n = first + rest, ((b0 & 0x1F) << 16) | int.from_bytes(rest, "big")
        elif b0 < 0xF0:
            rest = self._take(3)
            prefix, n = first + rest, ((b0 & 0x0F) << 24) | int.from_bytes(rest, "big")
        else:
            raise AssertionError(f"router sent control byte {b0:#x}")
        word = self._take(n).decode()
        self.prefixes[word[:40]] = prefix
        return word

    def read_sentence(self) -> list[str]:
        words = []
        while (word := self.read_word()) != "":
            words.append(word)
        return words

    def reply(self) -> list[list[str]]:
        """Sentences up to and including !done (or a !fatal)."""
        out = []
        while True:
            s = self.read_sentence()
            out.append(s)
            if s[0] in ("!done", "!fatal"):
                return out

    def send(self, *words):
        self.sock.sendall(sentence(*words))

    def talk(self, *words) -> list[list[str]]:
        self.send(*words)
        return self.reply()

    def login(self, user="admin", password="secret"):
        assert self.talk("/login", f"=name={user}", f"=password={password}") == [["!done"]]
        return self

    def closed_by_router(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def rows_of(reply):
    return [dict(w[1:].split("=", 1) for w in s[1:]) for s in reply if s[0] == "!re"]


@pytest.fixture
def lab():
    with LabRouter(users={"admin": "secret"}, identity="lab", version="7.18") as router:
        yield router


@pytest.fixture
def api(lab):
    client = Raw(lab.port).login()
    yield client
    client.close()


# -- login -------------------------------------------------------------------


def test_login_answers_exactly_done(lab):
    client = Raw(lab.port)
    client.sock.sendall(b"\x06/login\x0b=name=admin\x10=password=secret\x00")
    assert client._take(7) == b"\x05!done\x00"
    assert lab.logins == 1


def test_wrong_password_is_a_trap_then_done(lab):
    client = Raw(lab.port)
    assert client.talk("/login", "=name=admin", "=password=nope") == [
        ["!trap", "=message=invalid user name or password (6)"],
        ["!done"],
    ]
    assert client.talk("/login", "=name=root", "=password=secret")[0][0] == "!trap"
    assert lab.logins == 0


def test_commands_before_login_are_refused_then_the_router_hangs_up(lab):
    client = Raw(lab.port)
    assert client.talk(f"{ADDRESS_LIST}/print") == [["!trap", "=message=not logged in"], ["!done"]]
    for _ in range(7):
        assert client.talk("/system/identity/print")[0] == ["!trap", "=message=not logged in"]
    assert client.talk("/system/identity/print") == [["!fatal", "not logged in"]]
    assert client.closed_by_router()


def test_quit_is_fatal_and_closes(api):
    assert api.talk("/quit") == [["!fatal", "session terminated on request"]]
    assert api.closed_by_router()


def test_legacy_challenge_login_below_6_45():
    with LabRouter(users={"admin": "pw"}, version="6.40.8") as lab:
        client = Raw(lab.port)
        (reply,) = client.talk("/login")
        challenge = bytes.fromhex(reply[1].removeprefix("=ret="))
        response = "00" + hashlib.md5(b"\x00pw" + challenge).hexdigest()
        assert client.talk("/login", "=name=admin", f"=response={response}") == [["!done"]]
        assert client.talk("/system/identity/print")[0][0] == "!re"


# -- word lengths over the socket ------------------------------------------------


@pytest.mark.parametrize(
    ("length", "prefix"),
    [
        (0x7F, b"\x7f"),
        (0x80, b"\x80\x80"),
        (0x3FFF, b"\xbf\xff"),
        (0x4000, b"\xc0\x40\x00"),
        (0x1FFFFF, b"\xdf\xff\xff"),
        (0x200000, b"\xe0\x20\x00\x00"),
    ],
)
def test_words_of_each_length_form_go_both_ways(api, length, prefix):
    word = "=comment=" + "c" * (length - len("=comment="))
    assert len(word) == length
    assert api.talk(f"{ADDRESS_LIST}/add", "=list=big", "=address=10.1.1.1", word) == [["!done", "=ret=*1"]]
    reply = api.talk(f"{ADDRESS_LIST}/print", "=.proplist=comment")
    assert reply[0] == ["!re", word]
    assert api.prefixes[word[:40]] == prefix


def test_the_five_byte_form_is_understood(api):
    api.sock.sendall(b"\xf0\x00\x00\x00\x05/quit\x00")
    assert api.reply() == [["!fatal", "session terminated on request"]]


# -- tags ----------------------------------------------------------------------


def test_every_reply_to_a_tagged_command_carries_the_tag(api):
    api.talk(f"{ADDRESS_LIST}/add", "=list=a", "=address=10.0.0.1")
    reply = api.talk(f"{ADDRESS_LIST}/print", ".tag=t1")
    assert [s[0] for s in reply] == ["!re", "!done"]
    assert all(s[-1] == ".tag=t1" for s in reply)


def test_untagged_replies_never_carry_a_tag(api):
    api.send(f"{ADDRESS_LIST}/add", "=list=a", "=address=10.0.0.1")
    api.send(f"{ADDRESS_LIST}/add", "=list=a", "=address=10.0.0.1")
    api.send(f"{ADDRESS_LIST}/print")
    replies = api.reply() + api.reply() + api.reply()
    assert [s[0] for s in replies] == ["!done", "!trap", "!done", "!re", "!done"]
    assert not any(w.startswith(".tag") for s in replies for w in s)


def test_several_tagged_commands_in_flight_are_answered_in_order(api):
    api.sock.sendall(
        sentence(f"{ADDRESS_LIST}/add", "=list=a", "=address=10.0.0.1", ".tag=1")
        + sentence(f"{ADDRESS_LIST}/add", ".tag=2", "=list=a", "=address=10.0.0.1")
        + sentence(f"{ADDRESS_LIST}/print", "=.proplist=address", ".tag=3")
    )
    assert api.reply() == [["!done", "=ret=*1", ".tag=1"]]
    assert api.reply() == [["!trap", "=message=failure: already have such entry", ".tag=2"], ["!done", ".tag=2"]]
    assert api.reply() == [["!re", "=address=10.0.0.1", ".tag=3"], ["!done", ".tag=3"]]


# -- print, proplist, ids ----------------------------------------------------------


def test_proplist_restricts_attributes(api):
    api.talk(f"{ADDRESS_LIST}/add", "=list=a", "=address=10.0.0.1", "=comment=x")
    reply = api.talk(f"{ADDRESS_LIST}/print", "=.proplist=.id,address,nonexistent")
    assert reply == [["!re", "=.id=*1", "=address=10.0.0.1"], ["!done"]]


def test_ids_are_upper_hex_increasing_and_never_reused(api):
    ids = [api.talk(f"{ADDRESS_LIST}/add", "=list=a", f"=address=10.0.0.{i}")[0][1] for i in range(11)]
    assert ids == [f"=ret=*{n:X}" for n in range(1, 12)]
    assert ids[-1] == "=ret=*B"
    assert api.talk(f"{ADDRESS_LIST}/remove", "=.id=*B") == [["!done"]]
    assert api.talk(f"{ADDRESS_LIST}/add", "=list=a", "=address=10.0.0.99")[0] == ["!done", "=ret=*C"]


def test_add_fills_in_defaults(api, lab):
    api.talk(f"{ADDRESS_LIST}/add", "=list=a", "=address=10.0.0.1/32")
    api.talk("/queue/simple/add", "=target=10.0.0.1")
    api.talk("/ppp/secret/add", "=name=sub1", "=password=x")
    (entry,) = rows_of(api.talk(f"{ADDRESS_LIST}/print"))
    assert entry["disabled"] == "false" and entry["dynamic"] == "false"
    assert entry["address"] == "10.0.0.1"  # a /32 is shown without it
    assert len(entry["creation-time"]) == len("2025-01-01 00:00:00")
    (queue,) = rows_of(api.talk("/queue/simple/print"))
    assert (queue["name"], queue["target"], queue["max-limit"]) == ("queue1", "10.0.0.1/32", "0/0")
    (secret,) = rows_of(api.talk("/ppp/secret/print"))
    assert (secret["profile"], secret["service"], secret["disabled"]) == ("default", "any", "false")


def test_count_only_and_get(api):
    api.talk("/ppp/secret/add", "=name=a", "=password=pa")
    api.talk("/ppp/secret/add", "=name=b", "=password=pb")
    assert api.talk("/ppp/secret/print", "=count-only=") == [["!done", "=ret=2"]]
    assert api.talk("/ppp/secret/get", "=.id=*2", "=value-name=password") == [["!done", "=ret=pb"]]


def test_set_enable_disable_unset_and_names_as_ids(api):
    api.talk("/queue/simple/add", "=name=q", "=target=10.0.0.2", "=comment=c")
    assert api.talk("/queue/simple/set", "=.id=q", "=max-limit=1M/2M") == [["!done"]]
    assert api.talk("/queue/simple/disable", "=.id=*1") == [["!done"]]
    assert api.talk("/queue/simple/unset", "=.id=*1", "=value-name=comment") == [["!done"]]
    (queue,) = rows_of(api.talk("/queue/simple/print"))
    assert (queue["max-limit"], queue["disabled"]) == ("1M/2M", "true")
    assert "comment" not in queue
    api.talk("/queue/simple/enable", "=.id=*1")
    assert rows_of(api.talk("/queue/simple/print"))[0]["disabled"] == "false"


def test_remove_takes_a_list_and_is_all_or_nothing(api, lab):
    for i in range(3):
        api.talk(f"{ADDRESS_LIST}/add", "=list=a", f"=address=10.0.0.{i}")
    assert api.talk(f"{ADDRESS_LIST}/remove", "=.id=*1,*77")[0] == ["!trap", "=message=no such item"]
    assert len(lab.rows(ADDRESS_LIST)) == 3
    assert api.talk(f"{ADDRESS_LIST}/remove", "=.id=*1,*3") == [["!done"]]
    assert [r[".id"] for r in lab.rows(ADDRESS_LIST)] == ["*2"]


def test_empty_print_answers_empty_then_done_from_7_18(api):
    assert api.talk("/ppp/active/print") == [["!empty"], ["!done"]]
    assert api.talk("/ppp/active/print", ".tag=e") == [["!empty", ".tag=e"], ["!done", ".tag=e"]]


@pytest.mark.parametrize(
    ("version", "empty", "expected"),
    [("7.17", None, [["!done"]]), ("7.18", False, [["!done"]]), ("6.49", True, [["!empty"], ["!done"]])],
)
def test_empty_depends_on_version_unless_forced(version, empty, expected):
    with LabRouter(users={"admin": "secret"}, version=version, empty=empty) as lab:
        assert Raw(lab.port).login().talk("/ppp/active/print") == expected


def test_identity_and_resource(api, lab):
    assert api.talk("/system/identity/print") == [["!re", "=name=lab"], ["!done"]]
    assert api.talk("/system/identity/set", "=name=tower-7") == [["!done"]]
    assert lab.identity == "tower-7"
    (resource,) = rows_of(api.talk("/system/resource/print"))
    assert resource["version"] == "7.18 (stable)"
    assert resource["board-name"] == "CHR"
    assert {"uptime", "cpu-load", "free-memory"} <= set(resource)


# -- queries over the socket ---------------------------------------------------------


@pytest.fixture
def secrets(api):
    people = (("ann", "default", None), ("ben", "default", "vip"), ("cy", "default-encryption", None))
    for name, profile, comment in people:
        words = ["/ppp/secret/add", f"=name={name}", f"=profile={profile}", f"=limit-bytes-in={len(name) * 100}"]
        api.talk(*words, *([f"=comment={comment}"] if comment else []))
    return api


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (["?comment"], ["ben"]),
        (["?-comment"], ["ann", "cy"]),
        (["?name=cy"], ["cy"]),
        (["?=profile=default"], ["ann", "ben"]),
        (["?<limit-bytes-in=250"], ["cy"]),  # 200 < 250 as numbers; 300 is not
        (["?>name=ann"], ["ben", "cy"]),
        (["?name=ann", "?name=cy", "?#|"], ["ann", "cy"]),
        (["?=profile=default", "?comment", "?#&"], ["ben"]),
        (["?=profile=default", "?#!"], ["cy"]),
        (["?name=ann", "?name=ben", "?#|!"], ["cy"]),
        (["?name=ann", "?name=ben", "?name=cy", "?#|!|"], ["ann"]),  # ann or not (ben or cy)
    ],
)
def test_print_queries(secrets, query, expected):
    reply = secrets.talk("/ppp/secret/print", "=.proplist=name", *query)
    assert [row["name"] for row in rows_of(reply)] == expected


# -- traps -------------------------------------------------------------------------


def test_no_such_item(api):
    assert api.talk(f"{ADDRESS_LIST}/remove", "=.id=*99") == [["!trap", "=message=no such item"], ["!done"]]
    assert api.talk("/ppp/secret/set", "=.id=*5", "=password=x")[0] == ["!trap", "=message=no such item"]


@pytest.mark.parametrize(
    ("command", "words", "message"),
    [
        (f"{ADDRESS_LIST}/add", ["=list=a", "=address=10.0.0.1"], "failure: already have such entry"),
        ("/ppp/secret/add", ["=name=s"], "failure: secret with the same name already exists"),
        ("/queue/simple/add", ["=name=q", "=target=10.0.0.1"], "failure: already have such name"),
        ("/ip/hotspot/user/add", ["=name=h"], "failure: already have user with this name for this server"),
        ("/ppp/profile/add", ["=name=p"], "failure: profile with the same name already exists"),
    ],
)
def test_duplicates_are_refused(api, lab, command, words, message):
    assert api.talk(command, *words)[0][0] == "!done"
    assert api.talk(command, *words) == [["!trap", f"=message={message}"], ["!done"]]
    assert lab.writes == 1


def test_set_into_a_duplicate_is_refused(api):
    api.talk(f"{ADDRESS_LIST}/add", "=list=a", "=address=10.0.0.1")
    api.talk(f"{ADDRESS_LIST}/add", "=list=a", "=address=10.0.0.2")
    reply = api.talk(f"{ADDRESS_LIST}/set", "=.id=*2", "=address=10.0.0.1")
    assert reply[0] == ["!trap", "=message=failure: already have such entry"]


def test_unknown_parameter_has_category_1(api):
    reply = api.talk(f"{ADDRESS_LIST}/add", "=list=a", "=address=10.0.0.1", "=colour=red")
    assert reply == [["!trap", "=category=1", "=message=unknown parameter"], ["!done"]]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("/ip/adress/print", "no such command prefix"),
        ("/nothing/here", "no such command prefix"),
        (f"{ADDRESS_LIST}/frobnicate", "no such command"),
        ("/ppp/active/add", "no such command"),
        ("/ip/firewall", "no such command"),
    ],
)
def test_unknown_commands(api, command, message):
    assert api.talk(command) == [["!trap", f"=message={message}"], ["!done"]]


def test_built_in_profiles_stay_and_secrets_need_a_known_profile(api):
    names = [row["name"] for row in rows_of(api.talk("/ppp/profile/print"))]
    assert names == ["default", "default-encryption"]
    assert api.talk("/ppp/profile/remove", "=.id=*0")[0][0] == "!trap"
    reply = api.talk("/ppp/secret/add", "=name=s", "=profile=gold")
    assert reply[0] == ["!trap", "=message=input does not match any value of profile"]


def test_bad_boolean_is_refused(api):
    reply = api.talk(f"{ADDRESS_LIST}/add", "=list=a", "=address=10.0.0.1", "=disabled=maybe")
    assert reply[0][0] == "!trap"
    assert api.talk(f"{ADDRESS_LIST}/add", "=list=a", "=address=10.0.0.1", "=disabled=yes")[0][0] == "!done"
    assert rows_of(api.talk(f"{ADDRESS_LIST}/print"))[0]["disabled"] == "true"


def test_kicking_a_session_removes_it_and_counts(api, lab):
    lab.connect_ppp("sub1", "10.8.0.2")
    lab.connect_hotspot("guest", "10.9.0.2")
    assert api.talk("/ppp/active/remove", "=.id=*1") == [["!done"]]
    assert api.talk("/ip/hotspot/active/remove", "=.id=*1") == [["!done"]]
    assert lab.kicks == 2
    assert [(k["path"], k.get("name", k.get("user"))) for k in lab.kicked] == [
        ("/ppp/active", "sub1"),
        ("/ip/hotspot/active", "guest"),
    ]
    assert lab.rows("/ppp/active") == [] and lab.rows("/ip/hotspot/active") == []


# -- bad input ---------------------------------------------------------------------


def _still_serves(lab) -> bool:
    other = Raw(lab.port).login()
    try:
        return other.talk("/system/identity/print")[0] == ["!re", "=name=lab"]
    finally:
        other.close()


def _wait_for(condition, timeout=2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xf8",  # reserved control byte
        b"\x05/quit\xff\xff\xff\xff",
        b"\xef\xff\xff\xff",  # announces a 256 MiB word
    ],
)
def test_bad_bytes_drop_only_that_connection(lab, garbage):
    bystander = Raw(lab.port).login()
    bad = Raw(lab.port)
    bad.sock.sendall(garbage)
    assert bad.closed_by_router()
    assert bystander.talk("/system/identity/print")[0] == ["!re", "=name=lab"]
    assert _wait_for(lambda: lab.connections == 1)


def test_random_bytes_never_take_the_router_down(lab):
    import random

    rng = random.Random(7)
    for _ in range(20):
        bad = Raw(lab.port, timeout=0.5)
        bad.sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))))
        bad.close()
    assert _still_serves(lab)


def test_a_client_leaving_mid_sentence_is_let_go(lab):
    for partial in (b"\x06/log", b"\x06/login\x0b=name=admin", b"\xc0\x40"):
        client = Raw(lab.port)
        client.sock.sendall(partial)
        client.close()
    assert _wait_for(lambda: lab.connections == 0)
    assert _still_serves(lab)
