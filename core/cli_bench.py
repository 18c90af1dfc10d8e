"""The ``wispbill bench`` commands: measure the system on generated data (see ``docs/bench.md``).

``wispbill bench web --subscribers N`` measures the pages (see :mod:`core.bench_web`).
``wispbill bench billing --subscribers N`` builds N subscribers in a fresh database, bills
them once and prints the figures; the last line is ``invoices/s: <number>`` (with
``--json``, a JSON object instead). Bad arguments exit with code 2, an unreachable
database or a failed run with code 1.
"""

from __future__ import annotations

import click

from core import bench, billing
from core.cli import Group, _emit_json, cli


@cli.group(cls=Group)
def bench_group():
    """Measure wispbill on generated data in a fresh database."""


cli.add_command(bench_group, "bench")


@bench_group.command("billing")
@click.option("--subscribers", required=True, type=click.IntRange(1, bench.MAX_SUBSCRIBERS),
              help="How many customers to build and bill.")
@click.option("--database-url", help="postgresql://... (a new schema is made in it and dropped afterwards) or "
                                     "sqlite:///path/to/new.db; default: a SQLite file in a temporary directory.")
@click.option("--chunk", default=billing.CHUNK, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Customers per transaction, for the run and for the floor.")
@click.option("--keep", is_flag=True, help="Keep the billed database and print its URL.")
@click.option("--profile", type=click.Path(dir_okay=False, writable=True),
              help="Write cProfile stats of the billing run to this file (the run is slower while profiled).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def bench_billing(subscribers, database_url, chunk, keep, profile, as_json):
    """Bill SUBSCRIBERS customers once and compare with a plain executemany of the same rows."""
    figures = bench.run_billing_bench(subscribers, database_url=database_url, chunk=chunk, keep=keep,
                                      profile=profile, progress=lambda text: click.echo(text, err=True))
    if as_json:
        _emit_json(figures.as_dict())
        return
    for line in bench.lines(figures):
        click.echo(line)


@bench_group.command("web")
@click.option("--subscribers", required=True, type=click.IntRange(1, bench.MAX_SUBSCRIBERS),
              help="How many customers to build and bill before measuring.")
@click.option("--database-url", help="postgresql://... (a new schema is made in it and dropped afterwards) or "
                                     "sqlite:///path/to/new.db; default: a SQLite file in a temporary directory.")
@click.option("--requests", default=200, show_default=True, type=click.IntRange(10, 100_000),
              help="Requests per page, after a warm-up.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def bench_web(subscribers, database_url, requests, as_json):
    """p50/p95 latency of the dashboard, customer search, a customer page and the portal home."""
    from core import bench_web as web

    figures = web.run_web_bench(subscribers, database_url=database_url, requests=requests,
                                progress=lambda text: click.echo(text, err=True))
    if as_json:
        _emit_json(figures.as_dict())
        return
    for line in web.lines(figures):
        click.echo(line)
