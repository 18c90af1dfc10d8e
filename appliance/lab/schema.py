"""The menus the lab router knows: their attributes, defaults, keys and refusals.

Messages marked "as RouterOS" are the ones real routers are known to send; the others
are close guesses (see docs/lab-router.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

TABLE_VERBS = frozenset({"print", "getall", "get", "add", "set", "remove", "enable", "disable", "unset"})
ACTIVE_VERBS = frozenset({"print", "getall", "get", "remove"})
SINGLETON_VERBS = frozenset({"print", "getall", "get", "set"})


@dataclass(frozen=True)
class Menu:
    """One menu such as ``/queue/simple``.

    ``writable`` maps the attributes add/set accept to their default (``None``: absent
    until given); ``readonly`` maps what the router fills in itself. ``unique`` names
    the attributes that together may not repeat, refused with ``duplicate``. A menu with
    ``auto_name`` (rows named ``queue1``, ... when added without a name) must be unique
    by name alone.
    """

    path: str
    verbs: frozenset[str]
    writable: dict[str, str | None]
    readonly: dict[str, str | None] = field(default_factory=dict)
    booleans: frozenset[str] = frozenset()
    unique: tuple[str, ...] = ()
    duplicate: str = ""
    required: tuple[str, ...] = ()
    auto_name: str = ""
    active: bool = False
    singleton: bool = False
    dynamic_lost_on_reboot: bool = True

    @cached_property
    def layout(self) -> tuple[tuple[str, str | None], ...]:
        """Every attribute with its default, in the order print shows them."""
        return (*self.writable.items(), *self.readonly.items())



ADDRESS_LIST = Menu(
    path="/ip/firewall/address-list",
    verbs=TABLE_VERBS,
    writable={"list": None, "address": None, "timeout": None, "comment": None, "disabled": "false"},
    readonly={"creation-time": None, "dynamic": "false"},
    booleans=frozenset({"disabled", "dynamic"}),
    unique=("list", "address"),
    duplicate="failure: already have such entry",  # as RouterOS
    required=("list", "address"),
)

QUEUE_SIMPLE = Menu(
    path="/queue/simple",
    verbs=TABLE_VERBS,
    writable={
        "name": None,
        "target": "",
        "dst": None,
        "parent": "none",
        "packet-marks": "",
        "priority": "8/8",
        "queue": "default-small/default-small",
        "limit-at": "0/0",
        "max-limit": "0/0",
        "burst-limit": "0/0",
        "burst-threshold": "0/0",
        "burst-time": "0s/0s",
        "bucket-size": "0.1/0.1",
        "time": None,
        "comment": None,
        "disabled": "false",
    },
    readonly={"dynamic": "false", "invalid": "false", "rate": "0/0", "bytes": "0/0", "packets": "0/0"},
    booleans=frozenset({"disabled", "dynamic", "invalid"}),
    unique=("name",),
    duplicate="failure: already have such name",  # as RouterOS
    auto_name="queue",
)

PPP_SECRET = Menu(
    path="/ppp/secret",
    verbs=TABLE_VERBS,
    writable={
        "name": None,
        "password": "",
        "profile": "default",
        "service": "any",
        "caller-id": "",
        "local-address": None,
        "remote-address": None,
        "remote-ipv6-prefix": None,
        "routes": "",
        "ipv6-routes": "",
        "limit-bytes-in": "0",
        "limit-bytes-out": "0",
        "comment": None,
        "disabled": "false",
    },
    readonly={"last-logged-out": None, "last-caller-id": None, "last-disconnect-reason": None},
    booleans=frozenset({"disabled"}),
    unique=("name",),
    duplicate="failure: secret with the same name already exists",  # as RouterOS
    required=("name",),
)

PPP_PROFILE = Menu(
    path="/ppp/profile",
    verbs=TABLE_VERBS,
    writable={
        "name": None,
        "local-address": None,
        "remote-address": None,
        "rate-limit": None,
        "address-list": "",
        "dns-server": None,
        "wins-server": None,
        "bridge": None,
        "interface-list": None,
        "incoming-filter": None,
        "outgoing-filter": None,
        "parent-queue": None,
        "queue-type": None,
        "insert-queue-before": None,
        "session-timeout": None,
        "idle-timeout": None,
        "only-one": "default",
        "change-tcp-mss": "default",
        "use-compression": "default",
        "use-encryption": "default",
        "use-mpls": "default",
        "use-upnp": "default",
        "use-ipv6": "default",
        "on-up": "",
        "on-down": "",
        "comment": None,
    },
    readonly={"default": "false"},
    booleans=frozenset({"default"}),
    unique=("name",),
    duplicate="failure: profile with the same name already exists",
    required=("name",),
)

PPP_ACTIVE = Menu(
    path="/ppp/active",
    verbs=ACTIVE_VERBS,
    writable={},
    readonly={
        "name": None,
        "service": "pppoe",
        "caller-id": "",
        "address": None,
        "uptime": "0s",
        "encoding": "",
        "session-id": None,
        "limit-bytes-in": "0",
        "limit-bytes-out": "0",
        "radius": "false",
        "comment": None,
    },
    booleans=frozenset({"radius"}),
    active=True,
)

HOTSPOT_USER = Menu(
    path="/ip/hotspot/user",
    verbs=TABLE_VERBS,
    writable={
        "name": None,
        "password": None,
        "profile": "default",
        "server": "all",
        "address": None,
        "mac-address": None,
        "email": None,
        "routes": None,
        "limit-uptime": None,
        "limit-bytes-in": None,
        "limit-bytes-out": None,
        "limit-bytes-total": None,
        "comment": None,
        "disabled": "false",
    },
    readonly={
        "uptime": "0s",
        "bytes-in": "0",
        "bytes-out": "0",
        "packets-in": "0",
        "packets-out": "0",
        "dynamic": "false",
    },
    booleans=frozenset({"disabled", "dynamic"}),
    unique=("server", "name"),
    duplicate="failure: already have user with this name for this server",  # as RouterOS
    required=("name",),
)

HOTSPOT_ACTIVE = Menu(
    path="/ip/hotspot/active",
    verbs=ACTIVE_VERBS,
    writable={},
    readonly={
        "server": "hotspot1",
        "user": None,
        "domain": None,
        "address": None,
        "mac-address": None,
        "login-by": "http-chap",
        "uptime": "0s",
        "idle-time": "0s",
        "keepalive-timeout": "2m",
        "bytes-in": "0",
        "bytes-out": "0",
        "packets-in": "0",
        "packets-out": "0",
        "radius": "false",
        "blocked": "false",
        "comment": None,
    },
    booleans=frozenset({"radius", "blocked"}),
    active=True,
)

IDENTITY = Menu(path="/system/identity", verbs=SINGLETON_VERBS, writable={"name": "MikroTik"}, singleton=True)

RESOURCE = Menu(
    path="/system/resource",
    verbs=frozenset({"print", "getall", "get"}),
    writable={},
    readonly={
        "uptime": None,
        "version": None,
        "build-time": None,
        "factory-software": None,
        "free-memory": None,
        "total-memory": None,
        "cpu": None,
        "cpu-count": None,
        "cpu-frequency": None,
        "cpu-load": None,
        "free-hdd-space": None,
        "total-hdd-space": None,
        "write-sect-since-reboot": None,
        "write-sect-total": None,
        "architecture-name": None,
        "board-name": None,
        "platform": None,
    },
    singleton=True,
)

TABLES = (ADDRESS_LIST, QUEUE_SIMPLE, PPP_SECRET, PPP_PROFILE, PPP_ACTIVE, HOTSPOT_USER, HOTSPOT_ACTIVE)
MENUS = {menu.path: menu for menu in (*TABLES, IDENTITY, RESOURCE)}

# Built into every router, never removable (ids as RouterOS gives them).
PPP_BUILTIN_PROFILES = (
    {".id": "*0", "name": "default", "default": "true", "use-encryption": "default"},
    {".id": "*FFFFFFFE", "name": "default-encryption", "default": "true", "use-encryption": "yes"},
)

# Every prefix of a known menu ("/ip", "/ip/firewall", ...): a command below one of
# these that is not a menu is "no such command", anything else "no such command prefix".
MENU_PREFIXES = frozenset(
    "/".join(path.split("/")[:i]) for path in MENUS for i in range(2, path.count("/") + 2)
)
