"""Console: the plan catalogue (add a plan, give one a new price) and the bundle definitions."""

from __future__ import annotations

from flask import request

from core import audit, catalog, settings
from core.db import database
from core.errors import NotFound, ValidationError
from core.models import PLAN_KINDS, PLAN_PERIODS, Plan
from core.money import Money
from core.web.auth import staff
from core.web.console import bp, done, page

PLAN_FIELDS = ("code", "name", "kind", "price", "currency", "period", "period_days", "setup_fee",
               "tax_category", "download_kbps", "upload_kbps", "data_cap_mb")
# Kept as they are when a plan gets a new price.
_CARRIED = ("name", "kind", "period", "period_days", "tax_category", "download_kbps", "upload_kbps",
            "data_cap_mb", "fup_download_kbps", "fup_upload_kbps")


def _plans_page(status=200, form=None, error=None, price_error=None, price_code=None):
    if form is None:
        form = {k: "" for k in PLAN_FIELDS}
        form.update(kind="internet", period="monthly", currency=settings.get_or("billing.currency", "USD"),
                    setup_fee="0", tax_category="standard")
    return page("console/plans.html", status, plans=catalog.listing(), form=form, error=error,
                price_error=price_error, price_code=price_code, kinds=PLAN_KINDS, periods=PLAN_PERIODS,
                bundles=settings.get_or("bundles.bundles", []) or [],
                promos=settings.get_or("bundles.promos", []) or [])


@bp.route("/plans")
@staff("view")
def plans():
    """The newest version of every active plan, the add-plan form and the bundle definitions."""
    return _plans_page()


@bp.route("/plans", methods=("POST",))
@staff("plans.manage")
def plan_add():
    """Create a plan (or the next version of a code that exists); bad input is shown back."""
    form = {k: request.form.get(k, "").strip() for k in PLAN_FIELDS}
    try:
        plan = catalog.add(**{k: (v or None) for k, v in form.items() if k not in ("setup_fee", "tax_category")},
                           setup_fee=form["setup_fee"] or "0", tax_category=form["tax_category"] or "standard")
    except ValidationError as exc:
        return _plans_page(400, form=form, error=exc)
    return done(f"Plan {plan.code} version {plan.version} added.", "console.plans")


def new_price(latest: Plan, price: str) -> Plan:
    """The next version of ``latest`` at ``price``, everything else carried over (dunning policy too)."""
    cur = latest.currency

    def money(minor):
        return None if minor is None else Money(minor, cur)
    with database.atomic():
        plan = catalog.add(code=latest.code, price=price, currency=cur, setup_fee=money(latest.setup_fee_minor),
                           overage_per_gb=money(latest.overage_per_gb_minor),
                           **{k: getattr(latest, k) for k in _CARRIED})
        if latest.dunning_policy_id or latest.burst_download_kbps or latest.burst_upload_kbps:
            Plan.update(dunning_policy=latest.dunning_policy_id, burst_download_kbps=latest.burst_download_kbps,
                        burst_upload_kbps=latest.burst_upload_kbps).where(Plan.id == plan.id).execute()
            plan = Plan.get_by_id(plan.id)
            audit.record("plan.carry_over", "plan", plan.id, None, audit.snapshot(plan))
    return plan


@bp.route("/plans/<code>/price", methods=("POST",))
@staff("plans.manage")
def plan_price(code):
    """Give plan ``code`` a new price: a new version, for services added or changed to it from now on."""
    latest = Plan.select().where(Plan.code == code).order_by(Plan.version.desc()).first()
    if latest is None:
        raise NotFound(f"no plan {code!r}")
    try:
        plan = new_price(latest, request.form.get("price", ""))
    except ValidationError as exc:
        return _plans_page(400, price_error=exc, price_code=code)
    return done(f"Plan {plan.code} is now {Money(plan.price_minor, plan.currency)} (version {plan.version}).",
                "console.plans")
