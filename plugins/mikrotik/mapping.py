"""Desired subscriber state ↔ RouterOS entries: pure functions, no connection.

:func:`entries_for` says which entries one subscriber should have on the router (a
simple queue, a suspend-list entry, a PPP secret and its profile, a hotspot user), and
:func:`state_from` rebuilds the :class:`~core.hooktypes.SubscriberState` from the
entries read back. The two are inverse: ``state_from(entries_for(s)) == s`` for every
state the router can hold, which is what keeps a reconcile of an in-step router empty.

Every per-subscriber entry carries the comment ``wispbill:<key>``; where the router has
no field of its own for part of the state (a DHCP subscriber's access kind and MAC, a
hotspot subscriber's state and rate), it follows the marker as ``name=value`` words.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field

from core.hooktypes import SubscriberState

MARK = "wispbill"
PREFIX = MARK + ":"
NAME_PREFIX = MARK + "-"
STATES = ("active", "throttled", "suspended")
ACCESS = ("pppoe", "dhcp", "static", "hotspot")
PROFILE_COMMENT = MARK  # on the PPP profiles the plugin manages

# The kinds of per-subscriber entry, and the menu each lives in.
QUEUE, ADDRESS, SECRET, HOTSPOT = "queue", "address", "secret", "hotspot"
KINDS = (QUEUE, ADDRESS, SECRET, HOTSPOT)
PATHS = {
    QUEUE: "/queue/simple",
    ADDRESS: "/ip/firewall/address-list",
    SECRET: "/ppp/secret",
    HOTSPOT: "/ip/hotspot/user",
}
PROFILE_PATH = "/ppp/profile"
# What is asked for on each menu (.proplist): everything the mapping reads or compares.
PROPLISTS = {
    QUEUE: (".id", "name", "target", "max-limit", "comment", "disabled"),
    ADDRESS: (".id", "list", "address", "comment", "disabled"),
    SECRET: (".id", "name", "password", "service", "profile", "remote-address", "caller-id", "comment",
             "disabled"),
    HOTSPOT: (".id", "name", "password", "mac-address", "address", "comment", "disabled"),
}
# Attributes with no "empty" value on the router: clearing one takes an unset.
UNSETTABLE = {SECRET: ("remote-address",), HOTSPOT: ("mac-address", "address"), "profile": ("rate-limit",)}
# What an attribute the router leaves out of a row means.
_ABSENT = {"disabled": "false", "caller-id": "", "password": "", "address-list": ""}
_TRUE = {"true", "yes"}


_PLAIN = re.compile(r"[A-Za-z0-9:/@._-]*")  # comment values written as they are


class Unenforceable(ValueError):
    """A desired state the router cannot hold (a suspension without an address, ...)."""


@dataclass(frozen=True)
class Layout:
    """The per-router names the entries use: the suspend list and the PPP profiles' base attributes."""

    suspend_list: str = "wispbill-suspended"
    profile_base: tuple[tuple[str, str], ...] = ()


# --- small conversions ---------------------------------------------------------------

def comment(key: str, **words: str | None) -> str:
    """``wispbill:<key>`` followed by ``name=value`` words (values percent-encoded, ``None`` left out)."""
    parts = [PREFIX + key]
    for name, value in words.items():
        if value is not None:
            parts.append(f"{name}={value if _PLAIN.fullmatch(value) else urllib.parse.quote(value, safe=':/@')}")
    return " ".join(parts)


def parse_comment(text) -> tuple[str, dict[str, str]] | None:
    """``(key, words)`` for a comment this plugin wrote, ``None`` for any other."""
    if not isinstance(text, str) or not text.startswith(PREFIX):
        return None
    head, *rest = text.split(" ")
    key = head[len(PREFIX):]
    if not key:
        return None
    words = {}
    for part in rest:
        name, sep, value = part.partition("=")
        if sep:
            words[name] = urllib.parse.unquote(value)
    return key, words


def key_of(text) -> str | None:
    """The subscriber key in a comment this plugin wrote, ``None`` for any other comment."""
    if not isinstance(text, str) or not text.startswith(PREFIX):
        return None
    key = text[len(PREFIX):].split(" ", 1)[0]
    return key or None


def queue_name(key: str) -> str:
    """The simple queue of subscriber ``key``: ``wispbill-<key>`` (RouterOS keeps queue names unique)."""
    return NAME_PREFIX + key


def rate_text(rate: tuple[int, int]) -> str:
    """``(down, up)`` kbps as RouterOS writes a limit: ``<up>k/<down>k``.

    Upload comes first both in a queue's ``max-limit`` (as its target sees it) and in a
    PPP profile's ``rate-limit`` (rx/tx as the router sees it, rx being the client's upload).
    """
    down, up = rate
    return f"{int(up)}k/{int(down)}k"


_SPEED = re.compile(r"^(\d+(?:\.\d+)?)([kKMG]?)$")
_UNITS = {"": 1, "k": 1_000, "K": 1_000, "M": 1_000_000, "G": 1_000_000_000}


def _bits(text: str) -> int | None:
    match = _SPEED.match(text.strip())
    if not match:
        return None
    return int(round(float(match.group(1)) * _UNITS[match.group(2)]))


@functools.lru_cache(maxsize=4096)
def _parse_rate(text: str) -> tuple[int, int] | None:
    first = text.split(" ", 1)[0]
    up_text, sep, down_text = first.partition("/")
    up, down = _bits(up_text), _bits(down_text if sep else up_text)
    if up is None or down is None or (up == 0 and down == 0):
        return None
    return (down // 1000, up // 1000)


def parse_rate(text) -> tuple[int, int] | None:
    """``(down, up)`` kbps from ``up/down`` as RouterOS prints it (``2M/10M``, ``2000000/10000000``,
    ``2000k/10000k``; burst settings after a space ignored); ``None`` for no limit (``0/0``,
    empty) or text that is not a limit."""
    return _parse_rate(str(text)) if text else None


_DOTTED = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")


def host_address(text) -> str | None:
    """A single IPv4 host from an address or an ``a.b.c.d/32`` target; ``None`` for anything else."""
    if not text:
        return None
    first = str(text).split(",", 1)[0]
    if first.endswith("/32"):
        first = first[:-3]
    if _DOTTED.fullmatch(first):  # the usual form, already canonical
        return first
    try:
        return str(ipaddress.IPv4Address(first))
    except ValueError:
        return None


def truth(value) -> bool:
    """A RouterOS boolean as printed (``true``/``yes``, or already a bool)."""
    return value is True or str(value).lower() in _TRUE


# --- PPP profiles ----------------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    """A PPP profile the plugin manages: one per (state, rate), shared by subscribers."""

    name: str
    rate: tuple[int, int] | None
    suspended: bool

    def attributes(self, layout: Layout) -> dict[str, str]:
        """What the profile holds: the operator's base attributes, then the rate and the list."""
        attrs = dict(layout.profile_base)
        attrs.update({"name": self.name, "comment": PROFILE_COMMENT,
                      "address-list": layout.suspend_list if self.suspended else ""})
        if self.rate is not None:
            attrs["rate-limit"] = rate_text(self.rate)
        return attrs


def profile_for(state: str, rate: tuple[int, int] | None) -> Profile:
    """The profile for ``state`` at ``rate``: ``wispbill-10000k-2000k`` (active; down then up),
    ``wispbill-throttled-512k-256k``, ``wispbill-suspended-10000k-2000k``; without a rate
    ``wispbill-unlimited``, ``wispbill-throttled``, ``wispbill-suspended``."""
    words = [MARK]
    if state != "active":
        words.append(state)
    if rate is not None:
        words.append(f"{int(rate[0])}k-{int(rate[1])}k")
    elif state == "active":
        words.append("unlimited")
    return Profile("-".join(words), rate, state == "suspended")


_PROFILE_RATE = re.compile(r"(\d+)k-(\d+)k")


def parse_profile(name) -> tuple[str, tuple[int, int] | None] | None:
    """``(state, rate)`` from a managed profile's name (see :func:`profile_for`); ``None`` for any other."""
    if not isinstance(name, str) or not name.startswith(NAME_PREFIX):
        return None
    rest, state = name[len(NAME_PREFIX):], "active"
    for candidate in ("throttled", "suspended"):
        if rest == candidate:
            return candidate, None
        if rest.startswith(candidate + "-"):
            state, rest = candidate, rest[len(candidate) + 1:]
            break
    if state == "active" and rest == "unlimited":
        return state, None
    match = _PROFILE_RATE.fullmatch(rest)
    return (state, (int(match.group(1)), int(match.group(2)))) if match else None


# --- desired entries ---------------------------------------------------------------------

@dataclass(frozen=True)
class Entries:
    """The entries one subscriber should have, by kind (attribute dicts as ``add`` takes them)."""

    queue: dict | None = None
    address: dict | None = None
    secret: dict | None = None
    hotspot: dict | None = None
    profile: Profile | None = None

    def get(self, kind: str) -> dict | None:
        return getattr(self, kind)


def _check(sub: SubscriberState) -> tuple[str, dict]:
    if sub.state not in STATES:
        raise Unenforceable(f"unknown state {sub.state!r}")
    extra = sub.extra or {}
    access = extra.get("access")
    if access not in ACCESS:
        raise Unenforceable(f"unknown access kind {access!r}")
    if sub.address is not None and host_address(sub.address) != sub.address:
        raise Unenforceable(f"{sub.address!r} is not an IPv4 address (the MikroTik enforcer handles IPv4 only)")
    if not sub.key or " " in sub.key:
        raise Unenforceable(f"key {sub.key!r} cannot be written in a comment")
    return access, extra


def entries_for(sub: SubscriberState, layout: Layout) -> Entries:
    """The entries that make the router hold ``sub``; raises :class:`Unenforceable`."""
    access, extra = _check(sub)
    if access in ("dhcp", "static"):
        return _ip_entries(sub, access, extra, layout)
    if access == "pppoe":
        return _pppoe_entries(sub, extra, layout)
    return _hotspot_entries(sub, extra, layout)


def _queue(sub: SubscriberState, note: str) -> dict:
    return {"name": queue_name(sub.key), "target": f"{sub.address}/32", "max-limit": rate_text(sub.rate),
            "comment": note, "disabled": "false"}


def _listed(sub: SubscriberState, layout: Layout, note: str) -> dict:
    return {"list": layout.suspend_list, "address": sub.address, "comment": note, "disabled": "false"}


def _ip_entries(sub, access, extra, layout) -> Entries:
    if sub.address is None:
        if sub.state == "active" and sub.rate is None:
            return Entries()  # nothing to hold: no limit, not suspended
        action = "suspend" if sub.state == "suspended" else "limit"
        raise Unenforceable(f"cannot {action} a {access} subscriber without an IP address")
    words = {"access": access, "mac": extra.get("mac"), "user": extra.get("username")}
    queue = _queue(sub, comment(sub.key, state=sub.state, **words)) if sub.rate is not None else None
    listed = _listed(sub, layout, comment(sub.key, **words)) if sub.state == "suspended" else None
    return Entries(queue=queue, address=listed)


def _credentials(extra, label) -> tuple[str, str]:
    username = extra.get("username")
    if not username:
        raise Unenforceable(f"a {label} subscriber needs a user name")
    return username, extra.get("password") or ""


def _pppoe_entries(sub, extra, layout) -> Entries:
    username, password = _credentials(extra, "PPPoE")
    profile = profile_for(sub.state, sub.rate)
    secret = {"name": username, "password": password, "service": "pppoe", "profile": profile.name,
              "caller-id": extra.get("mac") or "", "comment": comment(sub.key), "disabled": "false"}
    if sub.address is not None:
        secret["remote-address"] = sub.address
    listed = None
    if sub.state == "suspended" and sub.address is not None:
        listed = _listed(sub, layout, comment(sub.key))
    return Entries(secret=secret, address=listed, profile=profile)


def _hotspot_entries(sub, extra, layout) -> Entries:
    username, password = _credentials(extra, "hotspot")
    rate = f"{sub.rate[0]}/{sub.rate[1]}" if sub.rate is not None else None
    user = {"name": username, "password": password, "comment": comment(sub.key, state=sub.state, rate=rate),
            "disabled": "true" if sub.state == "suspended" else "false"}
    if extra.get("mac"):
        user["mac-address"] = extra["mac"]
    if sub.address is not None:
        user["address"] = sub.address
    queue = listed = None
    if sub.address is not None and sub.rate is not None:
        queue = _queue(sub, comment(sub.key))
    if sub.address is not None and sub.state == "suspended":
        listed = _listed(sub, layout, comment(sub.key))
    return Entries(queue=queue, address=listed, hotspot=user)


# --- comparing -------------------------------------------------------------------------------

def _value(name: str, value):
    value = "" if value is None else value
    if name == "disabled":
        return "true" if truth(value) else "false"
    value = str(value)
    if name in ("max-limit", "rate-limit"):
        return parse_rate(value)
    if name in ("target", "address", "remote-address"):
        return host_address(value) or value
    if name in ("mac-address", "caller-id"):
        return value.upper()
    return value


def differences(kind: str, held: dict, wanted: dict) -> tuple[dict, list[str]]:
    """What to ``set`` on entry ``held`` so that it matches ``wanted``, and what to ``unset``."""
    to_set = {}
    for name, value in wanted.items():
        have = held[name] if name in held else _ABSENT.get(name)
        if have == value:
            continue
        if have is None or _value(name, have) != _value(name, value):
            to_set[name] = value
    to_unset = [name for name in UNSETTABLE.get(kind, ()) if name not in wanted and held.get(name)]
    return to_set, to_unset


def matches(kind: str, held: dict, wanted: dict) -> bool:
    """Whether entry ``held`` already is ``wanted``."""
    to_set, to_unset = differences(kind, held, wanted)
    return not to_set and not to_unset


# --- reading back ----------------------------------------------------------------------------

@dataclass
class Held:
    """The entries found on the router for one key, by kind (rows as printed)."""

    queue: list = field(default_factory=list)
    address: list = field(default_factory=list)
    secret: list = field(default_factory=list)
    hotspot: list = field(default_factory=list)

    def get(self, kind: str) -> list:
        return getattr(self, kind)

    def empty(self) -> bool:
        return not (self.queue or self.address or self.secret or self.hotspot)


def state_from(key: str, held: Held, layout: Layout, profiles: dict | None = None) -> SubscriberState | None:
    """The subscriber state the entries ``held`` for ``key`` stand for; ``None`` when none are held.

    When the entries are not exactly what :func:`entries_for` makes of that state (an
    entry lost in a reboot, a second queue, a profile edited by hand: ``profiles`` maps
    the managed PPP profiles' names to their rows), the state comes back with
    ``extra["drift"]`` saying what is wrong, so that it never equals a desired state and
    the reconciler writes it again.
    """
    if held.empty():
        return None
    problems: list[str] = []
    sub = _guess(key, held, problems)
    try:
        expected = entries_for(sub, layout)
    except Unenforceable as exc:
        problems.append(str(exc))
        expected = Entries()
    for kind in KINDS:
        rows, wanted = held.get(kind), expected.get(kind)
        if len(rows) > 1:
            problems.append(f"{len(rows)} {kind} entries")
        elif wanted is None and rows:
            problems.append(f"unexpected {kind} entry")
        elif wanted is not None and not rows:
            problems.append(f"{kind} entry missing")
        elif wanted is not None and not matches(kind, rows[0], wanted):
            problems.append(f"{kind} entry differs")
    if expected.profile is not None and profiles is not None:
        row = profiles.get(expected.profile.name)
        if row is None or not matches("profile", row, expected.profile.attributes(layout)):
            problems.append(f"profile {expected.profile.name} missing or changed")
    if problems:
        return SubscriberState(sub.key, sub.state, sub.address, sub.rate,
                               {**sub.extra, "drift": "; ".join(problems)})
    return sub


def _guess(key: str, held: Held, problems: list[str]) -> SubscriberState:
    """The state the main entry of ``key`` describes (checked against the rest by the caller)."""
    if held.secret and held.hotspot:
        problems.append("both a PPP secret and a hotspot user")
    if held.secret:
        return _from_secret(key, held.secret[0], problems)
    if held.hotspot:
        return _from_hotspot(key, held.hotspot[0], problems)
    return _from_ip(key, held, problems)


def _text_or_none(value) -> str | None:
    value = "" if value is None else str(value)
    return value or None


def _from_secret(key, row, problems) -> SubscriberState:
    parsed = parse_profile(row.get("profile"))
    if parsed is None:
        problems.append(f"profile {row.get('profile')!r} is not one wispbill manages")
        parsed = ("active", None)
    state, rate = parsed
    extra = {"access": "pppoe", "username": _text_or_none(row.get("name")),
             "password": _text_or_none(row.get("password")),
             "mac": _text_or_none(str(row.get("caller-id") or "").upper())}
    return SubscriberState(key, state, host_address(row.get("remote-address")), rate, extra)


def _state_word(words, problems) -> str:
    state = words.get("state", "active")
    if state not in STATES:
        problems.append(f"unknown state {state!r}")
        return "active"
    return state


def _from_hotspot(key, row, problems) -> SubscriberState:
    _key, words = parse_comment(row.get("comment")) or (key, {})
    rate = None
    if "rate" in words:
        down, _, up = words["rate"].partition("/")
        if down.isdigit() and up.isdigit():
            rate = (int(down), int(up))
        else:
            problems.append(f"unreadable rate {words['rate']!r}")
    extra = {"access": "hotspot", "username": _text_or_none(row.get("name")),
             "password": _text_or_none(row.get("password")),
             "mac": _text_or_none(str(row.get("mac-address") or "").upper())}
    return SubscriberState(key, _state_word(words, problems), host_address(row.get("address")), rate, extra)


def _from_ip(key, held, problems) -> SubscriberState:
    queue = held.queue[0] if held.queue else None
    listed = held.address[0] if held.address else None
    _key, words = parse_comment((queue or listed).get("comment")) or (key, {})
    access = words.get("access", "static")
    if access not in ("dhcp", "static"):
        problems.append(f"{access} entries without a PPP secret or hotspot user")
        access = "static"
    state = "suspended" if listed is not None else _state_word(words, problems)
    address = host_address(queue.get("target")) if queue else host_address(listed.get("address"))
    rate = parse_rate(queue.get("max-limit")) if queue else None
    extra = {"access": access, "username": words.get("user"), "password": None, "mac": words.get("mac")}
    return SubscriberState(key, state, address, rate, extra)
