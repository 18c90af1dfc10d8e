"""The RADIUS enforcer's settings, and the per-NAS options on a router row.

Global settings (``wispbill settings set``): what a suspended subscriber gets
(``radius.suspend_mode``: ``walled-garden`` or ``reject``), the address list and the
rate of the walled garden, and how long to wait for a NAS to answer a Disconnect or
CoA. A ``radius`` router row is one NAS: ``host`` is its address, ``secret`` the shared
secret, and ``options.coa_port`` the port of its ``/radius incoming`` (3799 unless set;
RouterOS's default differs between versions).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from core import settings as core_settings
from core.hooktypes import SettingSpec

SUSPEND_MODE = "radius.suspend_mode"
SUSPENDED_LIST = "radius.suspended_address_list"
SUSPENDED_RATE = "radius.suspended_rate"
TIMEOUT = "radius.coa_timeout_seconds"

MODES = ("walled-garden", "reject")
DEFAULT_COA_PORT = 3799
_LIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_SPEED = r"\d+(?:\.\d+)?[kM]?"
_RATE = re.compile(rf"^{_SPEED}(?:/{_SPEED})?$")


def parse_mode(text) -> str:
    """``walled-garden`` or ``reject``."""
    value = str(text).strip().lower()
    if value not in MODES:
        raise ValueError(f"expected one of {', '.join(MODES)}, got {value!r}")
    return value


def parse_list_name(text) -> str:
    """An address-list name: letters, digits, ``.``, ``_`` and ``-``, up to 63."""
    value = str(text).strip()
    if not _LIST_NAME.match(value):
        raise ValueError("an address-list name is letters, digits, '.', '_' and '-' (up to 63), like wispbill-suspended")
    return value


def parse_rate(text) -> str:
    """A MikroTik rate such as ``64k/64k`` or ``1M`` (upload/download as the router sees it)."""
    value = str(text).strip()
    if not _RATE.match(value):
        raise ValueError(f"expected a rate like 64k/64k or 1M/2M, got {value!r}")
    return value


parse_timeout = core_settings.seconds_parser(0.1, 30)  # seconds to wait for a NAS


def specs() -> list[SettingSpec]:
    """The settings this enforcer declares."""
    return [
        SettingSpec(SUSPEND_MODE, "RADIUS: what a suspended subscriber gets", default="walled-garden",
                    parse=parse_mode,
                    help="walled-garden: accepted with the suspended address list and a low rate, so the "
                         "router can send them to the payment page; reject: Access-Reject."),
        SettingSpec(SUSPENDED_LIST, "RADIUS: walled-garden address list", default="wispbill-suspended",
                    parse=parse_list_name, help="Sent as Mikrotik-Address-List to suspended subscribers."),
        SettingSpec(SUSPENDED_RATE, "RADIUS: walled-garden rate", default="64k/64k", parse=parse_rate,
                    help="Sent as Mikrotik-Rate-Limit to suspended subscribers (upload/download)."),
        SettingSpec(TIMEOUT, "RADIUS: Disconnect/CoA timeout (seconds)", default=2.0, parse=parse_timeout,
                    help="How long to wait for a NAS to answer before trying again later."),
    ]


@dataclass(frozen=True)
class Policy:
    """How suspension is expressed in the tables, read once per apply or read."""

    suspend_mode: str = "walled-garden"
    address_list: str = "wispbill-suspended"
    suspended_rate: str = "64k/64k"


def policy() -> Policy:
    """The current settings as a :class:`Policy`."""
    return Policy(core_settings.get(SUSPEND_MODE), core_settings.get(SUSPENDED_LIST),
                  core_settings.get(SUSPENDED_RATE))


def timeout() -> float:
    """Seconds to wait for a NAS's answer."""
    return float(core_settings.get(TIMEOUT))


@dataclass(frozen=True)
class Nas:
    """One NAS as the session sender needs it."""

    router_id: int
    name: str
    address: str
    secret: str
    coa_port: int


def coa_port(options) -> int:
    """The CoA/Disconnect port from a router's options, 3799 when unset; a bad value raises ValueError."""
    raw = (options or {}).get("coa_port", DEFAULT_COA_PORT)
    try:
        port = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"coa_port must be a port number, got {raw!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"coa_port must be between 1 and 65535, got {port}")
    return port


def nas_of(router) -> Nas:
    """The NAS a ``radius`` router row describes; ValueError when its address, secret or port is unusable."""
    try:
        address = str(ipaddress.ip_address(str(router.host).strip()))
    except ValueError:
        raise ValueError(f"router {router.name}: the NAS address must be an IP address, got {router.host!r}") from None
    if not router.secret:
        raise ValueError(f"router {router.name}: a RADIUS NAS needs its shared secret (--secret)")
    return Nas(router.id, router.name, address, router.secret, coa_port(router.options))
