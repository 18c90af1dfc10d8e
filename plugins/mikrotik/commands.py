"""The MikroTik plugin's commands: the lab router (``wispbill lab router``), when the appliance has
it, and ``wispbill bench enforce``."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def register(cli) -> None:
    """Add the lab's ``lab`` group (without the appliance's lab package, none) and the bench."""
    try:
        from appliance.lab.cli import lab
    except ImportError as exc:
        log.debug("no lab router commands: %s", exc)
    else:
        if "lab" not in getattr(cli, "commands", {}):
            cli.add_command(lab)
    from plugins.mikrotik import bench_command

    bench_command.register(cli)
