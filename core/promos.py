"""Promo codes attached to customers; the pricing plugins decide what each one is worth."""

from __future__ import annotations

from core import audit, validate
from core.clock import today
from core.db import database, refuse_conflict
from core.errors import ValidationError
from core.hooktypes import PromoInfo
from core.models import Customer, PromoRedemption
from core.plugins import get_manager


def describe(code: str, pm=None) -> PromoInfo:
    """What a plugin says ``code`` is, or a :class:`ValidationError` if no plugin honours it."""
    text = validate.text(code, "code", max_length=60).upper()
    pm = pm or get_manager()
    _plugin, info = pm.call_first("pricing_describe_promo", code=text)
    if not isinstance(info, PromoInfo):
        raise ValidationError(f"unknown promo code {text!r}", "code")
    return info


def redeem(customer: Customer, code: str, *, on=None, pm=None) -> PromoRedemption:
    """Attach promo code ``code`` to ``customer``, from ``on`` (default today)."""
    info = describe(code, pm)
    day = validate.date(on, "on", today())
    if info.valid_until is not None and day > info.valid_until:
        raise ValidationError(f"promo code {info.code!r} ended on {info.valid_until.isoformat()}", "code")
    with refuse_conflict(f"customer {customer.account_number} already has promo code {info.code!r}", "code"), \
            database.atomic():
        if PromoRedemption.select().where(PromoRedemption.customer == customer.id,
                                          PromoRedemption.code == info.code).exists():
            raise ValidationError(f"customer {customer.account_number} already has promo code {info.code!r}", "code")
        row = PromoRedemption.create(customer=customer.id, code=info.code, redeemed_on=day,
                                     created_by=audit.current_actor())
        audit.record("promo.redeem", "customer", customer.id, None, {"code": info.code, "on": day.isoformat()})
    return row


def as_dict(row: PromoRedemption) -> dict:
    """A redemption as JSON."""
    return {"customer_id": row.customer_id, "code": row.code, "redeemed_on": row.redeemed_on.isoformat(),
            "times_applied": row.times_applied}
