"""``wispbill bench radius``: FreeRADIUS answering from wispbill's tables, and accounting into usage.

:func:`run_radius_bench` makes a fresh database (as the other benches do) with
``subscribers`` PPPoE subscribers on one RADIUS NAS and measures:

1. the write of every subscriber's rows (``radcheck``, ``radreply``, ``radusergroup``) in
   one transaction, as the first reconcile of a new NAS does;
2. authentications per second: the appliance's FreeRADIUS (``appliance/freeradius``, real
   UDP on 127.0.0.1) answers ``requests`` PAP Access-Requests for random subscribers,
   sent by ``radclient`` with ``parallel`` requests in flight, each checked to be an
   Access-Accept;
3. accounting records per second turned into usage: ``records`` packets in
   ``radius_acct_log`` (see :mod:`plugins.radius.usage_bench`) counted and stored by
   ``core.usage.collect``.

The last line is ``auth/s: <number>``.
"""

from __future__ import annotations

import random
import re
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core import audit, bench_network, enforcement, migrations, routers
from core.bench import open_target
from core.config import redact
from core.db import bind, database
from core.errors import ValidationError, WispbillError
from plugins.radius import freeradius, usage_bench

SECRET = "bench-nas-secret"
MAX_SUBSCRIBERS = 500_000


@dataclass
class Figures:
    """What one run measured."""

    subscribers: int
    database: str
    build_seconds: float
    rows_seconds: float
    rows: int
    requests: int
    accepted: int
    auth_seconds: float
    auth_per_second: float
    records: int
    records_seconds: float
    records_per_second: float

    def as_dict(self) -> dict:
        return asdict(self)


def lines(f: Figures) -> list[str]:
    """The figures as the command prints them; the last line is the authentication rate."""
    return [
        f"subscribers: {f.subscribers} ({f.database}, built in {f.build_seconds:.1f} s)",
        f"tables written: {f.rows} rows in {f.rows_seconds:.2f} s",
        f"accounting records into usage: {f.records} in {f.records_seconds:.2f} s",
        f"accounting records/s: {f.records_per_second:.0f}",
        f"authentications: {f.accepted} of {f.requests} accepted in {f.auth_seconds:.2f} s",
        f"auth/s: {f.auth_per_second:.0f}",
    ]


def _requests_file(path: Path, count: int, subscribers: int, rng: random.Random) -> None:
    """``count`` Access-Requests for random subscribers, in radclient's file format."""
    with path.open("w") as out:
        for _ in range(count):
            n = rng.randrange(subscribers) + 1
            out.write(f'User-Name = "sub{n}"\nUser-Password = "pw{n:06d}"\nNAS-IP-Address = 127.0.0.1\n'
                      'Message-Authenticator = 0x00\n\n')


def _authenticate(server, path: Path, count: int, parallel: int) -> tuple[int, float]:
    """Send the file's requests through radclient; returns (accepted, seconds)."""
    command = [freeradius.RADCLIENT, "-q", "-s", "-f", str(path), "-p", str(parallel), "-t", "5", "-r", "2",
               f"{freeradius.HOST}:{server.auth_port}", "auth", SECRET]
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, timeout=max(120, count / 100))
    seconds = time.perf_counter() - started
    found = re.search(r"Accepted\s*:\s*(\d+)", run.stdout + run.stderr)
    if found is None:
        raise WispbillError(f"radclient gave no summary (exit {run.returncode}): {(run.stdout + run.stderr)[-800:]}")
    return int(found.group(1)), seconds


def run_radius_bench(subscribers: int = 100_000, *, requests: int = 50_000, parallel: int = 256,
                     records: int = 200_000, database_url: str | None = None, seed: int = 1,
                     progress=None) -> Figures:
    """Build, write the tables, authenticate and count accounting; see the module docstring."""
    if not 1 <= subscribers <= MAX_SUBSCRIBERS:
        raise ValidationError(f"--subscribers must be between 1 and {MAX_SUBSCRIBERS}", "--subscribers")
    for name, value, low, high in (("--requests", requests, 1, 1_000_000), ("--parallel", parallel, 1, 4096),
                                   ("--records", records, 1, 5_000_000)):
        if not low <= value <= high:
            raise ValidationError(f"{name} must be between {low} and {high}", name)
    target = open_target(database_url)
    problem = freeradius.freeradius_problem(target.backend)
    if problem:
        target.cleanup(False)
        raise WispbillError(f"bench radius needs FreeRADIUS: {problem}")
    say = progress or (lambda text: None)
    server = None
    try:
        with tempfile.TemporaryDirectory(prefix="wispbill-bench-radius-") as work:
            db = bind(target.bench_url)
            db.connect()
            migrations.migrate(db)
            with audit.acting_as("bench"):
                router = routers.add(name="bench-nas", kind="radius", host="127.0.0.1", secret=SECRET)
            say(f"building {subscribers} subscribers in {redact(target.bench_url)} ...")
            started = time.perf_counter()
            bench_network.build(subscribers, router.id, seed, mix=(("pppoe", 100),))
            build_seconds = time.perf_counter() - started

            say("writing the RADIUS tables ...")
            started = time.perf_counter()
            with database.atomic():
                enforcement.refresh_router(router)
            rows_seconds = time.perf_counter() - started
            rows = sum(db.execute_sql(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                       for t in ("radcheck", "radreply", "radusergroup"))
            if target.backend == "postgresql":
                db.execute_sql("ANALYZE")

            say(f"accounting: {records} records into usage ...")
            counted = usage_bench.bench(db, records, seed)
            if not counted["exact"]:
                raise WispbillError("the usage stored does not add up to what the sessions sent")
            db.close()

            server = freeradius.FreeRadius(target.bench_url, Path(work), debug=False).start()
            path = Path(work) / "requests.txt"
            _requests_file(path, requests, subscribers, random.Random(seed))
            say(f"authenticating {requests} requests, {parallel} in flight ...")
            accepted, auth_seconds = _authenticate(server, path, requests, parallel)
            if accepted != requests:
                raise WispbillError(f"only {accepted} of {requests} Access-Requests were accepted:\n"
                                    f"{server.output[-2000:]}")
            return Figures(
                subscribers=subscribers, database=target.backend, build_seconds=build_seconds,
                rows_seconds=rows_seconds, rows=rows, requests=requests, accepted=accepted,
                auth_seconds=auth_seconds, auth_per_second=requests / auth_seconds,
                records=records, records_seconds=counted["seconds"],
                records_per_second=records / counted["seconds"] if counted["seconds"] else 0.0)
    finally:
        if server is not None:
            server.stop()
        if database.obj is not None and not database.is_closed():
            database.close()
        target.cleanup(False)
