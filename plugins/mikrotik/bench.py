"""``wispbill bench enforce``: the MikroTik enforcer and the core's reconciler against the lab router.

:func:`run_enforce_bench` makes a fresh database (as the other benches do), starts a lab
router in its own process (``wispbill lab router``, real TCP on 127.0.0.1) and fills the
database with ``subscribers`` customers, each with one service bound to that router: a mix
of PPPoE, DHCP, static-IP and hotspot subscribers. Then it measures, with the real
``librouteros`` client:

1. the initial full sync (an empty router gets every subscriber);
2. a no-change reconcile right after (its seconds and the router writes it made);
3. a reconcile after 1% of accounts changed state (throttled or suspended);
4. payment-to-router restore latency: ``payments`` suspended customers pay, one after
   another, by a staff-recorded payment in this process, while a real ``wispbill
   scheduler`` process (the event outbox, dunning and enforcement, as in production)
   restores them; a restore counts when the router confirmed the change (its
   enforcement row turns applied), and a dry-run reconcile afterwards checks that the
   router holds exactly what billing wants.

The last line is ``restore p99 ms: <number>``.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass

from core import audit, bench_network, enforcement, migrations, payments, routers
from core.bench import open_target
from core.clock import today, utcnow
from core.config import redact
from core.db import bind, database
from core.errors import ValidationError, WispbillError
from core.models import Customer, Enforcement, Invoice, InvoiceLine, LedgerEntry, Service
from core.money import Money

CURRENCY, PRICE_MINOR = bench_network.CURRENCY, bench_network.PRICE_MINOR
MAX_SUBSCRIBERS = 200_000
LAB_USER, LAB_PASSWORD = "bench", "bench-secret"


@dataclass
class Figures:
    """What one bench run measured."""

    subscribers: int
    database: str
    build_seconds: float
    initial_sync_seconds: float
    initial_sync_writes: int
    nochange_seconds: float
    nochange_writes: int
    changed_accounts: int
    change_seconds: float
    change_writes: int
    payments: int
    restore_p50_ms: float
    restore_p99_ms: float
    restore_max_ms: float

    def as_dict(self) -> dict:
        return asdict(self)


def lines(f: Figures) -> list[str]:
    """The figures as the command prints them; the last line is the restore p99."""
    return [
        f"subscribers: {f.subscribers} ({f.database}, built in {f.build_seconds:.1f} s)",
        f"initial sync seconds: {f.initial_sync_seconds:.2f} ({f.initial_sync_writes} writes)",
        f"no-change reconcile seconds: {f.nochange_seconds:.2f}",
        f"no-change reconcile writes: {f.nochange_writes}",
        f"1% change ({f.changed_accounts} accounts) reconcile seconds: {f.change_seconds:.2f} "
        f"({f.change_writes} writes)",
        f"restore p50 ms: {f.restore_p50_ms:.0f} (over {f.payments} payments, max {f.restore_max_ms:.0f})",
        f"restore p99 ms: {f.restore_p99_ms:.0f}",
    ]


# --- processes -------------------------------------------------------------------------

def _wispbill(*args) -> list[str]:
    return [sys.executable, "-c", "from core.cli import main; main()", *args]


class _Process:
    """A child process that prints a line when ready and stops on SIGTERM; its output is kept (the last lines)."""

    def __init__(self, args, env, ready: str, timeout: float = 30.0):
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.tail: collections.deque = collections.deque(maxlen=40)
        deadline = time.monotonic() + timeout
        self.first = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.tail.append(line.rstrip())
            if ready in line:
                self.first = line.strip()
                # Keep reading, or a chatty child would block once the pipe is full.
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.stop()
        raise WispbillError(f"{' '.join(args[3:])} did not start ({ready!r} not seen): " + " / ".join(self.tail))

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.tail.append(line.rstrip())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _lab_writes(router) -> int:
    """The lab router's count of successful add/set/remove commands, asked over its API."""
    import librouteros

    api = librouteros.connect(router.host, LAB_USER, LAB_PASSWORD, port=router.port, timeout=10)
    try:
        stats = next(iter(api("/lab/stats")))
        return int(stats.get("writes", 0))
    finally:
        api.close()


# --- building ----------------------------------------------------------------------------

build = bench_network.build


def _overdue(customer_ids: list[int], due: dt.date) -> None:
    """Give each customer one issued invoice, due on ``due``, posted to the ledger."""
    now = utcnow()
    with database.atomic():
        for n, cid in enumerate(customer_ids, start=1):
            invoice = Invoice.create(customer=cid, series="INV-BENCH", number=n, status="issued",
                                     currency=CURRENCY, subtotal_minor=PRICE_MINOR, tax_minor=0,
                                     total_minor=PRICE_MINOR, settled_minor=0, issue_date=due - dt.timedelta(14),
                                     due_date=due, tax_inclusive=False, created_at=now, issued_at=now)
            InvoiceLine.create(invoice=invoice, position=1, kind="oneoff", description="Service",
                               unit_price_minor=PRICE_MINOR, amount_minor=PRICE_MINOR)
            LedgerEntry.create(customer=cid, kind="invoice", amount_minor=PRICE_MINOR, currency=CURRENCY,
                               invoice=invoice.id, description="Invoice", created_at=now)


def _set_states(customer_ids, state: str) -> None:
    with database.atomic():
        Customer.update(state=state, state_changed_at=utcnow()).where(Customer.id.in_(customer_ids)).execute()
        for cid in customer_ids:
            enforcement.refresh_customer(cid)


def _reconcile(router) -> tuple[float, int, object]:
    before = _lab_writes(router)
    started = time.perf_counter()
    result = enforcement.reconcile(router)
    seconds = time.perf_counter() - started
    if result.error or result.failed:
        some = dict(list(result.failed.items())[:3])
        raise WispbillError(f"reconcile of {router.name} failed: {result.error or some}")
    return seconds, _lab_writes(router) - before, result


# --- the run ------------------------------------------------------------------------------

def run_enforce_bench(subscribers: int = 10_000, *, payments_count: int = 200, database_url: str | None = None,
                      seed: int = 1, progress=None) -> Figures:
    """Build, sync, reconcile, restore and measure; see the module docstring."""
    if not 1 <= subscribers <= MAX_SUBSCRIBERS:
        raise ValidationError(f"--subscribers must be between 1 and {MAX_SUBSCRIBERS}", "--subscribers")
    if not 1 <= payments_count <= min(1_000, subscribers):
        raise ValidationError("--payments must be between 1 and 1000, and no more than --subscribers",
                              "--payments")
    say = progress or (lambda text: None)
    target = open_target(database_url)
    lab = None
    env = dict(os.environ, WISPBILL_DATABASE_URL=target.bench_url, WISPBILL_LOG_LEVEL="WARNING")
    try:
        lab = _Process(_wispbill("lab", "router", "--port", "0", "--user", LAB_USER, "--password", LAB_PASSWORD,
                                 "--identity", "bench-lab"), env, "listening on")
        port = int(lab.first.rsplit(":", 1)[1])
        db = bind(target.bench_url)
        db.connect()
        migrations.migrate(db)
        with audit.acting_as("bench"):
            router = routers.add(name="bench-lab", kind="mikrotik", host="127.0.0.1", port=port,
                                 username=LAB_USER, secret=LAB_PASSWORD)
        say(f"building {subscribers} subscribers in {redact(target.bench_url)} ...")
        started = time.perf_counter()
        ids = build(subscribers, router.id, seed)
        build_seconds = time.perf_counter() - started

        say("initial sync ...")
        sync_seconds, sync_writes, _ = _reconcile(router)
        say(f"initial sync: {sync_seconds:.2f} s, {sync_writes} writes; no-change reconcile ...")
        nochange_seconds, nochange_writes, _ = _reconcile(router)

        rng = random.Random(seed)
        changed = rng.sample(ids, max(1, subscribers // 100))
        half = len(changed) // 2
        _set_states(changed[:half], "throttled")
        _set_states(changed[half:], "suspended")
        change_seconds, change_writes, _ = _reconcile(router)
        say(f"1% change: {change_seconds:.2f} s; restoring {payments_count} customers by payment ...")

        latencies = _restores(router, ids, changed, payments_count, env, rng)
        left = enforcement.reconcile(router, dry_run=True)
        if left.error or left.changes:
            raise WispbillError(f"after the restores the router is not in step: {left.error or left.changes}")
        ordered = sorted(latencies)
        return Figures(
            subscribers=subscribers, database=target.backend, build_seconds=build_seconds,
            initial_sync_seconds=sync_seconds, initial_sync_writes=sync_writes,
            nochange_seconds=nochange_seconds, nochange_writes=nochange_writes, changed_accounts=len(changed),
            change_seconds=change_seconds, change_writes=change_writes, payments=len(ordered),
            restore_p50_ms=statistics.median(ordered) * 1000,
            restore_p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            restore_max_ms=ordered[-1] * 1000)
    finally:
        if lab is not None:
            lab.stop()
        if database.obj is not None and not database.is_closed():
            database.close()
        target.cleanup(False)


def _restores(router, ids, changed, count: int, env, rng) -> list[float]:
    """Suspend ``count`` customers with an overdue invoice, then time each payment until the router has it."""
    untouched = [cid for cid in ids if cid not in set(changed)]
    debtors = rng.sample(untouched, count)
    _overdue(debtors, today() - dt.timedelta(days=30))
    _set_states(debtors, "suspended")
    _reconcile(router)
    scheduler = _Process(_wispbill("scheduler"), env, "scheduler")
    try:
        time.sleep(1.0)  # let it take the lease and start its jobs
        services = {s.customer_id: s.id for s in Service.select(Service.id, Service.customer)
                    .where(Service.customer.in_(debtors))}
        latencies = []
        with audit.acting_as("bench"):
            for n, cid in enumerate(debtors, start=1):
                customer = Customer.get_by_id(cid)
                started = time.perf_counter()
                payments.add_manual(customer, Money(PRICE_MINOR, CURRENCY), method="cash", reference=f"BENCH-{n}")
                try:
                    latencies.append(_wait_applied(services[cid], started))
                except WispbillError as exc:
                    raise WispbillError(f"{exc}; the scheduler said: " + " / ".join(scheduler.tail)) from None
        return latencies
    finally:
        scheduler.stop()


def _wait_applied(service_id: int, started: float, timeout: float = 30.0) -> float:
    """Seconds from ``started`` until the service's router confirmed it active again."""
    while True:
        row = (Enforcement.select(Enforcement.applied_state, Enforcement.next_attempt_at)
               .where(Enforcement.service == service_id).get())
        if row.applied_state == "active" and row.next_attempt_at is None:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise WispbillError(f"service {service_id} was not restored within {timeout:.0f} s")
        time.sleep(0.002)
