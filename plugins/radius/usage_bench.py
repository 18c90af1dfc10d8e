"""How fast RADIUS accounting turns into usage: :func:`bench` on a migrated database.

It fills ``radius_acct_log`` with the packets of ``records // 10`` sessions of about ten
packets each (Start, Interim-Updates every five minutes, Stop), two sessions per service,
starting over a day so that many cross midnight: 5% from a NAS that sends no gigawords
(their counters wrap), about 1% of packets retransmitted, 1% arriving late, and 1% of
sessions from users billing does not know. Most services are found through
``radius_subscriber``, one in ten by the service's own username. Then it times
``core.usage.collect`` (the ``usage.collect`` job's own call: every usage source, with
the samples stored, in one transaction per batch of up to 50,000 packets) until the
log is counted, and checks that the bytes stored are exactly what the known users'
sessions sent. Building the data is not timed.
"""

from __future__ import annotations

import datetime as dt
import random
import time

from core import catalog, customers
from core.bulk import insert_rows, is_sqlite
from core.clock import utcnow
from core.db import backend_name, database
from core.models import Router, Service

START = int(dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc).timestamp())
INTERIM = 300
PACKETS_PER_SESSION = 10
BATCH = 50_000  # log rows inserted per statement

_LOG_COLUMNS = ("acctuniqueid", "acctsessionid", "username", "nasipaddress", "status", "event_time", "session_time",
                "input_octets", "input_gigawords", "output_octets", "output_gigawords", "received_at")


def bench(db, records: int, seed: int = 1) -> dict:
    """Fill the log of ``db`` (migrated) with ``records`` packets, count them all, return the figures.

    The shared database proxy points at ``db`` for the run and is put back afterwards.
    ``records_per_second`` is the log rows counted and stored per second.
    """
    if records < 1:
        raise ValueError("records must be at least 1")
    previous = database.obj
    database.initialize(db)
    try:
        rng = random.Random(seed)
        sessions = max(1, records // PACKETS_PER_SESSION)
        services = max(1, sessions // 2)
        with database.atomic():
            users = _services(db, services)
            expected = _fill_log(db, rng, records, sessions, users)
        if not is_sqlite(db):
            db.execute_sql("ANALYZE radius_acct_log")
        figures = _count(db)
        counted = db.execute_sql(
            "SELECT COALESCE(SUM(bytes_in), 0), COALESCE(SUM(bytes_out), 0) FROM usage_record WHERE source = 'radius'"
        ).fetchone()
        figures.update(backend=backend_name(db), records=records, sessions=sessions, services=services,
                       exact=tuple(int(v) for v in counted) == expected)
        figures["records_per_second"] = round(records / figures["seconds"]) if figures["seconds"] else None
        return figures
    finally:
        database.initialize(previous)


def _services(db, count: int) -> list[str]:
    """``count`` services on one plan; the User-Name their NAS sends for each."""
    customer = customers.add(name="RADIUS bench", currency="KES")
    plan = catalog.add(code="radius-bench", name="RADIUS bench", kind="internet", price="2,500.00", currency="KES",
                       download_kbps=20_000, upload_kbps=5_000)
    nas = Router.create(name="radius-bench-nas", kind="radius", host="10.0.0.1")
    now = utcnow()
    rows = [{"customer": customer.id, "plan": plan.id, "start_date": dt.date(2026, 1, 1), "anchor_day": 1,
             "username": f"bench{i}", "created_at": now} for i in range(count)]
    for i in range(0, count, 5_000):
        Service.insert_many(rows[i:i + 5_000]).execute()
    ids = dict(db.execute_sql(f"SELECT username, id FROM service WHERE username LIKE {db.param}", ("bench%",)))
    users, subscribers = [], []
    for i in range(count):
        svc_id = ids[f"bench{i}"]
        if i % 10 == 9:  # found by the service's own username
            users.append(f"bench{i}")
            continue
        users.append(f"sub{i}@isp")
        subscribers.append((f"svc-{svc_id}", nas.id, f"sub{i}@isp", "active"))
    insert_rows(db, "radius_subscriber", ("service_key", "router_id", "radius_user", "state"), subscribers)
    return users


def _fill_log(db, rng: random.Random, records: int, sessions: int, users: list[str]) -> tuple[int, int]:
    """Insert the packets; return the bytes (in, out) that known users' sessions sent."""
    per_session = [records // sessions + (1 if n < records % sessions else 0) for n in range(sessions)]
    packets = []
    expected_in = expected_out = 0
    for n, count in enumerate(per_session):
        uid = f"{n:016x}"
        known = n % 100 != 99
        user = users[n % len(users)] if known else f"guest{n}"
        begin = START + rng.randrange(0, 86_400)
        down = rng.randint(10_000, 2_000_000)  # bytes per second to the subscriber
        up = max(1, down // rng.randint(4, 12))
        wraps = n % 20 == 0  # a NAS without gigawords
        c_in = c_out = st = 0
        row = None
        for k in range(count):
            if 0 < k < count - 1 and rng.random() < 0.01:  # a retransmission of the packet before
                packets.append((row[5] + rng.randint(1, 30), row))
                continue
            status = "Start" if k == 0 else "Stop" if k == count - 1 else "Interim-Update"
            if k:
                st += INTERIM
                c_in += int(up * INTERIM * rng.uniform(0.5, 1.5))
                c_out += int(down * INTERIM * rng.uniform(0.5, 1.5))
            row = _row(uid, user, status, begin + st, st, c_in, c_out, wraps)
            late = k and rng.random() < 0.01
            packets.append((begin + st + (INTERIM + 1 if late else 0), row))  # late: after the next one
        if known:
            expected_in += c_in
            expected_out += c_out
    packets.sort(key=lambda p: p[0])
    rows = [row for _order, row in packets]
    for i in range(0, len(rows), BATCH):
        insert_rows(db, "radius_acct_log", _LOG_COLUMNS, rows[i:i + BATCH])
    return expected_in, expected_out


def _row(uid, user, status, t, st, c_in, c_out, wraps):
    in_gw, out_gw = (0, 0) if wraps else (c_in >> 32, c_out >> 32)
    return (uid, uid[-8:], user, "10.0.0.1", status, t, st, c_in & 0xFFFFFFFF, in_gw, c_out & 0xFFFFFFFF, out_gw, t)


def _count(db) -> dict:
    """Run ``core.usage.collect`` (the job's own call) until the cursor reaches the end of the log."""
    from core import usage

    last = db.execute_sql("SELECT MAX(id) FROM radius_acct_log").fetchone()[0]
    batches = samples = 0
    began = time.perf_counter()
    while True:
        samples += usage.collect()
        batches += 1
        cursor = db.execute_sql("SELECT value FROM radius_state WHERE name = 'usage_log_id'").fetchone()[0]
        if cursor >= last:
            break
    return {"batches": batches, "samples": samples, "seconds": round(time.perf_counter() - began, 3)}
