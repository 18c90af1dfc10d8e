"""``wispbill doctor``: check the installation and explain each finding in one line.

Importing this module registers the command on :data:`core.cli.cli`. It runs and reports
even when the database cannot be reached; it exits 1 when any check fails.
"""

from __future__ import annotations

import sys

import click

from core import doctor
from core.cli import _emit_json, cli
from core.config import load_config


def format_line(check: doctor.Check) -> str:
    """``ok    database    reachable ...``: status, name and message in columns."""
    return f"{check.status:<5} {check.name:<11} {check.message}"


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor_command(as_json):
    """Check the database, scheduler, routers, FreeRADIUS, disk, backups and clock.

    Prints one line per check (ok, warn, fail or skip) with what to do when it is not ok.
    Exits 1 when any check fails; warnings and skips exit 0.
    """
    config = load_config()
    checks = doctor.run_all(config)
    code = doctor.exit_code(checks)
    if as_json:
        _emit_json({"ok": code == 0, "checks": [c.as_dict() for c in checks]})
    else:
        for check in checks:
            click.echo(format_line(check))
    sys.exit(code)
