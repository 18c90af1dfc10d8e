"""The staff console's dashboard and customers: search, add, and the customer page.

The actions on the customer page (payments, charges, credit notes, plan changes,
extensions, suspending and restoring) are in :mod:`core.web.customer_actions`.
"""

from __future__ import annotations

import importlib

from flask import Blueprint, abort, current_app, make_response, redirect, render_template, request, url_for
from htmx_flask import request as htmx_request

from core import catalog, customers, dashboard, dunning, holds, ledger, payments, settings, usage_summary
from core.errors import ValidationError
from core.models import AuditEvent, Charge, CreditNote, Customer, Enforcement, Invoice, Plan, Router, Service
from core.money import Money
from core.web.auth import login_required, staff
from core.web.charts import Series, bar_chart

bp = Blueprint("admin", __name__, url_prefix="/admin")

SEARCH_LIMIT = 50
PAGE_ROWS = 50  # invoices, payments, ledger entries and audit events shown on a customer page


def _money_fmt(currency: str):
    return lambda v: str(Money(int(v), currency))


@bp.route("/", endpoint="dashboard")
@login_required
def dashboard_page():
    """Revenue, receivables, accounts, today's payments, routers and a year of invoicing and payments."""
    max_age = current_app.config.get("DASHBOARD_CACHE_SECONDS", dashboard.CACHE_SECONDS)
    figures = dashboard.cached_figures(current_app.config["WISPBILL"].database_url, max_age)
    labels = [m.strftime("%b %y") for m in figures.monthly.months]
    charts = [bar_chart(labels, [Series("Invoiced", figures.monthly.invoiced.get(cur, [0] * len(labels))),
                                 Series("Paid", figures.monthly.paid.get(cur, [0] * len(labels)))],
                        title=f"Invoiced and paid per month, {cur}", fmt=_money_fmt(cur))
              for cur in figures.monthly.currencies()]
    return render_template("admin/dashboard.html", f=figures, charts=charts, buckets=dashboard.AGE_BUCKETS,
                           bucket_labels=dashboard.AGE_LABELS, max_age=int(max_age))


@bp.route("/customers")
@login_required
def customer_list():
    """Customers by name; an htmx request for a search gets only the table rows."""
    query = request.args.get("q", "").strip()[:100]
    rows = customers.search(query, limit=SEARCH_LIMIT)
    template = "admin/_customer_rows.html" if htmx_request.htmx else "admin/customers.html"
    response = make_response(render_template(template, customers=rows, q=query, limit=SEARCH_LIMIT))
    response.vary.add("HX-Request")  # the same URL answers with a fragment or a page
    return response


FORM_FIELDS = ("name", "email", "phone", "currency", "terms_days", "address")


@bp.route("/customers/new", methods=("GET", "POST"))
@staff("customers.edit")
def customer_new():
    """The add-customer form; bad input is shown back with a 400 and nothing is saved."""
    form = {k: request.form.get(k, "") for k in FORM_FIELDS}
    error = None
    if request.method == "POST":
        try:
            customer = customers.add(**{k: (v or None) for k, v in form.items()})
        except ValidationError as exc:
            error = exc
        else:
            return redirect(url_for("admin.customer", customer_id=customer.id))
    else:
        form["currency"] = settings.get_or("billing.currency", "USD")
        form["terms_days"] = settings.get_or("billing.terms_days", 14)
    status = 400 if error else 200
    return render_template("admin/customer_new.html", form=form, error=error), status


# --- the customer page ---------------------------------------------------------------

def get_customer(customer_id: int) -> Customer:
    """The customer, or the 404 page."""
    customer = Customer.get_or_none(Customer.id == customer_id)
    if customer is None:
        abort(404, f"There is no customer {customer_id}.")
    return customer


def _services(customer: Customer) -> list[dict]:
    rows = list(Service.select().where(Service.customer == customer.id).order_by(Service.id))
    plans = {p.id: p for p in Plan.select().where(
        Plan.id << ({s.plan_id for s in rows} | {s.pending_plan_id for s in rows if s.pending_plan_id}))} \
        if rows else {}
    router_ids = {s.router_id for s in rows if s.router_id}
    router_names = {r.id: r.name for r in Router.select(Router.id, Router.name).where(Router.id << router_ids)} \
        if router_ids else {}
    enforced = {e.service_id: e for e in Enforcement.select().where(Enforcement.service << [s.id for s in rows])} \
        if rows else {}
    out = []
    for s in rows:
        plan = plans[s.plan_id]
        out.append({"service": s, "plan": plan, "price": Money(s.price_override_minor if s.price_override_minor
                                                               is not None else plan.price_minor, plan.currency),
                    "pending_plan": plans.get(s.pending_plan_id), "router": router_names.get(s.router_id),
                    "enforcement": enforced.get(s.id)})
    return out


def _usage_charts(services: list[dict]) -> list[dict]:
    out = []
    for row in services:
        s = row["service"]
        if s.status not in ("active", "suspended"):
            continue
        usage = usage_summary.this_period(s)
        labels = [d.strftime("%d") for d, _i, _o in usage.daily]
        chart = bar_chart(labels, [Series("In", [i for _d, i, _o in usage.daily]),
                                   Series("Out", [o for _d, _i, o in usage.daily])],
                          title=f"Usage of service {s.id} from {usage.start.isoformat()}",
                          fmt=lambda v: usage_summary.human_bytes(int(v)))
        out.append({"service": s, "plan": row["plan"], "usage": usage, "chart": chart,
                    "used": usage_summary.human_bytes(usage.used),
                    "cap": usage_summary.human_bytes(usage.cap_bytes) if usage.cap_bytes else None})
    return out


def _audit_trail(customer: Customer, services, invoices, payment_rows) -> list[AuditEvent]:
    """The newest audit events about the customer and its services, invoices, payments,
    credit notes and charges."""
    ids = {
        "customer": [customer.id],
        "service": [row["service"].id for row in services],
        "invoice": [i.id for i in Invoice.select(Invoice.id).where(Invoice.customer == customer.id)],
        "payment": [p.id for p in payment_rows],
        "credit_note": [c.id for c in CreditNote.select(CreditNote.id).where(CreditNote.customer == customer.id)],
        "charge": [c.id for c in Charge.select(Charge.id).where(Charge.customer == customer.id)],
    }
    condition = None
    for object_type, values in ids.items():
        if not values:
            continue
        part = (AuditEvent.object_type == object_type) & (AuditEvent.object_id << [str(v) for v in values])
        condition = part if condition is None else condition | part
    rows = list(AuditEvent.select().where(condition).order_by(AuditEvent.id.desc()).limit(PAGE_ROWS))
    for row in rows:
        row.summary = _summary(row.before, row.after)
    return rows


def _summary(before, after, limit: int = 300) -> str:
    """What an audit event changed, as short text: ``state: suspended → active, reason: ...``."""
    if not isinstance(after, dict):
        return "" if after is None else str(after)[:limit]
    before = before if isinstance(before, dict) else {}
    parts = []
    for key, value in after.items():
        if key in before and before[key] != value:
            parts.append(f"{key}: {before[key]} → {value}")
        elif key not in before and value not in (None, "", [], {}):
            parts.append(f"{key}: {value}")
    text = ", ".join(parts)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def render_customer(customer: Customer, *, errors: dict | None = None, forms: dict | None = None,
                    status: int = 200):
    """The customer page; ``errors`` and ``forms`` (per action) show a refused form back."""
    services = _services(customer)
    invoices = list(Invoice.select().where(Invoice.customer == customer.id, Invoice.status != "draft")
                    .order_by(Invoice.id.desc()).limit(PAGE_ROWS))
    payment_rows = payments.listing(customer, limit=PAGE_ROWS)
    entries = ledger.entries(customer)
    context = {
        "customer": customer, "dunning": dunning.status(customer), "balance": ledger.balance(customer),
        "services": services, "invoices": invoices, "payments": payment_rows,
        "ledger": entries[-PAGE_ROWS:], "ledger_hidden": max(len(entries) - PAGE_ROWS, 0),
        "usage": _usage_charts(services), "audit": _audit_trail(customer, services, invoices, payment_rows),
        "plans": [p for p in catalog.listing() if p.currency == customer.currency],
        "creditable": [i for i in invoices if i.status in ("issued", "paid")],
        "open_invoices": [i for i in invoices if i.status == "issued"],
        "methods": payments.MANUAL_METHODS, "errors": errors or {}, "forms": forms or {},
        "restore_days": holds.RESTORE_PROMISE_DAYS,
    }
    return render_template("admin/customer.html", **context), status


@bp.route("/customers/<int:customer_id>")
@login_required
def customer(customer_id: int):
    """Everything about one customer, and the actions the signed-in role may take."""
    return render_customer(get_customer(customer_id))


importlib.import_module("core.web.customer_actions")  # registers the action routes on bp
