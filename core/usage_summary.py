"""What a service used in its current billing period, day by day, against its plan's data cap.

Usage counts on the day its sample starts (the same rule billing uses for overage), in
UTC days. The period is the service's billing period containing ``today``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core import clock, periods
from core.billing import BYTES_PER_MB
from core.bulk import to_date
from core.db import database
from core.models import Plan, Service

DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class PeriodUsage:
    """A service's usage from ``start`` up to ``end`` (exclusive)."""

    service_id: int
    start: dt.date
    end: dt.date
    bytes_in: int
    bytes_out: int
    cap_bytes: int | None  # None: no data cap
    daily: list  # (date, bytes_in, bytes_out) for every day of the period up to today

    @property
    def used(self) -> int:
        """Bytes both ways."""
        return self.bytes_in + self.bytes_out

    @property
    def percent_of_cap(self) -> int | None:
        """Whole percent of the cap used (may pass 100); ``None`` without a cap."""
        return None if not self.cap_bytes else self.used * 100 // self.cap_bytes

    def as_dict(self) -> dict:
        """As JSON for the API."""
        return {"service_id": self.service_id, "period_start": self.start.isoformat(),
                "period_end": self.end.isoformat(), "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                "bytes_total": self.used, "cap_bytes": self.cap_bytes, "percent_of_cap": self.percent_of_cap,
                "daily": [{"date": d.isoformat(), "bytes_in": i, "bytes_out": o} for d, i, o in self.daily]}


def current_period(service: Service, plan: Plan, today: dt.date) -> tuple[dt.date, dt.date]:
    """The billing period ``[start, end)`` of ``service`` that contains ``today``."""
    day = max(today, service.start_date)
    return periods.containing(day, period=plan.period, period_length=plan.period_days,
                              anchor_day=service.anchor_day, origin=service.start_date)


def for_period(service: Service, start: dt.date, end: dt.date, today: dt.date | None = None) -> PeriodUsage:
    """Usage of ``service`` from ``start`` to ``end`` (exclusive), one row per day up to today."""
    today = today or clock.today()
    plan = Plan.get_by_id(service.plan_id)
    p = database.param
    lo, hi = dt.datetime.combine(start, dt.time()), dt.datetime.combine(end, dt.time())
    by_day: dict[dt.date, list[int]] = {}
    for began, b_in, b_out in database.execute_sql(
            f"SELECT period_start, bytes_in, bytes_out FROM usage_record WHERE service_id = {p} "
            f"AND period_start >= {p} AND period_start < {p}", (service.id, lo, hi)):
        day = to_date(began)
        row = by_day.setdefault(day, [0, 0])
        row[0] += b_in
        row[1] += b_out
    last = min(end - DAY, max(today, start))
    daily, day = [], start
    while day <= last:
        b_in, b_out = by_day.get(day, (0, 0))
        daily.append((day, b_in, b_out))
        day += DAY
    total_in = sum(v[0] for v in by_day.values())
    total_out = sum(v[1] for v in by_day.values())
    cap = plan.data_cap_mb * BYTES_PER_MB if plan.data_cap_mb else None
    return PeriodUsage(service.id, start, end, total_in, total_out, cap, daily)


def this_period(service: Service, today: dt.date | None = None) -> PeriodUsage:
    """Usage of ``service`` in its billing period containing ``today``."""
    today = today or clock.today()
    start, end = current_period(service, Plan.get_by_id(service.plan_id), today)
    return for_period(service, start, end, today)


def human_bytes(count: int) -> str:
    """``1.5 GB``-style text for people (decimal units, as data caps are sold)."""
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"
