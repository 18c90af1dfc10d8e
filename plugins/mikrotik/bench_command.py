"""``wispbill bench enforce`` (see ``docs/bench.md``)."""

from __future__ import annotations

import click

from core.cli import _emit_json


@click.command("enforce")
@click.option("--subscribers", default=10_000, show_default=True, type=click.IntRange(1, 200_000),
              help="Subscribers to build, each with one service on the lab router.")
@click.option("--payments", "payments_count", default=200, show_default=True, type=click.IntRange(1, 1_000),
              help="Suspended customers who pay, one after another, for the restore latency.")
@click.option("--database-url", help="postgresql://... (a new schema is made in it and dropped afterwards) or "
                                     "sqlite:///path/to/new.db; default: a SQLite file in a temporary directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def bench_enforce(subscribers, payments_count, database_url, as_json):
    """Sync, reconcile and restore SUBSCRIBERS subscribers on a lab router over TCP, and time it."""
    from plugins.mikrotik import bench

    figures = bench.run_enforce_bench(subscribers, payments_count=payments_count, database_url=database_url,
                                      progress=lambda text: click.echo(text, err=True))
    if as_json:
        _emit_json(figures.as_dict())
        return
    for line in bench.lines(figures):
        click.echo(line)


def register(cli) -> None:
    """Add ``enforce`` to the core's ``bench`` group (when the core has one)."""
    group = cli.commands.get("bench")
    if isinstance(group, click.Group) and "enforce" not in group.commands:
        group.add_command(bench_enforce)
