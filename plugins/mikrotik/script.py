"""The one-time setup script: RouterOS commands an operator pastes into the router's terminal.

It sends suspended subscribers' web traffic (TCP 80) to the payment page, lets them reach
DNS, the billing server and the walled garden (the payment gateways' hosts), and drops
everything else they forward. Every rule is added only when no rule with its comment
exists, so pasting the script again changes nothing. All comments start with ``wispbill``.
"""

from __future__ import annotations

import ipaddress
import re

from core.hooktypes import SetupContext
from plugins.mikrotik.mapping import Layout, Profile
from plugins.mikrotik.settings import RouterConfig

GARDEN_LIST = "wispbill-garden"
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:/,-]*$")


_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "?": "\\?", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _quote(value: str) -> str:
    """A value as a RouterOS string literal, on one line whatever it holds.

    ``?`` is escaped too: pasted into a RouterOS terminal it would open the help.
    Other control characters become ``\\XX`` hex escapes.
    """
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _once(find: str, add: str) -> str:
    """``add`` unless ``find`` already matches something."""
    return f":if ([:len [find {find}]] = 0) do={{ {add} }}"


def _on_top(note: str, args: str) -> str:
    """Add a rule above every static rule of the menu (before fasttrack and the operator's rules)."""
    c = _quote(note)
    return _once(f"comment={c}", f":local top [find dynamic=no]; :if ([:len $top] > 0) do={{ add {args} "
                                  f"comment={c} place-before=[:pick $top 0] }} else={{ add {args} comment={c} }}")


def _before(note: str, anchor: str, args: str) -> str:
    """Add a rule just above the rule commented ``anchor``."""
    c = _quote(note)
    return _once(f"comment={c}", f"add {args} comment={c} place-before=[find comment={_quote(anchor)}]")


def render(router, config: RouterConfig, context: SetupContext) -> str:
    """The script for ``router`` (its name is only used in the heading)."""
    layout: Layout = config.layout
    listed = layout.suspend_list
    portal = str(ipaddress.ip_address(context.portal_address))
    port = int(context.portal_port)
    drop = "wispbill: suspended: drop the rest"
    lines = [
        f"# wispbill setup for MikroTik router {router.name or config.host}.",
        "# Paste into the router's terminal once; pasting it again changes nothing.",
        f"# Suspended subscribers are in the address list {listed}: their web requests go to",
        f"# {context.portal_url}; besides DNS, this server and the payment gateways, nothing they send is forwarded.",
        "",
        "/ip firewall address-list",
    ]
    skipped = []
    for host in context.walled_garden:
        if not _HOST.match(host):
            skipped.append(host)
            continue
        lines.append(_once(f"list={GARDEN_LIST} address={host}",
                           f"add list={GARDEN_LIST} address={host} comment=\"wispbill: walled garden\""))
    for host in skipped:
        lines.append(f"# not a host name, left out of the walled garden: {host!r}")
    lines += [
        "",
        "/ip firewall nat",
        _on_top("wispbill: suspended web to the payment page",
                f"chain=dstnat src-address-list={listed} protocol=tcp dst-port=80 dst-address=!{portal} "
                f"dst-address-list=!{GARDEN_LIST} action=dst-nat to-addresses={portal} to-ports={port}"),
        "",
        "/ip firewall filter",
        _on_top(drop, f"chain=forward src-address-list={listed} action=drop"),
        _before("wispbill: suspended: DNS (udp)", drop,
                f"chain=forward src-address-list={listed} protocol=udp dst-port=53 action=accept"),
        _before("wispbill: suspended: DNS (tcp)", drop,
                f"chain=forward src-address-list={listed} protocol=tcp dst-port=53 action=accept"),
        _before("wispbill: suspended: billing server", drop,
                f"chain=forward src-address-list={listed} dst-address={portal} action=accept"),
        _before("wispbill: suspended: walled garden", drop,
                f"chain=forward src-address-list={listed} dst-address-list={GARDEN_LIST} action=accept"),
        "",
        "# PPPoE: wispbill adds a profile per plan rate (wispbill-<down>k-<up>k, wispbill-throttled-...,",
        f"# wispbill-suspended-..., the last putting the session in {listed}) when it first needs one.",
        "/ppp profile",
    ]
    for profile in (Profile("wispbill-unlimited", None, False), Profile("wispbill-suspended", None, True)):
        attrs = profile.attributes(layout)
        args = " ".join(f"{name}={_value(value)}" for name, value in
                        sorted(attrs.items(), key=lambda item: item[0] != "name"))
        lines.append(_once(f"name={profile.name}", f"add {args}"))
    return "\n".join(lines) + "\n"


def _value(value: str) -> str:
    return value if value and _SAFE_VALUE.match(value) else _quote(value)
