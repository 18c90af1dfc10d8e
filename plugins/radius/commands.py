"""``wispbill radius ...``: the Disconnect/CoA queue, open sessions and the NAS clients; ``wispbill bench radius``."""

from __future__ import annotations

import click

from core.cli import Group, _emit_json, open_database
from core.db import database

STATUSES = ("pending", "failed", "done", "superseded")


@click.group("radius", cls=Group)
def radius_group():
    """RADIUS NAS: Disconnect/CoA requests, open sessions, the clients FreeRADIUS knows."""


@radius_group.command("actions")
@click.option("--status", type=click.Choice(STATUSES + ("all",)), default="all", show_default=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True)
def actions_command(status, limit, as_json):
    """Recent Disconnect and CoA requests, newest first, with attempts and the last error."""
    from plugins.radius import actions

    open_database()
    rows = actions.listing(None if status == "all" else status, limit)
    if as_json:
        _emit_json({"counts": actions.counts(), "actions": rows})
        return
    counts = actions.counts()
    click.echo("  ".join(f"{name}: {counts.get(name, 0)}" for name in STATUSES))
    for r in rows:
        extra = " ".join(f"{k}={v}" for k, v in r["attributes"].items())
        note = r["last_error"] or r["result"] or ""
        click.echo(f"{r['id']}\t{r['status']}\t{r['action']}\t{r['username']}\t{r['reason']}\t"
                   f"attempts={r['attempts']}\t{extra}\t{note}".rstrip())


@radius_group.command("send")
def send_command():
    """Send the due Disconnect/CoA requests now (the scheduler does this twice a second)."""
    from plugins.radius import sessions

    open_database()
    result = sessions.send_due()
    click.echo(f"done {len(result.done)}, to retry {len(result.retry)}, given up {len(result.failed)}")
    for aid, text in {**result.retry, **result.failed}.items():
        click.echo(f"{aid}\t{text}")


@radius_group.command("sessions")
@click.option("--user", help="Only this RADIUS user name.")
@click.option("--json", "as_json", is_flag=True)
def sessions_command(user, as_json):
    """Open sessions as FreeRADIUS's accounting shows them (radacct rows without a stop)."""
    open_database()
    p = database.obj.param
    where, params = ("", ()) if not user else (f" AND username = {p}", (user,))
    rows = database.obj.execute_sql(
        "SELECT username, nasipaddress, acctsessionid, framedipaddress, acctstarttime, acctupdatetime, "
        "acctinputoctets, acctoutputoctets FROM radacct WHERE acctstoptime IS NULL" + where +
        " ORDER BY username, radacctid", params).fetchall()
    names = ("username", "nas", "session_id", "address", "started", "updated", "bytes_in", "bytes_out")
    items = [dict(zip(names, r)) for r in rows]
    if as_json:
        _emit_json(items)
        return
    for i in items:
        click.echo("\t".join(str(i[n] if i[n] is not None else "") for n in names))


@radius_group.command("clients")
def clients_command():
    """The NAS clients FreeRADIUS reads from the ``nas`` table (secrets not shown)."""
    from core.models import Router
    from plugins.radius import tables

    open_database()
    with database.atomic():
        kept = []
        for router in Router.select().where(Router.kind == "radius", Router.active):
            try:
                tables.sync_nas(router)
                kept.append(router.id)
            except ValueError as exc:
                click.echo(f"skipped: {exc}", err=True)
        tables.drop_nas(kept)
    for name, short, ports, mark in database.obj.execute_sql(
            "SELECT nasname, shortname, ports, wispbill FROM nas ORDER BY nasname").fetchall():
        click.echo(f"{name}\t{short}\tcoa_port={ports}\t{'wispbill' if mark else 'operator'}")


def register(cli) -> None:
    """Add the ``radius`` group, and ``radius`` to the core's ``bench`` group."""
    if "radius" not in cli.commands:
        cli.add_command(radius_group)
    group = cli.commands.get("bench")
    if isinstance(group, click.Group) and "radius" not in group.commands:
        try:
            from plugins.radius.bench_command import bench_radius
        except ImportError:
            return
        group.add_command(bench_radius)
