"""``wispbill bench billing``: how fast one monthly billing run is, and how close to the floor.

:func:`run_billing_bench` makes a fresh database (a SQLite file in a temporary directory,
or a new schema in a PostgreSQL database), fills it with ``N`` subscribers of a
realistic mix (see :func:`build`), and then:

1. bills them with one ``billing.run(as_of)`` in a child process (``python -m
   core.bench``), so that the peak memory reported (the child's peak RSS) is the run's
   and not the data building's; the child then runs the same period again, which must
   find nothing to do;
2. measures the floor: the same rows the run wrote (invoices, lines, taxes, ledger
   entries, allocations, events) inserted with a plain ``executemany``, and the same
   ``UPDATE`` statements on the same service, promo and payment rows, in transactions of
   the same number of customers, into a copy of the database taken before the run. Only
   the writes are timed.

The ratio of the two is what the billing engine costs on top of the database's own work.
Building the data is not part of any figure. ``docs/bench.md`` explains how to read them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path

import peewee

from core import audit, billing, catalog, migrations, settings
from core.bulk import insert_rows
from core.clock import utcnow
from core.config import redact
from core.db import backend_name, bind, check_connection, database, make_database
from core.errors import ConfigError, ValidationError, WispbillError

AS_OF = dt.date(2026, 3, 1)  # the run bills the month of March 2026 (prepaid) and February (postpaid)
MAX_SUBSCRIBERS = 10_000_000
BUILD_BATCH = 20_000  # customers per transaction while building
ACTOR = "bench"
FLOOR_TABLES = ("invoice", "invoice_line", "invoice_tax", "ledger_entry", "allocation", "event")  # inserted
UPDATED_TABLES = ("service", "promo_redemption", "payment")

# --- the data mix --------------------------------------------------------------------

#: Tax regions of the mix: (code, currency, share). KE and DE quote prices with tax
#: included (KE with a compound VAT on top of excise duty), NG without.
REGIONS = (("KE", "KES", 0.5), ("NG", "NGN", 0.3), ("DE", "EUR", 0.2))

#: Plans per currency: key -> (kind, name, price, setup fee, tax category, extra options).
_SPEEDS = {"net10": (10_000, 2_000), "net30": (30_000, 5_000), "net100": (100_000, 20_000), "lite": (5_000, 1_000)}
PRICES = {
    "KES": {"net10": "2500", "net30": "4000", "net100": "7500", "lite": "1500", "tv": "1200", "voice": "500",
            "ip": "1000", "setup": "2000", "overage": "100"},
    "NGN": {"net10": "15000", "net30": "25000", "net100": "45000", "lite": "8000", "tv": "8000", "voice": "3000",
            "ip": "5000", "setup": "10000", "overage": "500"},
    "EUR": {"net10": "29.90", "net30": "39.90", "net100": "59.90", "lite": "19.90", "tv": "14.90", "voice": "9.90",
            "ip": "5.00", "setup": "49.00", "overage": "2.00"},
}
#: Internet plans and the share of subscribers on each.
INTERNET_MIX = (("net10", 0.45), ("net30", 0.35), ("net100", 0.12), ("lite", 0.08))
LITE_CAP_MB = 20_480

BUNDLES = [
    {"code": "triple", "name": "Triple play", "kinds": ["internet", "tv", "phone"], "percent": "10"},
    {"code": "duo", "name": "Internet and TV", "kinds": ["internet", "tv"], "percent": "5"},
]
PROMOS = [
    {"code": "WELCOME50", "description": "Half price internet for 3 months", "percent": "50", "periods": 3,
     "kinds": ["internet"]},
    {"code": "LOYAL10", "description": "Loyalty discount", "percent": "10"},
    {"code": "SORRY500", "description": "KES 500 off after the outage", "fixed": "500", "currency": "KES",
     "periods": 1},
]

SHARE_INTERNET_TV = 0.15
SHARE_TRIPLE = 0.10
SHARE_STATIC_IP = 0.05  # the rest (70%) take internet only
SHARE_POSTPAID = 0.20
SHARE_NEW = 0.03  # joined this period: a setup fee, and for postpaid a prorated first month
SHARE_EXEMPT = 0.02
SHARE_PROMO = 0.08
SHARE_CREDIT = 0.02  # paid in advance: the run spends their account credit
SHARE_OVERRIDE = 0.01  # a negotiated price on their internet service


@dataclass
class Figures:
    """What one bench run measured; :func:`lines` prints it."""

    subscribers: int
    services: int
    database: str
    chunk: int
    as_of: str
    build_seconds: float
    billing_seconds: float
    invoices: int
    peak_memory_mb: float
    baseline_memory_mb: float
    second_run_seconds: float
    second_run_invoices: int
    floor_seconds: float
    ratio_to_floor: float
    invoices_per_second: float
    rows_inserted: dict = field(default_factory=dict)  # table -> rows the run inserted
    rows_updated: dict = field(default_factory=dict)  # table -> rows the run updated
    kept: str | None = None

    def as_dict(self) -> dict:
        """The figures as JSON (seconds to the microsecond, megabytes to one decimal)."""
        data = asdict(self)
        for key in ("build_seconds", "billing_seconds", "second_run_seconds", "floor_seconds"):
            data[key] = round(data[key], 6)
        for key in ("peak_memory_mb", "baseline_memory_mb"):
            data[key] = round(data[key], 1)
        for key in ("ratio_to_floor", "invoices_per_second"):
            data[key] = round(data[key], 3)
        return data


def lines(f: Figures) -> list[str]:
    """The figures as the text the command prints; the last line is ``invoices/s: <number>``."""
    out = [
        f"subscribers: {f.subscribers}",
        f"services: {f.services}",
        f"database: {f.database}",
        f"chunk: {f.chunk} customers per transaction",
        f"as of: {f.as_of}",
        f"build: {f.build_seconds:.2f} s (not part of the figures below)",
        f"billing run: {f.billing_seconds:.2f} s",
        f"invoices: {f.invoices}",
        "rows inserted: " + ", ".join(f"{n} {table}" for table, n in f.rows_inserted.items()),
        "rows updated: " + ", ".join(f"{n} {table}" for table, n in f.rows_updated.items()),
        f"peak memory: {f.peak_memory_mb:.0f} MB ({f.baseline_memory_mb:.0f} MB before the run)",
        f"second run: {f.second_run_seconds:.2f} s, {f.second_run_invoices} invoices",
        f"floor (executemany): {f.floor_seconds:.2f} s",
        f"ratio to floor: {f.ratio_to_floor:.1f}x",
    ]
    if f.kept:
        out.append(f"kept: {f.kept}")
    out.append(f"invoices/s: {f.invoices_per_second:.0f}")
    return out


# --- fresh databases -----------------------------------------------------------------

class _Target:
    """Where the bench writes: the database billed and a second one for the floor."""

    backend = ""
    bench_url = ""
    floor_url = ""

    def snapshot(self) -> None:
        """Make the floor database a copy of the bench database as it is now."""

    def kept_url(self) -> str:
        """The URL of the kept bench database."""
        return self.bench_url

    def cleanup(self, keep: bool) -> None:
        """Remove what the bench made (all but the bench database itself with ``keep``)."""


class _SqliteTarget(_Target):
    """A new SQLite file (in a new temporary directory unless named) and a floor file next to it."""

    backend = "sqlite"

    def __init__(self, path: Path | None):
        self.tmpdir = None
        if path is None:
            self.tmpdir = Path(tempfile.mkdtemp(prefix="wispbill-bench-"))
            path = self.tmpdir / "bench.db"
        self.path = path
        self.floor_path = path.with_name(f"{path.stem}-floor-{secrets.token_hex(4)}.db")
        self.bench_url = f"sqlite:///{self.path}"
        self.floor_url = f"sqlite:///{self.floor_path}"

    def snapshot(self) -> None:
        src, dst = sqlite3.connect(self.path), sqlite3.connect(self.floor_path)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()

    def cleanup(self, keep: bool) -> None:
        doomed = [self.floor_path] + ([] if keep else [self.path])
        for base in doomed:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{base}{suffix}").unlink(missing_ok=True)
        if self.tmpdir is not None and not keep:
            self.tmpdir.rmdir()


#: Tables the floor copy needs before the run, parents first.
_SNAPSHOT_TABLES = ("setting", "plan", "customer", "service", "promo_redemption", "payment", "ledger_entry",
                    "usage_record", "number_series")


class _PostgresTarget(_Target):
    """Two new schemas in the database ``url`` names: ``bench_<random>`` and ``bench_<random>_floor``."""

    backend = "postgresql"

    def __init__(self, url: str):
        self.admin = make_database(url)
        self.schema = f"bench_{secrets.token_hex(5)}"
        self.floor_schema = f"{self.schema}_floor"
        self.bench_url = _with_search_path(url, self.schema)
        self.floor_url = _with_search_path(url, self.floor_schema)
        self.made = []
        try:
            for schema in (self.schema, self.floor_schema):
                self.admin.execute_sql(f"CREATE SCHEMA {schema}")
                self.made.append(schema)
        except peewee.DatabaseError as exc:
            self.cleanup(False)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise WispbillError(f"cannot create a schema in {redact(url)}: {first}") from None

    def snapshot(self) -> None:
        for table in _SNAPSHOT_TABLES:
            self.admin.execute_sql(f'INSERT INTO {self.floor_schema}."{table}" '
                                   f'SELECT * FROM {self.schema}."{table}"')
        for schema in (self.schema, self.floor_schema):
            for table in _SNAPSHOT_TABLES:
                self.admin.execute_sql(f'ANALYZE {schema}."{table}"')

    def cleanup(self, keep: bool) -> None:
        try:
            for schema in self.made:
                if keep and schema == self.schema:
                    continue
                self.admin.execute_sql(f"DROP SCHEMA {schema} CASCADE")
        finally:
            self.admin.close()


def _with_search_path(url: str, schema: str) -> str:
    """``url`` with ``search_path`` set to ``schema`` (other connection options kept)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    options = " ".join(v for k, v in query if k == "options")
    options = re.sub(r"-c\s*search_path=\S+", "", options).strip()
    options = f"{options} -c search_path={schema}".strip()
    query = [(k, v) for k, v in query if k != "options"] + [("options", options)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, quote_via=urllib.parse.quote)))


def open_target(url: str | None) -> _Target:
    """Check ``url`` (``None``: a temporary SQLite file) and make the fresh database(s) it names.

    Bad input raises :class:`ValidationError` (exit 2 in the CLI); an unreachable server
    raises :class:`~core.errors.DatabaseUnavailable` (exit 1).
    """
    if url is None:
        return _SqliteTarget(None)
    try:
        make_database(url)
    except ConfigError as exc:
        raise ValidationError(str(exc).replace("WISPBILL_DATABASE_URL", "--database-url"), "--database-url") from None
    except (ValueError, KeyError, TypeError) as exc:  # malformed URLs that the URL parser itself refuses
        raise ValidationError(f"--database-url: {redact(url)!r} is not a database URL: {exc}",
                              "--database-url") from None
    if url.startswith("sqlite"):
        path_text = urllib.parse.unquote(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else ""
        if not path_text or ":memory:" in url:
            raise ValidationError("--database-url: the bench needs a file, sqlite:///path/to/new.db", "--database-url")
        path = Path(path_text)
        if path.exists():
            raise ValidationError(f"--database-url: {path} already exists; the bench needs a new file it may delete",
                                  "--database-url")
        if not path.parent.is_dir():
            raise ValidationError(f"--database-url: directory {path.parent} does not exist", "--database-url")
        return _SqliteTarget(path)
    check_connection(url)
    return _PostgresTarget(url)


# --- building the data -----------------------------------------------------------------

def _months_before(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def _check_plugins(pm) -> None:
    """Refuse early, in one line, when the plugins the mix relies on are missing."""
    from core.hooktypes import TaxRegion

    declared = settings.declared(pm)
    regions = pm.collect_named("tax_regions", TaxRegion, "code")
    missing = [k for k in ("bundles.bundles", "bundles.promos") if k not in declared]
    missing += [f"tax region {code}" for code, _cur, _share in REGIONS if code not in regions]
    if missing:
        raise WispbillError("the bench needs the built-in plugins bundles and tax_regions; missing: "
                            + ", ".join(missing))


def _make_plans(as_of: dt.date) -> dict:
    """Create the plans of every currency; return ``{(currency, key): (plan id, price minor, kind)}``."""
    plans = {}
    for _code, cur, _share in REGIONS:
        p = PRICES[cur]
        specs = {
            "net10": {"kind": "internet", "name": "Home 10 Mbps", "tax_category": "internet"},
            "net30": {"kind": "internet", "name": "Home 30 Mbps", "tax_category": "internet", "setup_fee": p["setup"]},
            "net100": {"kind": "internet", "name": "Fibre 100 Mbps", "tax_category": "internet",
                       "setup_fee": p["setup"]},
            "lite": {"kind": "internet", "name": "Lite 20 GB", "tax_category": "internet", "data_cap_mb": LITE_CAP_MB,
                     "fup_download_kbps": 512, "fup_upload_kbps": 256, "overage_per_gb": p["overage"]},
            "tv": {"kind": "tv", "name": "TV Family", "tax_category": "tv"},
            "voice": {"kind": "phone", "name": "Home phone", "tax_category": "telecom"},
            "ip": {"kind": "vas", "name": "Static IP", "tax_category": "internet"},
        }
        for key, spec in specs.items():
            if key in _SPEEDS:
                spec["download_kbps"], spec["upload_kbps"] = _SPEEDS[key]
            plan = catalog.add(code=f"{key}-{cur.lower()}", price=p[key], currency=cur, **spec)
            plans[cur, key] = (plan.id, plan.price_minor, plan.kind)
    return plans


_CUSTOMER_COLUMNS = ("id", "account_number", "name", "email", "phone", "address", "currency", "terms_days",
                     "tax_region", "tax_exempt", "tax_exemption_ref", "state", "notes", "created_at", "updated_at")
_SERVICE_COLUMNS = ("id", "customer_id", "plan_id", "status", "billing_mode", "start_date", "end_date", "anchor_day",
                    "next_bill_date", "price_override_minor", "billed_through", "setup_billed", "pending_plan_id",
                    "pending_change_date", "username", "ip_address", "created_at")
_PROMO_COLUMNS = ("customer_id", "code", "redeemed_on", "times_applied", "created_by")
_PAYMENT_COLUMNS = ("id", "customer_id", "gateway", "reference", "method", "status", "amount_minor", "currency",
                    "received_at", "payer", "unallocated_minor", "created_at")
_LEDGER_COLUMNS = ("customer_id", "kind", "amount_minor", "currency", "payment_id", "description", "created_at")
_USAGE_COLUMNS = ("service_id", "source", "external_id", "period_start", "period_end", "bytes_in", "bytes_out",
                  "collected_at")


def _columns(db, table: str) -> tuple[str, ...]:
    """The columns of ``table`` in the bound schema, in table order."""
    return tuple(d[0] for d in db.execute_sql(f'SELECT * FROM "{table}" WHERE 1 = 0').description)


class _Rows:
    """The rows of one batch of customers, in the column order of the ``_*_COLUMNS`` tuples."""

    def __init__(self):
        self.customer, self.service, self.promo, self.payment, self.ledger, self.usage = [], [], [], [], [], []


def _pick(rng: random.Random, weighted):
    r, total = rng.random(), 0.0
    for item, share in weighted:
        total += share
        if r < total:
            return item
    return weighted[-1][0]


def _customer(rng: random.Random, cid: int, sid: int, plans: dict, as_of: dt.date, now, rows: _Rows) -> int:
    """Add one subscriber, their services and extras to ``rows``; return the next free service id."""
    region, cur = _pick(rng, [((code, c), share) for code, c, share in REGIONS])
    exempt = rng.random() < SHARE_EXEMPT
    rows.customer.append((cid, f"B{cid:08d}", f"Subscriber {cid}", f"s{cid}@example.net", None, None, cur,
                          rng.choice((7, 14, 14, 30)), region, exempt, f"EX-{cid}" if exempt else None, "active",
                          None, now, now))
    r = rng.random()
    keys = [_pick(rng, INTERNET_MIX)]
    if r < SHARE_TRIPLE:
        keys += ["tv", "voice"]
    elif r < SHARE_TRIPLE + SHARE_INTERNET_TV:
        keys += ["tv"]
    elif r < SHARE_TRIPLE + SHARE_INTERNET_TV + SHARE_STATIC_IP:
        keys += ["ip"]
    postpaid = rng.random() < SHARE_POSTPAID
    new = rng.random() < SHARE_NEW
    previous = _months_before(as_of, 1)
    if new and postpaid:  # joined during last month: a prorated first month and the setup fee
        start = previous + dt.timedelta(days=rng.randint(1, 20))
        billed_through, setup_billed = start, False
    elif new:  # joins today, prepaid: the first month and the setup fee
        start, billed_through, setup_billed = as_of, as_of, False
    else:
        start = _months_before(as_of, rng.randint(1, 36))
        billed_through, setup_billed = (previous if postpaid else as_of), True
    mode = "postpaid" if postpaid else "prepaid"
    usage_from = start if new else previous  # usage before this is rated: last month's is due now
    for key in keys:
        plan_id, price, kind = plans[cur, key]
        override = price * 9 // 10 if kind == "internet" and rng.random() < SHARE_OVERRIDE else None
        username = f"svc{sid}" if kind == "internet" else None
        ip = f"10.{(sid >> 16) & 255}.{(sid >> 8) & 255}.{sid & 255}" if key == "ip" else None
        rows.service.append((sid, cid, plan_id, "active", mode, start, None, 1, as_of, override, billed_through,
                             setup_billed, None, None, username, ip, now, usage_from))
        if key == "lite":
            used = LITE_CAP_MB * 1_000_000 * rng.choice((0.5, 0.9, 1.2, 1.6)) / 4
            week = dt.datetime(previous.year, previous.month, previous.day)
            for k in range(4):
                rows.usage.append((sid, "bench", f"{sid}-{k}", week + dt.timedelta(days=7 * k),
                                   week + dt.timedelta(days=7 * k + 7), int(used * 0.85), int(used * 0.15), now))
        sid += 1
    if rng.random() < SHARE_PROMO:
        code = rng.choice(("WELCOME50", "LOYAL10", "SORRY500" if cur == "KES" else "LOYAL10"))
        applied = rng.randint(0, 2) if code == "WELCOME50" else 0
        rows.promo.append((cid, code, as_of - dt.timedelta(days=20), applied, ACTOR))
    if rng.random() < SHARE_CREDIT:
        amount = plans[cur, keys[0]][1] // rng.choice((1, 2))
        rows.payment.append((cid, cid, "manual", f"BENCH-{cid}", "cash", "succeeded", amount, cur, now, None, amount,
                             now))
        rows.ledger.append((cid, "payment", -amount, cur, cid, f"Payment BENCH-{cid}", now))
    return sid


def build(subscribers: int, as_of: dt.date = AS_OF, *, pm=None, seed: int = 1) -> int:
    """Fill the bound, migrated, empty database with ``subscribers`` customers; return the number of services.

    Every customer has a service due on ``as_of`` (the first of a month), so one run at
    ``as_of`` makes one invoice per customer. The mix: internet only (70%), internet and
    TV (15%), triple play with a phone line (10%), internet and a static IP (5%); four
    internet plans, one with a data cap and usage; tax regions KE, NG and DE with plans
    in their currencies; 20% postpaid; 3% new this period (setup fee, proration); bundle
    discounts; promo codes (8%); tax-exempt customers (2%); account credit (2%).
    """
    from core.plugins import get_manager

    pm = pm or get_manager()
    _check_plugins(pm)
    rng = random.Random(seed)
    now = utcnow()
    db = database.obj
    service_columns = _SERVICE_COLUMNS + ("usage_billed_through",)
    if "usage_billed_through" not in _columns(db, "service"):  # schemas before usage was tracked apart
        service_columns = _SERVICE_COLUMNS
    with audit.acting_as(ACTOR):
        settings.set_value("bundles.bundles", json.dumps(BUNDLES), pm=pm)
        settings.set_value("bundles.promos", json.dumps(PROMOS), pm=pm)
        plans = _make_plans(as_of)
    sid = 1
    for first in range(1, subscribers + 1, BUILD_BATCH):
        rows = _Rows()
        for cid in range(first, min(first + BUILD_BATCH, subscribers + 1)):
            sid = _customer(rng, cid, sid, plans, as_of, now, rows)
        with database.atomic():
            insert_rows(db, "customer", _CUSTOMER_COLUMNS, rows.customer)
            insert_rows(db, "service", service_columns, [r[:len(service_columns)] for r in rows.service])
            insert_rows(db, "usage_record", _USAGE_COLUMNS, rows.usage)
            insert_rows(db, "promo_redemption", _PROMO_COLUMNS, rows.promo)
            insert_rows(db, "payment", _PAYMENT_COLUMNS, rows.payment)
            insert_rows(db, "ledger_entry", _LEDGER_COLUMNS, rows.ledger)
    if backend_name(db) == "postgresql":  # ids were given explicitly: move the sequences past them
        for table in ("customer", "service", "payment"):
            db.execute_sql(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                           f"(SELECT COALESCE(MAX(id), 0) + 1 FROM \"{table}\"), false)")
    return sid - 1


# --- the billing run, in a child process ------------------------------------------------

def _blocked_plugins(pm) -> list[str]:
    """Names the child must block so that it loads exactly the plugins ``pm`` has."""
    import importlib.metadata

    from core.plugins import BUILTIN_PLUGINS, ENTRY_POINT_GROUP

    names = {m.rsplit(".", 1)[-1] for m in BUILTIN_PLUGINS}
    names |= {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(n for n in names if n not in pm.sources)


def _max_rss_mb() -> float:
    """The peak resident set size of this process so far, in MB (2**20 bytes).

    On Linux this is ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` would not do in
    a child, because Linux carries the parent's peak over into it at ``exec`` (a child
    of a 300 MB parent reports 300 MB before doing anything).
    """
    import resource

    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _child(url: str, as_of: dt.date, chunk: int, blocked: list[str], profile: str | None = None) -> dict:
    """Run in the child: bill ``as_of`` twice; return the timings, the peak RSS and what the runs did.

    With ``profile``, the first run is profiled with cProfile and the stats written there.
    """
    import cProfile

    from core.plugins import build_manager, set_manager

    pm = build_manager(blocked=blocked)
    set_manager(pm)
    statements = _record_updates()
    bind(url)
    database.connect()
    baseline = _max_rss_mb()
    with audit.acting_as(ACTOR):
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        first = billing.run(as_of, pm=pm, chunk=chunk)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        if profiler:
            profiler.dump_stats(profile)
        peak = _max_rss_mb()
        started = time.perf_counter()
        second = billing.run(as_of, pm=pm, chunk=chunk)
        second_seconds = time.perf_counter() - started
    database.close()
    return {"seconds": seconds, "invoices": first.invoices, "failures": len(first.failures),
            "first_failures": dict(sorted(first.failures.items())[:3]), "peak_mb": peak, "baseline_mb": baseline,
            "second_seconds": second_seconds, "second_invoices": second.invoices,
            "second_failures": len(second.failures), "updates": statements}


def _record_updates() -> dict:
    """Record the ``UPDATE`` statements the billing run sends (SQL -> rows), through ``executemany`` or
    ``update_rows``.

    The floor repeats the run's own statement on the service rows. Costs one function
    call per statement (a handful per chunk), not per row.
    """
    statements: dict[str, int] = {}
    original = getattr(billing, "execute_many", None)
    if original is None:
        return statements

    def execute_many(db, sql, rows):
        if rows and sql.lstrip().upper().startswith("UPDATE"):
            statements[sql] = statements.get(sql, 0) + len(rows)
        return original(db, sql, rows)

    billing.execute_many = execute_many
    original_update = getattr(billing, "update_rows", None)
    if original_update is not None:
        def update_rows(db, table, key, columns, rows):
            # Written down as the plain statement it stands for on SQLite, whatever the backend.
            if rows:
                sql = f"UPDATE {table} SET {', '.join(f'{c} = ?' for c, _type in columns)} WHERE {key} = ?"
                statements[sql] = statements.get(sql, 0) + len(rows)
            return original_update(db, table, key, columns, rows)

        billing.update_rows = update_rows
    return statements


def _run_child(url: str, as_of: dt.date, chunk: int, blocked: list[str], profile: str | None = None) -> dict:
    cmd = [sys.executable, "-m", "core.bench", "--url", url, "--as-of", as_of.isoformat(), "--chunk", str(chunk),
           "--blocked", ",".join(blocked)] + (["--profile", profile] if profile else [])
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise WispbillError(f"the billing run failed (exit {done.returncode}): {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    """``python -m core.bench``: the child process that runs and measures the billing run."""
    parser = argparse.ArgumentParser(prog="python -m core.bench", description=main.__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--as-of", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--chunk", required=True, type=int)
    parser.add_argument("--blocked", default="")
    parser.add_argument("--profile")
    args = parser.parse_args(argv)
    blocked = [n for n in args.blocked.split(",") if n]
    print(json.dumps(_child(args.url, args.as_of, args.chunk, blocked, args.profile)))


# --- the floor ---------------------------------------------------------------------------

class _Before:
    """What the bench database holds before the run, to tell the run's writes apart afterwards."""

    def __init__(self, db, as_of: dt.date):
        p = db.param
        self.max_id = {t: db.execute_sql(f'SELECT COALESCE(MAX(id), 0) FROM "{t}"').fetchone()[0]
                       for t in FLOOR_TABLES}
        value = as_of.isoformat() if backend_name(db) == "sqlite" else as_of
        statuses = ", ".join(f"'{s}'" for s in billing.BILLABLE_STATUSES)
        due = db.execute_sql(f"SELECT customer_id, id FROM service WHERE next_bill_date <= {p} "
                             f"AND status IN ({statuses})", (value,)).fetchall()
        self.due_services = {sid for _cid, sid in due}
        self.customers = sorted({cid for cid, _sid in due})
        self.promos = {(c, code): n for c, code, n in
                       db.execute_sql("SELECT customer_id, code, times_applied FROM promo_redemption")}
        self.payments = dict(db.execute_sql("SELECT id, unallocated_minor FROM payment").fetchall())


def _select(db, sql: str, params) -> tuple[tuple[str, ...], list]:
    cursor = db.execute_sql(sql, params)
    return tuple(d[0] for d in cursor.description), [tuple(r) for r in cursor.fetchall()]


def _insert_sql(db, table: str, columns) -> str:
    cols = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({cols}) VALUES ({", ".join([db.param] * len(columns))})'


#: The columns the run sets on a service when its statement cannot be read (those the table has).
DEFAULT_SERVICE_UPDATE = ("plan_id", "price_override_minor", "billed_through", "next_bill_date", "setup_billed",
                          "pending_plan_id", "pending_change_date", "usage_billed_through", "status")
_SERVICE_UPDATE = re.compile(r'^\s*UPDATE\s+"?service"?\s+SET\s+(.*?)\s+WHERE\s+"?id"?\s*=\s*(?:\?|%s)\s*$',
                             re.DOTALL | re.IGNORECASE)
_ASSIGN = re.compile(r'^\s*"?(\w+)"?\s*=\s*(?:\?|%s)\s*$')


def service_update_columns(statements, available) -> tuple[str, ...]:
    """The columns the run's ``UPDATE service SET a = ?, ... WHERE id = ?`` sets, in order.

    ``statements`` are the run's recorded ``UPDATE`` statements; without a readable one,
    :data:`DEFAULT_SERVICE_UPDATE` (as far as ``available`` columns go).
    """
    ordered = sorted(statements, key=lambda sql: -statements[sql]) if isinstance(statements, dict) else statements
    for sql in ordered:  # the statement that updated the most rows
        match = _SERVICE_UPDATE.match(sql)
        if match:
            assigns = [_ASSIGN.match(part) for part in match.group(1).split(",")]
            if all(assigns):
                return tuple(a.group(1) for a in assigns)
    return tuple(c for c in DEFAULT_SERVICE_UPDATE if c in available)


def floor(bench_url: str, floor_url: str, before: _Before, chunk: int, statements=()) -> tuple[float, dict]:
    """Write the run's rows again with plain ``executemany`` into the floor copy; return (seconds, rows by table).

    Rows are read from the bench database chunk by chunk (not timed) and written in one
    transaction per ``chunk`` customers, as the run does (timed).
    """
    src, dst = make_database(bench_url), make_database(floor_url)
    p, q = src.param, dst.param
    counts = dict.fromkeys(FLOOR_TABLES + UPDATED_TABLES, 0)
    service_set = service_update_columns(statements, _columns(src, "service"))
    update_service = f"UPDATE service SET {', '.join(f'{c} = {q}' for c in service_set)} WHERE id = {q}"
    update_promo = (f"UPDATE promo_redemption SET times_applied = times_applied + 1 "
                    f"WHERE customer_id = {q} AND code = {q}")
    update_payment = f"UPDATE payment SET unallocated_minor = {q} WHERE id = {q}"
    ids = before.customers
    index = {cid: i // chunk for i, cid in enumerate(ids)}
    columns, new_events = _select(src, f"SELECT * FROM event WHERE id > {p} ORDER BY id", (before.max_id["event"],))
    events: dict[int, list] = {}
    payload_at = columns.index("payload")
    for row in new_events:
        cid = json.loads(row[payload_at]).get("customer_id")
        events.setdefault(index.get(cid, len(ids) // chunk), []).append(row)
    seconds = 0.0
    try:
        for n, start in enumerate(range(0, len(ids), chunk)):
            lo, hi = ids[start], ids[min(start + chunk, len(ids)) - 1]
            writes = []
            for table in FLOOR_TABLES[:-1]:
                if table in ("invoice", "ledger_entry"):
                    sql = (f'SELECT * FROM "{table}" WHERE customer_id BETWEEN {p} AND {p} AND id > {p} '
                           "ORDER BY id")
                else:
                    sql = (f'SELECT t.* FROM "{table}" t JOIN invoice i ON i.id = t.invoice_id '
                           f"WHERE i.customer_id BETWEEN {p} AND {p} AND t.id > {p} ORDER BY t.id")
                cols, rows = _select(src, sql, (lo, hi, before.max_id[table]))
                writes.append((_insert_sql(dst, table, cols), rows, table))
            if n in events:
                writes.append((_insert_sql(dst, "event", columns), events[n], "event"))
            _cols, services = _select(src, f"SELECT {', '.join(service_set)}, id FROM service "
                                            f"WHERE customer_id BETWEEN {p} AND {p} ORDER BY id", (lo, hi))
            writes.append((update_service, [r for r in services if r[-1] in before.due_services], "service"))
            _cols, promos = _select(src, "SELECT customer_id, code, times_applied FROM promo_redemption "
                                         f"WHERE customer_id BETWEEN {p} AND {p} ORDER BY id", (lo, hi))
            writes.append((update_promo, [(c, code) for c, code, times in promos
                                          for _ in range(times - before.promos.get((c, code), 0))], "promo_redemption"))
            _cols, payments = _select(src, "SELECT unallocated_minor, id FROM payment "
                                           f"WHERE customer_id BETWEEN {p} AND {p} ORDER BY id", (lo, hi))
            writes.append((update_payment, [r for r in payments if before.payments.get(r[1]) != r[0]], "payment"))
            started = time.perf_counter()
            with dst.atomic():
                cursor = dst.cursor()
                for sql, rows, _name in writes:
                    if rows:
                        cursor.executemany(sql, rows)
            seconds += time.perf_counter() - started
            for _sql, rows, name in writes:
                counts[name] += len(rows)
    finally:
        src.close()
        dst.close()
    return seconds, counts


# --- the whole bench ---------------------------------------------------------------------

def _server(db) -> str:
    if backend_name(db) == "sqlite":
        return f"sqlite {sqlite3.sqlite_version}"
    version = db.execute_sql("SHOW server_version").fetchone()[0]
    return f"postgresql {version.split()[0]}"


def run_billing_bench(subscribers: int, *, database_url: str | None = None, chunk: int = billing.CHUNK,
                      keep: bool = False, as_of: dt.date = AS_OF, pm=None, progress=None,
                      profile: str | None = None) -> Figures:
    """Build, bill and measure; see the module docstring. ``progress(text)`` is told what is happening.

    ``profile`` names a file for the cProfile stats of the billing run (which is then slower).
    """
    from core.plugins import get_manager

    if not 1 <= subscribers <= MAX_SUBSCRIBERS:
        raise ValidationError(f"--subscribers must be between 1 and {MAX_SUBSCRIBERS}", "--subscribers")
    if chunk < 1:
        raise ValidationError("--chunk must be at least 1", "--chunk")
    say = progress or (lambda text: None)
    pm = pm or get_manager()
    target = open_target(database_url)
    kept = False
    try:
        db = bind(target.bench_url)
        db.connect()
        migrations.migrate(db)
        say(f"building {subscribers} subscribers in {redact(target.bench_url)} ...")
        started = time.perf_counter()
        services = build(subscribers, as_of, pm=pm)
        build_seconds = time.perf_counter() - started
        before = _Before(db, as_of)
        server = _server(db)
        db.close()
        floor_db = make_database(target.floor_url)
        migrations.migrate(floor_db)
        floor_db.close()
        target.snapshot()
        say(f"built in {build_seconds:.1f} s; billing ...")
        child = _run_child(target.bench_url, as_of, chunk, _blocked_plugins(pm),
                           str(Path(profile).resolve()) if profile else None)
        if child["failures"] or child["invoices"] != len(before.customers):
            raise WispbillError(f"the run billed {child['invoices']} of {len(before.customers)} customers "
                                f"({child['failures']} not billed: {child['first_failures']})")
        say(f"billed in {child['seconds']:.1f} s; measuring the floor ...")
        floor_seconds, rows = floor(target.bench_url, target.floor_url, before, chunk, child["updates"])
        kept = keep
        return Figures(
            subscribers=subscribers, services=services, database=server, chunk=chunk, as_of=as_of.isoformat(),
            build_seconds=build_seconds, billing_seconds=child["seconds"], invoices=child["invoices"],
            peak_memory_mb=child["peak_mb"], baseline_memory_mb=child["baseline_mb"],
            second_run_seconds=child["second_seconds"], second_run_invoices=child["second_invoices"],
            floor_seconds=floor_seconds, ratio_to_floor=child["seconds"] / floor_seconds if floor_seconds else 0.0,
            invoices_per_second=child["invoices"] / child["seconds"] if child["seconds"] else 0.0,
            rows_inserted={t: rows[t] for t in FLOOR_TABLES}, rows_updated={t: rows[t] for t in UPDATED_TABLES},
            kept=redact(target.kept_url()) if keep else None)
    finally:
        if database.obj is not None and not database.is_closed():
            database.close()
        target.cleanup(kept)


if __name__ == "__main__":
    main()
