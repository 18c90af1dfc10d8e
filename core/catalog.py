"""The plan catalogue: creating plans (a price change is a new version) and listing them."""

from __future__ import annotations

from core import audit, settings, validate
from core.db import database, refuse_conflict
from core.errors import ValidationError
from core.models import PLAN_KINDS, PLAN_PERIODS, Plan
from core.money import Money


def _speed(value, field):
    return validate.integer(value, field, minimum=1, maximum=100_000_000, required=False)


MAX_DATA_CAP_MB = 1_000_000_000  # a petabyte: larger is a typing mistake


def add(*, code, name, kind, price, currency=None, period="monthly", period_days=None,
        setup_fee="0", tax_category="standard", download_kbps=None, upload_kbps=None,
        data_cap_mb=None, fup_download_kbps=None, fup_upload_kbps=None,
        overage_per_gb=None) -> Plan:
    """Validate and create version 1 of a plan (or the next version if ``code`` exists).

    ``price``, ``setup_fee`` and ``overage_per_gb`` are text as a person types them, or
    :class:`Money`, in ``currency`` (default: the ``billing.currency`` setting).
    """
    if currency in (None, ""):
        currency = settings.get_or("billing.currency", "USD")
    cur = validate.currency(currency)

    def amount(value, field):
        if isinstance(value, Money):
            if value.currency != cur:
                raise ValidationError(f"{field} is in {value.currency}, the plan in {cur}", field)
            return value.minor
        return validate.money(value, cur, field).minor

    data = {
        "code": validate.code(code),
        "name": validate.text(name, "name"),
        "kind": validate.choice(kind, "kind", PLAN_KINDS),
        "period": validate.choice(period, "period", PLAN_PERIODS),
        "period_days": validate.integer(period_days, "period_days", minimum=1, maximum=3660, required=False),
        "currency": cur,
        "price_minor": amount(price, "price"),
        "setup_fee_minor": amount(setup_fee or "0", "setup_fee"),
        "tax_category": validate.code(tax_category, "tax_category"),
        "download_kbps": _speed(download_kbps, "download_kbps"),
        "upload_kbps": _speed(upload_kbps, "upload_kbps"),
        "data_cap_mb": validate.integer(data_cap_mb, "data_cap_mb", minimum=1, maximum=MAX_DATA_CAP_MB,
                                        required=False),
        "fup_download_kbps": _speed(fup_download_kbps, "fup_download_kbps"),
        "fup_upload_kbps": _speed(fup_upload_kbps, "fup_upload_kbps"),
        "overage_per_gb_minor": None if overage_per_gb in (None, "") else amount(overage_per_gb, "overage_per_gb"),
    }
    if data["period"] == "days" and not data["period_days"]:
        raise ValidationError("a plan with period 'days' needs period_days", "period_days")
    if data["period"] != "days" and data["period_days"]:
        raise ValidationError("period_days is only for period 'days'", "period_days")
    if data["kind"] != "internet" and (data["download_kbps"] or data["upload_kbps"] or data["data_cap_mb"]):
        raise ValidationError("speeds and data caps are for internet plans only", "kind")
    if (data["fup_download_kbps"] or data["fup_upload_kbps"] or data["overage_per_gb_minor"] is not None) \
            and not data["data_cap_mb"]:
        raise ValidationError("a speed after the cap or an overage price needs a data cap", "data_cap_mb")
    with refuse_conflict(f"plan {data['code']!r} was changed at the same time; try again", "code"), \
            database.atomic():
        latest = Plan.select().where(Plan.code == data["code"]).order_by(Plan.version.desc()).first()
        if latest is not None and latest.currency != cur:
            raise ValidationError(f"plan {data['code']!r} is priced in {latest.currency}", "currency")
        plan = Plan.create(version=1 if latest is None else latest.version + 1, **data)
        audit.record("plan.create", "plan", plan.id, None, audit.snapshot(plan))
    return plan


def listing(include_inactive=False):
    """The newest version of every plan, by code."""
    q = Plan.select().order_by(Plan.code, Plan.version.desc())
    if not include_inactive:
        q = q.where(Plan.active == True)  # noqa: E712 (peewee expression)
    latest = {}
    for plan in q:
        latest.setdefault(plan.code, plan)
    return list(latest.values())


def as_dict(plan: Plan) -> dict:
    """A plan as JSON for the CLI and the API; money as ``{"minor", "currency"}``."""
    def m(minor):
        return None if minor is None else Money(minor, plan.currency).to_dict()

    return {
        "id": plan.id, "code": plan.code, "version": plan.version, "name": plan.name,
        "kind": plan.kind, "period": plan.period, "period_days": plan.period_days,
        "price": m(plan.price_minor), "setup_fee": m(plan.setup_fee_minor),
        "tax_category": plan.tax_category, "download_kbps": plan.download_kbps,
        "upload_kbps": plan.upload_kbps, "data_cap_mb": plan.data_cap_mb,
        "fup_download_kbps": plan.fup_download_kbps, "fup_upload_kbps": plan.fup_upload_kbps,
        "overage_per_gb": m(plan.overage_per_gb_minor), "active": plan.active,
    }
