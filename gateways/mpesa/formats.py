"""How M-Pesa writes phone numbers, times and amounts, and how wispbill reads them."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from core.clock import utcnow
from core.errors import ValidationError
from core.money import Money, MoneyError

CURRENCY = "KES"
# Kenya keeps East Africa Time all year (no daylight saving), so a fixed offset is exact.
KENYA = dt.timezone(dt.timedelta(hours=3), "EAT")
TIME_FORMAT = "%Y%m%d%H%M%S"

_SEPARATORS = re.compile(r"[\s\-().]")
_MOBILE = re.compile(r"254[17][0-9]{8}")
_AMOUNT_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
_RECEIPT = re.compile(r"[A-Za-z0-9]{4,40}")


def normalise_phone(text: str | None) -> str:
    """A Kenyan mobile number as Daraja wants it, ``2547XXXXXXXX`` or ``2541XXXXXXXX``.

    Takes ``+254 712 345 678``, ``0712345678``, ``712345678``, ``254112345678`` and the
    like; anything else is a :class:`ValidationError` on field ``phone``.
    """
    raw = (text or "").strip()
    if not raw:
        raise ValidationError("M-Pesa needs the payer's phone number", "phone")
    digits = _SEPARATORS.sub("", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    if len(digits) == 10 and digits.startswith("0"):
        digits = "254" + digits[1:]
    elif len(digits) == 9:
        digits = "254" + digits
    if not _MOBILE.fullmatch(digits):
        raise ValidationError(f"{raw!r} is not a Kenyan mobile number (such as 0712 345 678)", "phone")
    return digits


def kenya_timestamp(now: dt.datetime | None = None) -> str:
    """``now`` (naive UTC, default the clock) as Daraja's ``YYYYMMDDHHMMSS`` in Kenyan time."""
    now = now or utcnow()
    return now.replace(tzinfo=dt.timezone.utc).astimezone(KENYA).strftime(TIME_FORMAT)


def read_kenya_time(value, field: str) -> dt.datetime:
    """A Daraja ``YYYYMMDDHHMMSS`` (Kenyan time, as a number or text) as a naive UTC datetime."""
    text = "" if isinstance(value, bool) or not isinstance(value, (int, str)) else str(value).strip()
    try:
        if len(text) != 14 or not text.isdigit():
            raise ValueError(text)
        local = dt.datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        raise ValidationError(f"M-Pesa {field} {value!r} is not a YYYYMMDDHHMMSS time") from None
    return local.replace(tzinfo=KENYA).astimezone(dt.timezone.utc).replace(tzinfo=None)


def check_fresh(when: dt.datetime, field: str, max_age_hours: int, now: dt.datetime | None = None) -> None:
    """Refuse a time older than ``max_age_hours`` (a replay) or more than an hour ahead."""
    now = now or utcnow()
    if when < now - dt.timedelta(hours=max_age_hours):
        raise ValidationError(f"M-Pesa {field} {when:%Y-%m-%d %H:%M} UTC is older than {max_age_hours} hours: "
                              "refused as a replay")
    if when > now + dt.timedelta(hours=1):
        raise ValidationError(f"M-Pesa {field} {when:%Y-%m-%d %H:%M} UTC is in the future")


def read_amount(value, field: str) -> Money:
    """A positive M-Pesa amount (``1500``, ``1500.00``, ``"1500.00"``) as exact KES."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ValidationError(f"M-Pesa {field} {value!r} is not an amount")
    if isinstance(value, str):
        if not _AMOUNT_TEXT.fullmatch(value.strip()):
            raise ValidationError(f"M-Pesa {field} {value!r} is not an amount")
        value = Decimal(value.strip())
    try:
        amount = Money.from_major(value, CURRENCY)
    except MoneyError as exc:
        raise ValidationError(f"M-Pesa {field}: {exc}") from None
    if amount.minor <= 0:
        raise ValidationError(f"M-Pesa {field} {value} is not a positive amount")
    return amount


def whole_shillings(amount: Money) -> tuple[int, Money]:
    """``amount`` rounded up to whole shillings: the number to send, and the Money it stands for."""
    if amount.currency != CURRENCY:
        raise ValidationError(f"M-Pesa takes {CURRENCY} only, not {amount.currency}", "currency")
    shillings = -(-amount.minor // 100)
    if shillings < 1:
        raise ValidationError("M-Pesa cannot collect less than KES 1", "amount")
    return shillings, Money(shillings * 100, CURRENCY)


def read_receipt(value, field: str) -> str:
    """An M-Pesa transaction id (``SLG2ABC123``): 4 to 40 letters and digits, upper-cased."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not _RECEIPT.fullmatch(text):
        raise ValidationError(f"M-Pesa {field} {value!r} is not a transaction id")
    return text.upper()
