"""Dynamic authorization (RFC 5176): Disconnect-Request and CoA-Request packets to a NAS.

A Disconnect-Request ends a subscriber's live session so that they authenticate again and
get what FreeRADIUS now answers (suspended or restored, another address list or pool); a
CoA-Request changes a live session in place, in practice its ``Mikrotik-Rate-Limit``.

:func:`send` always comes back with a :class:`Reply`, also when the NAS says nothing, is
unreachable or answers with another shared secret; only bad arguments raise ``ValueError``.
Each call uses a socket of its own, closed before it returns, so it may be called from any
thread.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import secrets
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from pyrad.dictionary import Dictionary
from pyrad.packet import CoAPacket, PacketError

DICTIONARY_PATH = Path(__file__).with_name("dictionary")

# kind -> (request code, ACK code, NAK code, name used in details)
_KINDS = {
    "disconnect": (40, 41, 42, "Disconnect"),
    "coa": (43, 44, 45, "CoA"),
}
_MESSAGE_AUTHENTICATOR = 80
_ERROR_CAUSE = 101
_MAX_PACKET = 4096  # RFC 2865 section 3


@functools.lru_cache(maxsize=None)
def dictionary() -> Dictionary:
    """The plugin's RADIUS dictionary (``plugins/radius/dictionary``), read once."""
    return Dictionary(str(DICTIONARY_PATH))


@dataclass(frozen=True)
class Reply:
    """What came of one request.

    ``outcome`` is ``ack``, ``nak`` or ``timeout`` (no valid reply: silence, an unreachable
    or refusing NAS, or replies that failed verification). ``code`` is the reply's packet
    code, ``attributes`` its attributes as :func:`decode_attributes` gives them,
    ``error_cause`` the number of its Error-Cause, and ``detail`` a sentence for the log.
    """

    outcome: str
    code: int | None
    attributes: dict
    error_cause: int | None
    detail: str


def send(kind: str, address: str, port: int, secret: str, attributes: dict,
         timeout: float = 2.0, retries: int = 1) -> Reply:
    """Send a Disconnect-Request (``kind="disconnect"``) or CoA-Request (``"coa"``) and wait for the answer.

    ``address`` is the NAS's IPv4 or IPv6 address (a literal, not a name), ``attributes``
    maps attribute names of :func:`dictionary` to a value, or to a list of values for a
    repeated attribute. The request is sent up to ``retries + 1`` times, identical each
    time as RFC 5176 asks, waiting ``timeout`` seconds after each.
    """
    try:
        request_code, ack, nak, name = _KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown request kind {kind!r}: expected 'disconnect' or 'coa'") from None
    family, sockaddr, where = _resolve(address, port)
    if not isinstance(secret, str) or not secret:
        raise ValueError("the shared secret must be a non-empty string")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (0 < timeout < math.inf):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a whole number of at least 0, not {retries!r}")
    request = _build(request_code, secret.encode("utf-8"), attributes)
    try:
        raw = request.RequestPacket()
    except (TypeError, ValueError, struct.error) as exc:  # e.g. a value longer than 253 octets
        raise ValueError(f"cannot encode the request: {exc}") from None
    if len(raw) > _MAX_PACKET:
        raise ValueError(f"the request would be {len(raw)} octets, more than RADIUS allows ({_MAX_PACKET})")
    return _exchange(request, raw, family, sockaddr, where, (ack, nak, name), float(timeout), retries + 1)


def decode_attributes(pkt) -> dict:
    """A packet's attributes as plain values: name -> value, or a list of values when repeated.

    Attributes missing from the dictionary are keyed by their code (or ``(vendor, code)``)
    with raw ``bytes``; the Message-Authenticator is left out.
    """
    result = {}
    for key in pkt.keys():
        if key in ("Message-Authenticator", _MESSAGE_AUTHENTICATOR):
            continue
        try:
            values = pkt[key]
        except Exception:  # a value the dictionary's type cannot decode: keep its octets
            values = dict.__getitem__(pkt, pkt.dict.attrindex.GetForward(key))
        result[key] = values[0] if len(values) == 1 else list(values)
    return result


def _resolve(address, port):
    if not isinstance(address, str):
        raise ValueError(f"the NAS address must be an IP address string, not {address!r}")
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        raise ValueError(f"invalid NAS address {address!r}: expected an IPv4 or IPv6 address") from None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"invalid NAS port {port!r}: expected 1 to 65535")
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        info = socket.getaddrinfo(str(ip), port, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
    except socket.gaierror as exc:  # e.g. an IPv6 scope naming no interface here
        raise ValueError(f"invalid NAS address {address!r}: {exc.strerror}") from None
    where = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
    return family, info[0][4], where


def _build(code, secret, attributes):
    if not isinstance(attributes, dict) or not attributes:
        raise ValueError("attributes must be a non-empty dict identifying the session (e.g. User-Name)")
    known = dictionary().attributes
    # The id is drawn here rather than from pyrad's module-wide counter, which is not
    # safe to share between threads; each request has a socket of its own anyway.
    request = CoAPacket(code=code, id=secrets.randbelow(256), secret=secret, dict=dictionary(),
                        message_authenticator=True)
    for attr, value in attributes.items():
        if not isinstance(attr, str) or attr not in known:
            raise ValueError(f"unknown RADIUS attribute {attr!r} (not in {DICTIONARY_PATH.name})")
        if attr == "Message-Authenticator":
            raise ValueError("Message-Authenticator is computed by send(); do not pass it")
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v is None or isinstance(v, bool):
                raise ValueError(f"{attr}: cannot send {v!r}")
            try:
                request.AddAttribute(attr, v)
            except (TypeError, ValueError, struct.error, OverflowError) as exc:
                raise ValueError(f"{attr}: cannot send {v!r} as {known[attr].type} ({exc})") from None
    return request


def _exchange(request, raw, family, sockaddr, where, codes, timeout, attempts):
    ack, nak, name = codes
    ignored: list[str] = []
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError as exc:
        return _no_reply(f"cannot open a UDP socket for {where}: {_reason(exc)}")
    with sock:
        try:
            # A connected socket hears the ICMP errors for its datagrams (ConnectionRefusedError
            # on the next call) and only receives datagrams from the NAS's address and port.
            sock.connect(sockaddr)
            for _ in range(attempts):
                sock.send(raw)
                deadline = time.monotonic() + timeout
                while (remaining := deadline - time.monotonic()) > 0:
                    sock.settimeout(remaining)
                    try:
                        data = sock.recv(_MAX_PACKET + 1)
                    except TimeoutError:
                        break
                    reply, why = _accept(request, data, ack, nak)
                    if reply is not None:
                        return _answer(reply, ack, name, where)
                    ignored.append(why)
        except ConnectionRefusedError:
            return _no_reply(f"{where} refused the {name}-Request (ICMP port unreachable): "
                             "nothing listens for RADIUS requests on that port")
        except OSError as exc:
            return _no_reply(f"cannot reach {where}: {_reason(exc)}")
    detail = f"no reply from {where} to the {name}-Request after {attempts} attempt(s) of {timeout:g} s"
    if ignored:
        reasons = "; ".join(dict.fromkeys(ignored))
        detail += f"; ignored {len(ignored)} invalid reply(ies): {reasons}"
    return _no_reply(detail)


def _accept(request, data, ack, nak):
    """The decoded reply if ``data`` is a valid answer to ``request``, else ``(None, why not)``."""
    try:
        reply = request.CreateReply(packet=data)
    except PacketError as exc:
        return None, f"malformed packet ({exc})"
    if reply.id != request.id:
        return None, f"identifier {reply.id} does not match the request's {request.id}"
    if not request.VerifyReply(reply, data):
        return None, "wrong Response Authenticator or Message-Authenticator (does the NAS have another shared secret?)"
    if reply.code not in (ack, nak):
        return None, f"unexpected packet code {reply.code}"
    return reply, None


def _answer(reply, ack, name, where):
    attributes = decode_attributes(reply)
    if reply.code == ack:
        return Reply("ack", reply.code, attributes, None, f"{name}-ACK from {where}")
    cause = None
    raw = reply.get(_ERROR_CAUSE)
    if raw and len(raw[0]) == 4:
        cause = struct.unpack("!I", raw[0])[0]
    detail = f"{name}-NAK from {where}"
    if cause is not None:
        label = attributes.get("Error-Cause")
        detail += f": Error-Cause {cause}" + (f" ({label})" if isinstance(label, str) else "")
    else:
        detail += " without an Error-Cause"
    message = attributes.get("Reply-Message")
    if isinstance(message, str) and message:
        detail += f", Reply-Message {message!r}"
    return Reply("nak", reply.code, attributes, cause, detail)


def _no_reply(detail):
    return Reply("timeout", None, {}, None, detail)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
