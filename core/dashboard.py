"""The figures of the console's dashboard, each from one aggregate query.

- :func:`recurring_revenue`: monthly recurring revenue per currency;
- :func:`receivables`: what is left to pay on issued invoices, by age, per currency;
- :func:`account_counts`: accounts by state;
- :func:`payments_on`: payments received on a day, count and total per currency;
- :func:`router_states`: each router with its services and pending changes;
- :func:`monthly_totals`: invoiced and paid per month over the last months, per currency.

:func:`figures` gathers them; :func:`cached_figures` keeps the result for
:data:`CACHE_SECONDS` in the process, so that a dashboard left open and reloaded does
not read every invoice again each time. The rules are explained in ``docs/console.md``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from core import clock, routers
from core.bulk import is_sqlite
from core.db import database
from core.models import ACCOUNT_STATES
from core.money import Money

log = logging.getLogger(__name__)

CACHE_SECONDS = 30
DAYS_PER_MONTH = Decimal("30.4375")  # 365.25 / 12: an average month
AGE_BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
AGE_LABELS = {"current": "not yet due", "1-30": "1-30 days", "31-60": "31-60 days", "61-90": "61-90 days",
              "90+": "over 90 days"}
CHART_MONTHS = 12


def _day(value: dt.date):
    """A date as the driver wants it in a comparison (SQLite keeps dates as ISO text)."""
    return value.isoformat() if is_sqlite(database.obj) else value


def _moment(value: dt.datetime):
    """A timestamp as the driver wants it (SQLite keeps ``YYYY-MM-DD HH:MM:SS[.ffffff]`` text)."""
    return str(value) if is_sqlite(database.obj) else value


def _round_half_up(value: Fraction) -> int:
    """``value`` rounded to a whole number, halves away from zero."""
    sign = -1 if value < 0 else 1
    whole, rest = divmod(abs(value), 1)
    return sign * (int(whole) + (1 if rest >= Fraction(1, 2) else 0))


def months_factor(period: str, period_days: int | None) -> Fraction:
    """How many times a month a price of ``period`` is paid: 1 for monthly, 30.4375/7 for weekly, ..."""
    month = Fraction(DAYS_PER_MONTH)
    if period == "monthly":
        return Fraction(1)
    if period == "weekly":
        return month / 7
    if period == "daily":
        return month
    if period == "days" and period_days:
        return month / period_days
    raise ValueError(f"unknown billing period {period!r}")


def recurring_revenue(today: dt.date | None = None) -> dict[str, Money]:
    """Monthly recurring revenue per currency, biggest first.

    The price of every active service (its ``price_override_minor`` when set, else its
    plan's price) that has started and not ended, of an account that is not terminated,
    turned into a monthly figure with :func:`months_factor`. The sum is kept exact and
    rounded half-up once per currency.
    """
    today = today or clock.today()
    p = database.param
    rows = database.execute_sql(
        "SELECT p.currency, p.period, p.period_days, SUM(COALESCE(s.price_override_minor, p.price_minor)) "
        "FROM service s JOIN plan p ON p.id = s.plan_id JOIN customer c ON c.id = s.customer_id "
        f"WHERE s.status = 'active' AND c.state <> 'terminated' AND s.start_date <= {p} "
        f"AND (s.end_date IS NULL OR s.end_date > {p}) "
        "GROUP BY p.currency, p.period, p.period_days", (_day(today), _day(today))).fetchall()
    exact: dict[str, Fraction] = {}
    for currency, period, period_days, total in rows:
        exact[currency] = exact.get(currency, Fraction(0)) + int(total) * months_factor(period, period_days)
    out = {cur: Money(_round_half_up(value), cur) for cur, value in exact.items()}
    return dict(sorted(out.items(), key=lambda kv: (-kv[1].minor, kv[0])))


def receivables(today: dt.date | None = None) -> dict[str, dict[str, Money]]:
    """Per currency, what is left to pay on issued invoices by days past the due date.

    ``current`` is not yet due (due today or later); the others are days past due:
    ``1-30``, ``31-60``, ``61-90`` and ``90+``. Every bucket is present; ``total`` too.
    """
    today = today or clock.today()
    p = database.param
    bounds = [_day(today), _day(today - dt.timedelta(days=30)), _day(today - dt.timedelta(days=60)),
              _day(today - dt.timedelta(days=90))]
    rows = database.execute_sql(
        "SELECT currency, CASE "
        f"WHEN due_date IS NULL OR due_date >= {p} THEN 'current' "
        f"WHEN due_date >= {p} THEN '1-30' WHEN due_date >= {p} THEN '31-60' "
        f"WHEN due_date >= {p} THEN '61-90' ELSE '90+' END AS bucket, SUM(total_minor - settled_minor) "
        "FROM invoice WHERE status = 'issued' AND settled_minor < total_minor GROUP BY 1, 2", bounds).fetchall()
    out: dict[str, dict[str, Money]] = {}
    for currency, bucket, minor in rows:
        buckets = out.setdefault(currency, {b: Money(0, currency) for b in (*AGE_BUCKETS, "total")})
        buckets[bucket] = Money(int(minor), currency)
        buckets["total"] = buckets["total"] + Money(int(minor), currency)
    return dict(sorted(out.items()))


def account_counts() -> dict[str, int]:
    """How many accounts are in each state (every state present)."""
    counts = {state: 0 for state in ACCOUNT_STATES}
    for state, n in database.execute_sql("SELECT state, COUNT(*) FROM customer GROUP BY state").fetchall():
        counts[state] = int(n)
    return counts


@dataclass(frozen=True)
class DayPayments:
    """Payments received on one day: how many, and the total per currency."""

    count: int
    totals: dict = field(default_factory=dict)  # currency -> Money


def payments_on(day: dt.date | None = None) -> DayPayments:
    """Money received on ``day`` (UTC): payments that succeeded or were refunded later."""
    day = day or clock.today()
    start = dt.datetime.combine(day, dt.time())
    p = database.param
    rows = database.execute_sql(
        "SELECT currency, COUNT(*), SUM(amount_minor) FROM payment "
        f"WHERE received_at >= {p} AND received_at < {p} AND status <> 'pending' AND status <> 'failed' "
        "GROUP BY currency ORDER BY currency",
        (_moment(start), _moment(start + dt.timedelta(days=1)))).fetchall()
    return DayPayments(sum(int(n) for _c, n, _t in rows), {c: Money(int(t), c) for c, _n, t in rows})


def router_states() -> list[dict]:
    """Every router (see ``routers.as_dict``): active, last seen, last reconcile, last error, pending."""
    tally = routers.counts()
    return [routers.as_dict(r, tally.get(r.id)) for r in routers.listing()]


def _month_starts(today: dt.date, months: int) -> list[dt.date]:
    first = today.replace(day=1)
    out = []
    for _ in range(months):
        out.append(first)
        first = (first - dt.timedelta(days=1)).replace(day=1)
    return out[::-1]


@dataclass(frozen=True)
class MonthlyTotals:
    """Per currency, invoiced and paid per month; ``months`` are the first days, oldest first."""

    months: list
    invoiced: dict  # currency -> [minor per month]
    paid: dict  # currency -> [minor per month]

    def currencies(self) -> list[str]:
        """The currencies with anything in the period."""
        return sorted(set(self.invoiced) | set(self.paid))


def monthly_totals(today: dt.date | None = None, months: int = CHART_MONTHS) -> MonthlyTotals:
    """Invoiced (issued and paid invoices, by issue date) and received (payments) per month."""
    today = today or clock.today()
    starts = _month_starts(today, months)
    index = {m.strftime("%Y-%m"): i for i, m in enumerate(starts)}
    p = database.param
    if is_sqlite(database.obj):
        inv_month, pay_month = "substr(issue_date, 1, 7)", "substr(received_at, 1, 7)"
    else:
        inv_month, pay_month = "to_char(issue_date, 'YYYY-MM')", "to_char(received_at, 'YYYY-MM')"
    invoiced: dict[str, list[int]] = {}
    paid: dict[str, list[int]] = {}
    for target, sql, since in (
            (invoiced, f"SELECT currency, {inv_month}, SUM(total_minor) FROM invoice WHERE status IN ('issued', "
                       f"'paid') AND issue_date >= {p} GROUP BY 1, 2", _day(starts[0])),
            (paid, f"SELECT currency, {pay_month}, SUM(amount_minor) FROM payment WHERE status <> 'pending' "
                   f"AND status <> 'failed' AND received_at >= {p} GROUP BY 1, 2",
             _moment(dt.datetime.combine(starts[0], dt.time())))):
        for currency, month, minor in database.execute_sql(sql, (since,)).fetchall():
            i = index.get(month)
            if i is not None:
                target.setdefault(currency, [0] * months)[i] += int(minor)
    return MonthlyTotals(starts, invoiced, paid)


@dataclass(frozen=True)
class Figures:
    """Everything the dashboard shows, and when it was computed."""

    at: dt.datetime
    today: dt.date
    revenue: dict
    receivables: dict
    counts: dict
    payments_today: DayPayments
    routers: list
    monthly: MonthlyTotals


def figures(today: dt.date | None = None) -> Figures:
    """Compute every figure now."""
    today = today or clock.today()
    return Figures(clock.utcnow(), today, recurring_revenue(today), receivables(today), account_counts(),
                   payments_on(today), router_states(), monthly_totals(today))


_cache: dict[str, tuple[float, Figures]] = {}
_refreshing: set[str] = set()
_cache_lock = threading.Lock()


def _refresh(key: str) -> None:
    """Compute the figures again in a thread of their own, with a connection of its own."""
    try:
        database.connect(reuse_if_open=True)
        try:
            made = figures()
        finally:
            database.close()
        with _cache_lock:
            _cache[key] = (time.monotonic(), made)
    except Exception:  # the stale figures stay; the next request tries again
        log.exception("dashboard: refreshing the figures failed")
    finally:
        with _cache_lock:
            _refreshing.discard(key)


def cached_figures(key: str = "", max_age: float = CACHE_SECONDS, background: bool = True) -> Figures:
    """:func:`figures`, reused for ``max_age`` seconds within this process (per database ``key``).

    Once they are older, the figures already computed are still returned while a thread
    computes new ones (``background``), so no page waits for the scan of every invoice
    but the first one a process shows each day.
    """
    now = time.monotonic()
    today = clock.today()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[1].today == today:
            if now - hit[0] < max_age or key in _refreshing:
                return hit[1]
            if background:
                _refreshing.add(key)
                threading.Thread(target=_refresh, args=(key,), name="dashboard-figures", daemon=True).start()
                return hit[1]
    made = figures(today)
    with _cache_lock:
        _cache[key] = (time.monotonic(), made)
    return made


def forget() -> None:
    """Mark the cached figures out of date (after a change staff expect to see soon): the next
    dashboard shows them once more, with their age, while new ones are computed."""
    with _cache_lock:
        for key, (_at, made) in list(_cache.items()):
            _cache[key] = (float("-inf"), made)
