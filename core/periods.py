"""Billing periods and proration by the day.

A monthly plan's periods start on the service's anchor day each month; in a month too
short for it (the 31st in April, the 29th in February of a common year) the period
starts on the month's last day, and the next month goes back to the anchor day. Weekly,
daily and N-day plans have periods of a fixed length counted from the service's start
date. Periods are half-open ``[start, end)``: ``end`` is the first day of the next one.

Proration is by the day within the period. The price of days ``[a, b)`` of a period of
``N`` days at price ``P`` is ``F(b) - F(a)`` where ``F(x) = round_half_up(P * (x - start)
/ N)``: cumulative rounding, so that the parts of a period split at any days add up
exactly to ``P`` and no minor unit is lost or invented.
"""

from __future__ import annotations

import calendar
import datetime as dt
from functools import lru_cache

FIXED_DAYS = {"weekly": 7, "daily": 1}


def period_days(period: str, days: int | None) -> int | None:
    """The fixed length of a non-monthly period, ``None`` for monthly."""
    if period == "monthly":
        return None
    if period == "days":
        return days
    return FIXED_DAYS[period]


def _anchored(year: int, month: int, anchor_day: int) -> dt.date:
    return dt.date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


@lru_cache(maxsize=1 << 16)  # a run asks for the same few periods for every service
def containing(day: dt.date, *, period: str, period_length: int | None, anchor_day: int,
               origin: dt.date) -> tuple[dt.date, dt.date]:
    """The period ``[start, end)`` that contains ``day``.

    ``anchor_day`` places monthly periods; ``origin`` (the service's start date) places
    periods of fixed length.
    """
    if period == "monthly":
        start = _anchored(day.year, day.month, anchor_day)
        if start > day:
            start = _anchored(*_add_months(day.year, day.month, -1), anchor_day)
        return start, _anchored(*_add_months(start.year, start.month, 1), anchor_day)
    length = period_length or FIXED_DAYS[period]
    steps = (day - origin).days // length
    start = origin + dt.timedelta(days=steps * length)
    return start, start + dt.timedelta(days=length)


def cumulative(price_minor: int, start: dt.date, end: dt.date, upto: dt.date) -> int:
    """``F(upto)``: the rounded price of the days from ``start`` up to ``upto`` (exclusive)."""
    total = (end - start).days
    used = (upto - start).days
    if not 0 <= used <= total:
        raise ValueError(f"{upto} is outside the period {start} to {end}")
    if used == total:
        return price_minor
    sign = -1 if price_minor < 0 else 1
    return sign * ((abs(price_minor) * used * 2 + total) // (2 * total))


def prorate(price_minor: int, start: dt.date, end: dt.date, a: dt.date, b: dt.date) -> int:
    """The price of days ``[a, b)`` within the period ``[start, end)`` priced ``price_minor``."""
    if a > b:
        raise ValueError(f"{a} is after {b}")
    return cumulative(price_minor, start, end, b) - cumulative(price_minor, start, end, a)
