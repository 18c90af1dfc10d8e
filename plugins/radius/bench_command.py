"""``wispbill bench radius`` (see ``docs/bench.md``)."""

from __future__ import annotations

import click

from core.cli import _emit_json


@click.command("radius")
@click.option("--subscribers", default=100_000, show_default=True, type=click.IntRange(1, 500_000),
              help="PPPoE subscribers to build, each with one service on the bench NAS.")
@click.option("--requests", default=50_000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Access-Requests to send, for random subscribers.")
@click.option("--parallel", default=256, show_default=True, type=click.IntRange(1, 4096),
              help="Access-Requests in flight at once (radclient -p).")
@click.option("--records", default=200_000, show_default=True, type=click.IntRange(1, 5_000_000),
              help="Accounting records to turn into usage.")
@click.option("--database-url", help="postgresql://... (a new schema is made in it and dropped afterwards) or "
                                     "sqlite:///path/to/new.db; default: a SQLite file in a temporary directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def bench_radius(subscribers, requests, parallel, records, database_url, as_json):
    """FreeRADIUS authentications per second from wispbill's tables, and accounting records per second into usage."""
    from plugins.radius import bench

    figures = bench.run_radius_bench(subscribers, requests=requests, parallel=parallel, records=records,
                                     database_url=database_url, progress=lambda text: click.echo(text, err=True))
    if as_json:
        _emit_json(figures.as_dict())
        return
    for line in bench.lines(figures):
        click.echo(line)
