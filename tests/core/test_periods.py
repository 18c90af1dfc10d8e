"""Billing periods and proration by the day: months of every length, leap years, fixed periods."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import periods

D = dt.date


def monthly(day, anchor):
    return periods.containing(day, period="monthly", period_length=None, anchor_day=anchor, origin=D(2020, 1, 1))


@pytest.mark.parametrize("day, anchor, expected", [
    (D(2026, 2, 10), 1, (D(2026, 2, 1), D(2026, 3, 1))),          # 28 days
    (D(2028, 2, 10), 1, (D(2028, 2, 1), D(2028, 3, 1))),          # 29 days, leap year
    (D(2026, 4, 30), 1, (D(2026, 4, 1), D(2026, 5, 1))),          # 30 days
    (D(2026, 1, 31), 1, (D(2026, 1, 1), D(2026, 2, 1))),          # 31 days
    (D(2026, 1, 31), 31, (D(2026, 1, 31), D(2026, 2, 28))),       # the 31st clamps to February's end
    (D(2026, 2, 28), 31, (D(2026, 2, 28), D(2026, 3, 31))),       # and goes back to the 31st in March
    (D(2028, 2, 29), 30, (D(2028, 2, 29), D(2028, 3, 30))),       # leap-year clamp
    (D(2026, 3, 14), 15, (D(2026, 2, 15), D(2026, 3, 15))),       # before the anchor: last month's period
    (D(2026, 12, 20), 15, (D(2026, 12, 15), D(2027, 1, 15))),     # across the year end
])
def test_monthly_periods_follow_the_anchor_day(day, anchor, expected):
    assert monthly(day, anchor) == expected


def test_fixed_periods_run_from_the_start_date():
    origin = D(2026, 3, 4)
    week = periods.containing(D(2026, 3, 12), period="weekly", period_length=None, anchor_day=4, origin=origin)
    assert week == (D(2026, 3, 11), D(2026, 3, 18))
    assert periods.containing(D(2026, 3, 9), period="daily", period_length=None, anchor_day=4,
                              origin=origin) == (D(2026, 3, 9), D(2026, 3, 10))
    assert periods.containing(D(2026, 4, 5), period="days", period_length=30, anchor_day=4,
                              origin=origin) == (D(2026, 4, 3), D(2026, 5, 3))


@pytest.mark.parametrize("start, end, a, b, price, expected", [
    # 17 of 31 days of 3,000.00: 3000 * 17 / 31 = 1645.161... -> 1,645.16
    (D(2026, 1, 1), D(2026, 2, 1), D(2026, 1, 15), D(2026, 2, 1), 300000, 164516),
    # 9 of 28 days: F(9) = round(300000 * 9 / 28) = round(96428.57) = 96429
    (D(2026, 2, 1), D(2026, 3, 1), D(2026, 2, 1), D(2026, 2, 10), 300000, 96429),
    # the rest of that February: 300000 - 96429, so the two parts make the whole price
    (D(2026, 2, 1), D(2026, 3, 1), D(2026, 2, 10), D(2026, 3, 1), 300000, 203571),
    # leap-year February, 10 of 29 days of 1,000 UGX (no minor units): round(344.83) = 345
    (D(2028, 2, 1), D(2028, 3, 1), D(2028, 2, 1), D(2028, 2, 11), 1000, 345),
    # 15 of 30 days of 10.005 KWD (three decimals): 10005 / 2 = 5002.5, half up -> 5003
    (D(2026, 4, 1), D(2026, 5, 1), D(2026, 4, 1), D(2026, 4, 16), 10005, 5003),
    (D(2026, 4, 1), D(2026, 5, 1), D(2026, 4, 16), D(2026, 5, 1), 10005, 5002),
])
def test_prorate_by_the_day(start, end, a, b, price, expected):
    assert periods.prorate(price, start, end, a, b) == expected


def test_prorate_refuses_days_outside_the_period():
    with pytest.raises(ValueError, match="outside the period"):
        periods.prorate(100, D(2026, 1, 1), D(2026, 2, 1), D(2026, 1, 5), D(2026, 2, 2))
    with pytest.raises(ValueError, match="after"):
        periods.prorate(100, D(2026, 1, 1), D(2026, 2, 1), D(2026, 1, 9), D(2026, 1, 5))


@given(
    price=st.integers(min_value=0, max_value=10**12),
    year=st.integers(min_value=2000, max_value=2100),
    month=st.integers(min_value=1, max_value=12),
    anchor=st.integers(min_value=1, max_value=31),
    cuts=st.lists(st.integers(min_value=0, max_value=31), max_size=6),
)
def test_proration_over_a_whole_period_adds_up_to_the_price(price, year, month, anchor, cuts):
    start, end = monthly(D(year, month, 28), anchor)
    days = (end - start).days
    points = sorted({0, days, *[min(c, days) for c in cuts]})
    parts = [periods.prorate(price, start, end, start + dt.timedelta(days=a), start + dt.timedelta(days=b))
             for a, b in zip(points, points[1:])]
    assert sum(parts) == price
    assert all(p >= 0 for p in parts)
