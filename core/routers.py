"""Routers and how services reach them: adding routers, binding services, testing, setup scripts."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from core import audit, enforcement, enforcers, events, settings, validate
from core.db import database, refuse_conflict
from core.errors import NotFound, PluginError, ValidationError
from core.hooktypes import RouterCheck, SetupContext
from core.models import ACCESS_KINDS, Router, Service
from core.plugins import get_manager

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_HOST = re.compile(r"^[A-Za-z0-9.:_-]{1,255}$")


def _kind(kind: str) -> str:
    kinds = enforcers.available()
    kind = validate.text(kind, "kind", max_length=40)
    if kind not in kinds:
        known = ", ".join(sorted(kinds)) or "none installed"
        raise ValidationError(f"no enforcer for router kind {kind!r} (known: {known})", "kind")
    return kind


def _options(options) -> dict | None:
    if options in (None, {}):
        return None
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise ValidationError("router options must be a mapping of names to values", "options")
    return options


def add(*, name, kind, host, port=None, username=None, secret=None, use_tls=False, options=None) -> Router:
    """Validate and create a router of an installed enforcer ``kind``."""
    data = {
        "name": validate.text(name, "name", max_length=100),
        "kind": _kind(kind),
        "host": validate.text(host, "host", max_length=255),
        "port": validate.integer(port, "port", minimum=1, maximum=65535, required=False),
        "username": validate.text(username, "username", required=False, max_length=100),
        "secret": validate.text(secret, "secret", required=False, max_length=255),
        "use_tls": bool(use_tls),
        "options": _options(options),
    }
    if not _NAME.match(data["name"]):
        raise ValidationError("a router name is letters, digits, '.', '_' and '-' (up to 100)", "name")
    if not _HOST.match(data["host"]):
        raise ValidationError(f"{data['host']!r} is not a host name or address", "host")
    with refuse_conflict(f"a router named {data['name']!r} already exists", "name"):
        with database.atomic():
            if Router.select().where(Router.name == data["name"]).exists():
                raise ValidationError(f"a router named {data['name']!r} already exists", "name")
            router = Router.create(**data)
            audit.record("router.create", "router", router.id, None, snapshot(router))
    return router


def snapshot(router: Router) -> dict:
    """A router as audit rows keep it: the secret left out."""
    return audit.snapshot(router, exclude=("secret",))


def find(name_or_id) -> Router:
    """The router with this name (or numeric id)."""
    text = str(name_or_id or "").strip()
    router = Router.get_or_none(Router.name == text)
    if router is None and validate.as_id(text) is not None:
        router = Router.get_or_none(Router.id == validate.as_id(text))
    if router is None:
        raise NotFound(f"no router {text!r}")
    return router


def listing() -> list[Router]:
    """Every router, by name."""
    return list(Router.select().order_by(Router.name))


def counts() -> dict[int, dict]:
    """Per router id: services bound, and changes still pending."""
    out: dict[int, dict] = {}
    for rid, n in database.obj.execute_sql(
            "SELECT router_id, COUNT(*) FROM service WHERE router_id IS NOT NULL GROUP BY router_id").fetchall():
        out.setdefault(rid, {"services": 0, "pending": 0})["services"] = n
    for rid, n in database.obj.execute_sql(
            "SELECT router_id, COUNT(*) FROM enforcement WHERE next_attempt_at IS NOT NULL "
            "GROUP BY router_id").fetchall():
        out.setdefault(rid, {"services": 0, "pending": 0})["pending"] = n
    return out


def as_dict(router: Router, tally: dict | None = None) -> dict:
    """A router for listings and JSON: never its secret."""
    tally = tally or {}
    return {"id": router.id, "name": router.name, "kind": router.kind, "host": router.host, "port": router.port,
            "username": router.username, "use_tls": router.use_tls, "active": router.active,
            "options": router.options or {}, "services": tally.get("services", 0),
            "pending": tally.get("pending", 0),
            "last_seen_at": router.last_seen_at.isoformat() if router.last_seen_at else None,
            "last_reconcile_at": router.last_reconcile_at.isoformat() if router.last_reconcile_at else None,
            "last_error": router.last_error}


def check(router: Router, pm=None) -> RouterCheck:
    """Connect to ``router`` through its enforcer and return what it says it is."""
    pm = pm or get_manager()
    if router.kind not in enforcers.available(pm):
        raise NotFound(f"no enforcer for router kind {router.kind!r} (router {router.name!r})")
    try:
        plugin, answer = pm.call_first("enforcer_check", router=router)
    except PluginError as exc:
        if isinstance(exc.error, OSError):
            raise exc.error from None
        raise
    if not isinstance(answer, RouterCheck):
        raise PluginError(plugin or router.kind, "enforcer_check", f"expected RouterCheck, got {answer!r}")
    return answer


def parse_portal_url(text: str) -> tuple[str, int]:
    """The (IP address, port) of a portal URL like ``http://10.0.0.2:8081``; refuses names and paths."""
    text = (text or "").strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValidationError("the portal address must not contain spaces or control characters", "web.portal_url")
    parts = urlsplit(text)
    if parts.scheme != "http" or not parts.hostname:
        raise ValidationError(f"{text!r} is not an http:// address (routers redirect plain HTTP)",
                              "web.portal_url")
    if parts.username or parts.password or parts.query or parts.fragment or "#" in text or "?" in text:
        raise ValidationError("give the portal as http://ADDRESS:PORT, nothing more", "web.portal_url")
    try:
        address = str(ipaddress.ip_address(parts.hostname))
    except ValueError:
        raise ValidationError(f"the portal must be named by IP address, not {parts.hostname!r}: "
                              "routers redirect to an address", "web.portal_url") from None
    try:
        port = parts.port or 80
    except ValueError:
        raise ValidationError(f"{text!r} has a bad port", "web.portal_url") from None
    if parts.path not in ("", "/"):
        raise ValidationError("give the portal's address without a path", "web.portal_url")
    return address, port


def portal_url(address: str, port: int) -> str:
    """The portal's URL as stored and printed, rebuilt from its parts."""
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


def setup_context(pm=None) -> SetupContext:
    """What a router's setup script needs: the portal and the hosts payers must reach."""
    from core import gateways

    portal = str(settings.get_or("web.portal_url", "", pm) or "").strip()
    if not portal:
        raise ValidationError("set web.portal_url first: this server's portal port by IP address, "
                              "e.g. http://10.0.0.2:8081", "web.portal_url")
    address, port = parse_portal_url(portal)
    portal = portal_url(address, port)
    hosts = []
    for info in gateways.available(pm).values():
        for name in getattr(info, "hosts", ()) or ():
            if name not in hosts:
                hosts.append(name)
    return SetupContext(portal_url=portal.rstrip("/") + "/suspended", portal_address=address, portal_port=port,
                        walled_garden=tuple(hosts))


def setup_script(router: Router, pm=None) -> str:
    """The commands the operator pastes into ``router`` once, from its enforcer."""
    pm = pm or get_manager()
    if router.kind not in enforcers.available(pm):
        raise NotFound(f"no enforcer for router kind {router.kind!r} (router {router.name!r})")
    context = setup_context(pm)
    plugin, answer = pm.call_first("enforcer_setup_script", router=router, context=context)
    if answer is None:
        raise NotFound(f"the {router.kind} enforcer has no setup script")
    if not isinstance(answer, str):
        raise PluginError(plugin or router.kind, "enforcer_setup_script", f"expected text, got {answer!r}")
    return answer


def bind_service(service: Service, *, router=None, access=None, username=None, password=None,
                 ip_address=None, mac_address=None, unbind: bool = False) -> Service:
    """Say how ``service`` reaches the network: its router, access kind and credentials.

    Only the arguments given change. The desired router state is refreshed in the same
    transaction; the scheduler pushes it to the router within a second or two.
    """
    changes: dict = {}
    if unbind:
        changes["router"] = None
    elif router is not None:
        changes["router"] = router if isinstance(router, Router) else find(router)
    if access is not None:
        changes["access"] = validate.choice(access, "access", ACCESS_KINDS)
    if username is not None:
        changes["username"] = validate.text(username, "username", required=False, max_length=100) or None
    if password is not None:
        changes["password"] = validate.text(password, "password", required=False, max_length=255) or None
    if ip_address is not None:
        changes["ip_address"] = _address(ip_address)
    if mac_address is not None:
        mac = validate.text(mac_address, "mac_address", required=False, max_length=17)
        if mac and not _MAC.match(mac):
            raise ValidationError(f"{mac!r} is not a MAC address like 4C:5E:0C:12:34:56", "mac_address")
        changes["mac_address"] = mac.upper() if mac else None
    if not changes:
        raise ValidationError("nothing to change: give a router, access kind, credentials or address")
    access_kind = changes.get("access", service.access)
    user = changes.get("username", service.username)
    if access_kind in ("pppoe", "hotspot") and not user:
        raise ValidationError(f"{access_kind} access needs a username", "username")
    if access_kind in ("dhcp", "static") and not changes.get("ip_address", service.ip_address):
        raise ValidationError(f"{access_kind} access needs the subscriber's IP address", "ip_address")
    with refuse_conflict("that username is taken by another service", "username"):
        with database.atomic():
            before = audit.snapshot(service, exclude=("password",))
            for name, value in changes.items():
                setattr(service, name, value)
            service.save()
            audit.record("service.network", "service", service.id, before,
                         audit.snapshot(service, exclude=("password",)))
            events.emit("service.changed", {"service_id": service.id, "customer_id": service.customer_id,
                                            "reason": "network"})
            enforcement.refresh_services([service.id])
    return service


def _address(value) -> str | None:
    text = validate.text(value, "ip_address", required=False, max_length=45)
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValidationError(f"{text!r} is not an IP address", "ip_address") from None
