"""``wispbill routers test``: log in on a new connection and ask the router what it is."""

from __future__ import annotations

from core.hooktypes import RouterCheck
from plugins.mikrotik.connection import Link
from plugins.mikrotik.settings import RouterConfig


def check(config: RouterConfig) -> RouterCheck:
    """The router's identity, RouterOS version, board and uptime; raises like :meth:`Link.open`."""
    link = Link(config).open()
    try:
        identity = link.print("/system/identity", ("name",))
        resource = link.print("/system/resource", ("version", "board-name", "uptime"))
    finally:
        link.close()
    name = (identity[0].get("name") if identity else "") or ""
    info = resource[0] if resource else {}
    detail = ", ".join(part for part in (info.get("board-name"), f"up {info['uptime']}" if info.get("uptime") else "")
                       if part)
    return RouterCheck(identity=name, version=info.get("version", ""), detail=detail)
