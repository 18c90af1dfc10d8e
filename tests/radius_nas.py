"""A stand-in NAS for tests: answers Disconnect and CoA requests (RFC 5176) on 127.0.0.1.

It is a pyrad ``Server`` listening on the CoA port only, in a thread of its own, with its
own shared secret. It keeps every request it accepts and answers as told: ``ack``, ``nak``
(with an optional Error-Cause), ``silent``, or a script of those consumed one per request.
"""

from __future__ import annotations

import select
import threading
import time
from dataclasses import dataclass

from pyrad import packet, server

from plugins.radius.client import decode_attributes, dictionary

BEHAVIOURS = ("ack", "nak", "silent")
_NAK = {packet.DisconnectRequest: packet.DisconnectNAK, packet.CoARequest: packet.CoANAK}


@dataclass(frozen=True)
class Received:
    """One request the NAS accepted.

    ``time`` is ``time.monotonic()`` on arrival; ``message_authenticator`` is ``None``
    when the request had none, else whether it verified; ``raw`` is the datagram.
    """

    code: int
    identifier: int
    authenticator: bytes
    attributes: dict
    message_authenticator: bool | None
    time: float
    raw: bytes


class _Server(server.Server):
    def __init__(self, owner, **kwargs):
        super().__init__(**kwargs)
        self.owner = owner

    def HandleCoaPacket(self, pkt):
        self.owner._handle(self, pkt)

    def HandleDisconnectPacket(self, pkt):
        self.owner._handle(self, pkt)


class StandInNAS:
    """Answer Disconnect-Request and CoA-Request packets on ``127.0.0.1:port``.

    ``behaviour`` (settable any time) is ``"ack"``, ``"nak"``, ``"silent"`` or a list of
    those, where an item may also be ``("nak", error_cause)``; a list is consumed one item
    per request and the NAS is silent once it runs out. ``error_cause`` goes with a plain
    ``"nak"``. With ``verify_requests=False`` the NAS answers even requests signed with
    another secret (its replies are still signed with its own), as a misconfigured NAS
    would; otherwise such requests are dropped and counted in ``dropped``.
    ``message_authenticator`` adds one to the replies.
    """

    address = "127.0.0.1"

    def __init__(self, secret: str = "testing123", behaviour="ack", error_cause: int | None = None,
                 verify_requests: bool = True, message_authenticator: bool = False):
        self.secret = secret
        self.error_cause = error_cause
        self.message_authenticator = message_authenticator
        self._verify = verify_requests
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self._dropped: list[str] = []
        self._script: list | None = None
        self._behaviour = "ack"
        self.behaviour = behaviour
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- behaviour ---------------------------------------------------------------

    @property
    def behaviour(self):
        with self._lock:
            return list(self._script) if self._script is not None else self._behaviour

    @behaviour.setter
    def behaviour(self, value):
        if isinstance(value, list):
            script = [_check_step(step) for step in value]
            with self._lock:
                self._script = script
        else:
            step = _check_step(value)
            with self._lock:
                self._script = None
                self._behaviour = step

    def _next_step(self):
        with self._lock:
            if self._script is None:
                step = self._behaviour
            else:
                step = self._script.pop(0) if self._script else "silent"
        if isinstance(step, tuple):
            return step
        return (step, self.error_cause if step == "nak" else None)

    # -- what arrived ------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        """The requests accepted so far, oldest first (a copy)."""
        with self._lock:
            return list(self._received)

    @property
    def dropped(self) -> list[str]:
        """Why each dropped datagram was dropped (wrong secret, malformed...), oldest first."""
        with self._lock:
            return list(self._dropped)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        """Wait until ``n`` requests have arrived and return them; AssertionError after ``timeout`` s."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._received) >= n, timeout):
                raise AssertionError(f"the stand-in NAS got {len(self._received)} request(s) "
                                     f"within {timeout} s, expected {n}")
            return list(self._received)

    # -- running -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.coafds[0].getsockname()[1]

    def start(self) -> StandInNAS:
        hosts = {self.address: server.RemoteHost(self.address, self.secret.encode(), "wispbill")}
        self._server = _Server(self, addresses=[self.address], coaport=0, hosts=hosts, dict=dictionary(),
                               auth_enabled=False, acct_enabled=False, coa_enabled=True,
                               enable_pkt_verify=self._verify)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="stand-in-nas", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._thread.join(10)
        for sock in self._server.coafds:
            sock.close()
        self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _serve(self):
        # pyrad's Server.Run never returns, so this loop polls with a timeout to notice stop().
        srv = self._server
        poll = select.poll()
        socks = {s.fileno(): s for s in srv.coafds}
        for fd in socks:
            poll.register(fd, select.POLLIN)
        while not self._stopping.is_set():
            for fd, _event in poll.poll(50):
                try:
                    srv._ProcessInput(socks[fd])
                except (server.ServerPacketError, packet.PacketError) as exc:
                    with self._lock:
                        self._dropped.append(str(exc))
                        self._lock.notify_all()

    def _handle(self, srv, pkt):
        ma = pkt.verify_message_authenticator() if pkt.message_authenticator else None
        record = Received(pkt.code, pkt.id, pkt.authenticator, decode_attributes(pkt), ma,
                          time.monotonic(), pkt.raw_packet)
        step, cause = self._next_step()
        with self._lock:
            self._received.append(record)
            self._lock.notify_all()
        if step == "silent":
            return
        reply = srv.CreateReplyPacket(pkt)
        if step == "nak":
            reply.code = _NAK[pkt.code]
            if cause is not None:
                reply["Error-Cause"] = cause
        if self.message_authenticator:
            reply.add_message_authenticator()
        srv.SendReplyPacket(pkt.fd, reply)


def _check_step(step):
    if isinstance(step, tuple) and len(step) == 2 and step[0] == "nak" and isinstance(step[1], int):
        return step
    if step in BEHAVIOURS:
        return step
    raise ValueError(f"unknown stand-in NAS behaviour {step!r}: expected one of {BEHAVIOURS} "
                     "or ('nak', error_cause)")
