"""``wispbill bench web``: page latency through the WSGI app on a database of N subscribers.

The data is the billing bench's (:func:`core.bench.build`), billed once, so that every
customer has an invoice; some accounts are moved to reminded, throttled and suspended, some
invoices are paid today, and a few customers have a portal password. Then, one request at a
time through the whole WSGI app (sessions, CSRF, templates, the database), it measures:

- ``dashboard``: the console's dashboard, signed in as an admin (its figures are kept for
  30 s per process, see ``core/dashboard.py``, so most requests render kept figures; the
  time to compute them afresh is printed on a line of its own, ``dashboard figures``);
- ``search``: customer search as the search box asks for it (an htmx request for the rows),
  with a different query each time (names, account numbers, e-mail addresses);
- ``customer``: a random customer's page;
- ``portal``: the portal home of a random signed-in customer.

Each page is asked ``requests`` times after a warm-up; the figures are p50 and p95 in
milliseconds. The last line is ``worst p95 ms: <number>``.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from dataclasses import asdict, dataclass, field

from core import audit, billing, migrations
from core.bench import ACTOR, AS_OF, MAX_SUBSCRIBERS, build, open_target
from core.db import bind, database, redact
from core.errors import ValidationError, WispbillError

PAGES = ("dashboard", "search", "customer", "portal")
PORTAL_CUSTOMERS = 50
STATE_SHARES = (("reminded", 0.04), ("throttled", 0.02), ("suspended", 0.01))
PAID_TODAY = 200
WARMUP = 10
FIGURE_RUNS = 5
STAFF_USER = "bench-admin"
STAFF_PASSWORD = "bench admin password"


@dataclass
class Figures:
    """What the bench measured; latencies in milliseconds."""

    subscribers: int
    database: str
    requests: int
    build_seconds: float
    latency: dict = field(default_factory=dict)  # page -> {"p50": ms, "p95": ms, "max": ms}
    figures_ms: float = 0.0  # the dashboard's figures computed afresh (median of a few)

    @property
    def worst_p95(self) -> float:
        """The highest p95 of all pages."""
        return max(v["p95"] for v in self.latency.values())

    def as_dict(self) -> dict:
        """As JSON for ``--json``."""
        return {**asdict(self), "worst_p95_ms": round(self.worst_p95, 1)}


def lines(f: Figures) -> list[str]:
    """The figures as text; the last line is ``worst p95 ms: <number>``."""
    from core import dashboard

    out = [f"subscribers: {f.subscribers} ({f.database}), {f.requests} requests per page, "
           f"built and billed in {f.build_seconds:.1f} s"]
    for page in PAGES:
        v = f.latency[page]
        out.append(f"{page}: p50 {v['p50']:.1f} ms, p95 {v['p95']:.1f} ms, max {v['max']:.1f} ms")
    out.append(f"dashboard figures: {f.figures_ms:.1f} ms to compute afresh (kept {dashboard.CACHE_SECONDS} s per process)")
    out.append(f"worst p95 ms: {f.worst_p95:.1f}")
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _prepare(subscribers: int, rng: random.Random) -> list[int]:
    """Build, bill, spread account states and today's payments; return the portal customers' ids."""
    from core import payments, portal_accounts, users
    from core.models import Customer, Invoice
    from core.money import Money

    build(subscribers, AS_OF)
    with audit.acting_as(ACTOR):
        billing.run(AS_OF)
        ids = list(range(1, subscribers + 1))
        for state, share in STATE_SHARES:
            chosen = rng.sample(ids, max(1, int(subscribers * share)))
            for i in range(0, len(chosen), 500):
                Customer.update(state=state, state_changed_at=dt.datetime.combine(AS_OF, dt.time())).where(
                    Customer.id.in_(chosen[i:i + 500])).execute()
        for invoice in (Invoice.select().where(Invoice.status == "issued").order_by(Invoice.id)
                        .limit(min(PAID_TODAY, max(1, subscribers // 10)))):
            payments.add_manual(Customer.get_by_id(invoice.customer_id),
                                Money(invoice.total_minor, invoice.currency), method="cash",
                                reference=f"BENCH-WEB-{invoice.id}")
        users.create(STAFF_USER, STAFF_PASSWORD, role="admin")
        portal = rng.sample(ids, min(PORTAL_CUSTOMERS, max(1, subscribers // 10)))
        for cid in portal:
            portal_accounts.set_password(Customer.get_by_id(cid), "bench portal password")
    return portal


def _queries(rng: random.Random, subscribers: int, n: int) -> list[str]:
    kinds = (lambda i: f"Subscriber {i}", lambda i: f"B{i:08d}", lambda i: f"s{i}@",
             lambda i: str(i)[:3], lambda i: "subscriber")
    return [rng.choice(kinds)(rng.randint(1, subscribers)) for _ in range(n)]


def _timed(client, path: str, headers=None) -> float:
    started = time.perf_counter()
    response = client.get(path, headers=headers or {})
    took = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise WispbillError(f"GET {path} answered {response.status_code}")
    return took


def measure(app, subscribers: int, portal_ids: list[int], requests: int, rng: random.Random) -> dict:
    """Ask each page ``requests`` times (after a warm-up); p50/p95/max per page in ms."""
    from core import portal_accounts
    from core.models import Customer
    from core.web.portal_auth import SESSION_KEY

    staff = app.test_client()
    page = staff.get("/auth/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    signed = staff.post("/auth/login", data={"username": STAFF_USER, "password": STAFF_PASSWORD, "csrf_token": token})
    if signed.status_code != 302:
        raise WispbillError(f"the bench could not sign in to the console ({signed.status_code})")
    customers = []
    for cid in portal_ids:
        client = app.test_client()
        database.connect(reuse_if_open=True)
        session_token = portal_accounts.start_session(Customer.get_by_id(cid))
        database.close()
        with client.session_transaction() as session:
            session[SESSION_KEY] = session_token
        customers.append(client)

    total = requests + WARMUP
    queries = _queries(rng, subscribers, total)
    ids = [rng.randint(1, subscribers) for _ in range(total)]
    asks = {
        "dashboard": lambda i: _timed(staff, "/admin/"),
        "search": lambda i: _timed(staff, f"/admin/customers?q={queries[i]}", {"HX-Request": "true"}),
        "customer": lambda i: _timed(staff, f"/admin/customers/{ids[i]}"),
        "portal": lambda i: _timed(customers[i % len(customers)], "/portal/"),
    }
    latency = {}
    for name in PAGES:
        times = [asks[name](i) for i in range(total)][WARMUP:]
        latency[name] = {"p50": round(statistics.median(times), 2), "p95": round(_percentile(times, 0.95), 2),
                         "max": round(max(times), 2)}
    return latency


def _figures_ms() -> float:
    """The median time to compute the dashboard's figures without the cache."""
    from core import dashboard

    database.connect(reuse_if_open=True)
    try:
        times = []
        for _ in range(FIGURE_RUNS):
            started = time.perf_counter()
            dashboard.figures()
            times.append((time.perf_counter() - started) * 1000)
        return round(statistics.median(times), 1)
    finally:
        database.close()


def run_web_bench(subscribers: int, *, database_url: str | None = None, requests: int = 200, seed: int = 1,
                  progress=None) -> Figures:
    """Build the data in a fresh database, measure the pages, remove the database; see the module docstring."""
    from core.plugins import get_manager
    from core.web import create_app

    if not 1 <= subscribers <= MAX_SUBSCRIBERS:
        raise ValidationError(f"--subscribers must be between 1 and {MAX_SUBSCRIBERS}", "--subscribers")
    if not 10 <= requests <= 100_000:
        raise ValidationError("--requests must be between 10 and 100000", "--requests")
    say = progress or (lambda text: None)
    rng = random.Random(seed)
    target = open_target(database_url)
    try:
        db = bind(target.bench_url)
        db.connect()
        migrations.migrate(db)
        say(f"building and billing {subscribers} subscribers in {redact(target.bench_url)} ...")
        started = time.perf_counter()
        portal_ids = _prepare(subscribers, rng)
        if target.backend == "postgresql":
            db.execute_sql("ANALYZE")
        build_seconds = time.perf_counter() - started
        db.close()
        say(f"built in {build_seconds:.1f} s; measuring ...")
        app = create_app({"DATABASE_URL": target.bench_url, "PLUGIN_MANAGER": get_manager()})
        latency = measure(app, subscribers, portal_ids, requests, rng)
        return Figures(subscribers=subscribers, database=target.backend, requests=requests,
                       build_seconds=build_seconds, latency=latency, figures_ms=_figures_ms())
    finally:
        if database.obj is not None and not database.is_closed():
            database.close()
        target.cleanup(False)
