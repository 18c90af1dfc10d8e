"""``wispbill bench payments``: signed Stripe webhooks through the real WSGI app, timed one by one.

:func:`run_payments_bench` makes a fresh database (as ``wispbill bench billing`` does),
fills it with ``customers`` customers, each with one issued invoice, sets a webhook
signing secret, and posts ``payment_intent.succeeded`` events signed as Stripe signs
them to ``/hooks/stripe`` through the app's WSGI interface (Flask's test client: the
whole request path, without sockets). A share of the posts are redeliveries of an event
already sent, as Stripe makes when an answer is slow. Each post is timed on its own;
signing the event is not part of the time. Afterwards it checks that every distinct
event made exactly one payment and paid its invoice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
import statistics
import threading
import time
from dataclasses import asdict, dataclass

from core import migrations, settings
from core.bench import open_target
from core.clock import utcnow
from core.config import redact
from core.db import bind, database
from core.errors import ValidationError, WispbillError
from core.models import Customer, Invoice, LedgerEntry, Payment

SECRET = "whsec_" + "bench0" * 6
CURRENCY = "KES"
PRICE_MINOR = 250_000
MAX_CUSTOMERS = 1_000_000


@dataclass
class Figures:
    """What the payments bench measured."""

    customers: int
    notifications: int
    redeliveries: int
    threads: int
    database: str
    build_seconds: float
    seconds: float
    webhooks_per_second: float
    mean_ms: float
    median_ms: float
    p99_ms: float
    max_ms: float
    payments: int
    invoices_paid: int

    def as_dict(self) -> dict:
        """The figures as JSON."""
        return asdict(self)


def lines(f: Figures) -> list[str]:
    """The figures as text; the last line is ``webhooks/s: <number>``."""
    return [
        f"database: {f.database}",
        f"customers: {f.customers} (built in {f.build_seconds:.1f} s)",
        f"notifications: {f.notifications} ({f.redeliveries} of them redeliveries), {f.threads} thread(s)",
        f"recorded: {f.payments} payments, {f.invoices_paid} invoices paid",
        f"latency: mean {f.mean_ms:.2f} ms, median {f.median_ms:.2f} ms, p99 {f.p99_ms:.2f} ms, "
        f"max {f.max_ms:.2f} ms",
        f"time: {f.seconds:.2f} s",
        f"webhooks/s: {f.webhooks_per_second:.0f}",
    ]


def build(customers: int) -> list[tuple[int, int]]:
    """``customers`` customers with one issued invoice each; returns ``(customer_id, invoice_id)`` pairs."""
    now = utcnow()
    issue, due = dt.date(2026, 3, 1), dt.date(2026, 3, 15)
    batch = 1_000  # rows per INSERT: PostgreSQL takes at most 65,535 parameters in one statement
    for start in range(0, customers, batch):
        count = min(batch, customers - start)
        with database.atomic():
            Customer.insert_many([{
                "account_number": f"B{start + i + 1:07d}", "name": f"Bench customer {start + i + 1}",
                "currency": CURRENCY, "terms_days": 14, "state": "active", "tax_exempt": False,
                "created_at": now, "updated_at": now} for i in range(count)]).execute()
    ids = [c.id for c in Customer.select(Customer.id).order_by(Customer.id)]
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        with database.atomic():
            Invoice.insert_many([{
                "customer": cid, "series": "INV-2026", "number": start + i + 1, "status": "issued",
                "currency": CURRENCY, "subtotal_minor": PRICE_MINOR, "tax_minor": 0, "total_minor": PRICE_MINOR,
                "settled_minor": 0, "issue_date": issue, "due_date": due, "tax_inclusive": False,
                "created_at": now, "issued_at": now} for i, cid in enumerate(chunk)]).execute()
    pairs = [(i.customer_id, i.id) for i in Invoice.select(Invoice.id, Invoice.customer).order_by(Invoice.id)]
    for start in range(0, len(pairs), batch):
        with database.atomic():
            LedgerEntry.insert_many([{
                "customer": cid, "kind": "invoice", "amount_minor": PRICE_MINOR, "currency": CURRENCY,
                "invoice": iid, "description": "Invoice", "created_at": now}
                for cid, iid in pairs[start:start + batch]]).execute()
    return pairs


def event_body(number: int, customer_id: int, invoice_id: int) -> bytes:
    """A ``payment_intent.succeeded`` event as Stripe sends it (the fields the gateway reads, and a few more)."""
    intent = f"pi_bench{number:010d}"
    return json.dumps({
        "id": f"evt_bench{number:010d}", "object": "event", "api_version": "2024-06-20", "livemode": False,
        "created": int(time.time()), "type": "payment_intent.succeeded", "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": {
            "id": intent, "object": "payment_intent", "amount": PRICE_MINOR, "amount_received": PRICE_MINOR,
            "currency": CURRENCY.lower(), "status": "succeeded", "livemode": False,
            "latest_charge": f"ch_bench{number:010d}", "payment_method_types": ["card"],
            "metadata": {"customer_id": str(customer_id), "invoice_id": str(invoice_id)}}},
    }).encode()


def sign(body: bytes, secret: str = SECRET, at: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``body``: ``t=<unix time>,v1=<HMAC-SHA256 of "t.body">``."""
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def _plan(pairs, notifications: int, redeliver: float, seed: int) -> list[int]:
    """Which event each post sends: new events in order, with redeliveries of earlier ones mixed in."""
    rng = random.Random(seed)
    order, sent = [], 0
    while len(order) < notifications:
        if sent and rng.random() < redeliver:
            order.append(rng.randrange(sent))
        else:
            order.append(sent)
            sent += 1
    if sent > len(pairs):
        raise ValidationError(f"{sent} distinct events need as many customers; use --customers {sent} or more",
                              "--customers")
    return order


def run_payments_bench(customers: int = 10_000, notifications: int = 5_000, *, database_url: str | None = None,
                       threads: int = 1, redeliver: float = 0.1, seed: int = 1, progress=None) -> Figures:
    """Build, post and measure; see the module docstring."""
    from core.web import create_app

    if not 1 <= customers <= MAX_CUSTOMERS:
        raise ValidationError(f"--customers must be between 1 and {MAX_CUSTOMERS}", "--customers")
    if not 1 <= notifications <= 1_000_000:
        raise ValidationError("--notifications must be between 1 and 1000000", "--notifications")
    if not 0 <= redeliver < 1:
        raise ValidationError("--redeliver must be at least 0 and less than 1", "--redeliver")
    say = progress or (lambda text: None)
    order = _plan(range(customers), notifications, redeliver, seed)
    target = open_target(database_url)
    try:
        db = bind(target.bench_url)
        db.connect()
        migrations.migrate(db)
        say(f"building {customers} customers in {redact(target.bench_url)} ...")
        started = time.perf_counter()
        pairs = build(customers)
        settings.set_value("stripe.webhook_secret", SECRET)
        settings.set_value("stripe.secret_key", "sk_test_bench")
        settings.set_value("stripe.api_base", "http://127.0.0.1:9")  # never called: webhooks only
        build_seconds = time.perf_counter() - started
        server = _server_name(db)
        db.close()
        app = create_app({"DATABASE_URL": target.bench_url, "TESTING": False})
        say(f"built in {build_seconds:.1f} s; posting {notifications} webhooks ...")
        latencies, seconds = _post_all(app, pairs, order, threads)
        db.connect(reuse_if_open=True)
        distinct = len(set(order))
        made = Payment.select().where(Payment.gateway == "stripe").count()
        paid = Invoice.select().where(Invoice.status == "paid").count()
        if made != distinct or paid != distinct:
            raise WispbillError(f"{distinct} distinct events made {made} payments and paid {paid} invoices")
        ordered = sorted(latencies)
        return Figures(
            customers=customers, notifications=notifications, redeliveries=notifications - distinct,
            threads=threads, database=server, build_seconds=build_seconds, seconds=seconds,
            webhooks_per_second=notifications / seconds if seconds else 0.0,
            mean_ms=statistics.fmean(ordered) * 1000, median_ms=statistics.median(ordered) * 1000,
            p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            max_ms=ordered[-1] * 1000, payments=made, invoices_paid=paid)
    finally:
        if database.obj is not None and not database.is_closed():
            database.close()
        target.cleanup(False)


def _post_all(app, pairs, order: list[int], threads: int) -> tuple[list[float], float]:
    """Post every planned event (split over ``threads``); the per-post latencies and the wall time."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    shares = [order[i::threads] for i in range(threads)]

    bodies = {number: event_body(number, *pairs[number]) for number in set(order)}

    def worker(share):
        client = app.test_client()
        own = []
        try:
            for number in share:
                body = bodies[number]
                headers = {"Stripe-Signature": sign(body), "Content-Type": "application/json"}
                began = time.perf_counter()
                response = client.post("/hooks/stripe", data=body, headers=headers)
                own.append(time.perf_counter() - began)
                if response.status_code != 200:
                    errors.append(f"event {number}: HTTP {response.status_code} {response.get_data(as_text=True)[:200]}")
                    return
        finally:
            with lock:
                latencies.extend(own)
            if not database.is_closed():
                database.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - started
    if errors:
        raise WispbillError(f"a webhook was refused: {errors[0]}")
    return latencies, seconds


def _server_name(db) -> str:
    from core.bench import _server

    return _server(db)
