"""Enforcer for MikroTik routers over the RouterOS API (router kind ``mikrotik``).

Suspension by a firewall address list, throttling and plan rates by simple queues or
managed PPP profiles, provisioning of PPP secrets and hotspot users; see
``docs/enforcers/mikrotik.md``. The hooks only route: entries in :mod:`.mapping`,
connections in :mod:`.connection`, reading in :mod:`.reader`, writing in :mod:`.apply`,
the setup script in :mod:`.script`.
"""

from __future__ import annotations

from core import hookimpl
from core.hooktypes import EnforcerInfo
from plugins.mikrotik import apply as applying
from plugins.mikrotik import check as checking
from plugins.mikrotik import reader, script, settings
from plugins.mikrotik.connection import link_for

KIND = "mikrotik"


@hookimpl
def register_settings():
    """The suspend list's name and the API timeout."""
    return settings.specs()


@hookimpl
def register_commands(cli):
    """``wispbill lab router`` (the lab router, for demos and tests) and ``wispbill bench enforce``."""
    from plugins.mikrotik import commands

    commands.register(cli)


@hookimpl
def enforcer_describe():
    """Routers of kind ``mikrotik``."""
    return EnforcerInfo(KIND, "MikroTik RouterOS (API)")


def _link(router):
    return link_for(router, settings.router_config(router))


@hookimpl
def enforcer_read_state(router):
    """Every subscriber this plugin manages on the router, read in one print per menu."""
    if router.kind != KIND:
        return None
    return reader.read_state(_link(router))


@hookimpl
def enforcer_apply(router, changes):
    """Apply the changes; refusals fail their change, a lost connection raises ``OSError``."""
    if router.kind != KIND:
        return None
    return applying.Applier(_link(router)).apply(list(changes))


@hookimpl
def enforcer_check(router):
    """Identity and RouterOS version, on a new connection (a wrong password is reported as such)."""
    if router.kind != KIND:
        return None
    return checking.check(settings.router_config(router))


@hookimpl
def enforcer_setup_script(router, context):
    """Redirect, walled garden and drop rules for the suspend list, and the base PPP profiles."""
    if router.kind != KIND:
        return None
    return script.render(router, settings.router_config(router), context)
