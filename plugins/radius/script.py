"""The one-time RouterOS commands that make a MikroTik NAS use this server's FreeRADIUS."""

from __future__ import annotations

import ipaddress

from core.hooktypes import SetupContext
from plugins.radius.settings import Nas, Policy

_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "?": "\\?"}


def _quote(value: str) -> str:
    """A RouterOS string literal; control characters are refused by the secret's validation upstream."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def render(router, nas: Nas, policy: Policy, context: SetupContext, radius_address: str | None = None) -> str:
    """RADIUS client, CoA listener and PPP/hotspot/DHCP use of RADIUS; safe to paste twice."""
    server = str(ipaddress.ip_address(radius_address or context.portal_address))
    note = _quote("wispbill")
    lines = [
        f"# wispbill RADIUS setup for NAS {router.name} ({nas.address}).",
        "# Paste into the router's terminal once; pasting it again changes nothing.",
        f"# The router asks FreeRADIUS on {server} and accepts Disconnect and CoA requests on port {nas.coa_port}.",
        "/radius",
        f":if ([:len [find comment={note}]] = 0) do={{ add address={server} secret={_quote(nas.secret)} "
        f"service=ppp,hotspot,dhcp timeout=3s comment={note} }} else={{ set [find comment={note}] "
        f"address={server} secret={_quote(nas.secret)} service=ppp,hotspot,dhcp }}",
        f"/radius incoming set accept=yes port={nas.coa_port}",
        "/ppp aaa set use-radius=yes accounting=yes interim-update=5m",
        "/ip hotspot profile set [find] use-radius=yes radius-accounting=yes radius-interim-update=5m",
    ]
    if policy.suspend_mode == "walled-garden":
        lines += [
            f"# Suspended subscribers are accepted into the address list {policy.address_list} at "
            f"{policy.suspended_rate}:",
            f"# send that list's web traffic to {context.portal_url} with the same firewall rules as an",
            "# address-list router (see 'wispbill routers script' for a router of kind mikrotik).",
        ]
    else:
        lines.append("# Suspended subscribers are refused (Access-Reject); no firewall rules are needed.")
    return "\n".join(lines) + "\n"
