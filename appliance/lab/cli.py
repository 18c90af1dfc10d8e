"""``wispbill lab router``: run the lab router in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from appliance.lab.server import LabRouter


@click.group()
def lab() -> None:
    """Lab tools: a stand-in MikroTik router for demos, tests and benchmarks."""


@lab.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8728, show_default=True,
              help="TCP port for the API (0 picks a free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--user", default="admin", show_default=True, help="API user name.")
@click.option("--password", default="", help="API password (default: empty, like a new router).")
@click.option("--state", "state_file", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON file: loaded at start when it exists, written on SIGTERM/SIGINT and /lab/save.")
@click.option("--identity", default="MikroTik", show_default=True,
              help="/system/identity name (overrides the one in the state file).")
@click.option("--ros-version", default="7.18", show_default=True,
              help="RouterOS version to report; from 7.18 on, empty prints answer !empty.")
@click.option("--empty/--no-empty", default=None, help="Force !empty replies on or off.")
def router(port, host, user, password, state_file, identity, ros_version, empty) -> None:
    """Run a lab router speaking the RouterOS API until stopped (Ctrl-C or SIGTERM)."""
    lab_router = LabRouter(
        users={user: password}, identity=identity, version=ros_version, empty=empty, state_file=state_file
    )
    if state_file is not None and state_file.exists():
        try:
            lab_router.load(state_file)
        except (OSError, ValueError) as exc:
            raise click.BadParameter(str(exc), param_hint="--state") from None
        # The saved identity stands unless --identity was given on this command line.
        if click.get_current_context().get_parameter_source("identity") is click.core.ParameterSource.COMMANDLINE:
            lab_router.identity = identity
    try:
        lab_router.start(host=host, port=port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    click.echo(f"lab router listening on {lab_router.host}:{lab_router.port}")

    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        # A timed wait keeps the main thread returning to Python so signal handlers run.
        while not stopping.wait(0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lab_router.stop()
        if state_file is not None:
            lab_router.save(state_file)
            click.echo(f"lab router state saved to {state_file}")
