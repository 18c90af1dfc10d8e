"""The Stripe gateway's command: ``wispbill bench payments`` (see ``docs/bench.md``)."""

from __future__ import annotations

import click

from core.cli import _emit_json
from gateways.stripe import bench


@click.command("payments")
@click.option("--customers", default=10_000, show_default=True, type=click.IntRange(1, bench.MAX_CUSTOMERS),
              help="Customers to build, each with one issued invoice.")
@click.option("--notifications", default=5_000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Webhooks to post.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 16),
              help="Threads posting at the same time.")
@click.option("--redeliver", default=0.1, show_default=True, type=click.FloatRange(0, 0.99),
              help="Share of posts that deliver an earlier event again.")
@click.option("--database-url", help="postgresql://... (a new schema is made in it and dropped afterwards) or "
                                     "sqlite:///path/to/new.db; default: a SQLite file in a temporary directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def bench_payments(customers, notifications, threads, redeliver, database_url, as_json):
    """Post signed Stripe webhooks through the web app and measure how many it records per second."""
    figures = bench.run_payments_bench(customers, notifications, database_url=database_url, threads=threads,
                                       redeliver=redeliver, progress=lambda text: click.echo(text, err=True))
    if as_json:
        _emit_json(figures.as_dict())
        return
    for line in bench.lines(figures):
        click.echo(line)


def register(cli) -> None:
    """Add ``payments`` to the core's ``bench`` group (when the core has one)."""
    group = cli.commands.get("bench")
    if isinstance(group, click.Group) and "payments" not in group.commands:
        group.add_command(bench_payments)
