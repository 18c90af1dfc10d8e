"""What a subscriber state becomes in FreeRADIUS's tables, and back.

One subscriber is a RADIUS user: its PPPoE or hotspot user name, or for DHCP the MAC
address the router sends as User-Name. Its rows:

- ``radcheck``: ``Cleartext-Password`` (PAP, CHAP and MS-CHAP all work from it), or
  ``Auth-Type := Accept`` for a DHCP lease; a suspended account in ``reject`` mode adds
  ``Auth-Type := Reject``.
- ``radreply``: ``Mikrotik-Rate-Limit`` (the plan's rate, or the throttled one) and
  ``Framed-IP-Address`` for a static address.
- ``radusergroup``: one group by state, ``wispbill-active``, ``wispbill-throttled`` or
  ``wispbill-suspended``. The suspended group's ``radgroupreply`` (walled-garden mode)
  holds ``Mikrotik-Address-List`` and a low ``Mikrotik-Rate-Limit``, which replaces the
  user's own rate. Operators may give the other groups attributes of their own.

Every row the plugin writes carries the service's key in the ``wispbill`` column; rows
without it are the operator's and are never touched. A static subscriber has no RADIUS
login at all: nothing is written for it (an address-list enforcer handles those).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.hooktypes import SubscriberState
from plugins.radius.settings import Policy

GROUPS = {"active": "wispbill-active", "throttled": "wispbill-throttled", "suspended": "wispbill-suspended"}
GROUP_MARK = "group"  # the wispbill column of group rows the plugin keeps
_MAC = re.compile(r"^[0-9A-Fa-f]{2}([-:]?)(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$")


class MappingError(ValueError):
    """A subscriber that cannot be expressed in the tables (no password, a bad MAC)."""


@dataclass(frozen=True)
class Rows:
    """One user's rows: ``check`` and ``reply`` as sorted ``(attribute, op, value)``, and its group."""

    user: str
    check: tuple
    reply: tuple
    group: str


def mac_user(mac: str | None) -> str:
    """A MAC address as MikroTik's DHCP server sends it in User-Name: ``AA:BB:CC:DD:EE:FF``."""
    text = (mac or "").strip()
    if not _MAC.match(text):
        raise MappingError(f"a DHCP subscriber needs a MAC address, got {mac!r}")
    digits = re.sub(r"[^0-9A-Fa-f]", "", text).upper()
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def radius_user(sub: SubscriberState) -> str | None:
    """The User-Name a NAS sends for this subscriber; ``None`` for one without a login (static)."""
    access = sub.extra.get("access")
    if access == "dhcp":
        return mac_user(sub.extra.get("mac"))
    if access in ("pppoe", "hotspot"):
        user = sub.extra.get("username")
        if not user:
            raise MappingError(f"{sub.key}: a {access} subscriber needs a user name")
        return str(user)
    return None


def rate_limit(rate) -> str | None:
    """``(down_kbps, up_kbps)`` as Mikrotik-Rate-Limit ``"<up>k/<down>k"`` (rx is the client's upload)."""
    if not rate:
        return None
    down, up = rate
    return f"{int(up)}k/{int(down)}k"


def stored_rate(rate) -> str | None:
    """A rate as ``radius_subscriber.rate`` keeps it: ``"down/up"`` in kbit/s."""
    return f"{int(rate[0])}/{int(rate[1])}" if rate else None


def parse_stored_rate(text) -> tuple[int, int] | None:
    """The inverse of :func:`stored_rate`."""
    if not text:
        return None
    down, _, up = str(text).partition("/")
    return int(down), int(up)


def rows_for(sub: SubscriberState, policy: Policy) -> Rows | None:
    """The rows a subscriber state needs, or ``None`` when it has no RADIUS login.

    Raises :class:`MappingError` for a state the tables cannot express.
    """
    user = radius_user(sub)
    if user is None:
        return None
    check = []
    if sub.extra.get("access") == "dhcp":
        check.append(("Auth-Type", ":=", "Accept"))
    else:
        password = sub.extra.get("password")
        if not password:
            raise MappingError(f"{sub.key}: a {sub.extra.get('access')} subscriber needs a password")
        check.append(("Cleartext-Password", ":=", str(password)))
    if sub.state == "suspended" and policy.suspend_mode == "reject":
        check = [c for c in check if c[0] != "Auth-Type"] + [("Auth-Type", ":=", "Reject")]
    reply = []
    limit = rate_limit(sub.rate)
    if limit:
        reply.append(("Mikrotik-Rate-Limit", ":=", limit))
    if sub.address:
        reply.append(("Framed-IP-Address", ":=", str(sub.address)))
    return Rows(user, tuple(sorted(check)), tuple(sorted(reply)), GROUPS.get(sub.state, GROUPS["suspended"]))


def group_rows(policy: Policy) -> dict[str, tuple]:
    """The group replies the plugin keeps: the walled garden for the suspended group."""
    if policy.suspend_mode == "walled-garden":
        return {GROUPS["suspended"]: tuple(sorted([("Mikrotik-Address-List", ":=", policy.address_list),
                                                   ("Mikrotik-Rate-Limit", ":=", policy.suspended_rate)]))}
    return {GROUPS["suspended"]: ()}
